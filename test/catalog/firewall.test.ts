// The firewall's rule compiler (remote-services/firewall/tables.ts), without a
// kernel: config checks, the trees against the plain first-match of a rule list,
// counter slots across changes, and what 1,000 and 10,000 rules cost.
import test from 'ava';
import { FieldError } from '@netcube/catalog/fields';
import {
  chainIndex,
  classify,
  compileFirewall,
  CT_STATES,
  DEFAULT_SLOT,
  firstMatch,
  MAX_RULES,
  nodeBase,
  parseFirewall,
  type FirewallConfig,
  type PacketFields,
  type Rule,
} from '@netcube/firewall/tables';
import { adminRules, PROBE, seeded } from '../helpers/rulesets';

test('config errors name the field and say what is wrong', (t) => {
  const cases: [unknown, string][] = [
    [{ ingress: { rules: [{ action: 'allow' }] } }, 'ingress.rules[0].action: expected one of accept, drop, got "allow"'],
    [{ ingress: { rules: [{ action: 'drop', src: '10.0.0.1/8' }] } }, 'ingress.rules[0].src: "10.0.0.1/8" has bits set past its /8: write 10.0.0.0/8'],
    [{ ingress: { rules: [{ action: 'drop', src: '10.0.0.0/33' }] } }, 'ingress.rules[0].src: the prefix length of "10.0.0.0/33" must be a number from 0 to 32'],
    [{ egress: { rules: [{ action: 'drop', dport: 80 }] } }, 'egress.rules[0].dport: ports need protocol tcp, udp or sctp'],
    [{ egress: { rules: [{ action: 'drop', protocol: 'udp', dport: '90-80' }] } }, "egress.rules[0].dport: the range runs backwards: expected a port (0-65535) or a range like '8000-8100', got \"90-80\""],
    [{ ingress: { rules: [{ action: 'drop', protocol: 'udp', tcpFlags: { set: ['syn'] } }] } }, 'ingress.rules[0].tcpFlags: TCP flags need protocol tcp'],
    [{ ingress: { rules: [{ action: 'drop', protocol: 'tcp', tcpFlags: { set: ['syn'], clear: ['syn'] } }] } }, 'ingress.rules[0].tcpFlags.clear[0]: syn is named twice'],
    [{ ingress: { rules: [{ action: 'drop', ctState: ['open'] }] } }, 'ingress.rules[0].ctState[0]: expected one of new, established, related, invalid, untracked, got "open"'],
    [{ ingress: { rules: [{ action: 'drop', src: '10.0.0.0/8', dst: 'fd00::/8' }] } }, 'ingress.rules[0].dst: fd00::/8 is IPv6 but src 10.0.0.0/8 is IPv4: no packet has both'],
    [{ ingress: { rules: [{ action: 'drop', sorce: '10.0.0.0/8' }] } }, 'ingress.rules[0].sorce: unknown field; the fields here are id, action, src, dst, protocol, sport, dport, tcpFlags, ctState'],
    [{ ingress: { defaultAction: 'reject' } }, 'ingress.defaultAction: expected one of accept, drop, got "reject"'],
    [{ forward: {} }, 'forward: unknown field; the fields here are ingress, egress'],
    [{ ingress: { rules: new Array(MAX_RULES + 1).fill({ action: 'drop' }) } }, `ingress.rules: ${MAX_RULES + 1} rules; a direction holds at most ${MAX_RULES}`],
  ];
  for (const [config, message] of cases) {
    const err = t.throws(() => compileFirewall(config), { instanceOf: FieldError });
    t.is(err?.message, message);
  }
});

test('more rules that differ only in TCP flags than a leaf holds: an error naming them', (t) => {
  const flags = ['fin', 'syn', 'rst', 'psh', 'urg'] as const;
  const rules: Rule[] = flags.map((f) => ({ action: 'drop', protocol: 'tcp', tcpFlags: { set: [f] } }));
  const err = t.throws(() => compileFirewall({ egress: { rules } }), { instanceOf: FieldError });
  t.is(err?.field, 'egress.rules');
  t.regex(err!.message, /5 rules match the same packets but for their TCP flags \(tcp flags 1\/1 drop; .*\): at most 4 can/);
});

test('acceptEstablished puts an established-and-related accept first', (t) => {
  const parsed = parseFirewall({ ingress: { acceptEstablished: true, rules: [{ action: 'drop', src: '10.0.0.0/8' }] } });
  t.deepEqual(parsed.ingress.rules.map((r) => [r.action, r.ctStates]), [['accept', [1, 2]], ['drop', undefined]]);
  t.is(parsed.ingress.defaultAction, 'accept');
  t.deepEqual(parsed.egress.rules, []);
});

/** Random rules over a small space, so that they overlap a lot. */
function randomRules(n: number, rnd: () => number): Rule[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const maybe = <T>(p: number, v: () => T): T | undefined => (rnd() < p ? v() : undefined);
  return Array.from({ length: n }, (): Rule => {
    const v6 = rnd() < 0.3;
    const prefix = (): string =>
      v6 ? pick(['fd00::/8', 'fd00::/64', 'fd00::1/128', 'fd00:0:0:1::/64', '::/0']) : pick(['10.0.0.0/8', '10.0.0.0/24', '10.0.1.0/24', '10.0.0.1/32', '10.0.1.7/32', '0.0.0.0/0']);
    const protocol = maybe(0.7, () => pick(['tcp', 'udp', 'icmp'] as const));
    const ports = protocol === 'tcp' || protocol === 'udp';
    const port = (): string | number => pick([80, 443, '1-1023', '1024-65535', '400-500']);
    return {
      action: pick(['accept', 'drop'] as const),
      src: maybe(0.5, prefix),
      dst: maybe(0.5, prefix),
      protocol,
      sport: ports ? maybe(0.2, port) : undefined,
      dport: ports ? maybe(0.5, port) : undefined,
      tcpFlags: protocol === 'tcp' ? maybe(0.15, () => ({ set: [pick(['syn', 'ack'] as const)] })) : undefined,
      ctState: maybe(0.2, () => [...new Set([pick(CT_STATES), pick(CT_STATES)])]),
    };
  });
}

function randomPacket(rnd: () => number): PacketFields {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const v6 = rnd() < 0.3;
  const addr = (): string => (v6 ? pick(['fd00::1', 'fd00::2', 'fd00:0:0:1::5', 'fe80::1']) : pick(['10.0.0.1', '10.0.0.2', '10.0.1.7', '10.9.9.9', '192.0.2.1']));
  return {
    src: addr(),
    dst: addr(),
    protocol: pick([6, 17, 1, 58]),
    sport: pick([80, 443, 450, 1023, 1024, 5000, 65535]),
    dport: pick([80, 443, 450, 1023, 1024, 5000, 65535]),
    tcpFlags: pick([0x02, 0x12, 0x10, 0x11]),
    ctState: pick(CT_STATES),
  };
}

test('the trees decide as a list of rules would: random rules and packets', (t) => {
  const rnd = seeded(7);
  for (let round = 0; round < 40; round++) {
    const config: FirewallConfig = { ingress: { defaultAction: rnd() < 0.5 ? 'accept' : 'drop', rules: randomRules(1 + Math.floor(rnd() * 60), rnd) } };
    let compiled;
    try {
      compiled = compileFirewall(config);
    } catch (err) {
      // Random rules may put more flag conditions on one region than a leaf holds.
      t.true(err instanceof FieldError && /TCP flags/.test((err as Error).message), String(err));
      continue;
    }
    for (let i = 0; i < 200; i++) {
      const p = randomPacket(rnd);
      const want = firstMatch(config, 'ingress', p);
      const got = classify(compiled, 'ingress', p);
      const slot = want.rule < 0 ? DEFAULT_SLOT : compiled.rules.ingress[want.rule].slot;
      if (got.slot !== slot || got.action !== want.action) {
        t.fail(`round ${round}: ${JSON.stringify(p)} met rule ${want.rule} (${want.rule >= 0 ? compiled.rules.ingress[want.rule].text : 'default'}) in the list, slot ${got.slot} in the trees`);
        return;
      }
    }
  }
  t.pass();
});

test('1,000 and 10,000 rules: the probe meets its rule near the end; the trees stay shallow and fit', (t) => {
  const depth: Record<number, number> = {};
  for (const n of [1_000, 10_000]) {
    const rules = adminRules(n);
    const config = { ingress: { defaultAction: 'drop' as const, rules } };
    const compiled = compileFirewall(config);
    const probe = { ...PROBE };
    t.is(firstMatch(config, 'ingress', probe).rule, n - 10);
    t.deepEqual(classify(compiled, 'ingress', probe), { slot: compiled.rules.ingress[n - 10].slot, action: 'accept' });
    t.deepEqual(classify(compiled, 'ingress', { ...probe, dport: PROBE.dport + 1 }), { slot: DEFAULT_SLOT, action: 'drop' });
    const s = compiled.stats.ingress;
    t.true(s.nodes < 2 * n, `${n} rules: ${s.nodes} nodes`);
    depth[n] = s.depth;
  }
  // Ten times the rules, a few more compares: the depth grows with the logarithm.
  t.true(depth[10_000] <= depth[1_000] + 8, `depth ${depth[1_000]} for 1,000 rules, ${depth[10_000]} for 10,000`);
  t.true(depth[10_000] <= 20, `depth ${depth[10_000]}`);
});

test('banks alternate, and a rule keeps its counter slot while it exists', (t) => {
  const web: Rule = { id: 'web', action: 'accept', protocol: 'tcp', dport: 443 };
  const ssh: Rule = { action: 'accept', protocol: 'tcp', dport: 22 };
  const first = compileFirewall({ ingress: { rules: [web, ssh] } });
  t.is(first.bank, 0);
  t.deepEqual(first.activate, { table: 'fw_active', key: 0, value: { bank: 0 } });
  t.true(first.tables.fw_nodes.every((e) => e.key >= nodeBase(0, 0) && e.key < nodeBase(1, 0)));
  t.deepEqual(first.tables.fw_chains.map((c) => c.key), [chainIndex(0, 0), chainIndex(0, 1)]);
  t.deepEqual(first.freshSlots.ingress, [0, 1]);

  const dns: Rule = { action: 'accept', protocol: 'udp', dport: 53 };
  const second = compileFirewall({ ingress: { rules: [dns, ssh, web] } }, { activeBank: first.bank, previous: first.slots });
  t.is(second.bank, 1);
  t.true(second.tables.fw_nodes.every((e) => e.key >= nodeBase(1, 0)));
  t.deepEqual(second.rules.ingress.map((r) => r.slot), [2, 1, 0], 'web and ssh keep 0 and 1, dns takes a free one');
  t.deepEqual(second.freshSlots.ingress, [2]);

  // Removed rules' slots stay out of use until the rule set after: the old bank may still count in them.
  const third = compileFirewall({ ingress: { rules: [{ action: 'drop', src: '10.0.0.0/8' }] } }, { activeBank: second.bank, previous: second.slots });
  t.is(third.bank, 0);
  t.deepEqual(third.freshSlots.ingress, [3]);
  const fourth = compileFirewall({ ingress: { rules: [{ action: 'drop', src: '10.0.0.0/8' }, ssh] } }, { activeBank: third.bank, previous: third.slots });
  t.deepEqual(fourth.rules.ingress.map((r) => r.slot), [3, 0]);
});

test('connection tracking is on only when a rule asks for a state, and then for both directions', (t) => {
  const off = compileFirewall({ ingress: { rules: [{ action: 'drop', src: '10.0.0.0/8' }] } });
  t.true(off.tables.fw_chains.every((c) => (c.value as { track: number }).track === 0));
  const on = compileFirewall({ egress: { acceptEstablished: true } });
  t.true(on.tables.fw_chains.every((c) => (c.value as { track: number }).track === 1));
});

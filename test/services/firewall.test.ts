// The firewall service end to end (issue 14): a firewall cube stacked on the
// client's side of a wire (a nop cube) between a client and a server namespace,
// programmed by netcube-firewall through the daemon, with real traffic: rules per
// direction and default actions, accept established, per-rule counters through
// GetState, a rule set changed under a counted stream with no packet lost, its
// state kept over netcubed's kill -9 and the service's restart, connections it
// tracks collected once expired.
//
//   client c (10.9.0.1) eth0 ── lc ─[fw]─ wire (nop) ─ ls ── eth0 server s (10.9.0.2)
//                                host (netcubed)

import anyTest, { type TestFn } from 'ava';
import type { JsonObject } from '@netcube/api/chain';
import { ApiCallError } from '@netcube/api/grpc/client';
import { compileFirewall, DIRECTIONS } from '@netcube/firewall/tables';
import { adminRules } from '../helpers/rulesets';
import { attachXdpPass, Generator, linkCounters, Sink, streamFrame, tcpTransfer } from '../helpers/traffic';
import { waitFor } from '../helpers/wait';
import { netcubectl } from '../cli/run';
import { CatalogBed, logOnFailure, type Pod, type SocketsProcess } from './catalog-bed';

interface Context {
  bed: CatalogBed;
  client: Pod;
  server: Pod;
  servers: SocketsProcess;
}
const test = anyTest as TestFn<Context>;

const TCP_PORTS = [5001, 5002];
const UDP_PORTS = [5353, 5354];

/** The rules of the first tests: the client may ping, reach TCP 5001 and UDP 5353; the server may only answer. */
const BASE = {
  ingress: {
    defaultAction: 'drop',
    rules: [
      { id: 'ping', action: 'accept', protocol: 'icmp' },
      { id: 'web', action: 'accept', protocol: 'tcp', dport: 5001 },
      { id: 'dns', action: 'accept', protocol: 'udp', dport: '5353' },
    ],
  },
  egress: { defaultAction: 'drop', acceptEstablished: true },
  conntrack: { udp: 3, udpStream: 3, icmp: 3 },
} as const;

function chain(host: string, params: unknown): string {
  return `apiVersion: netcube/v1
kind: Chain
metadata: { name: guarded }
spec:
  cubes:
    - { name: wire, host: ${host}, type: nop, mode: tc, ports: [left, right] }
    - { name: fw, host: ${host}, type: firewall, mode: tc, params: ${JSON.stringify(params)} }
  links:
    - { from: netdev:lc, to: wire:left }
    - { from: wire:right, to: netdev:ls }
  attachments:
    - { cube: fw, to: netdev:lc, direction: both }
`;
}

interface RuleState {
  index: number;
  id?: string;
  rule: string;
  packets: number;
  bytes: number;
}
interface DirectionState {
  defaultAction: string;
  default: { packets: number; bytes: number };
  rules: RuleState[];
}
interface FwState {
  bank: number;
  ingress: DirectionState;
  egress: DirectionState;
  conntrack?: { flows: number; expired: number };
}

const state = async (bed: CatalogBed): Promise<FwState> => (await bed.services.get('firewall-1')!.api.getState('fw')) as unknown as FwState;
const api = (bed: CatalogBed) => bed.services.get('firewall-1')!.api;
const rule = (s: DirectionState, id: string): RuleState => s.rules.find((r) => r.id === id)!;

/** Sets the config and waits until the cube runs its rules (as the compiler makes them). */
async function setRules(bed: CatalogBed, config: object): Promise<FwState> {
  await api(bed).setConfig({ cube: 'fw', config: config as JsonObject });
  const { conntrack: _timeouts, ...rules } = config as { conntrack?: unknown };
  const expected = compileFirewall(rules);
  const texts = (d: DirectionState | undefined) => JSON.stringify([d?.defaultAction, d?.rules.map((r) => r.rule)]);
  return waitFor('the new rules switched to', async () => {
    const s = await state(bed);
    const same = DIRECTIONS.every((dir) => texts(s[dir]) === JSON.stringify([(rules as Record<string, { defaultAction?: string }>)[dir]?.defaultAction ?? 'accept', expected.rules[dir].map((r) => r.text)]));
    return same ? s : undefined;
  });
}

/** Whether every rule of `before` counts at least as much in `after` (the rules being the same). */
const kept = (before: FwState, after: FwState): boolean =>
  (['ingress', 'egress'] as const).every((d) => before[d].rules.every((r, i) => after[d].rules[i]?.rule === r.rule && after[d].rules[i].packets >= r.packets));
/** Packets the ingress rules counted, all together. */
const counted = (s: FwState): number => s.ingress.rules.reduce((n, r) => n + r.packets, 0);

const connect = (bed: CatalogBed, from: Pod, to: Pod, port: number) => bed.sockets<{ result: string; greeting?: string }>(from.ns, ['connect', to.address, port, 1500]);
const udp = (bed: CatalogBed, from: Pod, to: Pod, port: number, count = 3) => bed.sockets<{ sent: number; echoed: number; error?: string }>(from.ns, ['udp', to.address, port, count, 1500]);
const pings = async (from: Pod, to: Pod, count: number): Promise<number> => {
  const r = await from.ns.exec('ping', ['-n', '-c', String(count), '-i', '0.05', '-W', '1', to.address], { timeoutMs: 30_000 }).catch((err: Error) => ({ stdout: err.message }));
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
};

test.before(async (t) => {
  const bed = await CatalogBed.open();
  t.context = { bed } as Context;
  const client = await bed.pod('lc', '10.9.0.1/24');
  const server = await bed.pod('ls', '10.9.0.2/24');
  const servers = await bed.background(server.ns, ['serve', 's', TCP_PORTS.join(','), UDP_PORTS.join(',')]);
  await servers.line('servers ready', (l) => l.ready === true);
  await bed.apply(chain(bed.hostName, BASE));
  const fw = await bed.service('firewall');
  await bed.ready(fw.api, 1);
  t.context = { bed, client, server, servers };
});
test.after.always(async (t) => {
  await t.context.bed?.close();
});
test.afterEach.always((t) => logOnFailure(t));

test.serial('rules per direction with default actions; answers through accept established; counters per rule', async (t) => {
  const { bed, client, server } = t.context;
  t.is(await pings(client, server, 4), 4, 'icmp is accepted going in, its answers as established');
  t.like(await connect(bed, client, server, 5001), { result: 'greeting', greeting: 's' });
  t.like(await connect(bed, client, server, 5002), { result: 'timeout' }, 'tcp 5002 is dropped by the default');
  t.like(await udp(bed, client, server, 5353), { sent: 3, echoed: 3 });
  t.like(await udp(bed, client, server, 5354, 1), { echoed: 0 });
  t.is(await pings(server, client, 2), 0, 'the server may not open anything: the egress default drops');

  const s = await state(bed);
  t.true(rule(s.ingress, 'ping').packets >= 4, JSON.stringify(s.ingress));
  t.true(rule(s.ingress, 'web').packets >= 3 && rule(s.ingress, 'web').bytes > 0);
  t.is(rule(s.ingress, 'dns').packets, 3);
  t.true(s.ingress.default.packets >= 2, 'tcp 5002 and udp 5354 counted on the default');
  t.true(rule(s.egress, 'accept-established').packets >= 4 + 3 + 3);
  t.true(s.egress.default.packets >= 2, 'the server\'s pings counted on the egress default');
  // The same counters, raw, through the table API (what netcubectl table dump shows).
  const c = bed.daemon.client();
  t.teardown(() => c.close());
  const entry = await c.getEntry({ table: { cube: 'fw', table: 'fw_active' }, entry: { keyJson: '0' } });
  t.deepEqual(JSON.parse(entry.valueJson!), { bank: s.bank });

  // Without accept established going out, nothing comes back.
  await setRules(bed, { ...BASE, egress: { defaultAction: 'drop' } });
  t.is(await pings(client, server, 2), 0);
  t.like(await connect(bed, client, server, 5001), { result: 'timeout' });
  // An egress rule of its own lets the server's answers out again, and counts them.
  await setRules(bed, { ...BASE, egress: { defaultAction: 'drop', rules: [{ id: 'from-server', action: 'accept', src: '10.9.0.2' }] } });
  t.is(await pings(client, server, 2), 2);
  t.true(rule((await state(bed)).egress, 'from-server').packets >= 2);
});

test.serial('a rule kept across changes keeps its counters; a new one starts at zero', async (t) => {
  const { bed, client, server } = t.context;
  const s0 = await setRules(bed, BASE);
  await pings(client, server, 3);
  const ping = rule((await state(bed)).ingress, 'ping').packets;
  t.true(ping >= 3);
  const s1 = await setRules(bed, { ...BASE, ingress: { ...BASE.ingress, rules: [{ id: 'extra', action: 'drop', protocol: 'udp', dport: 9999 }, ...BASE.ingress.rules] } });
  t.not(s1.bank, s0.bank);
  t.is(rule(s1.ingress, 'ping').packets, ping, 'the ping rule moved to index 1 and kept its count');
  t.is(rule(s1.ingress, 'extra').packets, 0);
  t.is(rule(s1.ingress, 'ping').index, 1);
});

test.serial('netcubectl: the rules with their counters (state), the config set and checked (config), the conntrack table', async (t) => {
  const { bed, client, server } = t.context;
  const run = (args: string[], input?: string) => netcubectl(args, { etcd: bed.etcd.endpoints, input });
  await setRules(bed, BASE);
  await pings(client, server, 2);
  const shown = await run(['state', 'fw', '-o', 'json']);
  t.is(shown.code, 0, shown.stderr);
  const s = JSON.parse(shown.stdout) as FwState;
  t.true(rule(s.ingress, 'ping').packets >= 2);
  t.regex((await run(['state', 'fw'])).stdout, /rule: icmp accept\n/);

  const config = await run(['config', 'fw', '-o', 'json']);
  t.is(config.code, 0, config.stderr);
  t.like(JSON.parse(config.stdout), { ingress: { defaultAction: 'drop', acceptEstablished: false }, egress: { acceptEstablished: true } });
  const bad = await run(['config', 'fw', '-f', '-', '--dry-run'], 'ingress:\n  rules:\n    - { action: accept, protocol: icmp, dport: 80 }\n');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /config\.ingress\.rules\[0\]\.dport: ports need protocol tcp, udp or sctp/);
  const yaml = 'ingress:\n  defaultAction: drop\n  rules:\n    - { id: ping, action: accept, protocol: icmp }\n    - { id: web, action: accept, protocol: tcp, dport: 5001 }\negress: { defaultAction: drop, acceptEstablished: true }\n';
  const set = await run(['config', 'fw', '-f', '-'], yaml);
  t.is(set.code, 0, set.stderr);
  t.regex(set.stdout, /^config of fw set \(revision \d+; chain guarded unchanged\)\n$/);
  await waitFor('the rules from netcubectl switched to', async () => (await state(bed)).ingress.rules.length === 2);
  // The conntrack table, addresses as text (its timeouts are the defaults now: 30 s for a ping).
  t.is(await pings(client, server, 2), 2);
  const flows = await run(['table', 'dump', 'fw', 'fw_ct', '-o', 'json']);
  t.is(flows.code, 0, flows.stderr);
  const entries = JSON.parse(flows.stdout) as { key: { addr_a: string; addr_b: string } }[];
  t.true(entries.some((e) => e.key.addr_a === '::ffff:10.9.0.1' && e.key.addr_b === '::ffff:10.9.0.2'), flows.stdout);
});

test.serial('a bad config is refused, naming the field, and changes nothing', async (t) => {
  const { bed } = t.context;
  const before = await state(bed);
  for (const [config, field] of [
    [{ ingress: { rules: [{ action: 'accept', protocol: 'icmp', dport: 80 }] } }, 'config.ingress.rules[0].dport'],
    [{ ingress: { rules: [{ action: 'allow' }] } }, 'config.ingress.rules[0].action'],
    [{ egress: { rules: [{ action: 'drop', src: '10.0.0.1/8' }] } }, 'config.egress.rules[0].src'],
    [{ egress: { rules: [{ action: 'drop', ctState: ['established', 'closed'] }] } }, 'config.egress.rules[0].ctState[1]'],
    [{ ingress: { defaultAction: 'reject' } }, 'config.ingress.defaultAction'],
    [{ ingress: { rules: [{ action: 'drop', source: '10.0.0.1' }] } }, 'config.ingress.rules[0].source'],
  ] as const) {
    const err = await t.throwsAsync(api(bed).setConfig({ cube: 'fw', config: config as unknown as JsonObject }), { instanceOf: ApiCallError });
    t.is(err?.codeName, 'INVALID_ARGUMENT');
    t.true(err?.message.includes(`${field}:`), err?.message);
  }
  const after = await state(bed);
  t.is(after.bank, before.bank);
  t.deepEqual(after.ingress.rules.map((r) => r.rule), before.ingress.rules.map((r) => r.rule));
});

test.serial('a rule set changed under traffic loses no packet of an allowed flow', async (t) => {
  const { bed, client, server } = t.context;
  // A counted stream (UDP to port 9) from the client to a sink on the server's eth0;
  // the host's lc needs an XDP program for the generator's frames to arrive.
  const pass = await attachXdpPass(bed.host, 'lc');
  t.teardown(() => pass.close());
  const sink = await Sink.attach(server.ns, 'eth0');
  t.teardown(() => sink.close());
  // Under TC netcubed hands packets for a pod's veth straight to the pod's side
  // (bpf_redirect_peer), which would skip the sink, unless an XDP program is there
  // when it applies the chain: a new version of the chain, with the sink in place.
  const version = await bed.apply(chain(bed.hostName, { ingress: { defaultAction: 'drop' } }));
  await bed.store.status.waitApplied('guarded', version, { timeoutMs: 60_000 });
  const generator = await Generator.open(client.ns, 'eth0', [streamFrame({ src: client.address, dst: server.address, srcMac: client.mac, dstMac: server.mac })]);
  t.teardown(() => generator.close());
  // Two rule sets that accept the stream, by different rules, among 300 others.
  const sets = [
    { ingress: { defaultAction: 'drop', rules: [...adminRules(300, 10, 1), { id: 'stream', action: 'accept', src: '10.9.0.0/24', protocol: 'udp', dport: 9 }] } },
    { ingress: { defaultAction: 'drop', rules: [{ id: 'stream-2', action: 'accept', dst: '10.9.0.2', protocol: 'udp', dport: '1-1000' }, ...adminRules(300, 10, 2)] }, egress: { defaultAction: 'drop' } },
  ] as unknown as JsonObject[];
  await setRules(bed, sets[0]);
  // About 100,000 frames a second, each run once the last one's frames arrived: the
  // daemon and the service keep a CPU to themselves for the changes.
  let streaming = true;
  const stream = (async () => {
    while (streaming) {
      await generator.send(1024, { perRun: 1024, delivered: () => sink.frames });
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const CHANGES = 9;
  try {
    for (let i = 1; i <= CHANGES; i++) await setRules(bed, sets[i % 2]);
  } finally {
    streaming = false;
    await stream;
  }
  const sent = generator.sent;
  const received = await sink.settle(sent);
  t.log(`${CHANGES} rule set changes; ${sent} frames sent, ${received} received`);
  t.is(received, sent, 'frames of the allowed stream lost');
  const s = await state(bed);
  t.true(rule(s.ingress, 'stream-2').packets > 0, 'the stream went through the second set too');
});

test.serial('established connections keep going when new ones are no longer allowed (accept established)', async (t) => {
  const { bed, client, server } = t.context;
  const transfers = { id: 'transfer', action: 'accept', protocol: 'tcp', dport: 5003 };
  await setRules(bed, { ...BASE, ingress: { ...BASE.ingress, acceptEstablished: true, rules: [...BASE.ingress.rules, transfers] } });
  // A paced transfer on 5003; while it runs, no new TCP connection is allowed any more.
  const { sent, received } = await tcpTransfer(client.ns, server.ns, server.address, 2 << 20, {
    port: 5003,
    chunk: 64 << 10,
    everyMs: 40,
    during: async () => {
      // Once the transfer is under way: the server has received 256 KB (in few packets: veths take 64 KB segments).
      const base = (await linkCounters(server.ns, 'eth0')).rxBytes;
      await waitFor('the transfer under way', async () => (await linkCounters(server.ns, 'eth0')).rxBytes >= base + (256 << 10), 10_000, 20);
      await setRules(bed, { ...BASE, ingress: { defaultAction: 'drop', acceptEstablished: true, rules: [{ id: 'ping', action: 'accept', protocol: 'icmp' }] } });
    },
  }).catch((err: Error) => ({ sent: err.message, received: null }));
  t.deepEqual(received, sent, 'the established transfer went on');
  t.like(await connect(bed, client, server, 5001), { result: 'timeout' }, 'a new connection is not allowed');
  t.true(rule((await state(bed)).ingress, 'accept-established').packets > 10);
});

test.serial('netcubed killed (kill -9) and the service restarted: flows, conntrack and counters go on', async (t) => {
  const { bed, client, server } = t.context;
  await setRules(bed, { ...BASE, ingress: { ...BASE.ingress, acceptEstablished: true } });
  const hold = await bed.background(client.ns, ['hold', server.address, 5001, 4]);
  await hold.line('connections held', (l) => Array.isArray(l.greetings));
  t.deepEqual(hold.lines[0].greetings, ['s', 's', 's', 's']);
  const probe = async (): Promise<boolean[]> => {
    const from = hold.lines.length;
    hold.send('probe 2000');
    return (await hold.line('probe answers', (l) => Array.isArray(l.answered), from)).answered as boolean[];
  };
  await pings(client, server, 2);
  const before = await state(bed);

  // The daemon dies: the data plane and its conntrack table stay.
  await bed.daemon.kill();
  t.deepEqual(await probe(), [true, true, true, true], 'held connections answered while netcubed was down');
  t.is(await pings(client, server, 2), 2);
  await bed.daemon.restart();
  // The service reconnects and writes the rules again (the other bank).
  const afterDaemon = await waitFor('the rules written again', async () => {
    const s = await state(bed).catch(() => undefined);
    return s && s.bank !== before.bank ? s : undefined;
  }, 30_000);
  t.true(kept(before, afterDaemon), `counters kept: ${JSON.stringify(before.ingress)} then ${JSON.stringify(afterDaemon.ingress)}`);
  t.true(counted(afterDaemon) >= counted(before) + 2, 'the pings counted');
  t.deepEqual(await probe(), [true, true, true, true]);

  // The service dies and comes back: it reads the bank and counter slots in use.
  const fw = bed.services.get('firewall-1')!;
  await fw.process.kill();
  t.deepEqual(await probe(), [true, true, true, true], 'held connections answered while the service was down');
  await fw.process.restart();
  fw.api.close();
  fw.api = fw.process.client();
  await bed.ready(fw.api, 1);
  const afterService = await waitFor('the rules written again', async () => {
    const s = await state(bed).catch(() => undefined);
    return s && s.bank !== afterDaemon.bank ? s : undefined;
  }, 30_000);
  t.true(kept(afterDaemon, afterService), 'counters kept over the restart');
  t.deepEqual(await probe(), [true, true, true, true]);
  t.like(await connect(bed, client, server, 5002), { result: 'timeout' }, 'the rules still apply');
  hold.send('exit');
});

test.serial('expired connections are collected from the conntrack table', async (t) => {
  const { bed, client, server } = t.context;
  await setRules(bed, BASE);
  t.like(await udp(bed, client, server, 5353), { echoed: 3 });
  const c = bed.daemon.client();
  t.teardown(() => c.close());
  const flows = async (): Promise<{ key: { port_a: number; port_b: number; proto: number } }[]> => {
    const out = [];
    for await (const e of c.listEntries({ table: { cube: 'fw', table: 'fw_ct' } })) out.push({ key: JSON.parse(e.keyJson!) });
    return out;
  };
  const isDns = (f: { key: { port_a: number; port_b: number; proto: number } }) => f.key.proto === 17 && (f.key.port_a === 5353 || f.key.port_b === 5353);
  t.true((await flows()).some(isDns), 'the UDP flow is tracked');
  // Its timeout is 3 s; the service collects every 5 s what expired 2 s before.
  await waitFor('the expired flow collected', async () => !(await flows()).some(isDns), 20_000, 250);
});

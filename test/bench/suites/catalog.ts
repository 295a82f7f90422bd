// The service catalog's data planes against what Linux offers, measured in one run:
//
//   p9  the firewall: the same rules (test/helpers/rulesets.ts, an administrator's
//       mix of prefixes, ports and protocols, with the only rule the probe stream
//       meets 10 rules from the end) in netcube's firewall (XDP: stacked on the
//       netdev the stream enters, then a nop cube out) and in nftables (the netdev
//       family's ingress hook on the same kind of veth: a chain of the rules, one
//       per line as an administrator writes them, then a chain that forwards what
//       they accept). Live frames: the live-frames generator -> veth -> rules ->
//       veth -> XDP sink, Mpps that arrive.
//         p9.fw1k.ratio          1,000 rules, netcube Mpps / nftables Mpps (target 2)
//         p9.fw10k.ratio         10,000 rules, the same
//         p9.fw1k.vs_sets_ratio  1,000 rules, against nftables with the rules folded
//                                into maps with intervals (its best case)
//
// Sides alternate over rounds, each ratio is taken within a round and the median
// reported, as in the dataplane suite. Beside the live figures, ns/packet of the
// netcube path by BPF_PROG_TEST_RUN (the netdev entry, the firewall, the nop cube),
// for 1,000 and 10,000 rules: what the classification itself costs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ifindex, Program } from '../../../node-daemon/src/bpf';
import { unmountBpffs } from '../../../node-daemon/src/runtime/host';
import { Runtime } from '../../../node-daemon/src/runtime/runtime';
import { parseFirewall, type CompiledRule, type Rule } from '../../../remote-services/firewall/tables';
import { portRangeText, prefixText, PROTOCOLS } from '../../../remote-services/catalog/fields';
import { loadFirewall } from '../../helpers/catalog';
import { lineTopology } from '../../helpers/chains';
import { runProgram } from '../../helpers/dataplane';
import { adminRules, PROBE } from '../../helpers/rulesets';
import { openTestbed, type Testbed } from '../../helpers/testbed';
import { streamFrame } from '../../helpers/traffic';
import type { Result, Suite, SuiteContext } from '../report';

const ROUNDS = Number(process.env.NC_BENCH_CATALOG_ROUNDS ?? 3);
/** How long a live measurement sends for, about. */
const LIVE_SECONDS = Number(process.env.NC_BENCH_CATALOG_SECONDS ?? 1.5);
const TARGETS = { p9: 2 };

const probeFrame = streamFrame({ src: PROBE.src, dst: PROBE.dst });
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

type Closer = () => unknown;

/** A runtime on a testbed's host namespace, for code outside ava. */
async function openRuntime(bed: Testbed): Promise<Runtime> {
  const root = fs.mkdtempSync('/run/nct-bench-');
  try {
    return await Runtime.open({ root, netns: bed.host.path });
  } catch (err) {
    unmountBpffs(path.join(root, 'bpf'));
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

/** ns/packet of the netcube path on `bed` by test runs of its netdev entry (least of a few). */
async function entryNs(bed: Testbed, rt: Runtime): Promise<number> {
  const entry = Program.openPinned(path.join(rt.layout.netdev(bed.in, 'xdp'), 'prog'));
  try {
    const ifx = await ifindex(bed.in, bed.host.name);
    const ns: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await runProgram(entry, 'xdp', probeFrame, undefined, { repeat: 1_000_000, ifindex: ifx, netns: bed.host.name });
      if (res.verdict !== 'redirect') throw new Error(`the probe frame was not let through (${res.verdict})`);
      ns.push(res.durationNs);
    }
    return Math.min(...ns);
  } finally {
    entry.close();
  }
}

/**
 * Mpps that arrive at the bed's sink while its generator sends for about
 * LIVE_SECONDS: a short run first tells how many frames that is.
 */
async function liveMpps(bed: Testbed, ctx: SuiteContext, what: string): Promise<number> {
  const measure = async (frames: number): Promise<number> => {
    const before = bed.received();
    const start = process.hrtime.bigint();
    await bed.generator.send(frames, { perRun: Math.min(frames, 65_536) });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const arrived = (await bed.sinks[0].settle(before + frames)) - before;
    if (arrived < frames) ctx.log(`${what}: ${frames - arrived} of ${frames} frames did not arrive`);
    return arrived / seconds / 1e6;
  };
  const guess = await measure(8_192);
  const frames = Math.max(16_384, Math.min(4_000_000, Math.round(guess * 1e6 * LIVE_SECONDS)));
  return measure(frames);
}

// ---- nftables --------------------------------------------------------------------------------

const protoName = (n: number): string => Object.keys(PROTOCOLS).find((k) => PROTOCOLS[k] === n) ?? String(n);

/** A rule as an administrator writes it for nft, one line. */
function nftLine(r: CompiledRule): string {
  const words: string[] = [];
  const ip = (r.src ?? r.dst)?.family === 6 ? 'ip6' : 'ip';
  if (r.src) words.push(`${ip} saddr ${prefixText(r.src)}`);
  if (r.dst) words.push(`${ip} daddr ${prefixText(r.dst)}`);
  if (r.protocol !== undefined) {
    const name = protoName(r.protocol);
    if (r.sport || r.dport) {
      if (r.sport) words.push(`${name} sport ${portRangeText(r.sport)}`);
      if (r.dport) words.push(`${name} dport ${portRangeText(r.dport)}`);
    } else {
      words.push(`meta l4proto ${name}`);
    }
  }
  words.push(r.action);
  return words.join(' ');
}

/**
 * The rules folded into maps: one verdict map per combination of fields the rules
 * match on (family, addresses, protocol, ports), its elements the rules' values
 * with intervals, the maps in the order of their first rules. The same verdict
 * for every packet that only one rule matches (the probe, here); nftables' best case.
 */
function nftMaps(rules: CompiledRule[]): { maps: string[]; lookups: string[] } {
  const groups = new Map<string, CompiledRule[]>();
  for (const r of rules) {
    const family = (r.src ?? r.dst)?.family === 6 ? 6 : 4;
    const key = [family, r.src ? 's' : '', r.dst ? 'd' : '', r.protocol !== undefined ? 'p' : '', r.sport ? 'S' : '', r.dport ? 'D' : ''].join('');
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const maps: string[] = [];
  const lookups: string[] = [];
  for (const [key, members] of groups) {
    const v6 = key.startsWith('6');
    const ip = v6 ? 'ip6' : 'ip';
    const types: string[] = [];
    const exprs: string[] = [];
    if (key.includes('s')) {
      types.push(v6 ? 'ipv6_addr' : 'ipv4_addr');
      exprs.push(`${ip} saddr`);
    }
    if (key.includes('d')) {
      types.push(v6 ? 'ipv6_addr' : 'ipv4_addr');
      exprs.push(`${ip} daddr`);
    }
    if (key.includes('p')) {
      types.push('inet_proto');
      exprs.push('meta l4proto');
    }
    if (key.includes('S')) {
      types.push('inet_service');
      exprs.push('th sport');
    }
    if (key.includes('D')) {
      types.push('inet_service');
      exprs.push('th dport');
    }
    if (types.length === 0) continue;
    const elements = members.map((r) => {
      const parts: string[] = [];
      if (r.src) parts.push(prefixText(r.src));
      if (r.dst) parts.push(prefixText(r.dst));
      if (r.protocol !== undefined) parts.push(protoName(r.protocol));
      if (r.sport) parts.push(portRangeText(r.sport));
      if (r.dport) parts.push(portRangeText(r.dport));
      return `${parts.join(' . ')} : ${r.action}`;
    });
    const name = `m${maps.length}`;
    maps.push(`  map ${name} {\n    type ${types.join(' . ')} : verdict\n    flags interval\n    elements = {\n      ${elements.join(',\n      ')}\n    }\n  }`);
    lookups.push(`${key.startsWith('6') ? 'meta protocol ip6 ' : 'meta protocol ip '}${exprs.join(' . ')} vmap @${name}`);
  }
  return { maps, lookups };
}

/** The ruleset: a filter chain at ingress of `dev` (rules one per line, or the maps), then one that forwards to `out`. */
function nftRuleset(rules: Rule[], style: 'lines' | 'maps', dev: string, out: string): string {
  const compiled = parseFirewall({ ingress: { rules } }).ingress.rules;
  const body = style === 'lines' ? { maps: [], lookups: compiled.map(nftLine) } : nftMaps(compiled);
  return [
    'table netdev ncbench {',
    ...body.maps,
    `  chain filter {\n    type filter hook ingress device "${dev}" priority 0; policy drop;`,
    ...body.lookups.map((l) => `    ${l}`),
    '  }',
    `  chain forward {\n    type filter hook ingress device "${dev}" priority 10; policy accept;\n    fwd to "${out}"\n  }`,
    '}',
    '',
  ].join('\n');
}

/** Replaces the bed's nftables ruleset. */
async function loadNft(bed: Testbed, ctx: SuiteContext, ruleset: string): Promise<void> {
  const file = path.join(ctx.buildDir, `nft-${process.pid}.conf`);
  fs.mkdirSync(ctx.buildDir, { recursive: true });
  fs.writeFileSync(file, `flush ruleset\n${ruleset}`);
  try {
    await bed.host.exec('nft', ['-f', file], { timeoutMs: 120_000 });
  } finally {
    fs.rmSync(file, { force: true });
  }
}

// ---- the suite ------------------------------------------------------------------------------

export const suite: Suite = {
  name: 'catalog',
  description: 'the service catalog: p9 firewall vs nftables',
  async run(ctx) {
    const closers: Closer[] = [];
    try {
      const rules1k = adminRules(1_000);
      const rules10k = adminRules(10_000);

      // netcube: a firewall stacked on in0 going in, then a nop cube to out0; one bed per rule set.
      const netcube: Record<string, Testbed> = {};
      const nsPerPacket: Record<string, number> = {};
      for (const [key, rules] of [['1k', rules1k], ['10k', rules10k]] as const) {
        const bed = await openTestbed({ mode: 'xdp', frames: [probeFrame] });
        closers.push(() => bed.close());
        const rt = await openRuntime(bed);
        closers.push(() => rt.destroy());
        const topo = lineTopology('xdp', [{ name: 'out', type: 'nop' }], bed.in, bed.outs[0], [{ target: { netdev: bed.in }, layers: [{ cube: 'fw', direction: 'ingress' }] }]);
        topo.cubes.push({ name: 'fw', type: 'firewall', mode: 'xdp', ports: [], logLevel: 'info' });
        await rt.apply(topo);
        const start = Date.now();
        const { compiled } = loadFirewall(rt.cube('fw'), { ingress: { defaultAction: 'drop', rules } });
        ctx.log(`netcube ${key}: ${rules.length} rules compiled and written in ${Date.now() - start} ms (${JSON.stringify(compiled.stats.ingress)})`);
        netcube[key] = bed;
        nsPerPacket[key] = await entryNs(bed, rt);
      }
      // nftables: in0 passes frames to the stack (an XDP program only for the veth's NAPI).
      const nftBed = await openTestbed({ mode: 'tc', frames: [probeFrame] });
      closers.push(() => nftBed.close());
      closers.push(() => nftBed.host.exec('nft', ['flush', 'ruleset']));
      const rulesets = {
        lines1k: nftRuleset(rules1k, 'lines', nftBed.in, nftBed.outs[0]),
        lines10k: nftRuleset(rules10k, 'lines', nftBed.in, nftBed.outs[0]),
        maps1k: nftRuleset(rules1k, 'maps', nftBed.in, nftBed.outs[0]),
      };

      const samples: Record<string, number[]> = {};
      const add = (k: string, v: number): void => {
        (samples[k] ??= []).push(v);
      };
      for (let round = 1; round <= ROUNDS; round++) {
        add('netcube1k', await liveMpps(netcube['1k'], ctx, 'netcube 1k'));
        for (const which of ['lines1k', 'maps1k', 'lines10k'] as const) {
          await loadNft(nftBed, ctx, rulesets[which]);
          add(which, await liveMpps(nftBed, ctx, `nftables ${which}`));
        }
        add('netcube10k', await liveMpps(netcube['10k'], ctx, 'netcube 10k'));
        ctx.log(`round ${round}/${ROUNDS}: ${Object.entries(samples).map(([k, v]) => `${k} ${v[v.length - 1].toFixed(3)} Mpps`).join(', ')}`);
      }
      const perRound = (f: (r: Record<string, number>) => number): number =>
        median(Array.from({ length: ROUNDS }, (_, i) => f(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v[i]])))));
      const m = (k: string): number => median(samples[k]);
      const ratio = (a: string, b: string): number => perRound((r) => r[a] / r[b]);
      const results: Result[] = [
        { name: 'p9.fw1k.netcube', value: m('netcube1k'), unit: 'Mpps' },
        { name: 'p9.fw1k.nftables', value: m('lines1k'), unit: 'Mpps' },
        {
          name: 'p9.fw1k.ratio',
          value: ratio('netcube1k', 'lines1k'),
          unit: 'x',
          baseline: m('lines1k'),
          target: TARGETS.p9,
          note: `1,000 rules, the probe's 10 from the end: netcube ${m('netcube1k').toFixed(2)} Mpps (XDP, firewall + nop cube), nftables ${m('lines1k').toFixed(3)} Mpps (netdev ingress, rules one per line, then fwd); medians of ${ROUNDS} rounds`,
        },
        { name: 'p9.fw1k.ns', value: nsPerPacket['1k'], unit: 'ns/packet' },
        {
          name: 'p9.fw10k.ns',
          value: nsPerPacket['10k'],
          unit: 'ns/packet',
          note: `the netcube path (entry, firewall, nop) by test runs: ${nsPerPacket['1k'].toFixed(0)} ns with 1,000 rules, ${nsPerPacket['10k'].toFixed(0)} ns with 10,000`,
        },
        { name: 'p9.fw10k.netcube', value: m('netcube10k'), unit: 'Mpps' },
        { name: 'p9.fw10k.nftables', value: m('lines10k'), unit: 'Mpps' },
        { name: 'p9.fw10k.ratio', value: ratio('netcube10k', 'lines10k'), unit: 'x', baseline: m('lines10k') },
        { name: 'p9.fw1k.nftables_sets', value: m('maps1k'), unit: 'Mpps' },
        {
          name: 'p9.fw1k.vs_sets_ratio',
          value: ratio('netcube1k', 'maps1k'),
          unit: 'x',
          baseline: m('maps1k'),
          note: `nftables with the 1,000 rules folded into ${nftMaps(parseFirewall({ ingress: { rules: rules1k } }).ingress.rules).maps.length} verdict maps with intervals: ${m('maps1k').toFixed(2)} Mpps`,
        },
      ];
      return results;
    } finally {
      for (const close of closers.reverse()) {
        try {
          await close();
        } catch (err) {
          ctx.log(`cleanup: ${(err as Error).message}`);
        }
      }
    }
  },
};

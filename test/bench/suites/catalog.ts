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
//   lb  the load balancer (lbrp, XDP, in a line between the generator's veth and
//       the sink's) with 10 services and with 10,000 (three backends each):
//         lb.ns_10k_ratio   ns/packet with 10 / with 10,000, by BPF_PROG_TEST_RUN
//                           of the netdev entry (target 0.9). A test run repeats on
//                           one buffer, which a rewrite would change after the
//                           first run: its service's backend is the service's own
//                           address and port, so every run is a session hit with a
//                           rewrite that writes what is there.
//         lb.live_10k_ratio Mpps with 10,000 services / with 10, live frames to a
//                           service with a real backend elsewhere, reported.
//
//   lb.conn  new TCP connections per second to a virtual IP, through an lbrp cube
//       (TC, between the client's and the server's veths) and through the kernel
//       routing between the same veths with the NAT rules kube-proxy's iptables
//       mode writes, 5,000 services of three endpoints each on both sides, the
//       measured one halfway down KUBE-SERVICES (as a random one is, on average).
//       Both ends are a C epoll loop (test/bench/c/conn_rate.c): 64 connects in
//       flight, each reset as soon as it is established.
//         lb.conn_ratio     netcube connections/s / iptables connections/s (target 2)
//         lb.conn.iptables_1  iptables with that one service only: the path without
//                           the rule walk, what the endpoints and veths allow
//       NC_BENCH_ONLY=p9 or lb.conn runs one part.
//
// Sides alternate over rounds, each ratio is taken within a round and the median
// reported, as in the dataplane suite. Beside the live figures, ns/packet of the
// netcube path by BPF_PROG_TEST_RUN (the netdev entry, the firewall, the nop cube),
// for 1,000 and 10,000 rules: what the classification itself costs.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ifindex, Program } from '../../../node-daemon/src/bpf';
import type { Runtime } from '../../../node-daemon/src/runtime/runtime';
import type { CubeSpec, Topology } from '../../../node-daemon/src/runtime/topology';
import { parseFirewall, type CompiledRule, type Rule } from '@netcube/firewall/tables';
import { portRangeText, prefixText, PROTOCOLS } from '@netcube/catalog/fields';
import type { LbConfig } from '@netcube/lbrp/tables';
import { loadFirewall, loadLb } from '../../helpers/catalog';
import { lineTopology } from '../../helpers/chains';
import { runProgram } from '../../helpers/dataplane';
import { adminRules, PROBE } from '../../helpers/rulesets';
import { newNetns, type Netns } from '../../helpers/netns';
import { openTestbed, type Testbed } from '../../helpers/testbed';
import { attachXdpPass, streamFrame } from '../../helpers/traffic';
import { connRateTool, type ConnRun } from '../conn-rate';
import { benchServices, kubeProxyNatRules, type ClusterIpService } from '../kube-proxy';
import { closeAll, type Closer } from '../closers';
import type { Result, Suite, SuiteContext } from '../report';
import { openBenchRuntime } from '../runtime';

const ROUNDS = Number(process.env.NC_BENCH_CATALOG_ROUNDS ?? 3);
/** How long a live measurement sends for, about. */
const LIVE_SECONDS = Number(process.env.NC_BENCH_CATALOG_SECONDS ?? 1.5);
const TARGETS = { p9: 2, lb: 0.9, conn: 2 };

const probeFrame = streamFrame({ src: PROBE.src, dst: PROBE.dst });
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** ns/packet of the netcube path on `bed` by test runs of its netdev entry on `frame` (least of a few). */
export async function entryNs(bed: Testbed, rt: Runtime, frame = probeFrame): Promise<number> {
  const entry = Program.openPinned(path.join(rt.layout.netdev(bed.in, 'xdp'), 'prog'));
  try {
    const ifx = await ifindex(bed.in, bed.host.name);
    const ns: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await runProgram(entry, 'xdp', frame, undefined, { repeat: 1_000_000, ifindex: ifx, netns: bed.host.name });
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

// ---- the load balancer ----------------------------------------------------------------------

/**
 * The live stream's service (the firewall probe's destination, so one stream
 * serves every side; its backend elsewhere) and the test runs' (its backend itself).
 */
const LB_LIVE = { vip: PROBE.dst, backend: '10.98.0.2' };
const LB_STEADY = { src: '10.99.0.1', vip: '10.99.0.3' };

/** `count` services on 10.96.0.0/16 and up, three backends each, and the two probe services. */
function lbConfig(count: number): LbConfig {
  const services: NonNullable<LbConfig['services']> = Array.from({ length: count - 2 }, (_, i) => ({
    vip: `10.${96 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`,
    port: 80,
    protocol: 'tcp' as const,
    backends: [1, 2, 3].map((b) => ({ address: `10.${100 + b}.${(i >> 8) & 0xff}.${i & 0xff}`, port: 8080 })),
  }));
  services.push(
    { vip: LB_LIVE.vip, port: 9, protocol: 'udp', backends: [{ address: LB_LIVE.backend }] },
    { vip: LB_STEADY.vip, port: 9, protocol: 'udp', backends: [{ address: LB_STEADY.vip }] },
  );
  return { backendPort: 'p1', services };
}

// ---- new connections to a virtual IP: lbrp vs kube-proxy's iptables rules --------------------

const CONN = {
  services: 5_000,
  seconds: Number(process.env.NC_BENCH_CONN_SECONDS ?? 2),
  parallel: 64,
  clusterCidr: '10.0.0.0/8',
  client: '10.50.0.2',
  gateway: { client: '10.50.0.1', server: '10.51.0.1' },
  servers: ['10.51.0.2', '10.51.0.3', '10.51.0.4'],
  port: 8080,
};

const macOf = async (ns: Netns, dev: string): Promise<string> => (JSON.parse((await ns.exec('ip', ['-j', 'link', 'show', dev])).stdout) as { address: string }[])[0].address;

/** lb.conn_ratio and its sides; see the top of this file. */
async function connRatio(ctx: SuiteContext, closers: Closer[]): Promise<Result[]> {
  const tool = connRateTool(ctx);
  const [client, host, server] = [await newNetns(), await newNetns(), await newNetns()];
  closers.push(() => Promise.all([client, host, server].map((ns) => ns.delete())));
  for (const ns of [client, host, server]) await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  const veth = async (a: Netns, an: string, b: Netns, bn: string): Promise<void> => {
    await a.exec('ip', ['link', 'add', an, 'type', 'veth', 'peer', 'name', bn, 'netns', b.name]);
    await a.exec('ip', ['link', 'set', 'dev', an, 'up']);
    await b.exec('ip', ['link', 'set', 'dev', bn, 'up']);
  };
  await veth(client, 'eth0', host, 'hc');
  await veth(server, 'eth0', host, 'hs');
  await client.exec('ip', ['addr', 'add', `${CONN.client}/24`, 'dev', 'eth0']);
  await client.exec('ip', ['route', 'add', 'default', 'via', CONN.gateway.client]);
  for (const a of CONN.servers) await server.exec('ip', ['addr', 'add', `${a}/24`, 'dev', 'eth0']);
  await server.exec('ip', ['route', 'add', 'default', 'via', CONN.gateway.server]);
  await host.exec('ip', ['addr', 'add', `${CONN.gateway.client}/24`, 'dev', 'hc']);
  await host.exec('ip', ['addr', 'add', `${CONN.gateway.server}/24`, 'dev', 'hs']);
  await host.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  const macs = { client: await macOf(client, 'eth0'), server: await macOf(server, 'eth0'), hc: await macOf(host, 'hc'), hs: await macOf(host, 'hs') };

  const serving = spawn('ip', ['netns', 'exec', server.name, tool, 'serve', String(CONN.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  closers.push(() => serving.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    serving.stdout.once('data', () => resolve());
    serving.once('exit', (code) => reject(new Error(`conn_rate serve exited (${code})`)));
  });

  // netcube: an lbrp cube between the two veths, the same 5,000 services.
  const probe = CONN.services >> 1;
  const services = benchServices(CONN.services, 'bench', CONN.port, probe, CONN.servers);
  const vip = services[probe].vip;
  const rt = await openBenchRuntime({ host });
  closers.push(() => rt.destroy());
  const lbCube: CubeSpec = { name: 'lb', type: 'lbrp', mode: 'tc', ports: ['fe', 'be'], logLevel: 'info' };
  await rt.apply({ cubes: [lbCube], links: [], stacks: [] });
  let start = Date.now();
  loadLb(rt.cube('lb'), {
    backendPort: 'be',
    services: services.map((x) => ({ vip: x.vip, port: x.port, protocol: x.protocol, backends: x.endpoints })),
  });
  ctx.log(`lb.conn: ${CONN.services} services compiled and written into the lbrp in ${Date.now() - start} ms`);
  const lbrp: Topology = { cubes: [lbCube], links: [{ a: { netdev: 'hc' }, b: { cube: 'lb', port: 'fe' } }, { a: { cube: 'lb', port: 'be' }, b: { netdev: 'hs' } }], stacks: [] };
  const unlinked: Topology = { cubes: [lbCube], links: [], stacks: [] };

  // iptables: the kernel routes between the veths, kube-proxy's rules DNAT.
  const rulesFile = path.join(ctx.buildDir, `kube-proxy-${process.pid}.rules`);
  fs.mkdirSync(ctx.buildDir, { recursive: true });
  const restore = async (list: ClusterIpService[]): Promise<void> => {
    fs.writeFileSync(rulesFile, kubeProxyNatRules(list, CONN.clusterCidr));
    try {
      await host.exec('iptables-restore', [rulesFile], { timeoutMs: 600_000 });
    } finally {
      fs.rmSync(rulesFile, { force: true });
    }
  };
  const iptablesVersion = execFileSync('iptables', ['-V'], { encoding: 'utf8' }).trim();

  /** Where the two ends send their next hop's frames: to each other (netcube) or to the host's veths (routing). */
  const neighbours = async (side: 'netcube' | 'iptables'): Promise<void> => {
    await client.exec('ip', ['neigh', 'replace', CONN.gateway.client, 'lladdr', side === 'netcube' ? macs.server : macs.hc, 'dev', 'eth0', 'nud', 'permanent']);
    await server.exec('ip', ['neigh', 'replace', CONN.gateway.server, 'lladdr', side === 'netcube' ? macs.client : macs.hs, 'dev', 'eth0', 'nud', 'permanent']);
  };
  const rate = async (what: string, seconds = CONN.seconds): Promise<number> => {
    const { stdout } = await client.exec(tool, ['connect', vip, '80', String(seconds), String(CONN.parallel)], { timeoutMs: 60_000 });
    const r = JSON.parse(stdout) as ConnRun;
    if (r.connections === 0) throw new Error(`${what}: no connection to ${vip}:80 got through`);
    if (r.failed > 0) ctx.log(`${what}: ${r.failed} connects failed`);
    return r.connections / r.seconds;
  };
  const sides = {
    netcube: async () => {
      await rt.apply(lbrp);
      await neighbours('netcube');
    },
    iptables: async () => {
      await rt.apply(unlinked);
      await neighbours('iptables');
    },
  };
  closers.push(() => host.exec('iptables', ['-t', 'nat', '-F']));
  const samples: Record<'netcube' | 'iptables' | 'iptables1', number[]> = { netcube: [], iptables: [], iptables1: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    await sides.netcube();
    await rate('netcube, warming up', 0.3);
    samples.netcube.push(await rate('netcube'));
    await sides.iptables();
    start = Date.now();
    await restore([services[probe]]);
    await rate('iptables 1 service, warming up', 0.3);
    samples.iptables1.push(await rate('iptables 1 service'));
    await restore(services);
    if (round === 1) ctx.log(`lb.conn: ${CONN.services} services' rules loaded by iptables-restore in ${Date.now() - start} ms (${iptablesVersion})`);
    await rate('iptables, warming up', 0.3);
    samples.iptables.push(await rate('iptables'));
    ctx.log(`lb.conn round ${round}/${ROUNDS}: netcube ${samples.netcube[round - 1].toFixed(0)}, iptables ${samples.iptables[round - 1].toFixed(0)}, iptables with 1 service ${samples.iptables1[round - 1].toFixed(0)} connections/s`);
  }
  const m = (k: keyof typeof samples): number => median(samples[k]);
  const ratio = median(samples.netcube.map((n, i) => n / samples.iptables[i]));
  const ceiling = median(samples.iptables1.map((n, i) => n / samples.iptables[i]));
  return [
    { name: 'lb.conn.netcube', value: m('netcube'), unit: 'connections/s' },
    { name: 'lb.conn.iptables', value: m('iptables'), unit: 'connections/s' },
    { name: 'lb.conn.iptables_1', value: m('iptables1'), unit: 'connections/s' },
    {
      name: 'lb.conn_ratio',
      value: ratio,
      unit: 'x',
      baseline: m('iptables'),
      target: TARGETS.conn,
      note:
        `new TCP connections/s to a virtual IP with ${CONN.services} services: netcube ${m('netcube').toFixed(0)} (lbrp, TC), kube-proxy's iptables rules ${m('iptables').toFixed(0)} ` +
        `(${iptablesVersion}; the service halfway down KUBE-SERVICES), the same path with only that service's rules ${m('iptables1').toFixed(0)}: ` +
        `the rule walk makes iptables ${ceiling.toFixed(2)}x slower; ${CONN.parallel} connects in flight, ${CONN.seconds} s, medians of ${ROUNDS} rounds`,
    },
  ];
}

// ---- the suite ------------------------------------------------------------------------------

/** p9 and the lb per-packet figures; see the top of this file. */
async function p9AndLb(ctx: SuiteContext, closers: Closer[]): Promise<Result[]> {
  const rules1k = adminRules(1_000);
  const rules10k = adminRules(10_000);

  // One testbed, so every side is fed by one generator on one CPU (generators
  // take the CPUs in turn; sides on different CPUs would compare the load of
  // two CPUs). Its netcube runtime holds every cube; a side is a topology that
  // links some of them between in0 and out0, applied before it is measured.
  const bed = await openTestbed({ mode: 'xdp', frames: [probeFrame] });
  closers.push(() => bed.close());
  const rt = await openBenchRuntime(bed);
  closers.push(() => rt.destroy());
  const cubes: CubeSpec[] = [
    { name: 'fw1k', type: 'firewall', mode: 'xdp', ports: [], logLevel: 'info' },
    { name: 'fw10k', type: 'firewall', mode: 'xdp', ports: [], logLevel: 'info' },
    { name: 'out', type: 'nop', mode: 'xdp', ports: ['p0', 'p1'], logLevel: 'info' },
    { name: 'lb10', type: 'lbrp', mode: 'xdp', ports: ['p0', 'p1'], logLevel: 'info' },
    { name: 'lb10k', type: 'lbrp', mode: 'xdp', ports: ['p0', 'p1'], logLevel: 'info' },
  ];
  const side = (line: string, firewall?: string): Topology => {
    const topo = lineTopology('xdp', [{ name: line, type: '' }], bed.in, bed.outs[0], firewall ? [{ target: { netdev: bed.in }, layers: [{ cube: firewall, direction: 'ingress' }] }] : []);
    return { ...topo, cubes };
  };
  const unlinked: Topology = { cubes, links: [], stacks: [] };
  await rt.apply(unlinked);
  for (const [name, rules] of [['fw1k', rules1k], ['fw10k', rules10k]] as const) {
    const start = Date.now();
    const { compiled } = loadFirewall(rt.cube(name), { ingress: { defaultAction: 'drop', rules } });
    ctx.log(`${name}: ${rules.length} rules compiled and written in ${Date.now() - start} ms (${JSON.stringify(compiled.stats.ingress)})`);
  }
  for (const [name, count] of [['lb10', 10], ['lb10k', 10_000]] as const) {
    const start = Date.now();
    loadLb(rt.cube(name), lbConfig(count));
    ctx.log(`${name}: ${count} services compiled and written in ${Date.now() - start} ms`);
  }
  const netcubeSide = async (topo: Topology): Promise<void> => {
    await rt.apply(topo);
  };
  // nftables: netcube off in0 and out0, an XDP program only for in0's NAPI, the ruleset.
  let pass: { close(): void } | undefined;
  const nftSide = async (ruleset: string): Promise<void> => {
    await rt.apply(unlinked);
    pass ??= await attachXdpPass(bed.host, bed.in);
    await loadNft(bed, ctx, ruleset);
  };
  const netcubeAgain = async (topo: Topology): Promise<void> => {
    pass?.close();
    pass = undefined;
    await bed.host.exec('nft', ['flush', 'ruleset']);
    await netcubeSide(topo);
  };
  closers.push(() => pass?.close());
  closers.push(() => bed.host.exec('nft', ['flush', 'ruleset']));
  const rulesets = {
    lines1k: nftRuleset(rules1k, 'lines', bed.in, bed.outs[0]),
    lines10k: nftRuleset(rules10k, 'lines', bed.in, bed.outs[0]),
    maps1k: nftRuleset(rules1k, 'maps', bed.in, bed.outs[0]),
  };
  const steadyFrame = streamFrame({ src: LB_STEADY.src, dst: LB_STEADY.vip });

  const samples: Record<string, number[]> = {};
  const add = (k: string, v: number): void => {
    (samples[k] ??= []).push(v);
  };
  for (let round = 1; round <= ROUNDS; round++) {
    await netcubeAgain(side('out', 'fw1k'));
    if (round === 1) add('fw1k.ns', await entryNs(bed, rt));
    add('netcube1k', await liveMpps(bed, ctx, 'netcube 1k'));
    await netcubeSide(side('out', 'fw10k'));
    if (round === 1) add('fw10k.ns', await entryNs(bed, rt));
    add('netcube10k', await liveMpps(bed, ctx, 'netcube 10k'));
    for (const key of ['10', '10k']) {
      await netcubeSide(side(`lb${key}`));
      add(`lb${key}.ns`, await entryNs(bed, rt, steadyFrame));
      add(`lb${key}.live`, await liveMpps(bed, ctx, `lbrp ${key}`));
    }
    for (const which of ['lines1k', 'maps1k', 'lines10k'] as const) {
      await nftSide(rulesets[which]);
      add(which, await liveMpps(bed, ctx, `nftables ${which}`));
    }
    ctx.log(`round ${round}/${ROUNDS}: ${Object.entries(samples).map(([k, v]) => `${k} ${v[v.length - 1].toFixed(3)}`).join(', ')}`);
  }
  const nsPerPacket = { '1k': samples['fw1k.ns'][0], '10k': samples['fw10k.ns'][0] };
  delete samples['fw1k.ns'];
  delete samples['fw10k.ns'];
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
  const lbRatio = ratio('lb10.ns', 'lb10k.ns');
  results.push(
    { name: 'lb.ns_10', value: m('lb10.ns'), unit: 'ns/packet' },
    { name: 'lb.ns_10k', value: m('lb10k.ns'), unit: 'ns/packet' },
    {
      name: 'lb.ns_10k_ratio',
      value: lbRatio,
      unit: 'x',
      baseline: m('lb10.ns'),
      target: TARGETS.lb,
      note: `ns/packet through the netdev entry and lbrp (a session hit and its rewrite) with 10 services ${m('lb10.ns').toFixed(1)}, with 10,000 ${m('lb10k.ns').toFixed(1)} (least of 5 test runs of 1M packets, median of ${ROUNDS} rounds)`,
    },
    { name: 'lb.live_10', value: m('lb10.live'), unit: 'Mpps' },
    { name: 'lb.live_10k', value: m('lb10k.live'), unit: 'Mpps' },
    { name: 'lb.live_10k_ratio', value: ratio('lb10k.live', 'lb10.live'), unit: 'x', baseline: m('lb10.live') },
  );
  return results;
}

export const suite: Suite = {
  name: 'catalog',
  description: 'the service catalog: p9 firewall vs nftables, lb per-packet cost by service count, lb.conn new connections to a virtual IP vs kube-proxy\'s iptables rules',
  async run(ctx) {
    const closers: Closer[] = [];
    try {
      const only = process.env.NC_BENCH_ONLY;
      return [...(only && only !== 'p9' ? [] : await p9AndLb(ctx, closers)), ...(only && only !== 'lb.conn' ? [] : await connRatio(ctx, closers))];
    } finally {
      await closeAll(closers, ctx.log);
    }
  },
};

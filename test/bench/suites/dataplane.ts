// The data plane's cost against hand-written programs, measured in one run on
// this machine:
//
//   p1  simpleforwarder in netcube vs baseline/vanilla_fwd: ns/packet by
//       BPF_PROG_TEST_RUN, XDP and TC (the netcube path is what a netdev runs:
//       its entry, fused with the cube, which redirects), and Mpps with live
//       traffic in XDP (live-frames generator -> veth -> forwarder -> veth -> XDP
//       sink).
//   p2  ns per extra cube: over chains of 2, 4 and 8 nop cubes against one
//       (p2.hop_ns), and over 32 (p2.hop_ns_32), by test runs of each chain's
//       entry.
//   p3  Mpps through a 3-cube chain (simpleforwarder, nop, simpleforwarder) vs the
//       vanilla program, live, XDP.
//
// And, in the same run, what those figures are made of (dataplane.*): chains of
// bare programs that do nothing but tail-call the next (bpf/testdata/tailchain),
// by a direct jump and by an indirect one, and with netcube's metadata; nop cubes
// built without port counters; simpleforwarder built without them; the netdev
// entry as a program of its own. A nop hop is then the sum of three measured
// parts: the bare direct jump, the framework's work without counters (nop
// without counters less the jump), and the counters.
//
// A test run's ns/packet is the CPU time of the test-run call over its ten
// million runs (less that of a short call, which is the call's own setup), on
// one pinned CPU: the kernel's own figure is in whole nanoseconds, too coarse
// for a few. A live figure is the best of a few alternating runs (LIVE_TRIES).
// Every item is measured in every round, the rounds alternate, and each figure is
// the median over the rounds of its value (a ratio is taken within a round, its
// two sides measured moments apart): load from elsewhere on the machine moves
// both sides alike, and the median drops the rounds it hit hardest.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CollectionSpec, Program, attachXdp, ifindex } from '../../../node-daemon/src/bpf';
import type { Collection } from '../../../node-daemon/src/bpf';
import { DEFAULT_OBJECTS_DIR } from '../../../node-daemon/src/runtime/runtime';
import type { Mode, Topology } from '../../../node-daemon/src/runtime/topology';
import { forwardBothWays, lineTopology, type LineCube } from '../../helpers/chains';
import { allowedCpus } from '../../helpers/cpus';
import { entering, netdevEntry, runProgram, testCubeObjects, unfusedEntry } from '../../helpers/dataplane';
import { openTestbed, type Testbed } from '../../helpers/testbed';
import { streamFrame } from '../../helpers/traffic';
import { loadBaseline } from '../baseline';
import { closeAll, type Closer } from '../closers';
import type { Result, Suite, SuiteContext } from '../report';
import { openBenchRuntime } from '../runtime';

/** How the kernel guards indirect jumps on this CPU: with retpolines, every indirect tail call goes through one. */
function spectreV2(): string {
  try {
    return fs.readFileSync('/sys/devices/system/cpu/vulnerabilities/spectre_v2', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** Rounds of alternating measurements (NC_BENCH_ROUNDS to change). */
const ROUNDS = Number(process.env.NC_BENCH_ROUNDS ?? 15);
/**
 * Test runs of one program per measurement; a chain of k hops gets 1/k of them.
 * So many that the call's own setup (for XDP, the kernel registers the program
 * with its XDP dispatcher and takes it out again: text patching, which waits for
 * every CPU, 0.2-1 ms here) is a few hundredths of a nanosecond a run.
 */
const RUNS = 10_000_000;
/** Runs of the short call whose CPU time is the test-run call's own setup. */
const SETUP_RUNS = 1000;
/** Frames per live measurement, sent by one live-frames test run. */
const LIVE_FRAMES = 1_000_000;
/**
 * Live measurements of each side per round, alternating; the round keeps each
 * side's best. Wall time counts whatever else the machine's two CPUs ran
 * meanwhile, which only ever slows a run down: the best of a few is the one
 * the least in the way of.
 */
const LIVE_TRIES = 3;
const HOPS = [1, 2, 4, 8, 32];
/** Copies of each bare tail-calling program: a chain of up to 32 hops. */
const FLOOR_COPIES = 32;
/** Every test run on this CPU, both sides of a ratio alike. */
const CPU = allowedCpus()[0];

const TARGETS = { p1: 0.95, p1Live: 0.97, p2: 5, p3: 0.95 };

const frame = streamFrame();
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r1 = (n: number): string => n.toFixed(1);
const r2 = (n: number): string => n.toFixed(2);

type FloorKind = 'direct' | 'indirect' | 'metadata' | 'mdload' | 'mdstore';
const FLOOR_KINDS: readonly FloorKind[] = ['direct', 'indirect', 'metadata', 'mdload', 'mdstore'];

interface Floor {
  first: Program;
  /** Metadata the first copy is entered with (chain_metadata). */
  md?: ReturnType<typeof entering>;
  /** Makes copy 1 the head of a chain of `n` hops after it (n + 1 programs), at most FLOOR_COPIES - 1. */
  length(n: number): void;
  close(): void;
}

/** The kernel's limit on tail calls (MAX_TAIL_CALL_CNT): chain_self's jumps. */
const SELF_JUMPS = 33;

/** bpf/testdata/tailchain's chain_self: one program that tail-calls itself SELF_JUMPS times, or (off) not at all. */
async function loadSelfLoop(): Promise<{ program: Program; loop(on: boolean): void; close(): void }> {
  const spec = CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'tailchain.o'));
  spec.variables.get('self')!.set(1);
  for (const p of spec.programs.values()) p.autoload = p.name === 'chain_self';
  const coll = await spec.load();
  const program = coll.program('chain_self');
  return {
    program,
    loop: (on) => (on ? coll.map('chain_progs').setProgram(1, program) : void coll.map('chain_progs').clearProgram(1)),
    close: () => coll.close(),
  };
}

/** FLOOR_COPIES copies of bpf/testdata/tailchain's chain_<kind>, in slots 1..FLOOR_COPIES of their prog array. */
async function loadFloor(kind: FloorKind): Promise<Floor> {
  const file = path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'tailchain.o');
  const program = `chain_${kind}`;
  const colls: Collection[] = [];
  try {
    for (let i = 1; i <= FLOOR_COPIES; i++) {
      const spec = CollectionSpec.fromFile(file);
      spec.variables.get('self')!.set(i);
      for (const p of spec.programs.values()) p.autoload = p.name === program;
      if (colls.length > 0) for (const m of ['chain_progs', 'chain_next']) spec.maps.get(m)!.replaceWith(colls[0].map(m));
      colls.push(await spec.load());
    }
  } catch (err) {
    colls.forEach((c) => c.close());
    throw err;
  }
  const [first] = colls;
  const slots = first.map('chain_progs');
  return {
    first: first.program(program),
    md: kind === 'direct' || kind === 'indirect' ? undefined : entering(0, 1),
    length(n: number) {
      for (let i = 1; i <= FLOOR_COPIES; i++) {
        // chain_indirect reads its successor (0: none) from chain_next, the others
        // find the slot after their own empty at the end.
        const key = Buffer.alloc(4);
        key.writeUInt32LE(i);
        const next = Buffer.alloc(8);
        next.writeBigUInt64LE(i <= n ? BigInt(i + 1) : 0n);
        first.map('chain_next').update(key, next);
        if (kind === 'indirect' || i <= n + 1) slots.setProgram(i, colls[i - 1].program(program));
        else slots.clearProgram(i);
      }
    },
    close: () => colls.forEach((c) => c.close()),
  };
}

const ifindexes = new Map<string, number>();

/**
 * ns/packet of `program` on a frame (arriving on `ifname` of `bed`'s host, if
 * given; entering with `md`, if given), over `runs` runs; it must redirect.
 */
async function nsPerPacket(bed: Testbed, program: Program, mode: Mode, opts: { ifname?: string; md?: ReturnType<typeof entering>; runs?: number } = {}): Promise<number> {
  const key = `${bed.host.name}/${opts.ifname}`;
  if (opts.ifname && !ifindexes.has(key)) ifindexes.set(key, await ifindex(opts.ifname, bed.host.name));
  const run = { ifindex: opts.ifname ? ifindexes.get(key) : undefined, netns: bed.host.name, cpu: CPU };
  const runs = opts.runs ?? RUNS;
  const setup = await runProgram(program, mode, frame, opts.md, { ...run, repeat: SETUP_RUNS });
  const res = await runProgram(program, mode, frame, opts.md, { ...run, repeat: runs });
  if (res.verdict !== 'redirect') throw new Error(`${program.name}${opts.ifname ? ` on ${opts.ifname}` : ''}: verdict ${res.verdict}, expected redirect`);
  return (res.cpuNs - setup.cpuNs) / (runs - SETUP_RUNS);
}

/**
 * Live Mpps through `bed`: LIVE_FRAMES frames sent by one live-frames test run,
 * over its wall time (which includes a fixed setup of a few ms, the same for
 * every side). Frames that do not arrive do not count.
 */
async function liveMpps(bed: Testbed, ctx: SuiteContext, what: string): Promise<number> {
  const before = bed.received();
  const start = process.hrtime.bigint();
  await bed.generator.send(LIVE_FRAMES, { perRun: LIVE_FRAMES });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const arrived = (await bed.sinks[0].settle(before + LIVE_FRAMES)) - before;
  if (arrived !== LIVE_FRAMES) ctx.log(`${what}: ${LIVE_FRAMES - arrived} of ${LIVE_FRAMES} frames did not arrive (${JSON.stringify(await bed.drops())})`);
  return arrived / seconds / 1e6;
}

const line = (prefix: string, types: string[]): LineCube[] => types.map((type, i) => ({ name: `${prefix}${i + 1}`, type }));

function merge(...topos: Topology[]): Topology {
  return { cubes: topos.flatMap((t) => t.cubes), links: topos.flatMap((t) => t.links), stacks: topos.flatMap((t) => t.stacks) };
}

export const suite: Suite = {
  name: 'dataplane',
  description: 'netcube vs hand-written programs: p1 simpleforwarder, p2 ns per cube, p3 3-cube chain, and what they are made of',
  async run(ctx) {
    const closers: Closer[] = [];
    try {
      // A testbed per live measurement, so that nothing is re-attached between
      // alternating runs: vanilla, netcube's simpleforwarder, the 3-cube chain.
      const vanillaBed = await openTestbed({ mode: 'xdp' });
      closers.push(() => vanillaBed.close());
      const fwdBed = await openTestbed({ mode: 'xdp' });
      closers.push(() => fwdBed.close());
      const chainBed = await openTestbed({ mode: 'xdp' });
      closers.push(() => chainBed.close());

      // Netdevs for test runs only, in the forwarder's host: the TC forwarder's, the
      // forwarders' without counters, and the p2 chains' (nop, and nop without counters).
      const chains = [...HOPS.map((k) => ({ key: `nop${k}`, type: 'nop', k })), ...[1, 8].map((k) => ({ key: `bare${k}`, type: 'nop_nostats', k }))];
      for (const pair of ['tin0:tout0', 'xns0:xns1', 'tns0:tns1', ...chains.map((c) => `${c.key}i:${c.key}o`)]) {
        const [a, b] = pair.split(':');
        await fwdBed.host.exec('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
        for (const n of [a, b]) await fwdBed.host.exec('ip', ['link', 'set', n, 'up']);
      }

      const rt = await openBenchRuntime(fwdBed);
      closers.push(() => rt.destroy());
      for (const type of ['nop_nostats', 'simpleforwarder_nostats']) await rt.registerType(type, testCubeObjects(type));
      await rt.apply(
        merge(
          lineTopology('xdp', [{ name: 'fwd', type: 'simpleforwarder' }], fwdBed.in, fwdBed.outs[0]),
          lineTopology('tc', [{ name: 'tfwd', type: 'simpleforwarder' }], 'tin0', 'tout0'),
          lineTopology('xdp', [{ name: 'xns', type: 'simpleforwarder_nostats' }], 'xns0', 'xns1'),
          lineTopology('tc', [{ name: 'tns', type: 'simpleforwarder_nostats' }], 'tns0', 'tns1'),
          ...chains.map((c) => lineTopology('xdp', line(`${c.key}-`, new Array(c.k).fill(c.type)), `${c.key}i`, `${c.key}o`)),
        ),
      );
      forwardBothWays(rt);
      const chainRt = await openBenchRuntime(chainBed);
      closers.push(() => chainRt.destroy());
      await chainRt.apply(lineTopology('xdp', line('c', ['simpleforwarder', 'nop', 'simpleforwarder']), chainBed.in, chainBed.outs[0]));
      forwardBothWays(chainRt);

      const vanilla = await loadBaseline('vanilla_fwd', fwdBed.host.name, [[fwdBed.in, fwdBed.outs[0]], ['tin0', 'tout0']]);
      closers.push(() => vanilla.close());
      const vanillaLive = await loadBaseline('vanilla_fwd', vanillaBed.host.name, [[vanillaBed.in, vanillaBed.outs[0]]]);
      closers.push(() => vanillaLive.close());
      const link = await attachXdp({ program: vanillaLive.program('vanilla_fwd_xdp'), ifname: vanillaBed.in, netns: vanillaBed.host.name });
      closers.push(() => link.close());
      const floors = {} as Record<FloorKind, Floor>;
      for (const kind of FLOOR_KINDS) {
        floors[kind] = await loadFloor(kind);
        closers.push(() => floors[kind].close());
      }
      const selfLoop = await loadSelfLoop();
      closers.push(() => selfLoop.close());
      const unfused = { xdp: await unfusedEntry(rt, fwdBed.in, 'xdp'), tc: await unfusedEntry(rt, 'tin0', 'tc') };
      closers.push(() => Object.values(unfused).forEach((c) => c.close()));

      const entries = {
        xdp: netdevEntry(rt, fwdBed.in, 'xdp'),
        tc: netdevEntry(rt, 'tin0', 'tc'),
        nostats: { xdp: netdevEntry(rt, 'xns0', 'xdp'), tc: netdevEntry(rt, 'tns0', 'tc') },
        chains: chains.map((c) => netdevEntry(rt, `${c.key}i`, 'xdp')),
      };
      closers.push(() => [entries.xdp, entries.tc, entries.nostats.xdp, entries.nostats.tc, ...entries.chains].forEach((p) => p.close()));

      const samples: Record<string, number[]> = {};
      const add = (key: string, v: number): void => {
        (samples[key] ??= []).push(v);
      };
      const floorLengths: Record<FloorKind, number[]> = { direct: [1, 8, FLOOR_COPIES - 1], indirect: [1, 8], metadata: [1, 8], mdload: [1, 8], mdstore: [1, 8] };
      for (let round = 1; round <= ROUNDS; round++) {
        for (const mode of ['xdp', 'tc'] as const) {
          const ifname = mode === 'xdp' ? fwdBed.in : 'tin0';
          add(`p1.${mode}.netcube`, await nsPerPacket(fwdBed, entries[mode], mode, { ifname }));
          add(`p1.${mode}.vanilla`, await nsPerPacket(fwdBed, vanilla.program(`vanilla_fwd_${mode}`), mode, { ifname }));
          add(`p1.${mode}.unfused`, await nsPerPacket(fwdBed, unfused[mode].program('nc_netdev'), mode, { ifname }));
          add(`p1.${mode}.nostats`, await nsPerPacket(fwdBed, entries.nostats[mode], mode, { ifname: mode === 'xdp' ? 'xns0' : 'tns0' }));
        }
        for (const [i, c] of chains.entries()) add(`p2.${c.key}`, await nsPerPacket(fwdBed, entries.chains[i], 'xdp', { runs: Math.round(RUNS / c.k) }));
        for (const kind of FLOOR_KINDS) {
          for (const n of floorLengths[kind]) {
            floors[kind].length(n);
            add(`floor.${kind}${n}`, await nsPerPacket(fwdBed, floors[kind].first, 'xdp', { md: floors[kind].md, runs: Math.round(RUNS / n) }));
          }
        }
        for (const on of [false, true]) {
          selfLoop.loop(on);
          add(`floor.self${on ? SELF_JUMPS : 0}`, await nsPerPacket(fwdBed, selfLoop.program, 'xdp', { runs: Math.round(RUNS / 8) }));
        }
        const live = { vanilla: 0, netcube1: 0, netcube3: 0 };
        for (let i = 0; i < LIVE_TRIES; i++) {
          live.vanilla = Math.max(live.vanilla, await liveMpps(vanillaBed, ctx, 'vanilla'));
          live.netcube1 = Math.max(live.netcube1, await liveMpps(fwdBed, ctx, 'simpleforwarder'));
          live.netcube3 = Math.max(live.netcube3, await liveMpps(chainBed, ctx, '3-cube chain'));
        }
        for (const [k, v] of Object.entries(live)) add(`live.${k}`, v);
        ctx.log(`round ${round}/${ROUNDS}: ${Object.entries(samples).map(([k, v]) => `${k} ${r1(v[v.length - 1])}`).join(', ')}`);
      }

      // Figures of each round, then their medians.
      const rounds = Array.from({ length: ROUNDS }, (_, r) => Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v[r]])));
      const per = (f: (x: Record<string, number>) => number): number => median(rounds.map(f));
      const spread = (f: (x: Record<string, number>) => number, digits = 1): string => {
        const xs = rounds.map(f);
        return `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;
      };
      const m = (k: string): number => per((x) => x[k]);
      const perPacket = (mpps: number): number => 1000 / mpps;
      const extraNs = (k: string): number => per((x) => perPacket(x[k]) - perPacket(x['live.vanilla']));
      const slope = (x: Record<string, number>, a: string, b: string, hops: number): number => (x[b] - x[a]) / hops;

      // What a hop is made of, per hop over chains of 1 to 8: the nop's hop is the sum
      // of the bare direct jump, the framework's work without counters, and the
      // counters. The other floors stand beside it.
      const over8 = (x: Record<string, number>, kind: string): number => slope(x, `${kind}1`, `${kind}8`, 7);
      const f = {
        nop: per((x) => over8(x, 'p2.nop')),
        direct: per((x) => over8(x, 'floor.direct')),
        framework: per((x) => over8(x, 'p2.bare') - over8(x, 'floor.direct')),
        counters: per((x) => over8(x, 'p2.nop') - over8(x, 'p2.bare')),
        directLong: per((x) => slope(x, 'floor.direct8', `floor.direct${FLOOR_COPIES - 1}`, FLOOR_COPIES - 9)),
        self: per((x) => slope(x, 'floor.self0', `floor.self${SELF_JUMPS}`, SELF_JUMPS)),
        indirect: per((x) => over8(x, 'floor.indirect')),
        metadata: per((x) => over8(x, 'floor.metadata') - over8(x, 'floor.direct')),
        mdLoad: per((x) => over8(x, 'floor.mdload') - over8(x, 'floor.direct')),
        mdStore: per((x) => over8(x, 'floor.mdstore') - over8(x, 'floor.direct')),
        unfused: { xdp: per((x) => x['p1.xdp.unfused'] - x['p1.xdp.netcube']), tc: per((x) => x['p1.tc.unfused'] - x['p1.tc.netcube']) },
        // simpleforwarder's own counters: it less its build without them.
        fwdCounters: { xdp: per((x) => x['p1.xdp.netcube'] - x['p1.xdp.nostats']), tc: per((x) => x['p1.tc.netcube'] - x['p1.tc.nostats']) },
      };
      const hopOf = (x: Record<string, number>): number => median([2, 4, 8].map((k) => slope(x, 'p2.nop1', `p2.nop${k}`, k - 1)));
      const hop = per(hopOf);
      const hop32 = per((x) => slope(x, 'p2.nop1', 'p2.nop32', 31));
      const breakdown =
        `Over chains of 1 to 8 a nop hop is ${r2(f.nop)} ns: the bare direct jump ${r2(f.direct)} ns (dataplane.hop.direct_ns; an indirect one ${r1(f.indirect)} ns), ` +
        `the framework's work without counters ${r2(f.framework)} ns (dataplane.hop.framework_ns: metadata in and out, the peer word, the jump tree, the checks) ` +
        `and the port counters ${r2(f.counters)} ns (dataplane.hop.counters_ns). ` +
        `Between bare programs the metadata alone, loaded, checked and stored on each hop, costs ${r2(f.metadata)} ns a hop (dataplane.hop.metadata_ns; ` +
        `loaded only ${r2(f.mdLoad)} ns, stored only ${r2(f.mdStore)} ns). These parts move by a few nanoseconds between two loads of the same programs ` +
        `(where the kernel places code, maps and the test frame); compare runs by the whole hop. ` +
        `${TARGETS.p2} ns a hop would leave ${r2(TARGETS.p2 - f.direct - f.counters)} ns for all of the framework's work once the jump and the counters are paid, ` +
        `against the ${r2(f.framework)} ns it takes.`;

      const results: Result[] = [];
      for (const mode of ['xdp', 'tc'] as const) {
        const nc = m(`p1.${mode}.netcube`);
        const va = m(`p1.${mode}.vanilla`);
        const ratioOf = (x: Record<string, number>): number => x[`p1.${mode}.vanilla`] / x[`p1.${mode}.netcube`];
        const ratio = per(ratioOf);
        const extra = per((x) => x[`p1.${mode}.netcube`] - x[`p1.${mode}.vanilla`]);
        const counters = f.fwdCounters[mode];
        const bareOf = (x: Record<string, number>): number => x[`p1.${mode}.vanilla`] / x[`p1.${mode}.nostats`];
        results.push(
          { name: `p1.${mode}.vanilla`, value: va, unit: 'ns/packet' },
          { name: `p1.${mode}.netcube`, value: nc, unit: 'ns/packet', baseline: va, ratio },
          {
            name: `p1.${mode}.ratio`,
            value: ratio,
            unit: 'x',
            target: TARGETS.p1,
            note:
              `netcube ${r2(nc)} ns vs vanilla ${r2(va)} ns per packet (medians of ${ROUNDS} rounds; the ratio ranged ${spread(ratioOf, 2)}): ${r2(extra)} ns more. ` +
              `The netdev's entry is the forwarder itself (fused): no tail call; the generation (one load) and the netdev's peer word say it may run. ` +
              `Of the ${r2(extra)} ns, the forwarder's port counters (rx and tx) are ${r2(counters)} ns (simpleforwarder built without them: ${r2(m(`p1.${mode}.nostats`))} ns, ` +
              `ratio ${r2(per(bareOf))}, p1.${mode}.nocounters_ratio), the other ${r2(extra - counters)} ns the framework's: the generation and the netdev's peer word (may the cube run fused?), the port's peer word, the checks. ` +
              `An entry of its own would add ${r2(f.unfused[mode])} ns (dataplane.entry.unfused_ns${mode === 'tc' ? '_tc' : ''}). ` +
              `${TARGETS.p1} leaves ${r2(va / TARGETS.p1 - va)} ns for all of it, less than the counters alone.`,
          },
          { name: `p1.${mode}.nocounters_ratio`, value: per(bareOf), unit: 'x', note: 'simpleforwarder built without port counters (a benchmark-only build) vs vanilla' },
        );
      }
      const liveV = m('live.vanilla');
      const live1 = m('live.netcube1');
      const live3 = m('live.netcube3');
      const ratio1Of = (x: Record<string, number>): number => x['live.netcube1'] / x['live.vanilla'];
      const ratio3Of = (x: Record<string, number>): number => x['live.netcube3'] / x['live.vanilla'];
      const ratio1 = per(ratio1Of);
      const ratio3 = per(ratio3Of);
      results.push(
        { name: 'p1.xdp.live.vanilla', value: liveV, unit: 'Mpps' },
        { name: 'p1.xdp.live.netcube', value: live1, unit: 'Mpps', baseline: liveV, ratio: ratio1 },
        {
          name: 'p1.xdp.live.ratio',
          value: ratio1,
          unit: 'x',
          target: TARGETS.p1Live,
          note:
            `netcube ${live1.toFixed(2)} Mpps vs vanilla ${liveV.toFixed(2)} Mpps (medians of ${ROUNDS} rounds; the ratio ranged ${spread(ratio1Of, 2)}): ` +
            `${r1(extraNs('live.netcube1'))} ns more per packet on a ${r1(perPacket(liveV))} ns path (generator, two veths, sink, all on one CPU). ` +
            `Test runs put the difference at ${r2(m('p1.xdp.netcube') - m('p1.xdp.vanilla'))} ns with everything in cache, ${r2(f.fwdCounters.xdp)} ns of it the counters; ` +
            `live, the forwarder's code and maps compete with the veths' and the generator's for the caches.`,
        },
      );
      for (const c of chains) results.push({ name: c.type === 'nop' ? `p2.chain${c.k}` : `p2.chain${c.k}.nocounters`, value: m(`p2.${c.key}`), unit: 'ns/packet' });
      results.push(
        { name: 'dataplane.hop.direct_ns', value: f.direct, unit: 'ns/hop', note: `a bare program tail-calling a constant slot (bpf/testdata/tailchain chain_direct), per hop over chains of 1 to 8; the x86 JIT makes it a direct jmp` },
        { name: 'dataplane.hop.direct_ns_9to32', value: f.directLong, unit: 'ns/hop', note: `the same, per hop from the 9th to the ${FLOOR_COPIES - 1}st` },
        { name: 'dataplane.hop.direct_ns_self', value: f.self, unit: 'ns/hop', note: `one such program tail-calling itself ${SELF_JUMPS} times (chain_self): as many jumps as the longest chain, through one program` },
        { name: 'dataplane.hop.indirect_ns', value: f.indirect, unit: 'ns/hop', note: `a bare program tail-calling a slot read from a map (chain_indirect): an indirect jump, through a retpoline here (spectre_v2: ${spectreV2()})` },
        { name: 'dataplane.hop.framework_ns', value: f.framework, unit: 'ns/hop', note: 'a nop hop without port counters, less the bare direct jump (nop built without counters less chain_direct, chains of 1 and 8)' },
        { name: 'dataplane.hop.metadata_ns', value: f.metadata, unit: 'ns/hop', note: 'netcube metadata handed on between bare programs: loaded, checked and stored on each hop (chain_metadata less chain_direct)' },
        { name: 'dataplane.hop.metadata_load_ns', value: f.mdLoad, unit: 'ns/hop', note: 'the metadata loaded and checked only (chain_mdload less chain_direct)' },
        { name: 'dataplane.hop.metadata_store_ns', value: f.mdStore, unit: 'ns/hop', note: 'the metadata stored only (chain_mdstore less chain_direct)' },
        { name: 'dataplane.hop.counters_ns', value: f.counters, unit: 'ns/cube', note: 'a cube\'s port counters, rx and tx (nop less nop built without them, chains of 1 and 8)' },
        { name: 'dataplane.entry.unfused_ns', value: f.unfused.xdp, unit: 'ns/packet', note: 'what the netdev entry costs as a program of its own, tail-calling the cube (framework/netdev.bpf.c), over the fused one' },
        { name: 'dataplane.entry.unfused_ns_tc', value: f.unfused.tc, unit: 'ns/packet' },
        {
          name: 'p2.hop_ns',
          value: hop,
          unit: 'ns/cube',
          target: TARGETS.p2,
          better: 'lower',
          note: `${r2(hop)} ns per nop cube (chains of 2, 4 and 8 against one; medians of ${ROUNDS} rounds, ranged ${spread(hopOf, 2)}). ${breakdown}`,
        },
        {
          name: 'p2.hop_ns_32',
          value: hop32,
          unit: 'ns/cube',
          better: 'lower',
          note:
            `${r2(hop32)} ns per nop cube over a chain of 32 against one. Past 8 hops every jump costs more, bare ones too: ${r2(f.direct)} ns per bare direct hop up to 8, ` +
            `${r2(f.directLong)} ns from the 9th on (dataplane.hop.direct_ns_9to32); yet one bare program jumping into itself ${SELF_JUMPS} times pays ${r2(f.self)} ns a jump ` +
            '(dataplane.hop.direct_ns_self). The step comes with the number of distinct programs a packet jumps through, not with the number of jumps or with what the cubes do: ' +
            "the CPU's front end keeps about 8 such jump targets at full speed (README, Limits).",
        },
      );
      results.push(
        { name: 'p3.live.netcube', value: live3, unit: 'Mpps', baseline: liveV, ratio: ratio3 },
        {
          name: 'p3.live.ratio',
          value: ratio3,
          unit: 'x',
          target: TARGETS.p3,
          note:
            `3 cubes ${live3.toFixed(2)} Mpps vs vanilla ${liveV.toFixed(2)} Mpps (medians of ${ROUNDS} rounds; the ratio ranged ${spread(ratio3Of, 2)}): ${r1(extraNs('live.netcube3'))} ns more per packet, ` +
            `where one simpleforwarder costs ${r1(extraNs('live.netcube1'))} ns more: each further cube about ${r1((extraNs('live.netcube3') - extraNs('live.netcube1')) / 2)} ns live ` +
            `(p2: ${r2(hop)} ns by test run, see its note). ${TARGETS.p3} needs the whole chain within ${r1(perPacket(liveV) / TARGETS.p3 - perPacket(liveV))} ns; ` +
            `by test run, with everything in cache, the first cube alone costs ${r2(m('p1.xdp.netcube') - m('p1.xdp.vanilla'))} ns more than vanilla and each further one ${r2(hop)} ns.`,
        },
      );
      return results;
    } finally {
      await closeAll(closers, ctx.log);
    }
  },
};

// The data plane's cost against hand-written programs, measured in one run on
// this machine:
//
//   p1  simpleforwarder in netcube vs baseline/vanilla_fwd: ns/packet by
//       BPF_PROG_TEST_RUN, XDP and TC (the netcube path is what a netdev runs:
//       the entry program tail-calling the cube, which redirects); and Mpps with
//       live traffic in XDP (live-frames generator -> veth -> forwarder -> veth
//       -> XDP sink).
//   p2  ns per extra cube, over chains of 1, 2, 4, 8, 16 nop cubes (least
//       squares over test runs of each chain's entry).
//   p3  Mpps through a 3-cube chain vs the vanilla program, live, XDP.
//
// Netcube and vanilla runs alternate, several rounds, and the median of each
// side counts, so a noisy moment of the machine hurts neither more.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CollectionSpec, Program, attachXdp, ifindex } from '../../../node-daemon/src/bpf';
import type { Collection, XdpLink } from '../../../node-daemon/src/bpf';
import { unmountBpffs } from '../../../node-daemon/src/runtime/host';
import { DEFAULT_OBJECTS_DIR, Runtime } from '../../../node-daemon/src/runtime/runtime';
import type { Mode, Topology } from '../../../node-daemon/src/runtime/topology';
import { forwardBothWays, lineTopology, type LineCube } from '../../helpers/chains';
import { runProgram } from '../../helpers/dataplane';
import { openTestbed, type Testbed } from '../../helpers/testbed';
import { streamFrame } from '../../helpers/traffic';
import type { Result, Suite, SuiteContext } from '../report';

/** Rounds of alternating measurements; the median of each side counts. */
const ROUNDS = Number(process.env.NC_BENCH_ROUNDS ?? 7);
/** Test runs per measurement (ns/packet is their average). */
const REPEAT = 2_000_000;
/** Frames per live measurement. */
const LIVE_FRAMES = 3_000_000;
const HOPS = [1, 2, 4, 8, 16];

const TARGETS = { p1: 0.95, p2: 10, p3: 0.9 };

const frame = streamFrame();
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Least-squares slope and intercept of y over x. */
function fit(xs: number[], ys: number[]): { slope: number; intercept: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  const slope = num / den;
  return { slope, intercept: my - slope * mx };
}

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

/** The vanilla forwarder, loaded, forwarding `from` to `to` (by ifindex) in `bed`'s host. */
async function loadVanilla(bed: Testbed, pairs: [string, string][]): Promise<Collection> {
  const coll = await CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'baseline', 'vanilla_fwd.o')).load();
  for (const [from, to] of pairs) {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(await ifindex(from, bed.host.name));
    const value = Buffer.alloc(4);
    value.writeUInt32LE(await ifindex(to, bed.host.name));
    coll.map('out_ifindex').update(key, value);
  }
  return coll;
}

/** The entry program netcube attached to `ifname`, as pinned. */
function entryOf(rt: Runtime, ifname: string, mode: Mode): Program {
  return Program.openPinned(path.join(rt.layout.netdev(ifname, mode), 'prog'));
}

/** ns/packet of `program` on a frame arriving on `ifname` of `bed`'s host. */
async function nsPerPacket(bed: Testbed, program: Program, mode: Mode, ifname: string): Promise<number> {
  const ifx = await ifindex(ifname, bed.host.name);
  const res = await runProgram(program, mode, frame, undefined, { repeat: REPEAT, ifindex: ifx, netns: bed.host.name });
  if (res.verdict !== 'redirect') throw new Error(`${program.name} on ${ifname}: verdict ${res.verdict}, expected redirect`);
  return res.durationNs;
}

/**
 * Live Mpps through `bed`: LIVE_FRAMES frames from the generator, timed from the
 * first to the last (the test run's wall time); every frame must arrive.
 */
async function liveMpps(bed: Testbed, ctx: SuiteContext, what: string): Promise<number> {
  const before = bed.received();
  const start = process.hrtime.bigint();
  await bed.generator.send(LIVE_FRAMES, { perRun: LIVE_FRAMES });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const arrived = (await bed.sinks[0].settle(before + LIVE_FRAMES)) - before;
  if (arrived !== LIVE_FRAMES) ctx.log(`${what}: ${LIVE_FRAMES - arrived} of ${LIVE_FRAMES} frames lost (${JSON.stringify(await bed.drops())})`);
  return arrived / seconds / 1e6;
}

const line = (mode: Mode, prefix: string, types: string[]): LineCube[] => types.map((type, i) => ({ name: `${prefix}${i + 1}`, type }));

function merge(...topos: Topology[]): Topology {
  return { cubes: topos.flatMap((t) => t.cubes), links: topos.flatMap((t) => t.links), stacks: topos.flatMap((t) => t.stacks) };
}

export const suite: Suite = {
  name: 'dataplane',
  description: 'netcube vs hand-written programs: p1 simpleforwarder, p2 ns per cube, p3 3-cube chain',
  async run(ctx) {
    const closers: (() => Promise<void> | void)[] = [];
    try {
      // Three testbeds, so that nothing is re-attached between alternating runs:
      // vanilla on one, netcube's simpleforwarder on another, the 3-cube chain on a third.
      const vanillaBed = await openTestbed({ mode: 'xdp' });
      closers.push(() => vanillaBed.close());
      const fwdBed = await openTestbed({ mode: 'xdp' });
      closers.push(() => fwdBed.close());
      const chainBed = await openTestbed({ mode: 'xdp' });
      closers.push(() => chainBed.close());

      // Test-run netdevs in the forwarder's host: t* for TC, h<k>* for the p2 chains.
      const extra = ['tin0:tout0', ...HOPS.map((k) => `h${k}in:h${k}out`)];
      for (const pair of extra) {
        const [a, b] = pair.split(':');
        await fwdBed.host.exec('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
        for (const n of [a, b]) await fwdBed.host.exec('ip', ['link', 'set', n, 'up']);
      }

      const rt = await openRuntime(fwdBed);
      closers.push(() => rt.destroy());
      await rt.apply(
        merge(
          lineTopology('xdp', [{ name: 'fwd', type: 'simpleforwarder' }], fwdBed.in, fwdBed.outs[0]),
          lineTopology('tc', [{ name: 'tfwd', type: 'simpleforwarder' }], 'tin0', 'tout0'),
          ...HOPS.map((k) => lineTopology('xdp', line('xdp', `h${k}-`, new Array(k).fill('nop')), `h${k}in`, `h${k}out`)),
        ),
      );
      forwardBothWays(rt);
      const chainRt = await openRuntime(chainBed);
      closers.push(() => chainRt.destroy());
      await chainRt.apply(lineTopology('xdp', line('xdp', 'c', ['simpleforwarder', 'nop', 'simpleforwarder']), chainBed.in, chainBed.outs[0]));
      forwardBothWays(chainRt);

      const vanilla = await loadVanilla(fwdBed, [[fwdBed.in, fwdBed.outs[0]], ['tin0', 'tout0']]);
      closers.push(() => vanilla.close());
      const vanillaLive = await loadVanilla(vanillaBed, [[vanillaBed.in, vanillaBed.outs[0]]]);
      closers.push(() => vanillaLive.close());
      const link: XdpLink = await attachXdp({ program: vanillaLive.program('vanilla_fwd_xdp'), ifname: vanillaBed.in, netns: vanillaBed.host.name });
      closers.push(() => link.close());

      const entries = {
        xdp: entryOf(rt, fwdBed.in, 'xdp'),
        tc: entryOf(rt, 'tin0', 'tc'),
        hops: HOPS.map((k) => entryOf(rt, `h${k}in`, 'xdp')),
      };
      closers.push(() => [entries.xdp, entries.tc, ...entries.hops].forEach((p) => p.close()));

      const samples: Record<string, number[]> = {};
      const add = (key: string, v: number): void => {
        (samples[key] ??= []).push(v);
      };
      for (let round = 1; round <= ROUNDS; round++) {
        add('p1.xdp.netcube', await nsPerPacket(fwdBed, entries.xdp, 'xdp', fwdBed.in));
        add('p1.xdp.vanilla', await nsPerPacket(fwdBed, vanilla.program('vanilla_fwd_xdp'), 'xdp', fwdBed.in));
        add('p1.tc.netcube', await nsPerPacket(fwdBed, entries.tc, 'tc', 'tin0'));
        add('p1.tc.vanilla', await nsPerPacket(fwdBed, vanilla.program('vanilla_fwd_tc'), 'tc', 'tin0'));
        for (const [i, k] of HOPS.entries()) add(`p2.chain${k}`, await nsPerPacket(fwdBed, entries.hops[i], 'xdp', `h${k}in`));
        add('live.vanilla', await liveMpps(vanillaBed, ctx, 'vanilla'));
        add('live.netcube1', await liveMpps(fwdBed, ctx, 'simpleforwarder'));
        add('live.netcube3', await liveMpps(chainBed, ctx, '3-cube chain'));
        ctx.log(`round ${round}/${ROUNDS}: ` + Object.entries(samples).map(([k, v]) => `${k} ${v[v.length - 1].toFixed(1)}`).join(', '));
      }
      const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
      const hop = fit(HOPS, HOPS.map((k) => m[`p2.chain${k}`]));

      const results: Result[] = [];
      for (const mode of ['xdp', 'tc'] as const) {
        const nc = m[`p1.${mode}.netcube`];
        const va = m[`p1.${mode}.vanilla`];
        results.push(
          { name: `p1.${mode}.vanilla`, value: va, unit: 'ns/packet' },
          { name: `p1.${mode}.netcube`, value: nc, unit: 'ns/packet', baseline: va, ratio: va / nc },
          { name: `p1.${mode}.ratio`, value: va / nc, unit: 'x', target: TARGETS.p1 },
        );
      }
      results.push(
        { name: 'p1.xdp.live.vanilla', value: m['live.vanilla'], unit: 'Mpps' },
        { name: 'p1.xdp.live.netcube', value: m['live.netcube1'], unit: 'Mpps', baseline: m['live.vanilla'], ratio: m['live.netcube1'] / m['live.vanilla'] },
        { name: 'p1.xdp.live.ratio', value: m['live.netcube1'] / m['live.vanilla'], unit: 'x', target: TARGETS.p1 },
      );
      for (const k of HOPS) results.push({ name: `p2.chain${k}`, value: m[`p2.chain${k}`], unit: 'ns/packet' });
      results.push({ name: 'p2.hop_ns', value: hop.slope, unit: 'ns/cube', target: TARGETS.p2, better: 'lower' });
      results.push(
        { name: 'p3.live.netcube', value: m['live.netcube3'], unit: 'Mpps', baseline: m['live.vanilla'], ratio: m['live.netcube3'] / m['live.vanilla'] },
        { name: 'p3.live.ratio', value: m['live.netcube3'] / m['live.vanilla'], unit: 'x', target: TARGETS.p3 },
      );
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

// Reconfiguration under live traffic loses nothing: while a generator streams,
// the chain is changed dozens of times (a peer rewired, a cube inserted and
// removed, a micro-cube replaced) and every frame sent arrives. The veths'
// counters show that no frame was dropped anywhere else either, so sent ===
// received is the whole truth.
//
// One test at a time: each keeps a CPU busy with its stream, and every change
// re-patches the direct jumps of the programs it touches, which waits for every
// CPU to take an interrupt (text_poke); six streams on a small machine would
// mostly measure each other.
import { createHash } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import type { Topology } from '../../node-daemon/src/runtime/topology';
import { compileFirewall, DIRECTIONS, type FirewallTables } from '@netcube/firewall/tables';
import { activate, firewallCounter } from '../helpers/catalog';
import { lineTopology, withStack } from '../helpers/chains';
import { attachments, microSlots, openRuntime, registerTestTypes, testCubeObjects } from '../helpers/dataplane';
import { adminRules, PROBE } from '../helpers/rulesets';
import { createTestbed, type Testbed } from '../helpers/testbed';
import { streamFrame } from '../helpers/traffic';

const FLIPS = 20;
/** Changes that must have been under way while frames arrived. */
const MIN_DURING = 3;
/** Changes at most, in all, to get MIN_DURING of them under way while frames arrived. */
const MAX_FLIPS = 2_000;
const MIN_FRAMES = 50_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** Lets the event loop turn (the stream notes a finished test run) without waiting for time to pass. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Streams while `change(i)` runs, each time while a test run is sending: FLIPS
 * times, and on until MIN_DURING of the changes were under way while frames
 * arrived (the sinks' count moved between a change's start and its end). A
 * change of a few microseconds (a firewall's switch of banks) meets arriving
 * frames only when the generator's CPU runs at that very moment, which on a busy
 * machine is seldom: so the number of changes adapts, up to MAX_FLIPS, and the
 * assertion stays. Then checks that every frame arrived and no veth dropped one.
 */
async function changeUnderTraffic(t: ExecutionContext, bed: Testbed, change: (i: number) => Promise<void>): Promise<void> {
  const stream = bed.generator.stream({ perRun: 32_768, delivered: bed.received });
  let during = 0;
  let flips = 0;
  let sent: number;
  try {
    // An even number in all, so that what is changed back and forth ends as it began.
    while (flips < FLIPS || flips % 2 !== 0 || (during < MIN_DURING && flips < MAX_FLIPS)) {
      await stream.sending();
      const before = bed.received();
      await change(flips++);
      if (bed.received() > before) during++;
      await turn();
    }
    // Keep going until the stream is long enough to mean something.
    while (stream.sent < MIN_FRAMES) await sleep(5);
  } finally {
    sent = await stream.stop();
  }
  const settled = await settleAll(bed, sent);
  t.log(`${flips} changes, ${during} of them while frames were arriving; ${sent} frames sent in ${stream.runs} runs, ${settled} received`);
  t.true(sent >= MIN_FRAMES);
  t.true(during >= MIN_DURING, `${during} of ${flips} changes happened while frames were arriving; ${MIN_DURING} should`);
  t.deepEqual(await bed.drops(), {}, 'a veth dropped frames');
  t.is(settled, sent, 'frames lost');
}

/** Waits for the sinks together to reach `expected` (or stop moving). */
async function settleAll(bed: Testbed, expected: number): Promise<number> {
  let last = bed.received();
  let since = Date.now();
  while (last < expected && Date.now() - since < 300) {
    await sleep(5);
    const now = bed.received();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

/** Both sinks of a two-way testbed got some of the stream: both topologies carried traffic. */
function bothCarried(t: ExecutionContext, bed: Testbed): void {
  t.true(bed.sinks[0].frames > 0, 'nothing went the first way');
  t.true(bed.sinks[1].frames > 0, 'nothing went the second way');
}

for (const mode of ['xdp', 'tc'] as const) {
  test.serial(`${mode}: rewiring a peer back and forth under traffic loses no packet`, async (t) => {
    const bed = await createTestbed(t, { mode, outs: 2 });
    const rt = await openRuntime(t, { netns: bed.host.path });
    // Both cubes stay; only links change: in0 -> a -> out0, or in0 -> b -> a -> out1.
    const cubes = (names: string[]) => names.map((name) => ({ name, type: 'nop' }));
    const spare = (topo: Topology, name: string): Topology => ({
      ...topo,
      cubes: [...topo.cubes, { name, type: 'nop', mode, ports: ['p0', 'p1'], logLevel: 'info' }],
    });
    const first = spare(lineTopology(mode, cubes(['a']), bed.in, bed.outs[0]), 'b');
    const second = lineTopology(mode, cubes(['b', 'a']), bed.in, bed.outs[1]);
    await rt.apply(first);
    await changeUnderTraffic(t, bed, async (i) => {
      const report = await rt.apply(i % 2 === 0 ? second : first);
      t.true(report.rewired);
      t.deepEqual(report.created, []);
    });
    bothCarried(t, bed);
    t.deepEqual(rt.host.errorCounts(), new Array(8).fill(0n));
  });

  test.serial(`${mode}: inserting and removing cubes in a chain under traffic loses no packet`, async (t) => {
    const bed = await createTestbed(t, { mode });
    const rt = await openRuntime(t, { netns: bed.host.path });
    const short = lineTopology(mode, [{ name: 'a', type: 'nop' }], bed.in, bed.outs[0]);
    // A nop between a and the way out, and a ddosmitigator stacked on the way in.
    const long = withStack(
      lineTopology(mode, [{ name: 'a', type: 'nop' }, { name: 'x', type: 'nop' }], bed.in, bed.outs[0]),
      mode,
      { target: { netdev: bed.in }, layers: [{ cube: 'guard', direction: 'ingress' }] },
      { guard: 'ddosmitigator' },
    );
    await rt.apply(short);
    let throughInserted = 0n;
    await changeUnderTraffic(t, bed, async (i) => {
      if (i % 2 === 0) {
        const report = await rt.apply(long);
        t.deepEqual(report.created.sort(), ['guard', 'x']);
      } else {
        // What went through the inserted cubes before they go.
        throughInserted += rt.portStats('x', 'p0').rxPackets;
        const report = await rt.apply(short);
        t.deepEqual(report.deleted.sort(), ['guard', 'x']);
      }
    });
    t.true(throughInserted > 0n, 'no frame ever went through the inserted cube');
    t.deepEqual(rt.cubeNames(), ['a']);
    t.deepEqual(rt.host.errorCounts(), new Array(8).fill(0n));
  });

  test.serial(`${mode}: replacing micro-cubes under traffic loses no packet`, async (t) => {
    const bed = await createTestbed(t, { mode });
    const rt = await openRuntime(t, { netns: bed.host.path });
    await registerTestTypes(rt);
    const line = lineTopology(mode, [{ name: 'r', type: 'relay' }], bed.in, bed.outs[0]);
    await rt.apply(line);
    // The type's own object, under its digest: each change loads a new program.
    const elf = testCubeObjects('relay')[mode];
    const sha256 = createHash('sha256').update(elf).digest('hex');
    const objects = async (digest: string): Promise<Buffer> => (digest === sha256 ? elf : Promise.reject(new Error(`no object ${digest}`)));
    const replaced: Record<string, string> = {};
    const cube = rt.cube('r');
    const inSlot = (index: number): number => microSlots(rt, 'r')[index];
    // The netdev in0 runs r's entry fused with it: a replaced entry is fused again.
    const fused = async (): Promise<number[]> => {
      const on = await attachments(bed.host.name, bed.in);
      return mode === 'xdp' ? [on.xdp] : on.tcIngress;
    };
    await changeUnderTraffic(t, bed, async (i) => {
      // Mostly micro-cube 1; every fourth time the entry (micro-cube 0). Each in
      // turn replaced, then back to the type's program.
      const index = i % 4 === 3 ? 0 : 1;
      if (replaced[index]) delete replaced[index];
      else replaced[index] = sha256;
      const before = inSlot(index);
      const onNetdev = await fused();
      const report = await rt.apply({ ...line, cubes: line.cubes.map((c) => ({ ...c, replacedMicrocubes: { ...replaced } })) }, { objects });
      t.deepEqual(report.problems, []);
      t.deepEqual(report.microcubes, [`r/${index}`]);
      t.deepEqual(rt.topology().cubes[0].replacedMicrocubes, Object.keys(replaced).length > 0 ? replaced : undefined);
      t.not(inSlot(index), before, `micro-cube ${index} was not replaced`);
      t.is(inSlot(index), cube.program(index).id);
      if (index === 0) t.notDeepEqual(await fused(), onNetdev, 'the netdev still runs the old entry');
      else t.deepEqual(await fused(), onNetdev);
    });
    t.is(rt.portStats('r', 'p0').drops, 0n);
    t.deepEqual(rt.host.errorCounts(), new Array(8).fill(0n));
  });

  test.serial(`${mode}: switching a firewall's rule set under traffic loses no packet of an allowed flow`, async (t) => {
    const bed = await createTestbed(t, { mode, frames: [streamFrame({ src: PROBE.src, dst: PROBE.dst })] });
    const rt = await openRuntime(t, { netns: bed.host.path });
    await rt.apply(
      withStack(lineTopology(mode, [{ name: 'a', type: 'nop' }], bed.in, bed.outs[0]), mode, { target: { netdev: bed.in }, layers: [{ cube: 'fw', direction: 'ingress' }] }, { fw: 'firewall' }),
    );
    const fw = rt.cube('fw');
    // Two sets of 1,000 rules that accept the stream by different rules, one per
    // bank. A change switches to the other bank (one store); every fourth first
    // writes that bank again, while the packets use the other.
    const sets = [adminRules(1_000, 10, 1), adminRules(1_000, 500, 2)];
    const compiled: FirewallTables[] = sets.map((rules, bank) => compileFirewall({ ingress: { defaultAction: 'drop', rules } }, { activeBank: 1 - bank }));
    const write = (c: FirewallTables): void => {
      for (const [name, entries] of Object.entries(c.tables)) fw.table(name).putBatch(entries);
    };
    compiled.forEach(write);
    activate(fw, compiled[0]);
    await changeUnderTraffic(t, bed, async (i) => {
      const next = compiled[(i + 1) % 2];
      if (i % 4 === 3) write(next);
      activate(fw, next);
    });
    t.is(rt.portStats('fw', 'ingress').drops, 0n);
    const hits = (set: number): number => {
      const c = compiled[set];
      const slot = c.rules.ingress[set === 0 ? 990 : 500].slot;
      return firewallCounter(fw, DIRECTIONS[0], slot).packets;
    };
    t.true(hits(0) > 0 && hits(1) > 0, `both rule sets let the stream through: ${hits(0)} and ${hits(1)} packets`);
  });
}

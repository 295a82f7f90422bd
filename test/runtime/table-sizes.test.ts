// Tables sized by the desired cube (tableSizes) instead of by the type's object:
// the kernel's map has that size; an LRU conntrack table sized small keeps at most
// that many flows however many pass; sizes the runtime must refuse change
// nothing; a new size loads the cube anew (its table starts empty); a reopened
// runtime (a daemon restarted after kill -9) adopts the table at its size.
// Fixture: ctprobe c (commits every new flow to ctprobe_flows, 1024 entries
// as built), one port p, alone on a runtime of its own.
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import * as path from 'node:path';
import { BpfMap } from '../../node-daemon/src/bpf';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import { InvalidArgumentError } from '../../node-daemon/src/runtime/errors';
import { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode, Topology } from '../../node-daemon/src/runtime/topology';
import { DEFAULT_TYPE_POLICY } from '../../node-daemon/src/typecheck/policy';
import { createHostNetns, entering, openRuntime, pins, registerTestType, runProgram, testCubeObjects } from '../helpers/dataplane';
import { udpFrame } from '../helpers/flows';

const topology = (mode: Mode, tableSizes?: Record<string, number>, netdev?: string): Topology => ({
  cubes: [{ name: 'c', type: 'ctprobe', mode, ports: ['p'], logLevel: 'info', ...(tableSizes ? { tableSizes } : {}) }],
  links: netdev ? [{ a: { cube: 'c', port: 'p' }, b: { netdev } }] : [],
  stacks: [],
});

/** The size of the cube's pinned table as the kernel reports it, read through a fresh handle on its pin. */
function pinnedSize(c: Cube, table: string): number {
  const m = BpfMap.openPinned(path.join(c.dir, 'maps', table));
  try {
    return m.maxEntries;
  } finally {
    m.close();
  }
}

/** Sends `count` distinct UDP flows (one packet each) through the cube, in order. */
async function flows(rt: Runtime, mode: Mode, count: number, from = 0): Promise<void> {
  const c = rt.cube('c');
  const md = entering(c.ports.get('p')!, c.id, rt.host.currentGen);
  for (let i = from; i < from + count; i++) {
    const frame = udpFrame({ src: `10.1.${i >> 8}.${i & 0xff}`, dst: '10.2.0.1' }, 10000 + (i % 50000), 53);
    const res = await runProgram(c.program(), mode, frame, md);
    if (res.verdict !== 'mark') throw new Error(`flow ${i}: verdict ${res.verdict}`);
  }
}

const flowCount = (rt: Runtime): number => [...rt.cube('c').table('ctprobe_flows').entries()].length;

async function fixture(t: ExecutionContext, mode: Mode, opts: Parameters<typeof openRuntime>[1] = {}) {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path, ...opts });
  await registerTestType(rt, 'ctprobe');
  return rt;
}

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: a conntrack table sized 64 keeps at most 64 of 1,000 flows, the newest among them; as built it keeps most`, async (t) => {
    const rt = await fixture(t, mode);
    // Linked to n0, whose entry is c's own fused with it: loaded apart, against c's tables at their size.
    const sized = await rt.apply(topology(mode, { ctprobe_flows: 64 }, 'n0'));
    t.deepEqual(sized.problems, [], 'n0 runs c fused with its entry');
    t.is(pinnedSize(rt.cube('c'), 'ctprobe_flows'), 64);
    t.is(rt.cube('c').table('ctprobe_flows').map.maxEntries, 64, 'the cube reports its size');
    await flows(rt, mode, 1000);
    const kept = flowCount(rt);
    t.true(kept > 0 && kept <= 64, `the LRU table holds ${kept} flows`);
    // The last flow is the most recently used: LRU eviction keeps it.
    const last = [...rt.cube('c').table('ctprobe_flows').entries()].some((e) => (e.key as { addr_a: string }).addr_a === '::ffff:10.1.3.231');
    t.true(last, 'the newest flow is kept');

    // A replaced entry (built against the type's sizes) runs on the cube's table as sized, flows and all.
    const entry = testCubeObjects('ctprobe')[mode];
    const digest = createHash('sha256').update(entry).digest('hex');
    const replaced = topology(mode, { ctprobe_flows: 64 }, 'n0');
    replaced.cubes[0].replacedMicrocubes = { 0: digest };
    t.deepEqual((await rt.apply(replaced, { objects: async () => entry })).microcubes, ['c/0']);
    t.is(flowCount(rt), kept);
    t.is(pinnedSize(rt.cube('c'), 'ctprobe_flows'), 64);
    await flows(rt, mode, 200, 1000);
    t.true(flowCount(rt) <= 64);

    // The same cube as its type sizes it (1024 entries) keeps far more of the
    // same flows (not quite all: an LRU map starts evicting a little before it is
    // full, as its free entries sit in per-CPU lists).
    const report = await rt.apply(topology(mode, undefined, 'n0'));
    t.deepEqual(report.resized, ['c']);
    t.deepEqual(report.problems, []);
    t.is(pinnedSize(rt.cube('c'), 'ctprobe_flows'), 1024);
    t.is(flowCount(rt), 0, 'a resized table starts empty');
    await flows(rt, mode, 1000);
    t.true(flowCount(rt) > 512, `the table of 1024 holds ${flowCount(rt)} flows`);
  });
}

test('sizes the runtime refuses change nothing, each naming the field and the limit', async (t) => {
  const mode = 'xdp';
  const policy = { ...DEFAULT_TYPE_POLICY, maxMapBytes: 1024 * 1024, maxCubeBytes: 512 * 1024 };
  const rt = await fixture(t, mode, { typePolicy: policy });
  await rt.apply(topology(mode, { ctprobe_flows: 64 }));
  const before = { topology: rt.topology(), pins: pins(rt), id: rt.cube('c').id };
  const refusals: [Record<string, number>, string, RegExp][] = [
    [{ ctprobe_flows: 0 }, 'cubes[0].tableSizes.ctprobe_flows', /cube c, tableSizes.ctprobe_flows: a table's size is a whole number of entries from 1 to 16777216; got 0/],
    [{ ctprobe_flows: 16777217 }, 'cubes[0].tableSizes.ctprobe_flows', /from 1 to 16777216; got 16777217/],
    [{ ctprobe_refuse: 4 }, 'cubes[0].tableSizes.ctprobe_refuse', /table ctprobe_refuse of cube type ctprobe is a map of kind array, which the type's code indexes with bounds fixed when it was built/],
    [{ ctprobe_nope: 4 }, 'cubes[0].tableSizes.ctprobe_nope', /cube type ctprobe has no table ctprobe_nope; the tables its cubes may size: ctprobe_flows/],
    [{ nc_stats: 4 }, 'cubes[0].tableSizes.nc_stats', /has no table nc_stats/],
    [
      { ctprobe_flows: 1_000_000 },
      'cubes[0].tableSizes.ctprobe_flows',
      /cube c, tableSizes.ctprobe_flows: 1000000 entries \(lru_hash, key \d+ B, value \d+ B\) would take \d+ MiB of kernel memory, over this host's limit of 1\.0 MiB per map \(--max-map-memory\): give it at most \d+ entries/,
    ],
    // The map within its limit (8,192 flows of 120 B: 0.94 MiB), the cube's maps
    // together over theirs.
    [
      { ctprobe_flows: 8192 },
      'cubes[0].tableSizes',
      /cube c, tableSizes: with these sizes its maps would take \d+ KiB of kernel memory together, over this host's limit of 512 KiB per cube \(--max-cube-memory\): size its tables smaller/,
    ],
  ];
  for (const [sizes, field, message] of refusals) {
    const err = await t.throwsAsync(rt.apply(topology(mode, sizes)), { instanceOf: InvalidArgumentError, message });
    t.is((err as InvalidArgumentError).field, field);
    t.deepEqual({ topology: rt.topology(), pins: pins(rt), id: rt.cube('c').id }, before, `nothing changed after ${JSON.stringify(sizes)}`);
    t.is(pinnedSize(rt.cube('c'), 'ctprobe_flows'), 64);
  }
});

test('a reopened runtime adopts a sized table at its size, with its flows', async (t) => {
  const mode = 'tc';
  const ns = await createHostNetns(t);
  const root = await mkdtemp('/run/nct-rt-');
  const open = async (): Promise<Runtime> => {
    const rt = await Runtime.open({ root, netns: ns.path });
    await registerTestType(rt, 'ctprobe');
    return rt;
  };
  let rt: Runtime | undefined = await open();
  t.teardown(async () => {
    rt?.close();
    await (await Runtime.open({ root, netns: ns.path })).destroy();
  });
  await rt.apply(topology(mode, { ctprobe_flows: 128 }));
  await flows(rt, mode, 100);
  const id = rt.cube('c').id;
  // However many the LRU kept (it evicts a little before it is full).
  const kept = flowCount(rt);
  t.true(kept > 0);

  // The daemon dies without a word (close() keeps every pin, as kill -9 does).
  rt.close();
  rt = undefined;
  rt = await open();
  t.deepEqual(rt.adoption.adoptedCubes, ['c']);
  t.is(rt.cube('c').id, id);
  t.deepEqual(rt.cube('c').tableSizes, { ctprobe_flows: 128 });
  t.is(pinnedSize(rt.cube('c'), 'ctprobe_flows'), 128);
  t.is(flowCount(rt), kept, 'the flows survived');

  // The same desired sizes keep the adopted cube and its table as they are.
  const again = await rt.apply(topology(mode, { ctprobe_flows: 128 }));
  t.deepEqual([again.created, again.resized], [[], []]);
  t.is(rt.cube('c').id, id);
  t.is(flowCount(rt), kept);
});

// kill -9 of netcubed under live traffic. The data plane does not need the daemon:
// the stream keeps arriving while it is dead. While it is dead the host also
// drifts from what the daemon knew: a chain is deleted in etcd, someone pins
// strays into its bpffs, deletes a cube's pins and takes an XDP link off a netdev.
// The restarted daemon adopts what is pinned (its log says what: cubes adopted,
// what was missing, orphans removed), then reconciles desired (etcd), pinned
// (bpffs) and live (kernel): it removes the orphans, recreates what is missing,
// and leaves the chain that did not change alone — not one frame of the stream
// through it is lost over the kill and the restart.

import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { BpfMap, Program, ifindex } from '../../node-daemon/src/bpf';
import { pinName } from '../../node-daemon/src/runtime/host';
import { attachments, runProgram } from '../helpers/dataplane';
import { startEtcd } from '../helpers/etcd';
import { streamFrame } from '../helpers/traffic';
import { applyAndWait, cubeProgramId, entryProgramId, isPass, lineChain, logMark, openHost, pinnedCubes, pinnedNetdevs, settle, statusOf, waitLog } from './setup';
import { waitFor } from '../helpers/wait';


/** Pins a small map at `file` (making its directories): something nobody accounts for. */
function pinStray(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'nct_stray' });
  try {
    m.pin(file);
  } finally {
    m.close();
  }
}

test('kill -9 under traffic: zero loss, and the restarted daemon adopts, removes orphans and recreates what is missing', async (t) => {
  t.timeout(240_000);
  const etcd = await startEtcd(t);
  const h = await openHost(t, { etcd, sparePairs: 2 });
  const host = h.daemon.name;
  const [x0, x1, x2, x3] = h.spares;

  // steady carries the stream and never changes; doomed is deleted in etcd while the
  // daemon is dead; damaged loses a cube's pins and an XDP link by hand meanwhile.
  await applyAndWait(h.store, lineChain('steady', host, ['a'], 'in0', 'out0'));
  await applyAndWait(h.store, lineChain('doomed', host, ['b'], x0, x1));
  await applyAndWait(h.store, lineChain('damaged', host, ['c', 'd'], x2, x3));
  const before = { cubes: pinnedCubes(h.bpffs), a: cubeProgramId(h.bpffs, 'a'), in0: entryProgramId(h.bpffs, 'in0'), out0: entryProgramId(h.bpffs, 'out0') };
  t.deepEqual(Object.keys(before.cubes).sort(), ['a', 'b', 'c', 'd']);

  const bed = h.bed;
  const stream = bed.generator.stream({ perRun: 8192, delivered: bed.received });
  let sent = 0;
  let whileDead = 0;
  const mark = logMark(h.daemon);
  try {
    await waitFor('the stream to get going', () => bed.received() > 50_000);
    await h.daemon.kill();
    const atKill = bed.received();

    // What changes while nobody watches.
    await h.store.chains.delete('doomed');
    pinStray(path.join(h.bpffs, 'cubes', pinName('4000-stray'), 'maps', 'junk'));
    pinStray(path.join(h.bpffs, 'netdevs', pinName('nowhere0.xdp'), 'peer'));
    fs.rmSync(path.join(h.bpffs, 'cubes', pinName(`${before.cubes.c}-c`)), { recursive: true });
    fs.rmSync(path.join(h.bpffs, 'netdevs', pinName(`${x2}.xdp`), 'link'));
    await waitFor(`the XDP link on ${x2} to go with its last pin`, async () => (await attachments(h.bed.host.name, x2)).xdp === 0, 5_000);

    // The data plane forwards on with nobody there: fails (times out) if it stopped.
    await waitFor('10,000 frames forwarded while the daemon is dead', () => bed.received() - atKill > 10_000, 10_000, 20);
    whileDead = bed.received() - atKill;

    await h.daemon.restart();
    const opened = await waitLog(h.daemon, (l) => l.msg === 'runtime opened', { from: mark });
    const pass = await waitLog(h.daemon, isPass, { from: mark });
    t.log('adoption:', JSON.stringify(opened));
    t.log('first pass:', JSON.stringify(pass));

    // Adopted: a, b and d; c was missing; the strays and c's prog-array slot removed.
    t.deepEqual(opened.adopted, { cubes: 3, netdevs: 5 }, 'adopted cubes a, b, d; entries of in0, out0, x0, x1, x3');
    const missing = opened.missing as string[];
    t.is(missing.length, 2, 'two things were missing');
    t.true(missing.includes('cube c'), 'cube c was missing');
    t.true(missing.some((m) => m.startsWith(`netdev ${x2} (xdp)`)), `the entry of ${x2} was missing`);
    const orphans = opened.orphansRemoved as string[];
    t.true(orphans.includes('cubes/4000-stray'), 'the stray cube dir was an orphan');
    t.true(orphans.includes('netdevs/nowhere0%2exdp'), 'the stray netdev dir was an orphan');
    t.true(orphans.some((o) => o.startsWith('xdp prog-array slot')), "c's slot was emptied");

    // Reconciled: doomed removed, c and x2's entry recreated, nothing else touched.
    t.is(pass.msg, 'reconciled');
    t.deepEqual(pass.created, ['c'], 'only the missing cube was created');
    t.deepEqual(pass.deleted, ['b'], 'the cube of the deleted chain was removed');
    t.deepEqual(pass.attached, [`${x2}.xdp`], 'the lost XDP entry was attached again');
    t.deepEqual((pass.detached as string[]).sort(), [`${x0}.xdp`, `${x1}.xdp`], "the deleted chain's entries were detached");

    const after = bed.received();
    await waitFor('the stream to go on after the restart', () => bed.received() > after + 50_000);
  } finally {
    sent = await stream.stop();
  }
  const received = await settle(bed, sent);
  t.log(`${sent} frames sent, ${received} received, ${whileDead} of them arrived while the daemon was dead (counted once past 10,000)`);
  t.deepEqual(await bed.drops(), {}, 'a veth dropped frames');
  t.is(received, sent, 'frames lost over kill -9 and restart');

  // steady: the same cube and entry programs as before the kill.
  t.is(pinnedCubes(h.bpffs).a, before.cubes.a);
  t.is(cubeProgramId(h.bpffs, 'a'), before.a, 'a was adopted, not reloaded');
  t.is(entryProgramId(h.bpffs, 'in0'), before.in0, "in0's entry was adopted, not reattached");
  t.is(entryProgramId(h.bpffs, 'out0'), before.out0);

  // Pinned and live match desired.
  t.deepEqual(Object.keys(pinnedCubes(h.bpffs)).sort(), ['a', 'c', 'd'], 'pinned cubes');
  t.deepEqual(pinnedNetdevs(h.bpffs), ['in0.xdp', 'out0.xdp', `${x2}.xdp`, `${x3}.xdp`], 'pinned netdev entries');
  t.is((await attachments(h.bed.host.name, x0)).xdp, 0, `the deleted chain's entry is off ${x0}`);
  t.is((await attachments(h.bed.host.name, x2)).xdp, entryProgramId(h.bpffs, x2), `${x2} runs netcube's entry again`);
  t.deepEqual(
    (await h.client.getTopology()).cubes.map((c) => c.name),
    ['a', 'c', 'd'],
  );
  // And the repaired chain forwards: a frame into x2's entry goes through c and d out of x3.
  const entry = Program.openPinned(path.join(h.bpffs, 'netdevs', pinName(`${x2}.xdp`), 'prog'));
  try {
    const res = await runProgram(entry, 'xdp', streamFrame(), undefined, { ifindex: await ifindex(x2, h.bed.host.name), netns: h.bed.host.name });
    t.is(res.verdict, 'redirect', 'x2 -> c -> d -> x3');
  } finally {
    entry.close();
  }
  const c = await h.client.getCube({ name: 'c' });
  t.is(Number(c.ports.find((p) => p.name === 'p0')!.stats!.rxPackets), 1, 'the test frame went through the recreated c');

  // Status: doomed's gone, the others applied.
  await waitFor('the status of the deleted chain to go', async () => Object.keys(await statusOf(h.store, 'doomed')).length === 0);
  t.deepEqual(Object.values(await statusOf(h.store, 'damaged')).map((s) => s.state), ['applied', 'applied']);
  // Registered again: after its data plane, the daemon publishes its types, then registers.
  await waitFor('the restarted daemon to register in etcd', async () => (await h.client.getHost()).storeConnected);
});

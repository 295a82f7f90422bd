// etcd change -> kernel state: a chain written in etcd for a host running a real
// netcubed becomes pins in the daemon's bpffs, entry programs on the netdevs, the
// runtime's topology and traffic through it, with a status per cube in etcd; each
// later version (a cube added, a peer rewired, a log level changed) and finally the
// chain's deletion show the same way.

import test, { type ExecutionContext } from 'ava';
import { ifindex } from '../../node-daemon/src/bpf';
import { slotOf } from '../../node-daemon/src/runtime/abi';
import { startEtcd } from '../helpers/etcd';
import { attachments } from '../helpers/dataplane';
import { Host, applyAndWait, chain, cubeProgramId, entryProgramId, lineChain, openHost, pinnedCubes, pinnedLogLevel, pinnedNetdevs, pinnedPeer, sendThrough, statusOf } from './setup';
import { waitFor } from '../helpers/wait';

const FRAMES = 5_000;

/** Every cube of the chain reported applied by this host at `r`. */
async function reported(t: ExecutionContext, h: Host, name: string, cubes: string[], r: { version: number; revision: number }): Promise<void> {
  const status = await statusOf(h.store, name);
  t.deepEqual(Object.keys(status).sort(), [...cubes].sort(), 'status entries in etcd');
  for (const [cube, s] of Object.entries(status)) t.deepEqual(s, { host: h.daemon.name, state: 'applied', version: r.version, revision: r.revision }, `status of ${cube}`);
}

/** The topology the daemon serves: cube names, and links as `a <-> b`. */
async function served(h: Host): Promise<{ cubes: string[]; links: string[] }> {
  const topo = await h.client.getTopology();
  const end = (e: { netdev?: string; port?: { cube: string; port: string } | null } | null): string => (e?.netdev ? `netdev:${e.netdev}` : `${e?.port?.cube}:${e?.port?.port}`);
  return {
    cubes: topo.cubes.map((c) => c.name).sort(),
    links: topo.links.map((l) => [end(l.a), end(l.b)].sort().join(' <-> ')).sort(),
  };
}

const rx = async (h: Host, cube: string, port: string): Promise<number> =>
  Number((await h.client.getCube({ name: cube })).ports.find((p) => p.name === port)!.stats!.rxPackets);

test('a chain in etcd becomes kernel state, follows each change and goes with its deletion', async (t) => {
  t.timeout(240_000);
  const etcd = await startEtcd(t);
  const h = await openHost(t, { etcd, outs: 2, sparePairs: 1 });
  const host = h.daemon.name;
  const [x0, x1] = h.spares;

  // v1: in0 -> a -> out0 (XDP, with traffic), and x0 -> tc1 -> x1 (TC).
  const v1 = chain(
    'demo',
    host,
    [{ name: 'a' }, { name: 'tc1', mode: 'tc' }],
    [
      ['netdev:in0', 'a:p0'],
      ['a:p1', 'netdev:out0'],
      [`netdev:${x0}`, 'tc1:p0'],
      ['tc1:p1', `netdev:${x1}`],
    ],
  );
  let r = await applyAndWait(h.store, v1);
  await reported(t, h, 'demo', ['a', 'tc1'], r);
  const ids = pinnedCubes(h.bpffs);
  t.deepEqual(Object.keys(ids).sort(), ['a', 'tc1'], 'pinned cubes');
  // Both ends of a link to a netdev are entries: packets may come in either way.
  t.deepEqual(pinnedNetdevs(h.bpffs), ['in0.xdp', 'out0.xdp', `${x0}.tc`, `${x1}.tc`], 'pinned netdev entries');
  t.is((await attachments(h.bed.host.name, 'in0')).xdp, entryProgramId(h.bpffs, 'in0', 'xdp'), "in0 runs netcube's XDP entry");
  t.deepEqual((await attachments(h.bed.host.name, x0)).tcIngress, [entryProgramId(h.bpffs, x0, 'tc')], `${x0} runs netcube's TC entry`);
  t.deepEqual(await served(h), {
    cubes: ['a', 'tc1'],
    links: ['a:p0 <-> netdev:in0', 'a:p1 <-> netdev:out0', `netdev:${x0} <-> tc1:p0`, `netdev:${x1} <-> tc1:p1`],
  });
  t.deepEqual(await sendThrough(h.bed, FRAMES), [FRAMES, 0], 'v1: every frame through a to out0');
  t.is(await rx(h, 'a', 'p0'), FRAMES);
  const aProgram = cubeProgramId(h.bpffs, 'a');

  // v2: a cube added: in0 -> a -> b -> out0.
  r = await applyAndWait(h.store, lineChain('demo', host, ['a', 'b'], 'in0', 'out0'));
  await reported(t, h, 'demo', ['a', 'b'], r);
  t.deepEqual(Object.keys(pinnedCubes(h.bpffs)).sort(), ['a', 'b'], 'b pinned, tc1 gone');
  t.is(pinnedCubes(h.bpffs).a, ids.a, 'a kept its id');
  t.is(cubeProgramId(h.bpffs, 'a'), aProgram, 'a was not reloaded');
  t.deepEqual(pinnedNetdevs(h.bpffs), ['in0.xdp', 'out0.xdp'], `the entries of ${x0} and ${x1} removed`);
  t.deepEqual((await attachments(h.bed.host.name, x0)).tcIngress, [], `nothing left on ${x0}`);
  t.deepEqual(pinnedPeer(h.bpffs, 'a', 1), { kind: 'cube', slot: slotOf(pinnedCubes(h.bpffs).b), port: 0 }, 'a:p1 leads to b:p0');
  t.deepEqual((await served(h)).links, ['a:p0 <-> netdev:in0', 'a:p1 <-> b:p0', 'b:p1 <-> netdev:out0']);
  t.deepEqual(await sendThrough(h.bed, FRAMES), [FRAMES, 0], 'v2: every frame through a and b to out0');
  t.is(await rx(h, 'b', 'p0'), FRAMES, 'b carried the stream');

  // v3: rewired: b's way out is out1.
  r = await applyAndWait(h.store, lineChain('demo', host, ['a', 'b'], 'in0', 'out1'));
  await reported(t, h, 'demo', ['a', 'b'], r);
  t.deepEqual(pinnedPeer(h.bpffs, 'b', 1), { kind: 'netdev', ifindex: await ifindex('out1', h.bed.host.name) }, 'b:p1 leads to out1');
  t.deepEqual(pinnedNetdevs(h.bpffs), ['in0.xdp', 'out1.xdp'], "out0's entry removed, out1's added");
  t.is((await attachments(h.bed.host.name, 'out0')).xdp, 0, 'nothing left on out0');
  t.deepEqual((await served(h)).links, ['a:p0 <-> netdev:in0', 'a:p1 <-> b:p0', 'b:p1 <-> netdev:out1']);
  t.deepEqual(await sendThrough(h.bed, FRAMES), [0, FRAMES], 'v3: every frame to out1');

  // v4: a's log level.
  t.is(pinnedLogLevel(h.bpffs, 'a'), 'info');
  r = await applyAndWait(h.store, lineChain('demo', host, [{ name: 'a', logLevel: 'debug' }, 'b'], 'in0', 'out1'));
  await reported(t, h, 'demo', ['a', 'b'], r);
  t.is(pinnedLogLevel(h.bpffs, 'a'), 'debug', "a's nc_cfg says debug");
  t.is((await h.client.getCube({ name: 'a' })).logLevel, 'LOG_LEVEL_DEBUG');
  t.is(cubeProgramId(h.bpffs, 'a'), aProgram, 'a log level is a map write, not a reload');
  t.deepEqual(await sendThrough(h.bed, FRAMES), [0, FRAMES], 'v4: traffic unchanged');

  // Deleted: nothing left of it, in the kernel, in the runtime, in the status.
  await h.store.chains.delete('demo');
  await waitFor('the status of the deleted chain to go', async () => Object.keys(await statusOf(h.store, 'demo')).length === 0);
  await waitFor('the pins to go', () => Object.keys(pinnedCubes(h.bpffs)).length === 0 && pinnedNetdevs(h.bpffs).length === 0);
  t.is((await attachments(h.bed.host.name, 'in0')).xdp, 0, 'nothing left on in0');
  t.deepEqual(await served(h), { cubes: [], links: [] });
  t.is((await h.client.getHost()).storeConnected, true);
});

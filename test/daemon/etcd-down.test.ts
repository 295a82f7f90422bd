// A daemon started while etcd is down runs the host from what is pinned: its data
// plane forwards, it serves reads (the topology, tables), says etcd is unreachable
// (Host.storeConnected, the netcube_store_connected metric) and keeps trying with
// a growing delay. A change made in etcd meanwhile is applied once it gets through.
//
// The daemon reaches etcd through a TCP proxy: first etcd itself is killed, then
// it comes back behind a cut proxy, so that the test can write to it while the
// daemon still cannot.

import test from 'ava';
import { startEtcd } from '../helpers/etcd';
import { startProxy } from '../helpers/tcp-proxy';
import { applyAndWait, chain, logMark, logLines, openHost, pinnedCubes, pinnedLogLevel, sendThrough, statusOf, waitLog, isPass } from './setup';
import type { Host } from './setup';
import { waitFor } from '../helpers/wait';

const METRICS = '127.0.0.1:9464';

/** netcube_store_connected, scraped inside the host's namespace. */
async function storeConnectedMetric(h: Host): Promise<number> {
  const { stdout } = await h.bed.host.exec('curl', ['-sf', `http://${METRICS}/metrics`]);
  const line = stdout.split('\n').find((l) => l.startsWith('netcube_store_connected '));
  if (!line) throw new Error(`no netcube_store_connected in the metrics:\n${stdout}`);
  return Number(line.split(' ')[1]);
}

/** in0 -> a -> [b ->] out0, with a ddosmitigator guard stacked on in0's ingress. */
function edge(host: string, withB: boolean, aLevel: 'info' | 'debug' = 'info') {
  const cubes = [{ name: 'a', logLevel: aLevel }, ...(withB ? [{ name: 'b' }] : []), { name: 'guard', type: 'ddosmitigator' }];
  const links: [string, string][] = withB
    ? [['netdev:in0', 'a:p0'], ['a:p1', 'b:p0'], ['b:p1', 'netdev:out0']]
    : [['netdev:in0', 'a:p0'], ['a:p1', 'netdev:out0']];
  return chain('edge', host, cubes, links, [{ cube: 'guard', to: 'netdev:in0', direction: 'ingress' }]);
}

const BLOCKED = { key: Buffer.from([192, 0, 2, 7]), value: Buffer.alloc(8) };

test('started while etcd is down: runs from pinned state, serves reads, retries with backoff, reconciles when etcd is back', async (t) => {
  t.timeout(240_000);
  const etcd = await startEtcd(t);
  const proxy = await startProxy(t, etcd.endpoints[0]);
  const h = await openHost(t, { etcd, daemonEtcd: [proxy.endpoint], args: ['--metrics', METRICS] });
  const host = h.daemon.name;

  await applyAndWait(h.store, edge(host, false));
  await h.client.putEntry({ table: { cube: 'guard', table: 'blacklist_v4' }, entry: { keyRaw: BLOCKED.key, valueRaw: BLOCKED.value } });
  const topology = await h.client.getTopology();
  t.is(await storeConnectedMetric(h), 1);

  // Down: the daemon dies, then etcd; the daemon starts again without it.
  await h.daemon.kill();
  await etcd.kill(0);
  const mark = logMark(h.daemon);
  await h.daemon.restart();

  // Reads, from pinned state.
  const shape = (topo: typeof topology) => ({
    cubes: topo.cubes.map((c) => [c.name, c.type, c.id, c.ports.map((p) => p.name)]),
    links: topo.links,
    stacks: topo.stacks,
  });
  t.deepEqual(shape(await h.client.getTopology()), shape(topology), 'the topology as it was');
  t.deepEqual((await h.client.listTables({ cube: 'guard' })).tables.map((x) => x.name).sort(), ['blacklist_dst_v4', 'blacklist_dst_v6', 'blacklist_v4', 'blacklist_v6']);
  const entry = await h.client.getEntry({ table: { cube: 'guard', table: 'blacklist_v4' }, entry: { keyRaw: BLOCKED.key } });
  t.deepEqual(entry.keyRaw, BLOCKED.key, 'the table entry written before is there');
  t.false((await h.client.getHost()).storeConnected, 'the host says etcd is unreachable');
  t.is(await storeConnectedMetric(h), 0, 'and so does the metric');
  t.deepEqual(await sendThrough(h.bed, 5_000), [5_000], 'the data plane forwards');

  // Retries, each after a longer wait than the one before.
  await waitFor('two failed attempts to reach etcd', () => logLines(h.daemon, mark).filter((l) => l.msg.startsWith('etcd unreachable')).length >= 2, 60_000, 200);
  const attempts = logLines(h.daemon, mark).filter((l) => l.msg.startsWith('etcd unreachable'));
  t.deepEqual(attempts.slice(0, 2).map((l) => l.attempt), [1, 2]);
  t.true((attempts[1].retryInMs as number) > (attempts[0].retryInMs as number), `backoff: ${attempts.map((l) => l.retryInMs).join(', ')} ms`);
  t.false(logLines(h.daemon, mark).some(isPass), 'no reconcile without etcd');

  // etcd comes back, but not for the daemon yet; a change is made meanwhile.
  proxy.cut();
  await etcd.restart(0);
  const change = await h.store.chains.apply(edge(host, true, 'debug'));
  t.false((await h.client.getHost()).storeConnected);
  t.deepEqual(Object.keys(pinnedCubes(h.bpffs)).sort(), ['a', 'guard'], 'nothing applied before the daemon gets through');

  // Through: the daemon connects, applies the change and reports it.
  proxy.restore();
  await h.store.status.waitApplied('edge', change.version, { timeoutMs: 60_000 });
  // The host registers itself (its lease) alongside: connected shortly, if not already.
  await waitFor('the host to say it is connected', async () => (await h.client.getHost()).storeConnected, 10_000);
  t.is(await storeConnectedMetric(h), 1);
  const pass = await waitLog(h.daemon, isPass, { from: mark });
  t.deepEqual(pass.created, ['b'], 'the cube added meanwhile was created');
  t.deepEqual(pass.reconfigured, ['a'], "a's log level changed");
  t.deepEqual(Object.keys(pinnedCubes(h.bpffs)).sort(), ['a', 'b', 'guard']);
  t.is(pinnedLogLevel(h.bpffs, 'a'), 'debug');
  t.deepEqual(
    Object.values(await statusOf(h.store, 'edge')).map((s) => [s.state, s.version]),
    [['applied', change.version], ['applied', change.version], ['applied', change.version]],
  );
  t.deepEqual(await sendThrough(h.bed, 5_000), [5_000], 'the data plane forwards through the new chain');
  t.is(Number((await h.client.getCube({ name: 'b' })).ports[0].stats!.rxPackets), 5_000);
});

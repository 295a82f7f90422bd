// With a 3-member etcd cluster, losing one member changes nothing anyone can see:
// the daemon stays connected and registered, chain changes still go through, get
// applied and are reported. Each member is killed in turn (and brought back), the
// leader first.

import test from 'ava';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdCluster } from '../helpers/etcd';
import { applyAndWait, isPass, lineChain, logLines, logMark, openHost, pinnedCubes, pinnedLogLevel, sendThrough, statusOf } from './setup';

/** The index of the member that leads the cluster now. */
async function leaderOf(etcd: EtcdCluster): Promise<number> {
  const ids: string[] = [];
  let leader = '';
  for (const endpoint of etcd.endpoints) {
    const client = new Etcd3({ hosts: endpoint });
    try {
      const status = await client.maintenance.status();
      ids.push(status.header.member_id);
      leader = status.leader;
    } finally {
      client.close();
    }
  }
  const index = ids.indexOf(leader);
  if (index < 0) throw new Error(`no member is the leader (${leader}) of ${ids.join(', ')}`);
  return index;
}

test('with 3 etcd members, killing any one changes nothing visible', async (t) => {
  t.timeout(240_000);
  const etcd = await startEtcd(t, { members: 3 });
  // The lease of a real host (10 s, netcubed's default), not the tests' 3 s: the
  // client's streams may take a few seconds to land on a live member (seen under
  // load), and a 3 s lease would be marked lost meanwhile (etcd itself keeps it).
  const h = await openHost(t, { etcd, args: ['--lease-ttl', '10'] });
  const host = h.daemon.name;
  await applyAndWait(h.store, lineChain('steady', host, ['a'], 'in0', 'out0'));

  // Watch what the daemon says about etcd, ten times a second, from now on.
  const mark = logMark(h.daemon);
  const samples: boolean[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push((await h.client.getHost()).storeConnected);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  try {
    // Each member in turn, the leader first: whichever the daemon's watch and lease
    // keepalive happen to use, one of these kills takes it away.
    const leader = await leaderOf(etcd);
    const order = [leader, ...[0, 1, 2].filter((i) => i !== leader)];
    let level: 'debug' | 'info' = 'info';
    for (const member of order) {
      await etcd.kill(member);
      t.log(`killed member m${member}${member === leader ? ', the leader' : ''}`);
      // A change right after: through, applied, reported.
      level = level === 'info' ? 'debug' : 'info';
      const r = await applyAndWait(h.store, lineChain('steady', host, [{ name: 'a', logLevel: level }], 'in0', 'out0'));
      t.is(pinnedLogLevel(h.bpffs, 'a'), level);
      t.deepEqual(Object.values(await statusOf(h.store, 'steady')).map((s) => [s.state, s.version]), [['applied', r.version]]);
      // Past two lease renewals (every 3.3 s) before the member comes back.
      await new Promise((resolve) => setTimeout(resolve, 7_000));
      await etcd.restart(member);
    }
    // And a bigger change with every member back.
    const last = await applyAndWait(h.store, lineChain('steady', host, [{ name: 'a', logLevel: level }, 'b'], 'in0', 'out0'));
    t.deepEqual(Object.keys(pinnedCubes(h.bpffs)).sort(), ['a', 'b']);
    t.deepEqual(await sendThrough(h.bed, 5_000), [5_000]);
    t.deepEqual(
      Object.values(await statusOf(h.store, 'steady')).map((s) => [s.state, s.version]),
      [['applied', last.version], ['applied', last.version]],
    );
  } finally {
    sampling = false;
    await sampler;
  }

  t.true(samples.length > 50, `${samples.length} samples`);
  t.deepEqual([...new Set(samples)], [true], 'the daemon said etcd was unreachable at some point');
  const hosts = await h.store.hosts.listHosts();
  t.true(hosts.some((x) => x.name === host), 'the host is still registered');
  const lines = logLines(h.daemon, mark);
  for (const l of lines.filter((x) => x.level === 'warn')) t.log(`daemon: ${l.msg} ${String(l.error ?? '')}`);
  t.deepEqual(lines.filter((l) => l.msg === 'host registration lost'), [], 'the lease was never lost');
  t.deepEqual(lines.filter((l) => l.level === 'error'), [], 'no errors');
  t.deepEqual(lines.filter(isPass).map((l) => l.failed), [[], [], [], []], 'four passes, nothing failed');
});

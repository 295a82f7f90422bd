import test from 'ava';
import { Etcd3 } from 'etcd3';
import { Chain } from '@netcube/api/chain';
import { HostLease, RetryEvent, Store, StoredChain } from '@netcube/api/store';
import { demo } from '../chain/fixtures';
import { EtcdCluster, startEtcd } from '../helpers/etcd';
import { connect, elf, record, registerTypes } from './setup';
import { waitFor } from '../helpers/wait';

/** The index of the member that leads the cluster now. */
async function leader(etcd: EtcdCluster): Promise<number> {
  for (let i = 0; i < etcd.members.length; i++) {
    if (!etcd.members[i].process) continue;
    const client = new Etcd3({ hosts: etcd.members[i].endpoint });
    try {
      const status = await client.maintenance.status({});
      if (status.leader === status.header.member_id) return i;
    } finally {
      client.close();
    }
  }
  throw new Error('no member leads');
}

function edition(n: number): Chain {
  const chain = demo();
  chain.spec.cubes[0].params = { edition: n };
  return chain;
}

/** Every operation of the store, once, checked. */
async function exercise(t: import('ava').ExecutionContext, store: Store, round: number, lease: HostLease) {
  const applied = await store.chains.apply(edition(round));
  t.false(applied.unchanged);
  t.deepEqual((await store.chains.get('demo')).chain, edition(round));
  t.deepEqual((await store.chains.list()).map(c => c.name), ['demo']);
  t.is((await store.chains.history('demo')).at(-1)!.version, applied.version);
  t.like(await store.chains.getVersion('demo', applied.version), { action: 'apply' });

  for (const c of demo().spec.cubes) {
    await store.status.putStatus(c.host, c.name, { chain: 'demo', version: applied.version, revision: applied.revision, state: 'applied' });
  }
  t.like(await store.status.waitApplied('demo', applied.version, { timeoutMs: 20_000 }), { cubes: 4 });
  t.is((await store.status.listStatus('demo')).length, 4);

  const deleted = await store.chains.delete('demo');
  const back = await store.chains.rollback('demo', applied.version);
  t.is(back.version, deleted.version + 1);

  const type = `extra${round}`;
  await store.types.putType({ name: type, transparent: false, microcubes: 1, modes: ['xdp'], objects: { xdp: elf(type) } });
  t.is((await store.types.getType(type)).name, type);
  t.true((await store.types.listTypes()).some(x => x.name === type));
  await store.types.deleteType(type);

  t.deepEqual((await store.hosts.listHosts()).map(h => h.name), ['host1']);
  t.is(lease.state, 'alive');
}

test('with one member of three down, every operation still works', async t => {
  const etcd = await startEtcd(t, { members: 3 });
  const retries: RetryEvent[] = [];
  const store = await connect(t, etcd.endpoints, { onRetry: e => retries.push(e) });
  await registerTypes(store);
  const lease = await store.hosts.register({ name: 'host1', endpoints: ['127.0.0.1:7400'], startedAt: new Date().toISOString(), kernel: '6.1', features: [] }, 5);
  const watch = store.chains.watch();
  const events = record(watch, (c: StoredChain) => `v${c.version}`);
  await watch.whenSynced();

  // First the leader (an election follows), then, with it back, a follower.
  const first = await leader(etcd);
  await etcd.kill(first);
  await exercise(t, store, 1, lease);
  await etcd.restart(first);

  const follower = ((await leader(etcd)) + 1) % 3;
  await etcd.kill(follower);
  await exercise(t, store, 2, lease);
  await etcd.restart(follower);

  await waitFor('every chain event', () => events.length === 6);
  t.deepEqual(events, ['put demo v1', 'delete demo', 'put demo v3', 'put demo v4', 'delete demo', 'put demo v6']);
  t.is(lease.state, 'alive');
  t.log(`${retries.length} calls retried`);
});

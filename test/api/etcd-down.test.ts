// While etcd is down, netcubed serves reads from its runtime, and refuses writes with
// UNAVAILABLE, changing nothing; once etcd is back, writes work again.

import test from 'ava';
import { Store } from '@netcube/api/store';
import { startDaemon } from '../helpers/daemon';
import { startEtcd } from '../helpers/etcd';
import { createNetns } from '../helpers/netns';
import { defaultChainName } from '../../node-daemon/src/api/chain-edit';
import { failsWith, probeObjects } from './setup';
import { waitFor } from '../helpers/wait';

test('reads work and writes fail UNAVAILABLE while etcd is down', async (t) => {
  t.timeout(120_000);
  const etcd = await startEtcd(t);
  const d = await startDaemon(t, { netns: await createNetns(t), etcd: etcd.endpoints });
  await d.waitConnected();
  const client = d.client();
  t.teardown(() => client.close());
  await client.createCube({ name: 'fwd1', type: 'simpleforwarder', ports: ['in', 'out'] });
  const topology = await client.getTopology();

  await etcd.kill(0);
  // Reads, from the runtime.
  t.deepEqual((await client.getCube({ name: 'fwd1' })).ports.map((p) => p.name), ['in', 'out']);
  t.deepEqual((await client.listCubes()).cubes.map((c) => c.name), ['fwd1']);
  t.deepEqual(await client.getTopology(), topology);
  t.true((await client.listTypes()).types.length > 0);
  t.truthy(await client.listTables({ cube: 'fwd1' }));
  await waitFor('the host to say etcd is away', async () => !(await client.getHost()).storeConnected, 10_000, 100);

  // Writes: UNAVAILABLE, and nothing changes.
  await failsWith(t, client.createCube({ name: 'fwd2', type: 'simpleforwarder', ports: ['a'] }), 'UNAVAILABLE', { says: ['etcd'] });
  await failsWith(t, client.updateCube({ name: 'fwd1', logLevel: 'LOG_LEVEL_DEBUG' }), 'UNAVAILABLE');
  await failsWith(t, client.deleteCube({ name: 'fwd1' }), 'UNAVAILABLE');
  await failsWith(t, client.registerType({ name: 'probe', ...probeObjects() }), 'UNAVAILABLE');
  t.deepEqual(await client.getTopology(), topology);
  await failsWith(t, client.getType({ name: 'probe' }), 'NOT_FOUND');

  await etcd.restart(0);
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  const chain = await store.chains.get(defaultChainName(d.name));
  t.deepEqual(chain.chain.spec.cubes.map((c) => [c.name, c.logLevel]), [['fwd1', 'info']], 'etcd holds what it held');
  t.is(chain.version, 1);
  await d.waitConnected();
  const fwd2 = await client.createCube({ name: 'fwd2', type: 'simpleforwarder', ports: ['a'] });
  t.is(fwd2.name, 'fwd2');
});

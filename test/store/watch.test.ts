import test from 'ava';
import { Chain } from '@netcube/api/chain';
import { StoredChain } from '@netcube/api/store';
import { line } from '../chain/fixtures';
import { startEtcd } from '../helpers/etcd';
import { startProxy } from '../helpers/tcp-proxy';
import { connect, currentRevision, rawClient, record, registerTypes } from './setup';
import { waitFor } from '../helpers/wait';

const version = (c: StoredChain) => `v${c.version}`;

/** Chain `name` in edition `n`: every edition is a new version. */
function edition(name: string, n: number, host = 'host1'): Chain {
  const chain = line(name, 1, 'simpleforwarder', host, `veth-${name}`);
  chain.spec.cubes[0].params = { edition: n };
  return chain;
}

test('a watch lists what exists, then follows puts and deletes', async t => {
  const etcd = await startEtcd(t);
  const store = await connect(t, etcd.endpoints);
  await registerTypes(store);
  await store.chains.apply(edition('a', 1));

  const watch = store.chains.watch();
  const events = record(watch, version);
  await watch.whenSynced();
  t.deepEqual(events, ['put a v1']);
  await waitFor('the watch stream', () => watch.state === 'watching');

  await store.chains.apply(edition('a', 2));
  await store.chains.apply(edition('b', 1));
  await store.chains.delete('a');
  await waitFor('the delete', () => events.length === 4);
  t.deepEqual(events, ['put a v1', 'put a v2', 'put b v1', 'delete a']);
  watch.close();
  t.is(watch.state, 'closed');
});

test('a watch survives an etcd restart without losing or repeating events', async t => {
  const etcd = await startEtcd(t);
  const store = await connect(t, etcd.endpoints);
  await registerTypes(store);
  const watch = store.chains.watch();
  const events = record(watch, version);
  let disconnects = 0;
  watch.on('disconnected', () => disconnects++);
  await watch.whenSynced();

  for (let n = 1; n <= 3; n++) await store.chains.apply(edition('a', n));
  await waitFor('v3 before the crash', () => events.includes('put a v3'));
  await etcd.kill(0);
  await etcd.restart(0);
  for (let n = 4; n <= 6; n++) await store.chains.apply(edition('a', n));
  await store.chains.delete('a');

  await waitFor('the delete after the restart', () => events.includes('delete a'));
  t.deepEqual(events, ['put a v1', 'put a v2', 'put a v3', 'put a v4', 'put a v5', 'put a v6', 'delete a']);
  t.true(disconnects >= 1, 'the restart was noticed');
});

test('after a network cut a watch delivers what happened meanwhile, once', async t => {
  const etcd = await startEtcd(t);
  const proxy = await startProxy(t, etcd.endpoints[0]);
  const writer = await connect(t, etcd.endpoints);
  await registerTypes(writer);
  const watcher = await connect(t, [proxy.endpoint], { callTimeoutMs: 1000 });
  const watch = watcher.chains.watch();
  const events = record(watch, version);
  await watch.whenSynced();

  await writer.chains.apply(edition('a', 1));
  await writer.chains.apply(edition('b', 1));
  await waitFor('the first puts', () => events.length === 2);

  proxy.cut();
  for (let n = 2; n <= 5; n++) await writer.chains.apply(edition('a', n));
  await writer.chains.delete('b');
  await writer.chains.apply(edition('c', 1));
  proxy.restore();

  await waitFor('the changes made during the cut', () => events.includes('put c v1'));
  await writer.chains.apply(edition('a', 6));
  await waitFor('a change after the cut', () => events.includes('put a v6'));
  t.deepEqual(events, ['put a v1', 'put b v1', 'put a v2', 'put a v3', 'put a v4', 'put a v5', 'delete b', 'put c v1', 'put a v6']);
});

test('when etcd compacted the history it missed, a watch lists again and emits only the difference', async t => {
  const etcd = await startEtcd(t);
  const proxy = await startProxy(t, etcd.endpoints[0]);
  const raw = rawClient(t, etcd.endpoints);
  const writer = await connect(t, etcd.endpoints);
  await registerTypes(writer);
  for (const name of ['a', 'b', 'c']) await writer.chains.apply(edition(name, 1));

  const watcher = await connect(t, [proxy.endpoint], { callTimeoutMs: 1000 });
  const watch = watcher.chains.watch();
  const events = record(watch, version);
  const deletes: (number | undefined)[] = [];
  watch.on('delete', e => deletes.push(e.previous?.version));
  let syncs = 0;
  watch.on('synced', () => syncs++);
  await watch.whenSynced();
  t.deepEqual(events, ['put a v1', 'put b v1', 'put c v1']);

  proxy.cut();
  await writer.chains.apply(edition('a', 2));
  await writer.chains.apply(edition('a', 3));
  await writer.chains.delete('b');
  await writer.chains.apply(edition('d', 1));
  await raw.kv.compact({ revision: await currentRevision(raw), physical: true });
  proxy.restore();

  await waitFor('the re-list', () => syncs === 2);
  // v2 of a is gone with the history; c did not change and is not repeated.
  t.deepEqual(events.slice(3), ['put a v3', 'put d v1', 'delete b']);
  t.deepEqual(deletes, [1], 'the delete carries the last value the watch saw');

  await writer.chains.apply(edition('c', 2));
  await waitFor('a change after the re-list', () => events.includes('put c v2'));
  t.is(events.length, 7);
});

test('a value that is not a chain is skipped and reported', async t => {
  const etcd = await startEtcd(t);
  const raw = rawClient(t, etcd.endpoints);
  const store = await connect(t, etcd.endpoints);
  await registerTypes(store);
  await store.chains.apply(edition('a', 1));
  const watch = store.chains.watch();
  const events = record(watch, version);
  const invalid: string[] = [];
  watch.on('invalid', e => invalid.push(`${e.name}: ${e.error.message}`));
  await watch.whenSynced();

  await raw.put('/netcube/v1/chains/junk').value('{not json');
  await waitFor('the junk reported', () => invalid.length === 1);
  t.deepEqual(invalid, ['junk: value at /netcube/v1/chains/junk is not JSON: it was not written by netcube; delete or repair it with etcdctl']);
  // The rest of the cluster goes on: applies validate against the chains that can be read.
  await store.chains.apply(edition('a', 2));
  await waitFor('the watch going on', () => events.length === 2);

  await raw.delete().key('/netcube/v1/chains/junk');
  await waitFor('the junk gone', () => events.length === 3);
  t.deepEqual(events, ['put a v1', 'put a v2', 'delete junk']);
});

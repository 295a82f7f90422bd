import anyTest, { TestFn } from 'ava';
import { Etcd3 } from 'etcd3';
import { Chain, formatChain, parseChain } from '@netcube/api/chain';
import {
  chainHistoryKey,
  chainKey,
  ConflictError,
  NotFoundError,
  Store,
  ValidationError,
} from '@netcube/api/store';
import { hostCheck } from '../../node-daemon/src/chain';
import { cube, demo, line } from '../chain/fixtures';
import { EtcdCluster } from '../helpers/etcd';
import { currentRevision, registerTypes } from './setup';

// One etcd for the file; tests run one at a time and start from an empty keyspace.
const test = anyTest as TestFn<{ etcd: EtcdCluster; store: Store; raw: Etcd3 }>;

test.before(async t => {
  const etcd = await EtcdCluster.start();
  t.context = { etcd, store: await Store.connect({ endpoints: etcd.endpoints, hostCheck }), raw: new Etcd3({ hosts: etcd.endpoints }) };
});

test.beforeEach(async t => {
  await t.context.raw.delete().prefix('/netcube/');
  await registerTypes(t.context.store);
});

test.after.always(async t => {
  await t.context.store?.close();
  t.context.raw?.close();
  await t.context.etcd?.stop();
});

function variant(logLevel: Chain['spec']['cubes'][number]['logLevel'], name = 'demo'): Chain {
  const chain = demo();
  chain.metadata.name = name;
  chain.spec.cubes[0].logLevel = logLevel;
  return chain;
}

test.serial('apply, get, list and history', async t => {
  const { store, raw } = t.context;
  const first = await store.chains.apply(demo());
  t.like(first, { version: 1, unchanged: false });

  const stored = await store.chains.get('demo');
  t.like(stored, { name: 'demo', version: 1, revision: first.revision });
  t.deepEqual(stored.chain, demo());
  t.true(!Number.isNaN(Date.parse(stored.appliedAt)));

  const second = await store.chains.apply(variant('debug'));
  t.like(second, { version: 2, unchanged: false });
  t.true(second.revision > first.revision);
  await store.chains.apply(line('solo', 2, 'simpleforwarder', 'host3'));

  t.deepEqual((await store.chains.list()).map(c => [c.name, c.version]), [['demo', 2], ['solo', 1]]);
  const history = await store.chains.history('demo');
  t.deepEqual(history.map(h => [h.version, h.action, h.revision]), [[1, 'apply', first.revision], [2, 'apply', second.revision]]);
  const v1 = await store.chains.getVersion('demo', 1);
  t.true(v1.action === 'apply' && v1.chain.spec.cubes[0].logLevel === 'info');

  // The key layout others rely on.
  t.is(chainHistoryKey('demo', 2), '/netcube/v1/chain-history/demo/0000000002');
  const current = JSON.parse((await raw.get(chainKey('demo')).string())!);
  t.like(current, { version: 2, chain: { metadata: { name: 'demo' } } });
  t.truthy(await raw.get(chainHistoryKey('demo', 1)).string());
});

test.serial('applying an identical chain writes nothing', async t => {
  const { store, raw } = t.context;
  const first = await store.chains.apply(demo());
  const before = await currentRevision(raw);
  const reordered = demo();
  reordered.spec.cubes.reverse();
  reordered.spec.links[1] = { from: 'netdev:veth0', to: 'fwd1:in' };
  t.deepEqual(await store.chains.apply(reordered), { version: 1, revision: first.revision, unchanged: true });
  t.is(await currentRevision(raw), before);
  t.is((await store.chains.history('demo')).length, 1);
});

test.serial('nothing is written when validation fails, and every problem is reported', async t => {
  const { store, raw } = t.context;
  await store.chains.apply(demo());
  const before = await currentRevision(raw);

  const thief = line('thief', 2);
  thief.spec.cubes[0].name = 'fwd1'; // taken by chain demo
  thief.spec.links = [{ from: 'netdev:veth7', to: 'fwd1:in' }, { from: 'fwd1:out', to: 'thief2:in' }];
  thief.spec.cubes[1].type = 'nosuchtype';
  const invalid = await t.throwsAsync(store.chains.apply(thief), { instanceOf: ValidationError });
  t.is(invalid.code, 'INVALID_ARGUMENT');
  t.false(invalid.recoverable);
  t.deepEqual(invalid.issues.map(i => i.path), ['spec.cubes[0].name', 'spec.cubes[1].type']);
  t.true(invalid.issues[0].message.includes('already used by chain demo'));

  const malformed = { ...demo(), metadata: { name: 'Bad Name' } };
  const shape = await t.throwsAsync(store.chains.apply(malformed), { instanceOf: ValidationError });
  t.is(shape.issues[0].path, 'metadata.name');

  t.is(await currentRevision(raw), before, 'etcd revision unchanged');
  await t.throwsAsync(store.chains.get('thief'), { instanceOf: NotFoundError });
});

test.serial('delete keeps the history with a tombstone; rollback brings a version back', async t => {
  const { store } = t.context;
  await store.chains.apply(demo());
  await store.chains.apply(variant('debug'));
  t.like(await store.chains.delete('demo'), { version: 3 });

  const gone = await t.throwsAsync(store.chains.get('demo'), { instanceOf: NotFoundError });
  t.true(gone.message.includes('deleted (version 3)'), gone.message);
  t.deepEqual((await store.chains.list()).map(c => c.name), []);
  t.deepEqual((await store.chains.history('demo')).map(h => h.action), ['apply', 'apply', 'delete']);
  await t.throwsAsync(store.chains.delete('demo'), { instanceOf: NotFoundError });

  const restored = await store.chains.rollback('demo', 1);
  t.like(restored, { version: 4, unchanged: false });
  t.deepEqual((await store.chains.get('demo')).chain, demo());
  const entry = await store.chains.getVersion('demo', 4);
  t.true(entry.action === 'apply' && entry.rollbackOf === 1);

  t.like(await store.chains.rollback('demo', 2), { version: 5 });
  t.is((await store.chains.get('demo')).chain.spec.cubes[0].logLevel, 'debug');
  t.like(await store.chains.rollback('demo', 2), { version: 5, unchanged: true });

  const tombstone = await t.throwsAsync(store.chains.rollback('demo', 3), { instanceOf: ValidationError });
  t.true(tombstone.message.includes('records its deletion'));
  const missing = await t.throwsAsync(store.chains.getVersion('demo', 9), { instanceOf: NotFoundError });
  t.is(missing.message, 'chain demo has no version 9; its versions are 1 to 5');
  await t.throwsAsync(store.chains.history('never'), { instanceOf: NotFoundError, message: /never applied/ });
});

test.serial('a change based on an old version is refused with ConflictError', async t => {
  const { store, etcd } = t.context;
  await store.chains.apply(demo());
  const read = await store.chains.get('demo');
  const someoneElse = await Store.connect({ endpoints: etcd.endpoints, hostCheck });
  t.teardown(() => someoneElse.close());
  await someoneElse.chains.apply(variant('trace'));

  const conflict = await t.throwsAsync(store.chains.apply(variant('debug'), { expectedVersion: read.version }), {
    instanceOf: ConflictError,
  });
  t.is(conflict.code, 'ABORTED');
  t.true(conflict.message.includes('is at version 2'), conflict.message);
  t.true(conflict.message.includes('expected that it was at version 1'), conflict.message);

  // expectedVersion 0: create only.
  await someoneElse.chains.apply(line('fresh', 1, 'simpleforwarder', 'host3'), { expectedVersion: 0 });
  const exists = await t.throwsAsync(store.chains.apply(line('fresh', 2), { expectedVersion: 0 }), { instanceOf: ConflictError });
  t.true(exists.message.includes('expected that it did not exist'), exists.message);
  t.is((await store.chains.get('demo')).chain.spec.cubes[0].logLevel, 'trace');
});

test.serial('concurrent applies of one chain: exactly one wins each version', async t => {
  const { store, etcd } = t.context;
  await store.chains.apply(demo());
  const stores = await Promise.all(Array.from({ length: 4 }, () => Store.connect({ endpoints: etcd.endpoints, hostCheck })));
  t.teardown(() => Promise.all(stores.map(s => s.close())));
  const levels = ['debug', 'warn', 'error', 'trace'] as const;

  const results = await Promise.allSettled(stores.map((s, i) => s.chains.apply(variant(levels[i]), { expectedVersion: 1 })));
  const won = results.filter(r => r.status === 'fulfilled');
  t.is(won.length, 1);
  for (const r of results) if (r.status === 'rejected') t.true(r.reason instanceof ConflictError, String(r.reason));

  // Without an expected version every apply lands or conflicts; versions have no gaps.
  const free = await Promise.allSettled(stores.map((s, i) => s.chains.apply(variant(levels[(i + 1) % 4]))));
  for (const r of free) if (r.status === 'rejected') t.true(r.reason instanceof ConflictError, String(r.reason));
  const versions = (await store.chains.history('demo')).map(h => h.version);
  t.deepEqual(versions, Array.from({ length: versions.length }, (_, i) => i + 1));
});

test.serial('two chains racing for one cube name: one wins, the other is refused', async t => {
  const { etcd } = t.context;
  const [a, b] = await Promise.all([Store.connect({ endpoints: etcd.endpoints, hostCheck }), Store.connect({ endpoints: etcd.endpoints, hostCheck })]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  for (let round = 0; round < 5; round++) {
    const claim = (chain: string, host: string) => {
      const c = line(chain, 1);
      c.spec.cubes = [cube(`shared${round}`, host, ['in'])];
      c.spec.links = [{ from: `netdev:veth${round}`, to: `shared${round}:in` }];
      return c;
    };
    const results = await Promise.allSettled([a.chains.apply(claim(`left${round}`, 'host1')), b.chains.apply(claim(`right${round}`, 'host2'))]);
    t.is(results.filter(r => r.status === 'fulfilled').length, 1, `round ${round}`);
    const refused = results.find(r => r.status === 'rejected') as PromiseRejectedResult;
    t.true(refused.reason instanceof ValidationError && refused.reason.message.includes('already used by chain'), String(refused.reason));
  }
});

test.serial('apply validates against the registered types unless given its own', async t => {
  const { store } = t.context;
  const chain = line('custom', 1, 'newtype');
  const unknown = await t.throwsAsync(store.chains.apply(chain), { instanceOf: ValidationError });
  t.true(unknown.message.includes('unknown cube type newtype'));
  const types = { get: (name: string) => (name === 'newtype' ? { name, transparent: false, microcubes: 1, modes: ['xdp' as const] } : undefined), names: () => ['newtype'] };
  t.like(await store.chains.apply(chain, { types }), { version: 1 });
});

test.serial('bad names are refused before reaching etcd', async t => {
  const { store } = t.context;
  await t.throwsAsync(store.chains.get('a/b'), { instanceOf: ValidationError, message: /chain name 'a\/b' is invalid/ });
  await t.throwsAsync(store.chains.delete(''), { instanceOf: ValidationError });
});

test.serial('problems in a chain parsed from a file point at its lines', async t => {
  const { store } = t.context;
  const text = formatChain(demo(), 'yaml').replace('to: fwd2:in', 'to: fwd9:in');
  const error = await t.throwsAsync(store.chains.apply(parseChain(text, 'demo.yaml')), { instanceOf: ValidationError });
  t.like(error.issues[0], { path: 'spec.links[0].to', line: 43 });
  t.true(error.message.includes('demo.yaml:43:7 spec.links[0].to: unknown cube fwd9'), error.message);
});

import anyTest, { TestFn } from 'ava';
import { Etcd3 } from 'etcd3';
import {
  ApplyFailedError,
  CubeStatus,
  Store,
  ValidationError,
  WaitProgress,
  WaitTimeoutError,
} from '@netcube/api/store';
import { demo } from '../chain/fixtures';
import { EtcdCluster } from '../helpers/etcd';
import { registerTypes } from './setup';
import { waitFor } from '../helpers/wait';

const test = anyTest as TestFn<{ etcd: EtcdCluster; store: Store; raw: Etcd3 }>;

test.before(async t => {
  const etcd = await EtcdCluster.start();
  t.context = { etcd, store: await Store.connect({ endpoints: etcd.endpoints }), raw: new Etcd3({ hosts: etcd.endpoints }) };
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

const applied = (version: number, revision: number): Omit<CubeStatus, 'updatedAt'> => ({ chain: 'demo', version, revision, state: 'applied' });

test.serial('status is put and listed, per chain', async t => {
  const { store } = t.context;
  await store.status.putStatus('host1', 'fwd1', applied(1, 10));
  await store.status.putStatus('host2', 'other1', { chain: 'other', version: 2, revision: 12, state: 'pending' });
  const all = await store.status.listStatus();
  t.deepEqual(all.map(s => `${s.host}/${s.cube} ${s.chain} ${s.state}`), ['host1/fwd1 demo applied', 'host2/other1 other pending']);
  t.true(!Number.isNaN(Date.parse(all[0].updatedAt)));
  t.deepEqual((await store.status.listStatus('other')).map(s => s.cube), ['other1']);

  const bad = await t.throwsAsync(store.status.putStatus('host1', 'fwd1', { chain: 'demo', version: 0, revision: 5, state: 'error' }), {
    instanceOf: ValidationError,
  });
  t.true(bad.message.includes('version must be an integer >= 1'), bad.message);
  t.true(bad.message.includes('state is error but error is empty'), bad.message);
});

test.serial('waitApplied follows the reports and resolves when every cube is applied', async t => {
  const { store } = t.context;
  const old = await store.chains.apply(demo());
  const changed = demo();
  changed.spec.cubes[0].logLevel = 'debug';
  const { version, revision } = await store.chains.apply(changed);

  const progress: WaitProgress[] = [];
  const waiting = store.status.waitApplied('demo', version, { timeoutMs: 20_000, onProgress: p => progress.push(p) });
  await waitFor('the first progress', () => progress.length === 1);
  t.deepEqual(progress[0], { done: 0, total: 4, pending: ['host1/fwd1', 'host1/fwd2', 'host2/fwd3', 'host1/ddos1'], failures: [] });

  await store.status.putStatus('host1', 'fwd1', applied(version, revision));
  await store.status.putStatus('host1', 'fwd2', applied(1, old.revision)); // the old version: still pending
  await store.status.putStatus('host1', 'ddos1', applied(version, revision));
  await waitFor('two done', () => progress.at(-1)?.done === 2);
  t.deepEqual(progress.at(-1)!.pending, ['host1/fwd2', 'host2/fwd3']);

  await store.status.putStatus('host1', 'fwd2', applied(version, revision));
  // A later revision also counts: that host has moved past the awaited version.
  await store.status.putStatus('host2', 'fwd3', applied(version + 1, revision + 5));
  t.deepEqual(await waiting, { version, revision, cubes: 4 });
  t.deepEqual(progress.map(p => p.done), [0, 1, 2, 3, 4]);
});

test.serial('waitApplied rejects with the errors hosts report', async t => {
  const { store } = t.context;
  const { version, revision } = await store.chains.apply(demo());
  const waiting = store.status.waitApplied('demo', version, { timeoutMs: 20_000 });
  for (const [host, cube] of [['host1', 'fwd1'], ['host1', 'ddos1'], ['host2', 'fwd3']]) {
    await store.status.putStatus(host, cube, applied(version, revision));
  }
  await store.status.putStatus('host1', 'fwd2', { chain: 'demo', version, revision, state: 'error', error: 'load fwd2: verifier rejected program' });
  const error = await t.throwsAsync(waiting, { instanceOf: ApplyFailedError });
  t.deepEqual(error.failures, [{ host: 'host1', cube: 'fwd2', error: 'load fwd2: verifier rejected program' }]);
  t.is(error.message, 'chain demo version 1 failed on 1 of 4 cubes: host1/fwd2: load fwd2: verifier rejected program');
});

test.serial('waitApplied times out naming the hosts still pending', async t => {
  const { store } = t.context;
  const lease = await store.hosts.register({ name: 'host1', endpoints: ['127.0.0.1:7400'], startedAt: new Date().toISOString(), kernel: '6.1', features: [] }, 10);
  t.teardown(() => lease.close());
  const { version, revision } = await store.chains.apply(demo());
  await store.status.putStatus('host1', 'fwd1', applied(version, revision));
  await store.status.putStatus('host1', 'ddos1', applied(version, revision));

  const started = Date.now();
  const error = await t.throwsAsync(store.status.waitApplied('demo', version, { timeoutMs: 1500 }), { instanceOf: WaitTimeoutError });
  t.true(Date.now() - started < 5000);
  t.deepEqual(error.pending, ['host1/fwd2', 'host2/fwd3']);
  t.is(error.code, 'DEADLINE_EXCEEDED');
  t.is(
    error.message,
    'chain demo version 1 is not applied after 1.5 s: 2 of 4 cubes done; still pending on host1 (fwd2), host2 (fwd3, not registered: is netcubed running there?)',
  );
});

test.serial('waitApplied needs a version that exists and applied a spec', async t => {
  const { store } = t.context;
  await store.chains.apply(demo());
  await store.chains.delete('demo');
  await t.throwsAsync(store.status.waitApplied('demo', 7, { timeoutMs: 1000 }), { message: 'chain demo has no version 7; its versions are 1 to 2' });
  await t.throwsAsync(store.status.waitApplied('demo', 2, { timeoutMs: 1000 }), { instanceOf: ValidationError, message: /records its deletion/ });
});

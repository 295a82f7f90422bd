import test from 'ava';
import { RetryEvent, Store, StoreClosedError, StoreUnavailableError } from '@netcube/api/store';
import { Backoff } from '@netcube/api/store/retry';
import { demo } from '../chain/fixtures';
import { freePorts, startEtcd } from '../helpers/etcd';
import { waitFor } from '../helpers/wait';
import { connect, registerTypes } from './setup';

test('backoff doubles up to its ceiling, with jitter in the upper half of each step', t => {
  const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000 });
  const ceilings = [100, 200, 400, 800, 1000, 1000];
  for (const ceiling of ceilings) {
    const delay = backoff.next();
    t.true(delay >= ceiling / 2 && delay <= ceiling, `${delay} in [${ceiling / 2}, ${ceiling}]`);
  }
  backoff.reset();
  t.true(backoff.next() <= 100);
});

test('connecting to no etcd fails after retrying, naming the endpoint', async t => {
  const [port] = await freePorts(1);
  const retries: RetryEvent[] = [];
  // An attempt ends by its deadline (250 ms) at the latest, and the next starts 50 ms
  // after at most: within 1.5 s there is a retry however slowly this machine runs.
  const error = await t.throwsAsync(
    Store.connect({ endpoints: [`127.0.0.1:${port}`], callTimeoutMs: 250, retry: { initialDelayMs: 50, maxDelayMs: 50, timeoutMs: 1500 }, onRetry: e => retries.push(e) }),
    { instanceOf: StoreUnavailableError },
  );
  t.true(error.recoverable);
  t.is(error.code, 'UNAVAILABLE');
  t.true(error.message.startsWith(`connect to etcd: etcd is unavailable at 127.0.0.1:${port}`), error.message);
  t.regex(error.message, /gave up after \d+ attempts in \d+\.\d s/);
  t.true(retries.length >= 1);
  t.like(retries[0], { operation: 'connect to etcd', attempt: 1 });
  await t.throwsAsync(Store.connect({ endpoints: [] }), { instanceOf: TypeError });
});

test('a call made while etcd is down waits for it to come back', async t => {
  const etcd = await startEtcd(t);
  const retries: RetryEvent[] = [];
  const store = await connect(t, etcd.endpoints, { onRetry: e => retries.push(e) });
  await registerTypes(store);
  await etcd.kill(0);

  const applying = store.chains.apply(demo());
  await waitFor('the call retrying', () => retries.length >= 1);
  await etcd.restart(0);
  t.like(await applying, { version: 1 });
  t.true(retries.length >= 1, 'the caller was told about the retries');
  t.true(retries.every(r => r.error.recoverable));
  t.is(retries[0].operation, 'read chain demo');
});

test('closing the store ends pending calls with StoreClosedError', async t => {
  const etcd = await startEtcd(t);
  const retries: RetryEvent[] = [];
  const store = await Store.connect({ endpoints: etcd.endpoints, onRetry: e => retries.push(e) });
  await etcd.kill(0);
  const reading = store.chains.list();
  await waitFor('the call pending, retrying', () => retries.length >= 1);
  await store.close();
  await t.throwsAsync(reading, { instanceOf: StoreClosedError });
  await t.throwsAsync(store.chains.list(), { instanceOf: StoreClosedError });
});

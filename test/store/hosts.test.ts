import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { hostKey, HostRegistration, RegisteredHost, StoreError, ValidationError } from '@netcube/api/store';
import { startEtcd } from '../helpers/etcd';
import { startProxy } from '../helpers/tcp-proxy';
import { connect, rawClient, record } from './setup';
import { waitFor } from '../helpers/wait';

function registration(name: string): HostRegistration {
  return { name, endpoints: ['127.0.0.1:7400'], startedAt: new Date().toISOString(), kernel: '6.1.0', features: ['xdp', 'tc'] };
}

const endpoints = (h: RegisteredHost) => h.endpoints.join(',');

test('register, list, watch; close removes the registration at once', async t => {
  const etcd = await startEtcd(t);
  const store = await connect(t, etcd.endpoints);
  const watch = store.hosts.watchHosts();
  const events = record(watch, endpoints);
  await watch.whenSynced();

  const lease = await store.hosts.register(registration('host1'), 30);
  t.is(lease.state, 'alive');
  t.truthy(lease.leaseId);
  const [host] = await store.hosts.listHosts();
  t.like(host, { name: 'host1', endpoints: ['127.0.0.1:7400'], kernel: '6.1.0', features: ['xdp', 'tc'] });
  await waitFor('the put', () => events.length === 1);

  await lease.close();
  t.is(lease.state, 'closed');
  // Well before the 30 s TTL: the lease was revoked.
  await waitFor('the delete', () => events.length === 2, 5000);
  t.deepEqual(events, ['put host1 127.0.0.1:7400', 'delete host1']);
  t.deepEqual(await store.hosts.listHosts(), []);
});

test('a lease lost behind a network cut expires, and the host registers again once etcd hears it', async t => {
  const etcd = await startEtcd(t);
  const proxy = await startProxy(t, etcd.endpoints[0]);
  const raw = rawClient(t, etcd.endpoints);
  const daemon = await connect(t, [proxy.endpoint], { callTimeoutMs: 1000 });
  const lease = await daemon.hosts.register(registration('host1'), 2);
  const firstLease = lease.leaseId;
  const present = async () => (await raw.get(hostKey('host1')).string()) !== null;

  const lost = once(lease, 'lost') as Promise<[StoreError]>;
  proxy.cut();
  const [reason] = await lost;
  t.is(lease.state, 'lost');
  t.true(reason.recoverable, reason.message);
  await waitFor('etcd expiring the lease', async () => !(await present()), 10_000);

  const recovered = once(lease, 'recovered') as Promise<[{ leaseId: string; newLease: boolean }]>;
  proxy.restore();
  const [back] = await recovered;
  t.is(lease.state, 'alive');
  t.true(back.newLease);
  t.not(back.leaseId, firstLease);
  t.true(await present());
  const stored = await raw.get(hostKey('host1')).json();
  t.like(stored, { name: 'host1' });

  // And it stays: the new lease is kept alive.
  await sleep(3000);
  t.true(await present());
  t.is(lease.state, 'alive');
});

test('a registration outlives an etcd restart', async t => {
  const etcd = await startEtcd(t);
  const store = await connect(t, etcd.endpoints);
  const lease = await store.hosts.register(registration('host1'), 4);
  await etcd.kill(0);
  await sleep(500);
  await etcd.restart(0);
  // Longer than the TTL: only kept alive leases are still there.
  await sleep(5000);
  t.deepEqual((await store.hosts.listHosts()).map(h => h.name), ['host1']);
  t.is(lease.state, 'alive');
});

test('invalid registrations are refused', async t => {
  const etcd = await startEtcd(t);
  const store = await connect(t, etcd.endpoints);
  const bad = { ...registration('Host_1'), endpoints: [], startedAt: 'yesterday' };
  const error = await t.throwsAsync(store.hosts.register(bad, 10), { instanceOf: ValidationError });
  t.true(error.message.includes("host name 'Host_1' is invalid"), error.message);
  t.true(error.message.includes('endpoints must list at least one address'), error.message);
  t.true(error.message.includes('startedAt must be an ISO 8601 date'), error.message);
  await t.throwsAsync(store.hosts.register(registration('host1'), 1), { instanceOf: RangeError, message: /ttlSeconds must be an integer >= 2/ });
  t.deepEqual(await store.hosts.listHosts(), []);
});

test('a kept lease says it may be lost (lostAfterMs) while etcd still holds it: a leader steps down before another can lead', async t => {
  const etcd = await startEtcd(t);
  const proxy = await startProxy(t, etcd.endpoints[0]);
  const raw = rawClient(t, etcd.endpoints);
  const store = await connect(t, [proxy.endpoint], { callTimeoutMs: 1000 });
  const key = '/netcube/v1/test/leased';
  const lease = await store.keepLease({ what: 'the test key', ttlSeconds: 8, lostAfterMs: 2000, attach: (id, client) => client.put(key).value('held').lease(id).exec() });
  t.teardown(() => lease.close());
  t.is(await raw.get(key).string(), 'held');

  const lost = once(lease, 'lost') as Promise<[StoreError]>;
  proxy.cut();
  const [reason] = await lost;
  t.is(lease.state, 'lost');
  t.regex(reason.message, /the lease of the test key may have expired|keepalive of the test key/);
  // etcd has not let it go: 8 s TTL against the 2 s after which the keeper said so.
  t.is(await raw.get(key).string(), 'held');

  // Heard again before the TTL: the same lease, attached again.
  const recovered = once(lease, 'recovered') as Promise<[{ leaseId: string; newLease: boolean }]>;
  proxy.restore();
  const [back] = await recovered;
  t.false(back.newLease);
  t.is(lease.state, 'alive');

  await lease.close();
  await waitFor('the revoked lease taking its key', async () => (await raw.get(key).string()) === null, 5000);
});

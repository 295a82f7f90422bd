// etcd locked down (issue 11): TLS with client certificates, access control on with
// netcube's users and roles (@netcube/api's store/access.ts), each identity's etcd
// user the CN of its certificate (deploy/certs.sh). A host writes its own
// registration (under its lease) and status and nothing else of consequence; a
// service its own keys and type; the admin the chains; a viewer reads.

import anyTest, { ExecutionContext, TestFn } from 'ava';
import { Chain } from '@netcube/api/chain';
import { PermissionDeniedError, servicePrefix, Store, StoreError } from '@netcube/api/store';
import { hostCheck } from '../../node-daemon/src/chain';
import { builtinTypeNames } from '../../node-daemon/src/cli/commands/access';
import { cube } from '../chain/fixtures';
import { Pki } from '../helpers/certs';
import { EtcdCluster } from '../helpers/etcd';
import { waitFor } from '../helpers/wait';
import { elf } from './setup';

interface Env {
  etcd: EtcdCluster;
  pki: Pki;
  stores: Store[];
  /** A store as the identity of certificate `kind`/`name` (certs.sh). */
  as(kind: 'admin' | 'viewer' | 'host' | 'service' | 'plain', name?: string): Promise<Store>;
}

const test = anyTest as TestFn<Env>;

test.before(async (t) => {
  const pki = Pki.make();
  const etcd = await EtcdCluster.start({ pki });
  await etcd.access(async (a) => {
    await a.host('h1', builtinTypeNames());
    await a.host('h2', builtinTypeNames());
    await a.service('macfilter');
    await a.service('k8s', { ownsChains: true, configures: ['lbrp', 'firewall'] });
  });
  const stores: Store[] = [];
  const as = async (kind: 'admin' | 'viewer' | 'host' | 'service' | 'plain', name?: string): Promise<Store> => {
    const files = pki.issue(kind, name);
    const store = await Store.connect({ endpoints: etcd.endpoints, tls: { ca: pki.ca, ...files }, hostCheck, retry: { timeoutMs: 2_000 } });
    stores.push(store);
    return store;
  };
  t.context = { etcd, pki, stores, as };
});

test.after.always(async (t) => {
  for (const s of t.context?.stores ?? []) await s.close();
  await t.context?.etcd?.stop();
  t.context?.pki?.remove();
});

function chain(name: string, host: string): Chain {
  return { apiVersion: 'netcube/v1', kind: 'Chain', metadata: { name }, spec: { cubes: [cube(`${name}-fwd`, host, ['in', 'out'], 'nop')], links: [], attachments: [] } };
}

const status = { chain: 'c1', version: 1, revision: 1, state: 'applied' as const };

async function refused(t: ExecutionContext, what: string, call: Promise<unknown>, user: string): Promise<void> {
  const err = await t.throwsAsync(call, { instanceOf: PermissionDeniedError }, what);
  t.regex(err?.message ?? '', new RegExp(`etcd user ${user} may not`), what);
}

test.serial('without a client certificate of the CA, or as nobody etcd knows, nothing', async (t) => {
  const { etcd, pki } = t.context;
  const anonymous = await t.throwsAsync(Store.connect({ endpoints: etcd.endpoints, tls: { ca: pki.ca }, retry: { timeoutMs: 1_000 } }), { instanceOf: StoreError });
  t.truthy(anonymous);
  // etcd answers a CN it has no user of as it answers a user without the right.
  await refused(t, 'nobody', t.context.as('plain', 'nobody'), 'nobody');
  // In the clear, against a TLS-only etcd: no.
  await t.throwsAsync(Store.connect({ endpoints: etcd.endpoints.map((e) => e.replace('https://', '')), retry: { timeoutMs: 1_000 } }), { instanceOf: StoreError });
});

test.serial("a host: its own registration (under its lease) and status, the built-in types' records; never another host's status, nor any chain", async (t) => {
  const admin = await t.context.as('admin');
  const h1 = await t.context.as('host', 'h1');

  // What netcubed does: publish the built-in types, register under a lease, follow the chains, report.
  const nop = builtinTypeNames().includes('nop') ? 'nop' : builtinTypeNames()[0];
  await h1.types.putType({ name: nop, transparent: false, microcubes: 1, modes: ['xdp', 'tc'], objects: { xdp: elf('x'), tc: elf('t') } });
  const lease = await h1.hosts.register({ name: 'h1', endpoints: ['unix:/run/netcube/h1/netcubed.sock'], startedAt: new Date().toISOString(), kernel: 'test', features: [] }, 3);
  t.teardown(() => lease.close());
  const chains = h1.chains.watch();
  t.teardown(() => chains.close());
  const seen: string[] = [];
  chains.on('put', (e) => seen.push(e.name));
  await chains.whenSynced();
  await admin.chains.apply(chain('c1', 'h1'));
  await waitFor('the host to see the chain the admin applied', () => seen.includes('c1'));
  await h1.status.putStatuses('h1', new Map([['c1-fwd', status]]));
  t.deepEqual((await admin.status.listStatus()).map((s) => `${s.host}/${s.cube}`), ['h1/c1-fwd']);
  t.true((await admin.hosts.listHosts()).some((h) => h.name === 'h1'));

  // Another host's status and registration, any chain, any other type, objects: refused.
  await refused(t, "h2's status", h1.status.putStatuses('h2', new Map([['c1-fwd', status]])), 'host-h1');
  await refused(t, "h2's status, deleted", h1.status.deleteStatus('h2', 'x'), 'host-h1');
  await refused(t, 'register as h2', h1.hosts.register({ name: 'h2', endpoints: ['unix:/run/netcube/h2/netcubed.sock'], startedAt: new Date().toISOString(), kernel: 'test', features: [] }, 3), 'host-h1');
  await refused(t, 'apply a chain', h1.chains.apply(chain('c2', 'h2')), 'host-h1');
  await refused(t, 'change a chain', h1.chains.apply({ ...chain('c1', 'h1'), spec: { ...chain('c1', 'h1').spec, cubes: [cube('c1-fwd', 'h2', ['in', 'out'], 'nop')] } }), 'host-h1');
  await refused(t, 'delete a chain', h1.chains.delete('c1'), 'host-h1');
  await refused(t, 'register a type', h1.types.putType({ name: 'evil', transparent: false, microcubes: 1, modes: ['tc'], objects: { tc: elf('evil') } }), 'host-h1');
  await refused(t, 'store an object', h1.objects.put(elf('o')), 'host-h1');
  const leader = await t.throwsAsync(h1.etcdClient.put(`${servicePrefix('macfilter')}leader`).value('h1'));
  t.regex(leader?.message ?? '', /permission denied/, "a service's keys");
  t.deepEqual((await admin.chains.list()).map((c) => `${c.name} v${c.version}`), ['c1 v1']);
});

test.serial('a service: its own keys and type; no chain', async (t) => {
  const svc = await t.context.as('service', 'macfilter');
  await svc.etcdClient.put(`${servicePrefix('macfilter')}config/x`).value('{}');
  await svc.types.putType({ name: 'macfilter', transparent: false, microcubes: 1, modes: ['tc'], objects: { tc: elf('mf') } });
  await refused(t, 'another type', svc.types.putType({ name: 'router2', transparent: false, microcubes: 1, modes: ['tc'], objects: { tc: elf('r') } }), 'service-macfilter');
  await refused(t, 'a chain', svc.chains.apply(chain('c3', 'h1')), 'service-macfilter');
  await refused(t, 'a status', svc.status.putStatuses('h1', new Map([['c1-fwd', status]])), 'service-macfilter');
  const other = await t.throwsAsync(svc.etcdClient.put(`${servicePrefix('router')}leader`).value('x'));
  t.regex(other?.message ?? '', /permission denied/);
  t.true((await svc.chains.list()).length >= 1, 'it reads the chains');
});

const podPort = (netdev: string) => ({
  netdev,
  namespace: 'default',
  pod: 'web-1',
  containerId: 'c0ffee',
  ifname: 'eth0',
  addresses: ['10.244.1.5/24'],
  mac: '0a:58:0a:f4:01:05',
  createdAt: new Date().toISOString(),
});

test.serial("a host records and forgets its own pods' ports (CNI), never another host's", async (t) => {
  const h1 = await t.context.as('host', 'h1');
  await h1.podPorts.put('h1', podPort('nc0123456789'));
  t.deepEqual((await h1.podPorts.list('h1')).map((p) => `${p.host}/${p.netdev}`), ['h1/nc0123456789']);
  await refused(t, "h2's pod port", h1.podPorts.put('h2', podPort('nc0123456789')), 'host-h1');
  await refused(t, "h2's pod port, deleted", h1.podPorts.delete('h2', 'nc0123456789'), 'host-h1');
  t.true(await h1.podPorts.delete('h1', 'nc0123456789'));
  t.false(await h1.podPorts.delete('h1', 'nc0123456789'), 'a second delete finds nothing, and is no error');
  // A service that owns chains still cannot speak for a host's pods.
  const k8s = await t.context.as('service', 'k8s');
  await refused(t, "a host's pod port", k8s.podPorts.put('h1', podPort('nc0123456789')), 'service-k8s');
});

test.serial('a service that owns chains (the Kubernetes controller) writes the chains named after it, and their cubes\' config for the services it configures; no other', async (t) => {
  const k8s = await t.context.as('service', 'k8s');
  await k8s.chains.apply(chain('k8s-h1', 'h1'));
  await k8s.chains.apply({ ...chain('k8s-h1', 'h1'), spec: { ...chain('k8s-h1', 'h1').spec, cubes: [cube('k8s-h1-fwd', 'h1', ['in', 'out', 'more'], 'nop')] } });
  t.is((await k8s.chains.get('k8s-h1')).version, 2);
  t.is((await k8s.chains.history('k8s-h1')).length, 2);
  // The config of its chains' cubes, for the services it configures; not of other cubes, nor for other services.
  const stored = await k8s.chains.get('k8s-h1');
  const set = await k8s.serviceConfigs.put('lbrp', 'k8s-h1-fwd', stored, { services: [] }, 0, 'service-k8s');
  await k8s.serviceConfigs.forgetStale('lbrp', set);
  const admin = await t.context.as('admin');
  const c1 = await admin.chains.get('c1');
  await refused(t, "the config of the admin's cube", k8s.serviceConfigs.put('lbrp', c1.chain.spec.cubes[0].name, c1, {}, 0, 'service-k8s'), 'service-k8s');
  await refused(t, 'the config of a service it does not configure', k8s.serviceConfigs.put('nat', 'k8s-h1-fwd', stored, {}, 0, 'service-k8s'), 'service-k8s');
  await k8s.chains.delete('k8s-h1');
  await refused(t, 'a chain not named after it', k8s.chains.apply(chain('c5', 'h1')), 'service-k8s');
  await refused(t, "the admin's chain", k8s.chains.delete('c1'), 'service-k8s');
  const other = await t.throwsAsync(k8s.etcdClient.put(`${servicePrefix('macfilter')}leader`).value('x'));
  t.regex(other?.message ?? '', /permission denied/, "another service's keys");
  // Without the grant, a service writes no chain of its own name either.
  const macfilter = await t.context.as('service', 'macfilter');
  await refused(t, 'a chain named after it, not owning chains', macfilter.chains.apply(chain('macfilter-x', 'h1')), 'service-macfilter');
});

test.serial('a viewer reads; the admin writes chains, and rolls them back', async (t) => {
  const viewer = await t.context.as('viewer');
  t.deepEqual((await viewer.chains.list()).map((c) => c.name), ['c1']);
  await refused(t, 'a chain', viewer.chains.apply(chain('c4', 'h1')), 'viewer');
  const admin = await t.context.as('admin');
  await admin.chains.apply(chain('c4', 'h2'));
  await admin.chains.delete('c4', { expectedVersion: 1 });
  await admin.chains.rollback('c4', 1);
  t.is((await admin.chains.get('c4')).version, 3);
});

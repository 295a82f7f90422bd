// The remote-service SDK against real etcd and real daemons: config validation that
// names the field, leader election among replicas (and failover when the leader is
// killed), static tables reconciled and repaired, SetConfig kept under the
// service's keys until the chain gives other params, a failed sync retried at its
// strength, with the bridge and router services as the subjects.

import test, { type ExecutionContext } from 'ava';
import { ApiCallError, NetcubeClient } from '@netcube/api/grpc/client';
import type { JsonObject } from '@netcube/api/chain';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import bridge from '@netcube/bridge';
import router from '@netcube/router';
import { ConfigError, ConfigSchema, ServiceClient, startService, type CubeInfo, type RunningService, type ServiceDefinition } from '@netcube/sdk';
import { NetcubedProcess, startDaemon } from '../helpers/daemon';
import { createHostNetns } from '../helpers/dataplane';
import { EtcdCluster, startEtcd } from '../helpers/etcd';
import { applyChain, startServiceProcess } from './helpers';
import { waitFor } from '../helpers/wait';

// ------------------------------------------------------------------- config

function configError(t: ExecutionContext, fn: () => unknown, field: string, says?: string): void {
  const err = t.throws(fn, { instanceOf: ConfigError });
  t.is(err?.field, field, err?.message);
  if (says) t.true(err!.message.includes(says), err!.message);
}

const info = (ports: string[]): CubeInfo => ({ name: 'c1', host: 'h1', chain: 'ch', mode: 'tc', portNames: ports, chainSpec: { cubes: [], links: [], attachments: [] } });

function check<C, S>(service: ServiceDefinition<C, S>, params: unknown, ports: string[]): C {
  const config = ConfigSchema.load<C>(service.config.proto, service.config.message).normalize(params);
  service.validate?.(config, info(ports));
  return config;
}

test('config: defaults are filled in from the schema', (t) => {
  t.deepEqual(check(bridge, {}, ['p0']), { agingSeconds: 300, ports: {} });
  t.deepEqual(check(bridge, { aging_seconds: 20, ports: { p0: { mode: 'access', vlan: 3 } } }, ['p0']), { agingSeconds: 20, ports: { p0: { mode: 'access', vlan: 3, allowedVlans: [] } } });
  t.deepEqual(check(bridge, { ports: { p0: {} } }, ['p0']), { agingSeconds: 300, ports: { p0: { mode: 'plain', vlan: 0, allowedVlans: [] } } });
  t.deepEqual(check(bridge, { ports: { p0: { mode: 'trunk', vlan: 1, allowedVlans: [10, 4094] } } }, ['p0']).ports.p0, { mode: 'trunk', vlan: 1, allowedVlans: [10, 4094] });
  t.deepEqual(check(router, { ports: { lan: { address: '10.0.0.1/24' } }, routes: [{ prefix: '10.9.0.0/16', nexthop: '10.0.0.9', port: 'lan' }] }, ['lan']), {
    ports: { lan: { address: '10.0.0.1/24', secondaryAddresses: [] } },
    routes: [{ prefix: '10.9.0.0/16', nexthop: '10.0.0.9', port: 'lan', metric: 1 }],
    neighbourTimeoutSeconds: 300,
    arpQueueLength: 64,
  });
});

test('config: every error names the field at fault', (t) => {
  configError(t, () => check(bridge, { agingSeconds: 'soon' }, ['p0']), 'agingSeconds', 'expected an integer');
  configError(t, () => check(bridge, { agingSeconds: -1 }, ['p0']), 'agingSeconds', 'from 0 to 4294967295');
  configError(t, () => check(bridge, { agingSeconds: 0 }, ['p0']), 'agingSeconds', 'at least 1');
  configError(t, () => check(bridge, { agingSecs: 10 }, ['p0']), 'agingSecs', 'no such field');
  configError(t, () => check(bridge, { ports: [] }, ['p0']), 'ports', 'expected an object');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'hybrid' } } }, ['p0']), 'ports.p0.mode', 'plain, access, trunk');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'access', vlan: 5000 } } }, ['p0']), 'ports.p0.vlan', '1 to 4094');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'access' } } }, ['p0']), 'ports.p0.vlan');
  configError(t, () => check(bridge, { ports: { p9: { mode: 'plain' } } }, ['p0']), 'ports.p9', 'no port p9');
  configError(t, () => check(bridge, { ports: { p0: { vlan: 3 } } }, ['p0']), 'ports.p0.vlan', 'VLAN-unaware');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'access', vlan: 3, allowedVlans: [4] } } }, ['p0']), 'ports.p0.allowedVlans', 'only a trunk');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'trunk', allowedVlans: [10, 0] } } }, ['p0']), 'ports.p0.allowedVlans[1]', '1 to 4094, got 0');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'trunk', allowedVlans: [4095] } } }, ['p0']), 'ports.p0.allowedVlans[0]', '1 to 4094');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'trunk', allowedVlans: [7, 8, 7] } } }, ['p0']), 'ports.p0.allowedVlans[2]', 'listed twice');
  configError(t, () => check(bridge, { ports: { p0: { mode: 'trunk', allowedVlans: 'all' } } }, ['p0']), 'ports.p0.allowedVlans');
  configError(t, () => check(bridge, 'all of them', ['p0']), '', 'expected an object');

  const lan = (address: string) => ({ ports: { lan: { address } } });
  configError(t, () => check(router, lan('10.0.0.1'), ['lan']), 'ports.lan.address', 'a.b.c.d/len');
  configError(t, () => check(router, lan('10.0.0.300/24'), ['lan']), 'ports.lan.address');
  configError(t, () => check(router, lan('10.0.0.0/24'), ['lan']), 'ports.lan.address', 'network address');
  configError(t, () => check(router, lan('10.0.0.255/24'), ['lan']), 'ports.lan.address', 'broadcast address');
  configError(t, () => check(router, lan('fd00::1/64'), ['lan']), 'ports.lan.address', 'only IPv4');
  configError(t, () => check(router, { ports: { lan: { address: '10.0.0.1/24', mac: '01:00:5e:00:00:01' } } }, ['lan']), 'ports.lan.mac', 'not a unicast');
  configError(t, () => check(router, { ports: { lan: { address: '10.0.0.1/24', mac: 'zz' } } }, ['lan']), 'ports.lan.mac');
  configError(t, () => check(router, { ports: { a: { address: '10.0.0.1/24' }, b: { address: '10.0.0.129/25' } } }, ['a', 'b']), 'ports.b.address', 'overlaps');
  const withRoute = (route: Record<string, unknown>) => ({ ...lan('10.0.0.1/24'), routes: [{ prefix: '10.9.0.0/16', port: 'lan', ...route }] });
  configError(t, () => check(router, withRoute({ prefix: '10.9.0.1/16' }), ['lan']), 'routes[0].prefix', 'write 10.9.0.0/16');
  configError(t, () => check(router, withRoute({ port: 'wan' }), ['lan', 'wan']), 'routes[0].port', 'not a port with an address');
  configError(t, () => check(router, withRoute({ nexthop: '10.1.0.1' }), ['lan']), 'routes[0].nexthop', 'not in the subnet');
  configError(t, () => check(router, withRoute({ nexthop: '10.0.0.1' }), ['lan']), 'routes[0].nexthop', "router's own address");

  const secondary = (...secondaryAddresses: string[]) => ({ ports: { lan: { address: '10.0.0.1/24', secondaryAddresses }, wan: { address: '10.1.0.1/24' } } });
  t.deepEqual(check(router, secondary('10.5.0.1/24'), ['lan', 'wan']).ports.lan.secondaryAddresses, ['10.5.0.1/24']);
  configError(t, () => check(router, secondary('10.5.0.1'), ['lan', 'wan']), 'ports.lan.secondaryAddresses[0]', 'a.b.c.d/len');
  configError(t, () => check(router, secondary('10.5.0.1/24', '10.5.0.0/24'), ['lan', 'wan']), 'ports.lan.secondaryAddresses[1]', 'network address');
  configError(t, () => check(router, secondary('10.1.0.2/24'), ['lan', 'wan']), 'ports.wan.address', 'overlaps the subnet 10.1.0.0/24 of port lan');
  configError(t, () => check(router, secondary('10.0.0.2/25'), ['lan', 'wan']), 'ports.lan.secondaryAddresses[0]', 'overlaps the subnet 10.0.0.0/24 of port lan');
  const eight = Array.from({ length: 8 }, (_, i) => `10.${10 + i}.0.1/24`);
  configError(t, () => check(router, secondary(...eight), ['lan', 'wan']), 'ports.lan.secondaryAddresses', 'at most 7');
  // A next hop in a secondary subnet is on the link; the secondary address itself is the router's.
  const viaSecondary = (nexthop: string) => ({ ...secondary('10.5.0.1/24'), routes: [{ prefix: '10.9.0.0/16', port: 'lan', nexthop }] });
  t.is(check(router, viaSecondary('10.5.0.7'), ['lan', 'wan']).routes[0].nexthop, '10.5.0.7');
  configError(t, () => check(router, viaSecondary('10.5.0.1'), ['lan', 'wan']), 'routes[0].nexthop', "router's own address");
  const twoRoutes = (metric: number) => ({ ...lan('10.0.0.1/24'), routes: [{ prefix: '10.9.0.0/16', port: 'lan', nexthop: '10.0.0.8' }, { prefix: '10.9.0.0/16', port: 'lan', nexthop: '10.0.0.9', metric }] });
  t.is(check(router, twoRoutes(5), ['lan']).routes.length, 2);
  configError(t, () => check(router, twoRoutes(1), ['lan']), 'routes[1].metric', 'routes[0] has the same prefix 10.9.0.0/16 and metric 1');
  configError(t, () => check(router, { routes: [{ prefix: '10.0.0.0/8', port: 'lan', gateway: '1.2.3.4' }] }, ['lan']), 'routes[0].gateway', 'no such field');
});

// ------------------------------------------------------------------- leader election

test('leader election: one leader among replicas; killed, another takes over within the lease', async (t) => {
  const etcd = await startEtcd(t);
  const replicas = await Promise.all(['r1', 'r2'].map((name) => startServiceProcess(t, { service: 'bridge', etcd: etcd.endpoints, name, leaseTtl: 2 })));
  let clients = replicas.map((r) => r.client());
  t.teardown(() => clients.forEach((c) => c.close()));

  const leaderNow = async (): Promise<string | undefined> => {
    const infos = await Promise.all(clients.map((c, i) => (replicas[i].running ? c.getService() : undefined)));
    const leaders = infos.filter((x) => x?.leader);
    if (leaders.length !== 1) return undefined;
    // The others know who leads, and where.
    if (!infos.every((x) => !x || (x.leaderReplica === leaders[0]!.replica && x.leaderEndpoint !== ''))) return undefined;
    return leaders[0]!.replica;
  };
  const first = await waitFor('one leader', leaderNow);
  const leader = replicas.find((r) => r.opts.name === first)!;
  const other = replicas.find((r) => r !== leader)!;
  await t.throwsAsync(other.client().getState('nothing'), { message: new RegExp(`not the leader; ask ${first} at unix:${leader.dir}/api.sock`) });

  const killedAt = Date.now();
  await leader.kill();
  const second = await waitFor('the other replica to take over', leaderNow, 15_000, 50);
  const took = Date.now() - killedAt;
  t.is(second, other.opts.name);
  t.true(took < 2_000 + 4_000, `took over ${took} ms after the kill (lease 2 s)`);

  // A replica that stops cleanly hands over at once: it revokes its lease.
  await leader.restart();
  clients.forEach((c) => c.close());
  clients = replicas.map((r) => r.client());
  await waitFor('the restarted replica to follow', async () => (await clients[replicas.indexOf(leader)].getService()).leaderReplica === second);
  const stoppedAt = Date.now();
  await other.stop();
  t.is(await waitFor('the restarted replica to lead', leaderNow, 10_000, 50), leader.opts.name);
  t.true(Date.now() - stoppedAt < 3_000, `handed over in ${Date.now() - stoppedAt} ms, without waiting for the lease to run out`);
});

// ------------------------------------------------------------------- tables and config

interface Env {
  etcd: EtcdCluster;
  store: Store;
  daemon: NetcubedProcess;
  client: NetcubeClient;
  svc: RunningService<unknown, unknown>;
  api: ServiceClient;
}

async function open<C, S>(t: ExecutionContext, service: ServiceDefinition<C, S>, chain: (host: string) => string): Promise<Env> {
  const etcd = await startEtcd(t);
  const netns = await createHostNetns(t, 2);
  const daemon = await startDaemon(t, { netns, etcd: etcd.endpoints });
  await daemon.waitConnected();
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  const client = daemon.client();
  t.teardown(() => client.close());
  await applyChain(store, chain(daemon.name));
  const log = new Logger('debug', {}, (line) => lines.push(line));
  const lines: string[] = [];
  t.teardown(() => {
    if (!t.passed) t.log(`service log:\n${lines.slice(-60).join('')}`);
  });
  const listen = `unix:${daemon.root}/service.sock`;
  const svc = (await startService(service, { etcd: etcd.endpoints, replica: 'test', listen, resyncSeconds: 1, log })) as RunningService<unknown, unknown>;
  t.teardown(() => svc.close());
  const api = ServiceClient.connect({ target: svc.endpoint! });
  t.teardown(() => api.close());
  await waitFor('every cube ready', async () => {
    const cubes = await api.listCubes();
    return cubes.length > 0 && cubes.every((c) => c.ready);
  });
  return { etcd, store, daemon, client, svc, api };
}

const bridgeChain = (host: string): string => `
apiVersion: netcube/v1
kind: Chain
metadata: { name: lan }
spec:
  cubes:
    - name: br
      host: ${host}
      type: bridge
      mode: tc
      ports: [p0, p1]
      params:
        agingSeconds: 60
        ports: { p0: { mode: access, vlan: 10 } }
  links:
    - { from: br:p0, to: netdev:n0 }
    - { from: br:p1, to: netdev:n2 }
`;

async function entry(client: NetcubeClient, cube: string, table: string, key: unknown): Promise<unknown> {
  try {
    return JSON.parse((await client.getEntry({ table: { cube, table }, entry: { keyJson: JSON.stringify(key) } })).valueJson!);
  } catch (err) {
    if (err instanceof ApiCallError && err.codeName === 'NOT_FOUND') return undefined;
    throw err;
  }
}

async function entries(client: NetcubeClient, cube: string, table: string): Promise<{ key: unknown; value: unknown }[]> {
  const out = [];
  for await (const e of client.listEntries({ table: { cube, table } })) out.push({ key: JSON.parse(e.keyJson!), value: JSON.parse(e.valueJson!) });
  return out;
}

const put = (client: NetcubeClient, cube: string, table: string, key: unknown, value: unknown) =>
  client.putEntry({ table: { cube, table }, entry: { keyJson: JSON.stringify(key), valueJson: JSON.stringify(value) } });

test("bridge: static tables from config, drift repaired, SetConfig's config kept until the chain gives other params", async (t) => {
  const { store, client, api } = await open(t, bridge, bridgeChain);
  const cube = await client.getCube({ name: 'br' });
  const p = Object.fromEntries(cube.ports.map((x) => [x.name, x.index]));
  const portEntry = (port: string) => entry(client, 'br', 'bridge_ports', p[port]);
  const mode = async (port: string) => ((await portEntry(port)) as { mode: string }).mode;

  t.deepEqual(await entry(client, 'br', 'bridge_config', 0), { aging_ns: 60_000_000_000 });
  t.deepEqual(await portEntry('p0'), { mode: 'BRIDGE_PORT_ACCESS', vlan: 10, flags: 0 });
  t.deepEqual(await portEntry('p1'), { mode: 'BRIDGE_PORT_PLAIN', vlan: 0, flags: 0 });

  // Someone writes the tables behind the service's back: the next resync puts them right.
  await put(client, 'br', 'bridge_ports', p.p1, { mode: 'BRIDGE_PORT_TRUNK', vlan: 5 });
  await put(client, 'br', 'bridge_config', 0, { aging_ns: 1 });
  await waitFor('the drift repaired', async () => (await mode('p1')) === 'BRIDGE_PORT_PLAIN' && (await entry(client, 'br', 'bridge_config', 0) as { aging_ns: number }).aging_ns === 60e9, 5_000);
  t.pass('repaired');

  // SetConfig: validated, normalized, kept under the service's own keys (the chain is
  // the admin's), applied to the tables.
  const before = await store.chains.get('lan');
  const fromChain = await api.getConfig('br');
  t.like(fromChain, { source: 'chain', revision: before.revision, chainVersion: before.version });
  const set = await api.setConfig({ cube: 'br', config: { agingSeconds: 120, ports: { p1: { mode: 'trunk', vlan: 3, allowedVlans: [7, 70] } } } });
  t.like(set, { chain: 'lan', chainVersion: before.version, source: 'service' });
  t.deepEqual(set.config, { agingSeconds: 120, ports: { p1: { mode: 'trunk', vlan: 3, allowedVlans: [7, 70] } } });
  t.is((await store.chains.get('lan')).version, before.version, 'the chain is untouched');
  const held = await store.serviceConfigs.list('bridge');
  t.deepEqual(held.map((h) => ({ cube: h.cube, params: h.params, revision: h.revision })), [{ cube: 'br', params: set.config, revision: set.revision }]);
  t.deepEqual(await api.getConfig('br'), set);
  // The service writes one table after another: wait for the last of them.
  await waitFor('the new config in the tables', async () => (await mode('p1')) === 'BRIDGE_PORT_TRUNK' && (await mode('p0')) === 'BRIDGE_PORT_PLAIN');
  t.deepEqual(await entry(client, 'br', 'bridge_config', 0), { aging_ns: 120_000_000_000 });
  t.deepEqual(await portEntry('p1'), { mode: 'BRIDGE_PORT_TRUNK', vlan: 3, flags: 1 });
  // The trunk's allowed VLANs as a bit set: 7 is bit 7 of word 0, 70 bit 6 of word 1;
  // written before the port that uses them.
  const words = ((await entry(client, 'br', 'bridge_trunk_vlans', p.p1)) as { word: unknown[] }).word.map(Number);
  t.deepEqual(words.slice(0, 2), [1 << 7, 1 << 6]);
  t.true(words.slice(2).every((w) => w === 0));

  // Invalid configs are refused with the field named; nothing is written.
  const refused = async (config: JsonObject, field: string) => {
    const err = await t.throwsAsync(api.setConfig({ cube: 'br', config }), { instanceOf: ApiCallError });
    t.is(err?.codeName, 'INVALID_ARGUMENT');
    t.is(err?.field, field, err?.message);
  };
  await refused({ ports: { p0: { mode: 'access', vlan: 5000 } } }, 'config.ports.p0.vlan');
  await refused({ ports: { p9: { mode: 'plain' } } }, 'config.ports.p9');
  await refused({ agingSeconds: 'x' }, 'config.agingSeconds');
  await refused({ bogus: 1 }, 'config.bogus');
  t.is((await api.getConfig('br')).revision, set.revision);
  // A stale read-modify-write is refused; validate-only writes nothing.
  const stale = await t.throwsAsync(api.setConfig({ cube: 'br', config: {}, expectedRevision: fromChain.revision }), { instanceOf: ApiCallError });
  t.is(stale?.codeName, 'ABORTED');
  t.deepEqual((await api.setConfig({ cube: 'br', config: {}, validateOnly: true })).config, { agingSeconds: 300, ports: {} });
  t.is((await api.getConfig('br')).revision, set.revision);
  const missing = await t.throwsAsync(api.getConfig('nope'), { instanceOf: ApiCallError });
  t.is(missing?.codeName, 'NOT_FOUND');

  // The chain gives the cube other params: they win, and SetConfig's config is forgotten.
  const changed = structuredClone(before.chain);
  changed.spec.cubes[0].params = { agingSeconds: 90 };
  await store.chains.apply(changed);
  await waitFor("the chain's params in the tables", async () => (await mode('p1')) === 'BRIDGE_PORT_PLAIN' && (await entry(client, 'br', 'bridge_config', 0) as { aging_ns: number }).aging_ns === 90e9);
  t.like(await api.getConfig('br'), { source: 'chain', config: { agingSeconds: 90, ports: {} } });
  await waitFor("SetConfig's config forgotten", async () => (await store.serviceConfigs.list('bridge')).length === 0);

  // Rolling the chain back gives its old params back, not SetConfig's config.
  await store.chains.rollback('lan', before.version);
  await waitFor('the old config back in the tables', async () => (await mode('p0')) === 'BRIDGE_PORT_ACCESS');
  t.like(await api.getConfig('br'), { source: 'chain', config: { agingSeconds: 60, ports: { p0: { mode: 'access', vlan: 10 } } } });
  t.deepEqual(await entry(client, 'br', 'bridge_config', 0), { aging_ns: 60_000_000_000 });
  t.deepEqual(await portEntry('p1'), { mode: 'BRIDGE_PORT_PLAIN', vlan: 0, flags: 0 });
});

const routerChain = (host: string): string => `
apiVersion: netcube/v1
kind: Chain
metadata: { name: edge }
spec:
  cubes:
    - name: rt
      host: ${host}
      type: router
      mode: tc
      ports: [lan, wan]
      params:
        ports:
          lan: { address: 10.1.0.1/24, mac: "02:00:00:00:01:01" }
          wan: { address: 10.0.0.1/30 }
        routes:
          - { prefix: 10.2.0.0/16, nexthop: 10.0.0.2, port: wan }
          - { prefix: 0.0.0.0/0, nexthop: 10.0.0.2, port: wan }
  links:
    - { from: rt:lan, to: netdev:n0 }
    - { from: rt:wan, to: netdev:n2 }
`;

test('router: tables derived from config (connected routes too), extra entries deleted, changes applied', async (t) => {
  const { client, api } = await open(t, router, routerChain);
  const cube = await client.getCube({ name: 'rt' });
  const p = Object.fromEntries(cube.ports.map((x) => [x.name, x.index]));
  const routes = async () =>
    (await entries(client, 'rt', 'routes')).map(({ key, value }) => ({ key, value })).sort((a, b) => JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)));
  const route = (addr: string, prefixlen: number, port: string, nexthop?: string) => ({ key: { prefixlen, addr }, value: { nexthop: nexthop ?? '0.0.0.0', port: p[port] } });
  const sorted = (xs: { key: unknown; value: unknown }[]) => xs.sort((a, b) => JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)));

  t.deepEqual(await entry(client, 'rt', 'router_ports', p.lan), { addr: '10.1.0.1', prefixlen: 24, mac: '02:00:00:00:01:01', pad: 0 });
  const wan = (await entry(client, 'rt', 'router_ports', p.wan)) as { mac: string };
  t.regex(wan.mac, /^02:/, 'a derived MAC is locally administered unicast');
  t.deepEqual(sorted(await entries(client, 'rt', 'local_addrs')), sorted([{ key: '10.1.0.1', value: p.lan }, { key: '10.0.0.1', value: p.wan }]));
  t.deepEqual(await routes(), sorted([route('10.1.0.0', 24, 'lan'), route('10.0.0.0', 30, 'wan'), route('10.2.0.0', 16, 'wan', '10.0.0.2'), route('0.0.0.0', 0, 'wan', '10.0.0.2')]));

  // Extra entries in hash and LPM tables go, on the next resync.
  await put(client, 'rt', 'routes', { prefixlen: 8, addr: '172.0.0.0' }, { nexthop: '0.0.0.0', port: p.lan });
  await put(client, 'rt', 'local_addrs', '10.1.0.99', p.lan);
  await waitFor('the extra entries gone', async () => (await entries(client, 'rt', 'routes')).length === 4 && (await entries(client, 'rt', 'local_addrs')).length === 2, 5_000);

  // A route less, an address changed, a secondary address; a static route for a
  // connected prefix (the connected one is used) and two for one prefix (the lower
  // metric is used): the tables follow.
  await api.setConfig({
    cube: 'rt',
    config: {
      ports: { lan: { address: '10.1.0.254/24', secondaryAddresses: ['10.7.0.1/24'] }, wan: { address: '10.0.0.1/30' } },
      routes: [
        { prefix: '0.0.0.0/0', nexthop: '10.0.0.2', port: 'wan' },
        { prefix: '10.1.0.0/24', nexthop: '10.0.0.2', port: 'wan' },
        { prefix: '10.8.0.0/16', nexthop: '10.0.0.2', port: 'wan', metric: 20 },
        { prefix: '10.8.0.0/16', nexthop: '10.7.0.9', port: 'lan', metric: 5 },
      ],
    },
  });
  await waitFor('the routes changed', async () => (await entries(client, 'rt', 'routes')).length === 5);
  t.deepEqual(await routes(), sorted([route('10.1.0.0', 24, 'lan'), route('10.7.0.0', 24, 'lan'), route('10.0.0.0', 30, 'wan'), route('0.0.0.0', 0, 'wan', '10.0.0.2'), route('10.8.0.0', 16, 'lan', '10.7.0.9')]));
  t.deepEqual(sorted(await entries(client, 'rt', 'local_addrs')), sorted([{ key: '10.1.0.254', value: p.lan }, { key: '10.7.0.1', value: p.lan }, { key: '10.0.0.1', value: p.wan }]));
  t.like(await entry(client, 'rt', 'router_ports', p.lan), { addr: '10.1.0.254', prefixlen: 24 }, 'the primary address');
  const state = (await api.getState('rt')) as { routes: { prefix: string; port: string; nexthop?: string; connected: boolean; metric: number; active: boolean }[] };
  t.deepEqual(state.routes.map((r) => `${r.active ? '*' : ' '}${r.prefix} ${r.port}${r.nexthop ? ` via ${r.nexthop}` : ''} ${r.connected ? 'connected' : 'static'} ${r.metric}`), [
    '*10.1.0.0/24 lan connected 0',
    '*10.7.0.0/24 lan connected 0',
    '*10.0.0.0/30 wan connected 0',
    '*0.0.0.0/0 wan via 10.0.0.2 static 1',
    ' 10.1.0.0/24 wan via 10.0.0.2 static 1',
    ' 10.8.0.0/16 wan via 10.0.0.2 static 20',
    '*10.8.0.0/16 lan via 10.7.0.9 static 5',
  ]);
});

test('an invalid config applied to the chain by other means: the cube is reported, not programmed, and fixed by SetConfig', async (t) => {
  const { store, client, api } = await open(t, bridge, bridgeChain);
  const stored = await store.chains.get('lan');
  const chain = structuredClone(stored.chain);
  chain.spec.cubes[0].params = { agingSeconds: 30, ports: { p0: { mode: 'access', vlan: 0 } } };
  await store.chains.apply(chain);
  const [summary] = await waitFor('the problem reported', async () => {
    const cubes = await api.listCubes();
    return cubes[0].problem.includes('ports.p0.vlan') ? cubes : undefined;
  });
  t.regex(summary.problem, /invalid config in chain lan: ports\.p0\.vlan: .*keeping the last valid config/);
  t.deepEqual(await entry(client, 'br', 'bridge_config', 0), { aging_ns: 60_000_000_000 }, 'the last valid config stays');
  const err = await t.throwsAsync(api.getConfig('br'), { instanceOf: ApiCallError });
  t.is(err?.codeName, 'FAILED_PRECONDITION');
  await api.setConfig({ cube: 'br', config: { agingSeconds: 30 } });
  await waitFor('fixed', async () => (await entry(client, 'br', 'bridge_config', 0) as { aging_ns: number }).aging_ns === 30e9);
  t.is((await api.listCubes())[0].problem, '');
});

test('a config change whose sync failed is retried even when a weaker sync (the neighbours\' tables) runs first', async (t) => {
  // configChanged fails the first time it sees agingSeconds 30, and only once the chain
  // has changed around the cube (its log level here): that change queues a tables sync
  // behind the failing config sync, and the tables sync must carry the config change.
  let chainChanged!: () => void;
  const chainSeen = new Promise<void>((resolve) => (chainChanged = resolve));
  const calls: number[] = [];
  const service: ServiceDefinition<Parameters<NonNullable<typeof bridge.validate>>[0]> = {
    ...bridge,
    validate(config, cube) {
      bridge.validate!(config, cube);
      if (cube.chainSpec.cubes[0]?.logLevel === 'debug') chainChanged();
    },
    async configChanged(cube) {
      calls.push(cube.config.agingSeconds);
      if (calls.filter((s) => s === 30).length === 1) {
        await chainSeen;
        throw new Error('injected failure');
      }
    },
  };
  const { store, api } = await open(t, service, bridgeChain);
  await api.setConfig({ cube: 'br', config: { agingSeconds: 30 } });
  await waitFor('the config change tried once', () => calls.includes(30));
  const { chain } = await store.chains.get('lan');
  chain.spec.cubes[0].logLevel = 'debug';
  await store.chains.apply(chain);
  await waitFor('the config change applied after its failure', () => calls.filter((s) => s === 30).length === 2);
  t.deepEqual(calls, [30, 30]);
});

test("a cube's first full sync fails while a weaker sync waits (its chain changed meanwhile): the full sync is still retried, not dropped", async (t) => {
  const etcd = await startEtcd(t);
  const netns = await createHostNetns(t, 2);
  const daemon = await startDaemon(t, { netns, etcd: etcd.endpoints });
  await daemon.waitConnected();
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  await applyChain(store, bridgeChain(daemon.name));
  const lines: string[] = [];
  const log = new Logger('debug', {}, (line) => lines.push(line));
  t.teardown(() => {
    if (!t.passed) t.log(`service log:\n${lines.slice(-60).join('')}`);
  });
  // The first cubeCreated holds until the test lets it go, then fails.
  let created = 0;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const flaky: ServiceDefinition<unknown, unknown> = {
    ...(bridge as ServiceDefinition<unknown, unknown>),
    async cubeCreated() {
      if (++created === 1) {
        await held;
        throw new Error('the first full sync fails');
      }
    },
  };
  const svc = await startService(flaky, { etcd: etcd.endpoints, replica: 'test', resyncSeconds: 1, log });
  t.teardown(() => svc.close());
  await waitFor('the first full sync under way', () => created === 1);
  // Only br's links change: the service asks for a 'tables' sync, queued behind the full one.
  await applyChain(store, bridgeChain(daemon.name).replace('to: netdev:n2', 'to: netdev:n3'));
  await waitFor('the service seeing the new links', () => svc.controller?.cubes.get('br')?.chainSpec.links.some((l) => l.to === 'netdev:n3'));
  release();
  await waitFor('the full sync retried', () => created === 2);
  await waitFor('the cube ready', () => svc.controller?.cubes.get('br')?.ready);
  t.is(created, 2);
});

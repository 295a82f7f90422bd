// Who may do what on netcubed's API (issue 11), with real certificates made by
// deploy/certs.sh: TCP is mutual TLS only; a certificate of the cluster's CA without a
// netcube identity is refused every change and every slow-path claim; a viewer
// reads; service/bridge touches bridge cubes only and registers only its own type;
// the admin does everything; on the unix socket root is admin and the viewer group
// reads (SO_PEERCRED); refusals are logged and counted.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { get } from 'node:http';
import { get as httpsGet } from 'node:https';
import * as path from 'node:path';
import { promisify } from 'node:util';
import anyTest, { ExecutionContext, TestFn } from 'ava';
import { ApiCallError, NetcubeClient } from '@netcube/api/grpc/client';
import { CertFiles, Pki } from '../helpers/certs';
import { NetcubedProcess, startDaemon } from '../helpers/daemon';
import { EtcdCluster } from '../helpers/etcd';
import { createNetns, Netns, newNetns } from '../helpers/netns';
import { NetnsPort, netnsPort } from '../helpers/netns-port';
import { probeObjects } from './setup';

const execFileAsync = promisify(execFile);
const API_PORT = 7400;
const METRICS_PORT = 9400;
/** A group nobody on the machine is in: the daemon's viewer group. */
const VIEWER_GID = 54_321;

interface Env {
  etcd: EtcdCluster;
  netns: Netns;
  pki: Pki;
  daemon: NetcubedProcess;
  api: NetcubeClient;
  apiPort: NetnsPort;
  metricsPort: NetnsPort;
  clients: NetcubeClient[];
  /** A client over TCP presenting `certificate` (none: anonymous). */
  as(certificate?: CertFiles, ca?: string): NetcubeClient;
}

const test = anyTest as TestFn<Env>;

test.before(async (t) => {
  const etcd = await EtcdCluster.start();
  const netns = await newNetns();
  const pki = Pki.make();
  const server = pki.issue('host', 'server');
  const daemon = await NetcubedProcess.start({
    netns,
    etcd: etcd.endpoints,
    listen: `127.0.0.1:${API_PORT}`,
    tls: { ...server, ca: pki.ca },
    args: ['--viewer-group', String(VIEWER_GID), '--metrics', String(METRICS_PORT)],
  });
  await daemon.waitConnected();
  const apiPort = await NetnsPort.open(netns, API_PORT, daemon.root);
  const metricsPort = await NetnsPort.open(netns, METRICS_PORT, daemon.root);
  const clients: NetcubeClient[] = [];
  const as = (certificate?: CertFiles, ca = pki.ca): NetcubeClient => {
    const c = NetcubeClient.connect({ target: apiPort.endpoint, tls: { ca, ...certificate }, timeoutMs: 20_000 });
    clients.push(c);
    return c;
  };
  t.context = { etcd, netns, pki, daemon, api: as(pki.issue('admin')), apiPort, metricsPort, clients, as };

  // The admin sets the host up over TCP: a bridge, a router, a probe (a type of its service).
  const api = t.context.api;
  await api.createCube({ name: 'br1', type: 'bridge', mode: 'MODE_TC', ports: ['p0', 'p1'] });
  await api.createCube({ name: 'rt1', type: 'router', mode: 'MODE_TC', ports: ['lan', 'wan'] });
  await api.createCube({ name: 'dd1', type: 'ddosmitigator', mode: 'MODE_TC' });
});

test.after.always(async (t) => {
  const c = t.context;
  if (!c) return;
  for (const client of c.clients) client.close();
  c.apiPort?.close();
  c.metricsPort?.close();
  await c.daemon?.cleanup();
  await c.netns?.delete();
  await c.etcd?.stop();
  c.pki?.remove();
});

/** Every change of the API, against the host's cubes. */
function mutations(c: NetcubeClient): Record<string, () => Promise<unknown>> {
  const { xdpObject, tcObject } = probeObjects();
  const row = { keyRaw: Buffer.alloc(4), valueRaw: Buffer.alloc(8) };
  return {
    RegisterType: () => c.registerType({ name: 'probe', xdpObject, tcObject }),
    UnregisterType: () => c.unregisterType({ name: 'probe' }),
    CreateCube: () => c.createCube({ name: 'x1', type: 'nop', mode: 'MODE_TC', ports: ['a', 'b'] }),
    UpdateCube: () => c.updateCube({ name: 'br1', logLevel: 'LOG_LEVEL_DEBUG' }),
    DeleteCube: () => c.deleteCube({ name: 'br1' }),
    SetPeer: () => c.setPeer({ cube: 'br1', port: 'p0', peer: { port: { cube: 'rt1', port: 'lan' } } }),
    Attach: () => c.attach({ cube: 'dd1', target: { port: { cube: 'br1', port: 'p0' } }, direction: 'DIRECTION_INGRESS' }),
    Detach: () => c.detach({ cube: 'dd1' }),
    ReplaceMicroCube: () => c.replaceMicroCube({ cube: 'br1', index: 0, object: tcObject }),
    PutEntry: () => c.putEntry({ table: { cube: 'br1', table: 'bridge_config' }, entry: row }),
    DeleteEntry: () => c.deleteEntry({ table: { cube: 'br1', table: 'fdb' }, entry: { keyRaw: Buffer.alloc(8) } }),
    PutEntries: () => c.putEntries({ table: { cube: 'br1', table: 'bridge_config' }, entries: [row] }),
  };
}

/** Every read of the API. */
function reads(c: NetcubeClient): Record<string, () => Promise<unknown>> {
  return {
    GetHost: () => c.getHost(),
    GetTopology: () => c.getTopology(),
    ListTypes: () => c.listTypes(),
    GetType: () => c.getType({ name: 'bridge' }),
    GetCube: () => c.getCube({ name: 'br1' }),
    ListCubes: () => c.listCubes(),
    ListTables: () => c.listTables({ cube: 'br1' }),
    GetEntry: () => c.getEntry({ table: { cube: 'br1', table: 'bridge_config' }, entry: { keyRaw: Buffer.alloc(4) } }),
    ListEntries: () => drain(c.listEntries({ table: { cube: 'br1', table: 'bridge_config' }, raw: true })),
  };
}

async function drain(it: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of it) n++;
  return n;
}

/** Opens a slow-path session; resolves with the welcome's cubes, rejects with the refusal. */
async function claim(c: NetcubeClient, hello: { types?: string[]; cubes?: string[] }): Promise<string[]> {
  const session = c.openSlowPath({ controller: 'test', ...hello });
  try {
    for await (const m of session) if (m.kind === 'welcome') return m.welcome!.cubes;
    throw new Error('the session ended without a welcome');
  } finally {
    session.close();
  }
}

async function denied(t: ExecutionContext, what: string, call: () => Promise<unknown>, says: string[]): Promise<void> {
  const err = await t.throwsAsync(call(), { instanceOf: ApiCallError }, what);
  t.is(err?.codeName, 'PERMISSION_DENIED', `${what}: ${err?.message}`);
  for (const words of says) t.true(err?.details.includes(words), `${what}: "${err?.details}" does not say "${words}"`);
}

/** Runs `call`; fails the test if it was refused for lack of permission (other errors are the call's own). */
async function permitted(t: ExecutionContext, what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (err) {
    t.not((err as ApiCallError).codeName, 'PERMISSION_DENIED', `${what}: ${(err as Error).message}`);
    return;
  }
  t.pass();
}

test.serial('netcubed refuses to listen on TCP without the CA of its clients', async (t) => {
  const server = t.context.pki.issue('host', 'server');
  const err = await t.throwsAsync(NetcubedProcess.start({ etcd: t.context.etcd.endpoints, listen: '127.0.0.1:7401', tls: server }));
  t.regex(err!.message, /--listen serves gRPC over mutual TLS only: .*--tls-ca/);
});

test.serial('TCP: no certificate, or one of another CA, is refused at the handshake', async (t) => {
  const anonymous = await t.throwsAsync(t.context.as().getHost(), { instanceOf: ApiCallError });
  t.is(anonymous?.codeName, 'UNAVAILABLE');
  const strangers = Pki.make();
  t.teardown(() => strangers.remove());
  const stranger = await t.throwsAsync(t.context.as(strangers.issue('admin')).getHost(), { instanceOf: ApiCallError });
  t.is(stranger?.codeName, 'UNAVAILABLE');
  t.is((await t.context.api.getHost()).name, t.context.daemon.name);
});

test.serial('a certificate of the CA without a netcube identity: every change and every slow-path claim is PERMISSION_DENIED', async (t) => {
  const nobody = t.context.as(t.context.pki.issue('plain', 'nobody'));
  for (const [method, call] of Object.entries(mutations(nobody))) await denied(t, method, call, ['CN=nobody', 'no netcube identity']);
  for (const [method, call] of Object.entries(reads(nobody))) await denied(t, method, call, ['CN=nobody']);
  await denied(t, 'claim a type', () => claim(nobody, { types: ['bridge'] }), ['CN=nobody', 'cube type bridge']);
  await denied(t, 'claim a cube', () => claim(nobody, { cubes: ['br1'] }), ['CN=nobody', 'cube br1 (type bridge)']);
  // Health checks need no identity.
  t.is(await nobody.checkHealth(), 'SERVING');
});

test.serial('a viewer reads everything and changes nothing', async (t) => {
  const viewer = t.context.as(t.context.pki.issue('viewer'));
  for (const [method, call] of Object.entries(reads(viewer))) await permitted(t, method, call);
  t.deepEqual((await viewer.listCubes()).cubes.map((c) => c.name).sort(), ['br1', 'dd1', 'rt1']);
  for (const [method, call] of Object.entries(mutations(viewer))) await denied(t, method, call, ['spiffe://netcube/viewer', 'a viewer only reads']);
  await denied(t, 'slow path', () => claim(viewer, { types: ['bridge'] }), ['spiffe://netcube/viewer']);
});

test.serial('service/bridge: the tables and slow path of bridge cubes, never a router cube, and only its own type', async (t) => {
  const bridge = t.context.as(t.context.pki.issue('service', 'bridge'));
  const config = (await t.context.api.listTables({ cube: 'br1' })).tables.find((x) => x.name === 'bridge_config')!;
  const value = Buffer.alloc(config.valueSize, 7);
  await bridge.putEntry({ table: { cube: 'br1', table: 'bridge_config' }, entry: { keyRaw: Buffer.alloc(4), valueRaw: value } });
  t.deepEqual((await t.context.api.getEntry({ table: { cube: 'br1', table: 'bridge_config' }, entry: { keyRaw: Buffer.alloc(4) } })).valueRaw, value);
  t.is((await bridge.putEntries({ table: { cube: 'br1', table: 'bridge_config' }, entries: [{ keyRaw: Buffer.alloc(4), valueRaw: Buffer.alloc(config.valueSize) }] })).written, 1);
  t.is((await bridge.getCube({ name: 'br1' })).type, 'bridge');
  t.true((await bridge.listTables({ cube: 'br1' })).tables.length > 0);
  await permitted(t, 'its config', () => bridge.updateCube({ name: 'br1', logLevel: 'LOG_LEVEL_DEBUG' }));
  t.is((await bridge.getHost()).name, t.context.daemon.name);

  // A router cube: not its tables, not its config, not even a look.
  const routerPorts = (await t.context.api.listTables({ cube: 'rt1' })).tables.find((x) => x.name === 'router_ports')!;
  const says = ['spiffe://netcube/service/bridge', 'cube rt1 (type router)', 'own type (bridge)'];
  await denied(t, 'PutEntry', () => bridge.putEntry({ table: { cube: 'rt1', table: 'router_ports' }, entry: { keyRaw: Buffer.alloc(4), valueRaw: Buffer.alloc(routerPorts.valueSize) } }), says);
  await denied(t, 'GetEntry', () => bridge.getEntry({ table: { cube: 'rt1', table: 'router_ports' }, entry: { keyRaw: Buffer.alloc(4) } }), says);
  await denied(t, 'GetCube', () => bridge.getCube({ name: 'rt1' }), says);
  await denied(t, 'UpdateCube', () => bridge.updateCube({ name: 'rt1', logLevel: 'LOG_LEVEL_DEBUG' }), says);
  await denied(t, 'ReplaceMicroCube', () => bridge.replaceMicroCube({ cube: 'rt1', index: 0, object: probeObjects().tcObject }), says);
  await denied(t, 'StreamLogs', () => drain(bridge.streamLogs({ cubes: ['rt1'] })), says);
  // Nor topology: ports, peers, cubes come and go by the admin.
  await denied(t, 'UpdateCube ports', () => bridge.updateCube({ name: 'br1', ports: { names: ['p0'] } }), ['not its ports']);
  await denied(t, 'DeleteCube', () => bridge.deleteCube({ name: 'br1' }), ['only the admin']);
  await denied(t, 'CreateCube', () => bridge.createCube({ name: 'br2', type: 'bridge', mode: 'MODE_TC', ports: ['a'] }), ['only the admin']);
  await denied(t, 'ListCubes', () => bridge.listCubes(), ['name the cubes']);
  // A capture on a netdev stacks a cube on the host's wire: not a service's to ask.
  await denied(t, 'Capture on a netdev', () => drain(bridge.capture({ netdev: 'in0' })), ['name the cubes']);
  await denied(t, 'Capture on a router port', () => drain(bridge.capture({ cube: 'rt1', port: 'p0' })), says);

  // Its own type only: probe is another service's.
  const { xdpObject, tcObject } = probeObjects();
  await denied(t, 'RegisterType', () => bridge.registerType({ name: 'probe', xdpObject, tcObject }), ['cube type probe', 'its own cube type (bridge)']);
  const probe = t.context.as(t.context.pki.issue('service', 'probe'));
  t.is((await probe.registerType({ name: 'probe', xdpObject, tcObject, dryRun: true })).name, 'probe');

  // The slow path: its own type and its cubes; the router's are refused, whatever the hello says.
  t.deepEqual(await claim(bridge, { types: ['bridge'] }), ['br1']);
  t.deepEqual(await claim(bridge, { cubes: ['br1'] }), ['br1']);
  await denied(t, 'claim router', () => claim(bridge, { types: ['bridge', 'router'] }), ['control cube type router', 'own cube type (bridge)']);
  await denied(t, 'claim rt1', () => claim(bridge, { cubes: ['rt1'] }), ['cube rt1 (type router)']);
});

test.serial('the admin does everything', async (t) => {
  const api = t.context.api;
  const { xdpObject, tcObject } = probeObjects();
  await api.registerType({ name: 'probe', xdpObject, tcObject });
  await api.createCube({ name: 'pr1', type: 'probe', mode: 'MODE_TC', ports: ['a', 'b'] });
  await api.updateCube({ name: 'pr1', logLevel: 'LOG_LEVEL_DEBUG', ports: { names: ['a', 'b', 'c'] } });
  await api.setPeer({ cube: 'pr1', port: 'a', peer: { port: { cube: 'br1', port: 'p0' } } });
  await api.attach({ cube: 'dd1', target: { port: { cube: 'pr1', port: 'c' } }, direction: 'DIRECTION_INGRESS' });
  await api.detach({ cube: 'dd1' });
  await api.replaceMicroCube({ cube: 'pr1', index: 0, object: tcObject });
  const fdb = (await api.listTables({ cube: 'br1' })).tables.find((x) => x.name === 'fdb')!;
  const key = Buffer.alloc(fdb.keySize, 1);
  await api.putEntry({ table: { cube: 'br1', table: 'fdb' }, entry: { keyRaw: key, valueRaw: Buffer.alloc(fdb.valueSize) } });
  await api.deleteEntry({ table: { cube: 'br1', table: 'fdb' }, entry: { keyRaw: key } });
  for (const [method, call] of Object.entries(reads(api))) await permitted(t, method, call);
  t.deepEqual((await claim(api, { types: ['bridge', 'router'] })).sort(), ['br1', 'rt1']);
  await api.deleteCube({ name: 'pr1' });
  await api.unregisterType({ name: 'probe' });
  t.false((await api.listTypes()).types.some((x) => x.name === 'probe'));
});

test.serial('on the unix socket, root is admin, the viewer group reads, anyone else cannot connect', async (t) => {
  const { daemon } = t.context;
  const st = fs.statSync(daemon.socket);
  t.is(st.mode & 0o777, 0o660);
  t.is(st.gid, VIEWER_GID);
  t.is(fs.statSync(daemon.root).mode & 0o777, 0o710, 'the root passes the viewer group through to the socket');
  t.is(fs.statSync(path.join(daemon.root, 'bpf')).mode & 0o777, 0o700, "the bpffs is root's alone");

  // A process of another user, in the viewer group; then in no group of the daemon's.
  const clientJs = require.resolve('@netcube/api/grpc/client');
  const script = `const { NetcubeClient } = require(${JSON.stringify(clientJs)});
const c = NetcubeClient.connect({ target: 'unix:' + process.argv[1], timeoutMs: 5000 });
const say = (p) => p.then(() => 'ok', (e) => e.codeName);
(async () => {
  const out = { read: await say(c.getHost()), write: await say(c.putEntry({ table: { cube: 'br1', table: 'fdb' }, entry: { keyRaw: Buffer.alloc(8), valueRaw: Buffer.alloc(8) } })) };
  c.close();
  process.stdout.write(JSON.stringify(out));
})();`;
  const asUser = async (gid: number) => {
    const { stdout } = await execFileAsync('setpriv', ['--reuid=65534', `--regid=${gid}`, '--clear-groups', process.execPath, '-e', script, daemon.socket], { timeout: 30_000 });
    return JSON.parse(stdout) as { read: string; write: string };
  };
  t.deepEqual(await asUser(VIEWER_GID), { read: 'ok', write: 'PERMISSION_DENIED' });
  t.deepEqual(await asUser(VIEWER_GID + 1), { read: 'UNAVAILABLE', write: 'UNAVAILABLE' });
  // root: the test itself.
  const root = daemon.client();
  t.teardown(() => root.close());
  t.is((await root.getCube({ name: 'br1' })).name, 'br1');
});

test.serial('refusals are logged with the identity and the object, and counted', async (t) => {
  const metrics = await new Promise<string>((resolve, reject) =>
    get(`http://${t.context.metricsPort.endpoint}/metrics`, (res) => {
      let body = '';
      res.on('data', (c) => (body += c)).on('end', () => resolve(body));
    }).on('error', reject),
  );
  t.regex(metrics, /netcube_authz_denied_total\{method="PutEntry",identity="none"\} [1-9]/);
  t.regex(metrics, /netcube_authz_denied_total\{method="PutEntry",identity="service\/bridge"\} 1/);
  t.regex(metrics, /netcube_authz_denied_total\{method="Connect",identity="viewer"\} 1/);
  t.regex(metrics, /netcube_grpc_requests_total\{method="CreateCube",code="PERMISSION_DENIED"\} [1-9]/);
  const log = fs.readFileSync(t.context.daemon.logFile, 'utf8');
  const line = log.split('\n').find((l) => l.includes('"permission denied"') && l.includes('service/bridge') && l.includes('rt1'));
  t.truthy(line, 'a log line names the identity and the object');
  t.like(JSON.parse(line!), { level: 'warn', identity: 'spiffe://netcube/service/bridge' });
});

test.serial('metrics on an address other than loopback: HTTPS, to the admin and viewers only', async (t) => {
  const plain = await t.throwsAsync(NetcubedProcess.start({ etcd: t.context.etcd.endpoints, args: ['--metrics', '10.99.0.1:9401'] }));
  t.regex(plain!.message, /--metrics 10\.99\.0\.1:9401: .*HTTPS .*--tls-cert/);

  const { pki } = t.context;
  const netns = await createNetns(t);
  await netns.exec('ip', ['link', 'add', 'mgmt', 'type', 'veth', 'peer', 'name', 'mgmt-peer']);
  await netns.exec('ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'mgmt']);
  await netns.exec('ip', ['link', 'set', 'mgmt', 'up']);
  await netns.exec('ip', ['link', 'set', 'mgmt-peer', 'up']);
  const server = pki.issue('host', 'metrics', ['IP:10.99.0.1']);
  const daemon = await startDaemon(t, { netns, etcd: t.context.etcd.endpoints, tls: { ...server, ca: pki.ca }, args: ['--metrics', '10.99.0.1:9401'] });
  const port = await netnsPort(t, netns, 9401, daemon.root, '10.99.0.1');
  const scrape = (certificate?: CertFiles) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const [host, p] = port.endpoint.split(':');
      // The bridge's address is not the certificate's: the chain is checked, not the name.
      const options = { host, port: Number(p), path: '/metrics', ca: fs.readFileSync(pki.ca), servername: 'metrics', checkServerIdentity: () => undefined };
      const req = httpsGet({ ...options, ...(certificate ? { cert: fs.readFileSync(certificate.cert), key: fs.readFileSync(certificate.key) } : {}) }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
    });
  const viewer = await scrape(pki.issue('viewer'));
  t.is(viewer.status, 200);
  t.regex(viewer.body, /netcube_cubes 0/);
  const nobody = await scrape(pki.issue('plain', 'nobody'));
  t.is(nobody.status, 403);
  t.regex(nobody.body, /CN=nobody .* may not read the metrics/);
  await t.throwsAsync(scrape(), undefined, 'no client certificate, no TLS session');
});

// A service's config API (issue 11): over TCP mutual TLS only, with the roles of
// netcubed's API, by real certificates (deploy/certs.sh): the admin and the
// service's own identity change config, a viewer reads, another service or a
// certificate without a netcube identity get nothing, a client without a
// certificate no connection; on its unix socket (0600) the caller is the admin.

import * as fs from 'node:fs';
import test from 'ava';
import { ApiCallError } from '@netcube/api/grpc/client';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import bridge from '@netcube/bridge';
import { ServiceClient, startService, type RunningService } from '@netcube/sdk';
import { parseFlags } from '@netcube/sdk/run';
import { CertFiles, pki as makePki } from '../helpers/certs';
import { startEtcd } from '../helpers/etcd';
import { elf } from '../store/setup';
import { applyChain, oneCubeChain } from './helpers';

test('the config API: mutual TLS on TCP, every call by role; the unix socket is its owner', async (t) => {
  const pki = makePki(t);
  const etcd = await startEtcd(t);
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  // As a daemon publishes it: the chain is all the service needs, no host runs it.
  await store.types.putType({ name: 'bridge', transparent: false, microcubes: 1, modes: ['xdp', 'tc'], objects: { xdp: elf('bridge.xdp'), tc: elf('bridge.tc') } });
  await applyChain(store, oneCubeChain('lan', { name: 'br', type: 'bridge', host: 'h1' }, ['p0', 'p1'], ['n0', 'n1']));

  const lines: string[] = [];
  const log = new Logger('debug', {}, (l) => lines.push(l));
  const tls = { ca: pki.ca, ...pki.issue('service', 'bridge') };
  const svc = (await startService(bridge, { etcd: etcd.endpoints, replica: 'r1', listen: '127.0.0.1:0', tls, log })) as RunningService<unknown, unknown>;
  t.teardown(() => svc.close());
  const clients: ServiceClient[] = [];
  t.teardown(() => clients.forEach((c) => c.close()));
  const as = (certificate?: CertFiles): ServiceClient => {
    const c = ServiceClient.connect({ target: svc.endpoint!, tls: { ca: pki.ca, ...certificate }, timeoutMs: 10_000 });
    clients.push(c);
    return c;
  };
  const denied = async (what: string, call: Promise<unknown>, says: string) => {
    const err = await t.throwsAsync(call, { instanceOf: ApiCallError }, what);
    t.is(err?.codeName, 'PERMISSION_DENIED', `${what}: ${err?.message}`);
    t.true(err?.details.includes(says), `${what}: ${err?.details}`);
  };

  const admin = as(pki.issue('admin'));
  t.like(await admin.setConfig({ cube: 'br', config: { agingSeconds: 30 } }), { source: 'service', config: { agingSeconds: 30 } });
  const itself = as(pki.issue('service', 'bridge'));
  t.like(await itself.setConfig({ cube: 'br', config: { agingSeconds: 40 } }), { config: { agingSeconds: 40 } });
  const viewer = as(pki.issue('viewer'));
  t.like(await viewer.getConfig('br'), { config: { agingSeconds: 40 } });
  t.is((await viewer.listCubes()).length, 1);
  t.is((await viewer.getService()).type, 'bridge');
  await denied('viewer SetConfig', viewer.setConfig({ cube: 'br', config: {} }), 'spiffe://netcube/viewer may not call SetConfig of the bridge service: a viewer only reads');
  const router = as(pki.issue('service', 'router'));
  await denied('another service', router.getConfig('br'), 'spiffe://netcube/service/router may not call GetConfig');
  await denied('another service', router.setConfig({ cube: 'br', config: {} }), 'spiffe://netcube/service/router');
  const nobody = as(pki.issue('plain', 'nobody'));
  await denied('no identity', nobody.getService(), 'CN=nobody (no netcube identity)');
  await denied('no identity', nobody.setConfig({ cube: 'br', config: {} }), 'it has no netcube identity');
  const anonymous = await t.throwsAsync(as().getService(), { instanceOf: ApiCallError });
  t.is(anonymous?.codeName, 'UNAVAILABLE');
  t.like((await store.serviceConfigs.list('bridge'))[0], { params: { agingSeconds: 40, ports: {} }, setBy: 'spiffe://netcube/service/bridge' });
  t.true(lines.some((l) => l.includes('"permission denied"') && l.includes('service/router')), 'refusals are logged');

  // TCP without TLS is refused, by the flags and by the SDK itself.
  t.throws(() => parseFlags(['--listen', '127.0.0.1:7501']), { message: /mutual TLS only/ });
  await t.throwsAsync(startService(bridge, { etcd: etcd.endpoints, replica: 'r2', listen: '127.0.0.1:0', log }), { message: /mutual TLS only/ });

  // The unix socket: 0600, and whoever gets through is the admin.
  const dir = fs.mkdtempSync('/run/nct-svc-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const local = (await startService(bridge, { etcd: etcd.endpoints, replica: 'r3', listen: `unix:${dir}/api.sock`, log })) as RunningService<unknown, unknown>;
  t.teardown(() => local.close());
  t.is(fs.statSync(`${dir}/api.sock`).mode & 0o777, 0o600);
  const owner = ServiceClient.connect({ target: local.endpoint! });
  clients.push(owner);
  t.like(await owner.setConfig({ cube: 'br', config: { agingSeconds: 50 } }), { config: { agingSeconds: 50 } });
});

// The server itself: the unix socket (mode, a stale file), mutual TLS on TCP
// (who may do what: authz.test.ts), health and reflection for generic clients, errors
// mapped to statuses, metrics, and generated code that matches the proto.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { get } from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ApiCallError, NetcubeClient } from '@netcube/api/grpc/client';
import { ApiError, notFound, toStatus } from '@netcube/api/grpc/status';
import { ChainValidationError } from '@netcube/api/chain';
import { Logger } from '@netcube/api/log';
import { ConflictError, StoreUnavailableError } from '@netcube/api/store';
import { DAEMON_STATUS } from '../../node-daemon/src/api/status';
import * as runtime from '../../node-daemon/src/runtime/errors';
import * as store from '@netcube/api/store';
import { NotFoundError } from '@netcube/api/errors';
import { BpfError, BpfMap } from '../../node-daemon/src/bpf';
import { certificates } from '../helpers/certs';
import { startDaemon } from '../helpers/daemon';
import { freePorts, startEtcd } from '../helpers/etcd';
import { createNetns } from '../helpers/netns';

test('the unix socket has mode 0660; a stale socket file is replaced; a live one is not', async (t) => {
  const etcd = await startEtcd(t);
  const netns = await createNetns(t);
  const d = await startDaemon(t, { netns, etcd: etcd.endpoints });
  t.is(fs.statSync(d.socket).mode & 0o777, 0o660);
  t.true(fs.statSync(d.socket).isSocket());

  // kill -9 leaves the socket file behind: the next daemon replaces it.
  await d.kill();
  t.true(fs.existsSync(d.socket));
  await d.restart();
  t.is(fs.statSync(d.socket).mode & 0o777, 0o660);
  const client = d.client();
  t.teardown(() => client.close());
  t.is((await client.getHost()).name, d.name);

  // A second daemon on the same socket refuses to take it over.
  const stranger = net.createServer();
  t.teardown(() => stranger.close());
  const other = path.join(d.root, 'busy.sock');
  await new Promise<void>((r) => stranger.listen(other, r));
  const { NetcubedProcess } = await import('../helpers/daemon.js');
  const err = await t.throwsAsync(NetcubedProcess.start({ netns: await createNetns(t), etcd: etcd.endpoints, args: ['--socket', other] }));
  t.regex(err!.message, /in use by another process/);
});

test('health and reflection answer a generic client', async (t) => {
  const etcd = await startEtcd(t);
  const d = await startDaemon(t, { netns: await createNetns(t), etcd: etcd.endpoints });
  const client = d.client();
  t.teardown(() => client.close());
  t.is(await client.checkHealth(), 'SERVING');
  t.is(await client.checkHealth('netcube.v1.CubeService'), 'SERVING');

  const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto, { keepCase: true })) as any;
  const reflection = new pkg.grpc.reflection.v1.ServerReflection(d.target, grpc.credentials.createInsecure());
  t.teardown(() => reflection.close());
  const ask = (req: object): Promise<any> =>
    new Promise((resolve, reject) => {
      const call = reflection.ServerReflectionInfo();
      call.on('data', (res: unknown) => {
        resolve(res);
        call.end();
      });
      call.on('error', reject);
      call.write(req);
    });
  const services = (await ask({ list_services: '' })).list_services_response.service.map((s: { name: string }) => s.name);
  for (const s of ['netcube.v1.HostService', 'netcube.v1.TypeService', 'netcube.v1.CubeService', 'netcube.v1.TableService', 'netcube.v1.LogService', 'grpc.health.v1.Health'])
    t.true(services.includes(s), `${s} in ${services.join(', ')}`);
  const files = (await ask({ file_containing_symbol: 'netcube.v1.CubeService' })).file_descriptor_response.file_descriptor_proto;
  t.true(files.length > 0);
  t.true(Buffer.concat(files).includes(Buffer.from('ReplaceMicroCube')));
});

test('TCP: mutual TLS; the client checks the server against the CA; every call is counted', async (t) => {
  const etcd = await startEtcd(t);
  const certs = certificates(t);
  // TCP on the test's own loopback: this daemon runs outside any namespace.
  const [metricsPort] = await freePorts(1);
  const mtls = await startDaemon(t, { etcd: etcd.endpoints, listen: '127.0.0.1:0', tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca }, args: ['--metrics', String(metricsPort)] });
  const connect = (target: string, opts: { cert?: string; key?: string; ca?: string } = {}): NetcubeClient => {
    const c = NetcubeClient.connect({ target, tls: { ca: opts.ca ?? certs.ca, cert: opts.cert ?? certs.clientCert, key: opts.key ?? certs.clientKey }, timeoutMs: 5_000 });
    t.teardown(() => c.close());
    return c;
  };
  t.regex(mtls.tcpEndpoint!, /^127\.0\.0\.1:\d+$/);
  t.is((await connect(mtls.tcpEndpoint!).getHost()).name, mtls.name);
  t.true((await connect(mtls.tcpEndpoint!).getHost()).endpoints.includes(mtls.tcpEndpoint!));
  // A client that does not trust the server's CA gives up (anonymous and foreign clients: authz.test.ts).
  const untrusting = await t.throwsAsync(connect(mtls.tcpEndpoint!, { ca: certs.strangerCert }).getHost(), { instanceOf: ApiCallError });
  t.is(untrusting?.codeName, 'UNAVAILABLE');

  // Every call is counted, by method and status; metrics are on 127.0.0.1 when no address is given.
  await t.throwsAsync(connect(mtls.tcpEndpoint!).getCube({ name: 'nope' }));
  const metrics = await new Promise<string>((resolve, reject) =>
    get(`http://127.0.0.1:${metricsPort}/metrics`, (res) => {
      let body = '';
      res.on('data', (c) => (body += c)).on('end', () => resolve(body));
    }).on('error', reject),
  );
  t.regex(metrics, /netcube_grpc_requests_total\{method="GetHost",code="OK"\} [1-9]/);
  t.regex(metrics, /netcube_grpc_requests_total\{method="GetCube",code="NOT_FOUND"\} 1/);
});

test('errors map to statuses; unexpected ones become INTERNAL with a reference, details only in the log', (t) => {
  const lines: string[] = [];
  const log = new Logger('debug', {}, (l) => lines.push(l));
  const s = (err: unknown) => toStatus(err, log, 'Test', DAEMON_STATUS);
  t.like(s(new runtime.InvalidArgumentError('ports', 'bad port')), { code: grpc.status.INVALID_ARGUMENT, details: 'ports: bad port' });
  t.is(s(new runtime.InvalidArgumentError('ports', 'bad port')).metadata.get('netcube-field')[0], 'ports');
  t.like(s(new runtime.NotFoundError('no cube x')), { code: grpc.status.NOT_FOUND });
  t.like(s(new runtime.AlreadyExistsError('x exists')), { code: grpc.status.ALREADY_EXISTS });
  t.like(s(new runtime.FailedPreconditionError('loop')), { code: grpc.status.FAILED_PRECONDITION });
  t.like(s(new StoreUnavailableError('etcd down')), { code: grpc.status.UNAVAILABLE, details: 'etcd down' });
  t.like(s(new ConflictError('changed')), { code: grpc.status.ABORTED });
  t.like(s(new ChainValidationError('c', [{ path: 'spec.links[0].to', message: 'unknown cube x' }, { path: 'spec', message: 'too long' }])), {
    code: grpc.status.INVALID_ARGUMENT,
    details: 'spec.links[0].to: unknown cube x; spec: too long',
  });
  t.like(s(new ApiError(grpc.status.ABORTED, 'again')), { code: grpc.status.ABORTED, details: 'again' });
  t.is(lines.length, 0);
  const internal = s(new TypeError('secret detail at /some/path'));
  t.is(internal.code, grpc.status.INTERNAL);
  t.false(internal.details.includes('secret'));
  const ref = /reference ([0-9a-f]{8})/.exec(internal.details)?.[1];
  t.truthy(ref);
  t.is(lines.length, 1);
  t.true(lines[0].includes('secret detail') && lines[0].includes(ref!));
});

test('"not found" is one kind: the store\'s, the runtime\'s, the kernel\'s and a handler\'s pass one instanceof; the kernel\'s keeps its errno and its status', (t) => {
  const log = new Logger('debug', {}, () => {});
  const fromStore = new store.NotFoundError('no chain x');
  const fromRuntime = new runtime.NotFoundError('no cube x on this host');
  const fromKernel = t.throws(() => BpfMap.openPinned(`/nonexistent-${process.pid}/map`));
  const fromHandler = notFound('no chain has a cube named x');
  for (const err of [fromStore, fromRuntime, fromKernel, fromHandler]) t.true(err instanceof NotFoundError, String(err));
  t.like(toStatus(fromHandler, log, 'Test', DAEMON_STATUS), { code: grpc.status.NOT_FOUND, details: 'no chain has a cube named x' });
  t.false(new TypeError('x') instanceof NotFoundError);
  t.false(new store.ConflictError('x') instanceof NotFoundError);
  t.is((fromKernel as BpfError).code, 'ENOENT');
  t.is(toStatus(fromStore, log, 'Test', DAEMON_STATUS).code, grpc.status.NOT_FOUND);
  t.is(toStatus(fromRuntime, log, 'Test', DAEMON_STATUS).code, grpc.status.NOT_FOUND);
  // A kernel object gone is the daemon's problem, not the caller's: as before, INTERNAL.
  t.is(toStatus(fromKernel, log, 'Test', DAEMON_STATUS).code, grpc.status.INTERNAL);
});

test('the generated types match the proto', (t) => {
  const script = path.resolve(__dirname, '../../../../proto/generate.js');
  t.notThrows(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' }));
});

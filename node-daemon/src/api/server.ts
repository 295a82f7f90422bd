// The gRPC server of netcubed: the netcube.v1 services on a unix socket (mode
// 0660, for local tools; peers told apart by SO_PEERCRED, peer.ts) and, when
// asked, on TCP with mutual TLS only (every peer presents a certificate of the
// cluster's CA); every call authorized by its caller's identity (authz.ts); plus
// grpc.health.v1 and server reflection, so generic clients (grpcurl,
// grpc_health_probe) can check and explore the API.
//
// Health and reflection come from the grpc-node team's own packages
// (grpc-health-check, @grpc/reflection): the standard implementations of those
// protocols for grpc-js, maintained with it.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { addService, Calls, rpcAdapters } from '@netcube/api/grpc/call';
import { SERVER_LIMITS } from '@netcube/api/grpc/limits';
import { tlsIdentity, unauthenticated } from '@netcube/api/grpc/identity';
import { LOADER_OPTIONS, loadApi, SERVICES } from '@netcube/api/grpc/proto';
import { Authorizer } from './authz';
import { captureService } from './capture';
import { ApiContext, ApiOptions, ApiServer } from './context';
import { cubeService } from './cubes';
import { hostService } from './host';
import { logService } from './logs';
import { UnixListener } from './peer';
import { tableService } from './tables';
import { slowPathService } from './slowpath';
import { DAEMON_STATUS } from './status';
import { typeService } from './types';

export async function startApi(ctx: ApiContext, opts: ApiOptions): Promise<ApiServer> {
  const { definition, api } = loadApi();
  const server = new grpc.Server({ ...SERVER_LIMITS });
  const calls = new Calls();
  const authz = new Authorizer(ctx, opts.viewerGid);
  let unix: UnixListener | undefined;
  const rpc = rpcAdapters(
    {
      ...DAEMON_STATUS,
      log: ctx.log,
      countRpc: (method, code) => ctx.metrics.countRpc(method, code),
      identify: (call) => {
        const peer = unix?.peerOf(call);
        return tlsIdentity(call) ?? (peer ? authz.unixIdentity(peer) : unauthenticated(call));
      },
      authorize: (method, request, call) => authz.authorize(method, request, call),
      admit: (method, signal) => ctx.heavy.acquire(method, signal),
    },
    calls,
  );
  const endpoints: string[] = [];

  const v1 = api.netcube.v1;
  addService(server, v1.HostService.service, hostService(ctx, rpc, () => [...endpoints]));
  addService(server, v1.TypeService.service, typeService(ctx, rpc));
  addService(server, v1.CubeService.service, cubeService(ctx, rpc));
  addService(server, v1.TableService.service, tableService(ctx, rpc), { deferred: ['PutEntries'] });
  addService(server, v1.LogService.service, logService(ctx, rpc));
  addService(server, v1.SlowPathService.service, slowPathService(ctx, rpc, authz));
  addService(server, v1.CaptureService.service, captureService(ctx, rpc));

  const health = new HealthImplementation(Object.fromEntries(['', ...SERVICES].map((s) => [s, 'SERVING' as const])));
  health.addToServer(server);
  const healthDefinition = protoLoader.loadSync(healthProtoPath, LOADER_OPTIONS);
  addReflection(server, { ...definition, ...healthDefinition });

  try {
    unix = await listenUnixSocket(server, opts.socket, opts.viewerGid);
    endpoints.push(`unix:${opts.socket}`);
    if (opts.listen) endpoints.push(await bindTls(server, opts.listen, opts.tls));
  } catch (err) {
    server.forceShutdown();
    await unix?.close();
    if (unix) fs.rmSync(opts.socket, { force: true });
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    endpoints,
    close: () =>
      (closing ??= (async () => {
        for (const s of ['', ...SERVICES]) health.setStatus(s, 'NOT_SERVING');
        calls.abortAll();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 5_000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await unix?.close();
        fs.rmSync(opts.socket, { force: true });
      })()),
  };
}

type Services = Map<string, { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }>;

/** The services a ReflectionService would add to a server, by the path of their (one) method. */
function reflectionServices(reflection: ReflectionService): Services {
  const out: Services = new Map();
  const collector = {
    addService: (definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) =>
      out.set(Object.values(definition)[0].path, { definition, implementation }),
  };
  reflection.addToServer(collector as unknown as grpc.Server);
  return out;
}

/**
 * Server reflection for `pkg`, built on its first call: building it decodes every
 * descriptor of the API, a good part of a second of CPU on a small machine, which a
 * starting daemon on its way to its data plane should not spend. The services are
 * there from the start (an empty package gives the same definitions, cheaply).
 */
function addReflection(server: grpc.Server, pkg: protoLoader.PackageDefinition): void {
  let real: Services | undefined;
  for (const [key, { definition }] of reflectionServices(new ReflectionService({}))) {
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of Object.keys(definition)) {
      implementation[method] = (...args: unknown[]) => {
        real ??= reflectionServices(new ReflectionService(pkg));
        return (real.get(key)!.implementation[method] as (...a: unknown[]) => unknown)(...args);
      };
    }
    server.addService(definition, implementation);
  }
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port))));
}

/**
 * Listens on the socket under a temporary name, gives it mode 0660 (group: the
 * viewer group, else root's), then renames it into place: nobody can connect to it
 * while it has the mode the umask gave it. A socket file left by a daemon that died
 * is removed; one a live process answers on is not.
 */
async function listenUnixSocket(server: grpc.Server, socket: string, viewerGid: number | undefined): Promise<UnixListener> {
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  const existing = fs.lstatSync(socket, { throwIfNoEntry: false });
  if (existing) {
    if (!existing.isSocket()) throw new Error(`${socket} exists and is not a socket: remove it or choose another --socket`);
    if (await answers(socket)) throw new Error(`${socket} is in use by another process (a netcubed already running?)`);
    fs.rmSync(socket);
  }
  const tmp = path.join(path.dirname(socket), `.netcubed-${process.pid}.sock`);
  fs.rmSync(tmp, { force: true });
  const listener = await UnixListener.listen(server, tmp);
  try {
    fs.chownSync(tmp, 0, viewerGid ?? 0);
    fs.chmodSync(tmp, 0o660);
    fs.renameSync(tmp, socket);
  } catch (err) {
    await listener.close();
    throw err;
  }
  return listener;
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(socket);
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
}

async function bindTls(server: grpc.Server, listen: string, tls: ApiOptions['tls']): Promise<string> {
  if (!tls?.ca) throw new Error(`TCP (${listen}) is served with mutual TLS only: give a certificate, its key and the CA of the clients' certificates`);
  const read = (file: string, what: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the TLS ${what} ${file}: ${(err as Error).message}`);
    }
  };
  const credentials = grpc.ServerCredentials.createSsl(read(tls.ca, 'CA'), [{ cert_chain: read(tls.cert, 'certificate'), private_key: read(tls.key, 'key') }], true);
  const port = await bind(server, listen, credentials);
  return `${listen.slice(0, listen.lastIndexOf(':'))}:${port}`;
}

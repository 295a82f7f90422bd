// The config API a service serves (netcube.service.v1.ServiceConfig; see
// proto/netcube/service/v1/service.proto). Config lives in etcd: a cube's params in
// its chain, unless SetConfig gave it another, kept under the service's own keys
// (@netcube/api's store/service-config.ts). Any replica answers those; GetState
// needs the leader's connections.
//
// Over TCP, mutual TLS only, and every call authorized by the caller's identity
// (@netcube/api's grpc/identity.ts): the admin does everything, a viewer and this
// service's own identity read, the admin and this service's identity SetConfig. On
// a unix socket (mode 0600: this process's user, or root) the caller is the admin.
//
// Handlers are plain async functions through netcubed's own call plumbing
// (@netcube/api/grpc/call): they throw a kind of @netcube/api/errors (notFound,
// failedPrecondition ...) or an ApiError where they know the status; config
// problems become INVALID_ARGUMENT naming the field, store errors their own status,
// anything else INTERNAL with a reference to the log line.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { CubeSpec, JsonObject } from '@netcube/api/chain';
import { addService, Calls, rpcAdapters, type CallContext, type Rpc } from '@netcube/api/grpc/call';
import { jsonToStruct, structToJson } from '@netcube/api/grpc/convert';
import { Identity, isServiceOf, tlsIdentity, unauthenticated } from '@netcube/api/grpc/identity';
import { ApiError, failedPrecondition, invalidArgument, notFound } from '@netcube/api/grpc/status';
import type { Logger } from '@netcube/api/log';
import { ConflictError, effectiveConfig, type Store, type StoredChain, type StoredServiceConfig } from '@netcube/api/store';
import type { CubeConfig } from '@netcube/api/generated/netcube/service/v1/CubeConfig';
import type { CubeSummary } from '@netcube/api/generated/netcube/service/v1/CubeSummary';
import type { HostConnection } from '@netcube/api/generated/netcube/service/v1/HostConnection';
import type { ServiceConfigHandlers } from '@netcube/api/generated/netcube/service/v1/ServiceConfig';
import type { ServiceInfo } from '@netcube/api/generated/netcube/service/v1/ServiceInfo';
import { ConfigError } from './config';
import type { Controller } from './controller';
import type { LeaderElection } from './election';
import type { TlsFiles } from './host-link';
import { loadServiceApi } from './proto';
import type { CubeInfo, ServiceDefinition } from './service';
import { SERVER_LIMITS } from '@netcube/api/grpc/limits';

const { status } = grpc;

export interface ConfigApiContext<C, S> {
  service: ServiceDefinition<C, S>;
  replica: string;
  store: Store;
  election: LeaderElection;
  /** The controller while this replica leads. */
  controller(): Controller<C, S> | undefined;
  /** Schema and the service's checks (throws ConfigError). */
  validate(params: unknown, cube: CubeInfo): C;
  log: Logger;
}

export interface ConfigApiServer {
  /** host:port it listens on (the real port when asked for 0). */
  endpoint: string;
  close(): Promise<void>;
}

/** Who on the unix socket: its mode (0600) lets only this process's user and root connect. */
const SOCKET_OWNER: Identity = { name: "the unix socket's owner (this service's user, or root)", role: 'admin' };

/**
 * Serves the config API on `listen`: host:port with mutual TLS (the service's
 * certificate and key, and the CA of its clients'), or unix:/path (mode 0600, for
 * tools of the same user on the same machine, never TLS).
 */
export async function serveConfigApi<C, S>(ctx: ConfigApiContext<C, S>, listen: string, tls?: TlsFiles): Promise<ConfigApiServer> {
  const { api } = loadServiceApi();
  const unix = listen.startsWith('unix:');
  if (!unix && !(tls?.cert && tls.key && tls.ca))
    throw new Error(`--listen ${listen}: the config API is served over TCP with mutual TLS only: give --tls-cert, --tls-key and --tls-ca, or listen on unix:/path`);
  const server = new grpc.Server({ ...SERVER_LIMITS });
  const calls = new Calls();
  const rpc = rpcAdapters(
    {
      server: `service ${ctx.service.type}`,
      classify: configErrors,
      log: ctx.log,
      identify: (call) => tlsIdentity(call) ?? (unix ? SOCKET_OWNER : unauthenticated(call)),
      authorize: (method, _request, call) => authorize(ctx, method, call),
    },
    calls,
  );
  addService(server, api.netcube.service.v1.ServiceConfig.service, handlers(ctx, rpc));
  const credentials = unix
    ? grpc.ServerCredentials.createInsecure()
    : grpc.ServerCredentials.createSsl(fs.readFileSync(tls!.ca!), [{ cert_chain: fs.readFileSync(tls!.cert!), private_key: fs.readFileSync(tls!.key!) }], true);
  const socket = unix ? listen.slice('unix:'.length) : undefined;
  if (socket) fs.rmSync(socket, { force: true });
  // Under a temporary name until it has its mode: nobody connects before.
  const bound = socket ? `unix:${path.join(path.dirname(socket), `.${path.basename(socket)}.${process.pid}`)}` : listen;
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(bound, credentials, (err, p) => (err ? reject(err) : resolve(p))));
  if (socket) {
    const tmp = bound.slice('unix:'.length);
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, socket);
  }
  const host = listen.slice(0, listen.lastIndexOf(':'));
  return {
    endpoint: unix ? listen : `${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        calls.abortAll();
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 3_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

/** Reads: the admin, viewers, this service; SetConfig: the admin and this service. */
function authorize<C, S>(ctx: ConfigApiContext<C, S>, method: string, call: CallContext): void {
  const { identity } = call;
  const own = isServiceOf(identity, ctx.service.type);
  const allowed = identity.role === 'admin' || own || (identity.role === 'viewer' && method !== 'SetConfig');
  if (allowed) return;
  const why = identity.role === 'viewer' ? 'a viewer only reads' : identity.role ? `only the admin, viewers and the ${ctx.service.type} service may` : 'it has no netcube identity';
  ctx.log.warn('permission denied', { method, identity: identity.name, reason: why });
  throw new ApiError(status.PERMISSION_DENIED, `${identity.name} may not call ${method} of the ${ctx.service.type} service: ${why}`);
}

/** A config that does not fit is about the request's `config` field. */
function configErrors(err: unknown): ApiError | undefined {
  if (!(err instanceof ConfigError)) return undefined;
  const e = err.under('config');
  return invalidArgument(e.field, e.problem);
}

function cubeName(value: string | undefined): string {
  if (!value) throw invalidArgument('cube', 'give the cube name');
  return value;
}

/** The cube of the service's type named `name`, in the chains as they are now. */
function findCube(chains: StoredChain[], type: string, name: string): { stored: StoredChain; spec: CubeSpec } {
  for (const stored of chains) {
    const spec = stored.chain.spec.cubes.find((c) => c.name === name);
    if (spec) {
      if (spec.type !== type) throw notFound(`cube ${name} (chain ${stored.name}) is of type ${spec.type}; this service controls ${type} cubes`);
      return { stored, spec };
    }
  }
  throw notFound(`no chain has a cube named ${name}`);
}

const infoOf = (stored: StoredChain, spec: CubeSpec): CubeInfo => ({ name: spec.name, host: spec.host, chain: stored.name, mode: spec.mode, portNames: spec.ports, chainSpec: stored.chain.spec });

function handlers<C, S>(ctx: ConfigApiContext<C, S>, rpc: Rpc): ServiceConfigHandlers {
  const { type } = ctx.service;
  /**
   * The chains, and the config this service holds by cube, read together; and the
   * revision of each cube's held config that cannot be read (it stands for nothing,
   * and SetConfig replaces it).
   */
  const read = async (): Promise<{ chains: StoredChain[]; held: Map<string, StoredServiceConfig>; unreadable: Map<string, number> }> => {
    const [chains, held] = await Promise.all([ctx.store.chains.list(), ctx.store.serviceConfigs.listWithBroken(type)]);
    return { chains, held: new Map(held.values.map((h) => [h.cube, h])), unreadable: new Map(held.broken.map((b) => [b.name, b.revision])) };
  };
  /** A cube's config as it stands: the chain's params or SetConfig's, and the revision of that. */
  const current = (stored: StoredChain, spec: CubeSpec, held: StoredServiceConfig | undefined) => {
    const c = effectiveConfig(spec.params, held, stored.name);
    return { ...c, revision: c.revision ?? stored.revision };
  };
  const configMessage = (stored: StoredChain, spec: CubeSpec, config: unknown, source: string, revision: number): CubeConfig => ({
    cube: spec.name,
    config: jsonToStruct(config as JsonObject),
    chain: stored.name,
    chainVersion: stored.version,
    source,
    revision: String(revision),
  });

  return {
    GetService: rpc.unary('GetService', async () => {
      const ctl = ctx.controller();
      const leader = ctx.election.leader;
      const hosts: HostConnection[] = ctl
        ? [...ctl.links.values()].map((l) => ({
            host: l.host,
            endpoint: l.endpoint,
            connected: l.connected,
            connects: l.stats.connects,
            resyncs: l.stats.resyncs,
            packetsIn: l.stats.packetsIn,
            packetsOut: l.stats.packetsOut,
            lastError: l.stats.lastError,
            exactClock: l.clock.exact,
            packetOutsDropped: l.stats.packetOutsDropped,
          }))
        : [];
      const info: ServiceInfo = {
        type,
        replica: ctx.replica,
        leader: ctx.election.isLeader,
        leaderReplica: leader?.replica ?? '',
        leaderEndpoint: leader?.endpoint ?? '',
        hosts,
      };
      return info;
    }),

    ListCubes: rpc.unary('ListCubes', async () => {
      const ctl = ctx.controller();
      const cubes: CubeSummary[] = [];
      const { chains, held } = await read();
      for (const stored of chains) {
        for (const spec of stored.chain.spec.cubes.filter((c) => c.type === type)) {
          const managed = ctl?.cubes.get(spec.name);
          let problem = managed?.problem ?? '';
          if (!ctl) {
            try {
              ctx.validate(current(stored, spec, held.get(spec.name)).params, infoOf(stored, spec));
            } catch (err) {
              problem = `invalid config: ${(err as Error).message}`;
            }
          }
          cubes.push({ name: spec.name, host: spec.host, chain: stored.name, mode: spec.mode, ports: spec.ports, ready: managed?.ready ?? false, problem });
        }
      }
      return { cubes: cubes.sort((a, b) => (a.name! < b.name! ? -1 : 1)) };
    }),

    GetConfig: rpc.unary('GetConfig', async (req) => {
      const { chains, held } = await read();
      const { stored, spec } = findCube(chains, type, cubeName(req.cube));
      const now = current(stored, spec, held.get(spec.name));
      let config: C;
      try {
        config = ctx.validate(now.params, infoOf(stored, spec));
      } catch (err) {
        throw failedPrecondition(`the params of cube ${spec.name} in chain ${stored.name} (version ${stored.version}) are invalid: ${(err as Error).message}; set a valid config with SetConfig`);
      }
      return configMessage(stored, spec, config, now.source, now.revision);
    }),

    SetConfig: rpc.unary('SetConfig', async (req, call) => {
      const name = cubeName(req.cube);
      const params = structToJson(req.config, { field: 'config' });
      const expected = Number(req.expectedRevision ?? 0);
      for (let round = 1; ; round++) {
        const { chains, held, unreadable } = await read();
        const { stored, spec } = findCube(chains, type, name);
        const config = ctx.validate(params, infoOf(stored, spec));
        const now = current(stored, spec, held.get(name));
        if (expected && expected !== now.revision) {
          throw new ApiError(status.ABORTED, `the config of cube ${name} changed since revision ${expected} (it is at ${now.revision} now): read it again and redo the change`);
        }
        if (req.validateOnly) return configMessage(stored, spec, config, now.source, now.revision);
        try {
          const set = await ctx.store.serviceConfigs.put(type, name, stored, config as JsonObject, held.get(name)?.revision ?? unreadable.get(name) ?? 0, call.identity.name);
          ctx.log.info('config set', { cube: name, chain: stored.name, revision: set.revision, by: call.identity.name });
          return configMessage(stored, spec, config, 'service', set.revision);
        } catch (err) {
          // The chain or the config changed in between: read them again, unless the caller pinned a revision.
          if (err instanceof ConflictError && !expected && round < 5) continue;
          throw err;
        }
      }
    }),

    GetState: rpc.unary('GetState', async (req) => {
      const name = cubeName(req.cube);
      const ctl = ctx.controller();
      if (!ctl) {
        const leader = ctx.election.leader;
        throw failedPrecondition(`replica ${ctx.replica} is not the leader${leader ? `; ask ${leader.replica}${leader.endpoint ? ` at ${leader.endpoint}` : ''}` : ' (none is elected now)'}`);
      }
      const cube = ctl.cubes.get(name);
      if (!cube) throw notFound(`no chain has a ${type} cube named ${name}`);
      if (!cube.ready) throw new ApiError(status.UNAVAILABLE, `cube ${name} is not ready: ${cube.problem ?? 'syncing'}`);
      const state = (await ctx.service.describe?.(cube)) ?? {};
      return { cube: name, state: jsonToStruct(JSON.parse(JSON.stringify(state, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) as JsonObject) };
    }),
  };
}

// The config API a service serves (netcube.service.v1.ServiceConfig; see
// proto/netcube/service/v1/service.proto). Config lives in the chains: reads come
// from etcd, SetConfig applies the cube's chain with new params. Any replica
// answers those; GetState needs the leader's connections.
//
// Handlers are plain async functions through netcubed's own call plumbing
// (@netcube/api/grpc/call): they throw ApiError where they know the status; config
// problems become INVALID_ARGUMENT naming the field, store errors their own status,
// anything else INTERNAL with a reference to the log line.

import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Chain, CubeSpec, JsonObject } from '@netcube/api/chain';
import { Calls, rpcAdapters, type Rpc } from '@netcube/api/grpc/call';
import { jsonToStruct, structToJson } from '@netcube/api/grpc/convert';
import { ApiError, invalidArgument } from '@netcube/api/grpc/status';
import type { Logger } from '@netcube/api/log';
import { ConflictError, type Store, type StoredChain } from '@netcube/api/store';
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

/**
 * Serves the config API on `listen`: host:port, with TLS when a certificate and key
 * are given, or unix:/path (for tools on the same machine, never TLS).
 */
export async function serveConfigApi<C, S>(ctx: ConfigApiContext<C, S>, listen: string, tls?: TlsFiles): Promise<ConfigApiServer> {
  const { api } = loadServiceApi();
  const server = new grpc.Server();
  const calls = new Calls();
  const rpc = rpcAdapters({ server: `service ${ctx.service.type}`, classify: configErrors, log: ctx.log }, calls);
  server.addService(api.netcube.service.v1.ServiceConfig.service, handlers(ctx, rpc));
  const unix = listen.startsWith('unix:');
  if (unix) fs.rmSync(listen.slice('unix:'.length), { force: true });
  const credentials =
    !unix && tls?.cert && tls.key
      ? grpc.ServerCredentials.createSsl(tls.ca ? fs.readFileSync(tls.ca) : null, [{ cert_chain: fs.readFileSync(tls.cert), private_key: fs.readFileSync(tls.key) }], tls.ca !== undefined)
      : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, credentials, (err, p) => (err ? reject(err) : resolve(p))));
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
      if (spec.type !== type) throw new ApiError(status.NOT_FOUND, `cube ${name} (chain ${stored.name}) is of type ${spec.type}; this service controls ${type} cubes`);
      return { stored, spec };
    }
  }
  throw new ApiError(status.NOT_FOUND, `no chain has a cube named ${name}`);
}

const infoOf = (stored: StoredChain, spec: CubeSpec): CubeInfo => ({ name: spec.name, host: spec.host, chain: stored.name, mode: spec.mode, portNames: spec.ports, chainSpec: stored.chain.spec });

function handlers<C, S>(ctx: ConfigApiContext<C, S>, rpc: Rpc): ServiceConfigHandlers {
  const { type } = ctx.service;
  const configMessage = (stored: StoredChain, spec: CubeSpec, config: unknown): CubeConfig => ({
    cube: spec.name,
    config: jsonToStruct(config as JsonObject),
    chain: stored.name,
    chainVersion: stored.version,
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
      for (const stored of await ctx.store.chains.list()) {
        for (const spec of stored.chain.spec.cubes.filter((c) => c.type === type)) {
          const managed = ctl?.cubes.get(spec.name);
          let problem = managed?.problem ?? '';
          if (!ctl) {
            try {
              ctx.validate(spec.params, infoOf(stored, spec));
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
      const { stored, spec } = findCube(await ctx.store.chains.list(), type, cubeName(req.cube));
      let config: C;
      try {
        config = ctx.validate(spec.params, infoOf(stored, spec));
      } catch (err) {
        throw new ApiError(status.FAILED_PRECONDITION, `the params of cube ${spec.name} in chain ${stored.name} (version ${stored.version}) are invalid: ${(err as Error).message}; set a valid config with SetConfig`);
      }
      return configMessage(stored, spec, config);
    }),

    SetConfig: rpc.unary('SetConfig', async (req) => {
      const name = cubeName(req.cube);
      const params = structToJson(req.config);
      for (let round = 1; ; round++) {
        const { stored, spec } = findCube(await ctx.store.chains.list(), type, name);
        const config = ctx.validate(params, infoOf(stored, spec));
        if (req.expectedVersion && req.expectedVersion !== stored.version) {
          throw new ApiError(status.ABORTED, `chain ${stored.name} is at version ${stored.version}, not ${req.expectedVersion}: read the config again and redo the change`);
        }
        if (req.validateOnly) return configMessage(stored, spec, config);
        const chain: Chain = structuredClone(stored.chain);
        chain.spec.cubes.find((c) => c.name === name)!.params = config as JsonObject;
        try {
          const res = await ctx.store.chains.apply(chain, { expectedVersion: stored.version });
          ctx.log.info('config set', { cube: name, chain: stored.name, version: res.version });
          return configMessage({ ...stored, version: res.version, revision: res.revision }, spec, config);
        } catch (err) {
          // Someone changed the chain in between: read it again, unless the caller pinned a version.
          if (err instanceof ConflictError && !req.expectedVersion && round < 5) continue;
          throw err;
        }
      }
    }),

    GetState: rpc.unary('GetState', async (req) => {
      const name = cubeName(req.cube);
      const ctl = ctx.controller();
      if (!ctl) {
        const leader = ctx.election.leader;
        throw new ApiError(status.FAILED_PRECONDITION, `replica ${ctx.replica} is not the leader${leader ? `; ask ${leader.replica}${leader.endpoint ? ` at ${leader.endpoint}` : ''}` : ' (none is elected now)'}`);
      }
      const cube = ctl.cubes.get(name);
      if (!cube) throw new ApiError(status.NOT_FOUND, `no chain has a ${type} cube named ${name}`);
      if (!cube.ready) throw new ApiError(status.UNAVAILABLE, `cube ${name} is not ready: ${cube.problem ?? 'syncing'}`);
      const state = (await ctx.service.describe?.(cube)) ?? {};
      return { cube: name, state: jsonToStruct(JSON.parse(JSON.stringify(state, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) as JsonObject) };
    }),
  };
}

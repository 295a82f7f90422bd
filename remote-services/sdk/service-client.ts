// A client of a service's config API (netcube.service.v1.ServiceConfig), for
// tests, tools and other services: one promise-returning method per RPC. Failures
// reject with the same ApiCallError as netcubed's client (code, details, field).
//
//   const svc = ServiceClient.connect({ target: '127.0.0.1:7501', tls: { ca: 'ca.crt', cert: 'admin.crt', key: 'admin.key' } });
//   await svc.setConfig({ cube: 'br0', config: { agingSeconds: 60 } });
//
// Over TCP the API is mutual TLS only: give the cluster's CA and a certificate of it
// (README.md, "Who may do what"); a unix:/path target goes without.

import { channelOf, unaryCall, type CallOptions, type ClientOptions } from '@netcube/api/grpc/client';
import { jsonToStruct, structToJson } from '@netcube/api/grpc/convert';
import type { JsonObject } from '@netcube/api/chain';
import type { CubeSummary__Output } from '@netcube/api/generated/netcube/service/v1/CubeSummary';
import type { ServiceConfigClient } from '@netcube/api/generated/netcube/service/v1/ServiceConfig';
import type { ServiceInfo__Output } from '@netcube/api/generated/netcube/service/v1/ServiceInfo';
import { loadServiceApi } from './proto';

export interface ServiceClientOptions {
  /** host:port (always mutual TLS), or unix:/path (never TLS). */
  target: string;
  /** For TCP: PEM files (paths) or their contents: the cluster's CA, and a certificate of it with its key. */
  tls?: ClientOptions['tls'];
  /** Deadline of each call; default 30 s. */
  timeoutMs?: number;
}

export interface CubeConfigReply {
  cube: string;
  config: JsonObject;
  chain: string;
  chainVersion: number;
  /** `chain`: the cube's params there; `service`: SetConfig's. */
  source: string;
  /** etcd revision of the config's last change (for expectedRevision). */
  revision: number;
}

export class ServiceClient {
  private constructor(
    private readonly client: ServiceConfigClient,
    private readonly timeoutMs: number,
  ) {}

  static connect(opts: ServiceClientOptions): ServiceClient {
    const { api } = loadServiceApi();
    const { credentials, options } = channelOf(opts);
    return new ServiceClient(new api.netcube.service.v1.ServiceConfig(opts.target, credentials, options), opts.timeoutMs ?? 30_000);
  }

  close(): void {
    this.client.close();
  }

  getService(): Promise<ServiceInfo__Output> {
    return this.call('GetService', {});
  }

  async listCubes(): Promise<CubeSummary__Output[]> {
    return (await this.call<{ cubes: CubeSummary__Output[] }>('ListCubes', {})).cubes;
  }

  async getConfig(cube: string): Promise<CubeConfigReply> {
    return configReply(await this.call('GetConfig', { cube }));
  }

  async setConfig(req: { cube: string; config: JsonObject; expectedRevision?: number; validateOnly?: boolean }): Promise<CubeConfigReply> {
    return configReply(await this.call('SetConfig', { ...req, config: jsonToStruct(req.config) }));
  }

  async getState(cube: string): Promise<JsonObject> {
    return structToJson((await this.call<{ state: Parameters<typeof structToJson>[0] }>('GetState', { cube })).state);
  }

  private call<Res>(method: string, req: unknown, opts: CallOptions = {}): Promise<Res> {
    return unaryCall(this.client, method, req, { ...opts, timeoutMs: opts.timeoutMs ?? this.timeoutMs });
  }
}

function configReply(res: { cube: string; config: Parameters<typeof structToJson>[0]; chain: string; chainVersion: number; source: string; revision: string }): CubeConfigReply {
  return { cube: res.cube, config: structToJson(res.config), chain: res.chain, chainVersion: res.chainVersion, source: res.source, revision: Number(res.revision) };
}

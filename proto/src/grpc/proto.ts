// The netcube.v1 API definition as the server and the client load it: one .proto
// (proto/netcube/v1/daemon.proto at the repository root) read at run time with one
// set of loader options, which the generated types (./generated) mirror.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as DaemonApi } from './generated/daemon';
import type { ProtoGrpcType as SlowPathApi } from './generated/slowpath';

export type ProtoGrpcType = DaemonApi & SlowPathApi;

/** Keep in step with proto/generate.js. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  // 64-bit counters exactly, as decimal strings.
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const PROTO_FILE = 'netcube/v1/daemon.proto';
export const PROTO_FILES = [PROTO_FILE, 'netcube/v1/slowpath.proto'];

/**
 * The proto/ directory: found upwards from this file, so it works from the sources
 * (node-daemon/src/api) and from the build (build/js/node-daemon/src/api) alike.
 */
export function protoDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'proto');
    if (fs.existsSync(path.join(candidate, PROTO_FILE))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`cannot find proto/${PROTO_FILE} above ${__dirname}`);
  }
}

let cached: { definition: protoLoader.PackageDefinition; api: ProtoGrpcType } | undefined;

/** The package definition and the loaded services, read once per process. */
export function loadApi(): { definition: protoLoader.PackageDefinition; api: ProtoGrpcType } {
  if (!cached) {
    const definition = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
    cached = { definition, api: grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType };
  }
  return cached;
}

/** The service names, fully qualified, as health checks and reflection list them. */
export const SERVICES = ['HostService', 'TypeService', 'CubeService', 'TableService', 'LogService', 'SlowPathService'].map((s) => `netcube.v1.${s}`);

/** The trailing metadata key that names the faulty field of an INVALID_ARGUMENT. */
export const FIELD_METADATA_KEY = 'netcube-field';

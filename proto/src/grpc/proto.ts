// The netcube.v1 API definition as the server and the client load it: the .proto
// files of this package (proto/netcube/v1/) read at run time with one set of loader
// options, which the generated types (../generated) mirror.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as DaemonApi } from '../generated/daemon';
import type { ProtoGrpcType as SlowPathApi } from '../generated/slowpath';
import type { ProtoGrpcType as CaptureApi } from '../generated/capture';

export type ProtoGrpcType = DaemonApi & SlowPathApi & CaptureApi;

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
export const PROTO_FILES = [PROTO_FILE, 'netcube/v1/slowpath.proto', 'netcube/v1/capture.proto'];

/**
 * The directory of the .proto files: this package's root, which holds them (proto/ in
 * the repository, node_modules/@netcube/api where the package is installed).
 */
export function protoDir(): string {
  const dir = path.resolve(__dirname, '..', '..');
  if (!fs.existsSync(path.join(dir, PROTO_FILE))) throw new Error(`${PROTO_FILE} is missing from ${dir}: the @netcube/api package is incomplete, install it again`);
  return dir;
}

export interface LoadedApi<T> {
  definition: protoLoader.PackageDefinition;
  api: T;
}

/** A loader of `files` (.proto files of this package) that reads them once per process, with LOADER_OPTIONS. */
export function protoLoaderOf<T>(files: string[]): () => LoadedApi<T> {
  let cached: LoadedApi<T> | undefined;
  return () => {
    if (!cached) {
      const definition = protoLoader.loadSync(files, { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
      cached = { definition, api: grpc.loadPackageDefinition(definition) as unknown as T };
    }
    return cached;
  };
}

/** netcubed's API: the package definition and the loaded services, read once per process. */
export const loadApi = protoLoaderOf<ProtoGrpcType>(PROTO_FILES);

/** The service names, fully qualified, as health checks and reflection list them. */
export const SERVICES = ['HostService', 'TypeService', 'CubeService', 'TableService', 'LogService', 'SlowPathService', 'CaptureService'].map((s) => `netcube.v1.${s}`);

/** The trailing metadata key that names the faulty field of an INVALID_ARGUMENT. */
export const FIELD_METADATA_KEY = 'netcube-field';

// The generic config API of remote services (proto/netcube/service/v1/service.proto)
// as the server and the client load it, with the loader options netcubed's own
// API uses (the generated types in remote-services/generated mirror them).

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, protoDir } from '@netcube/api/grpc/proto';
import type { ProtoGrpcType } from '@netcube/api/generated/service';

export const SERVICE_PROTO = 'netcube/service/v1/service.proto';

let cached: { definition: protoLoader.PackageDefinition; api: ProtoGrpcType } | undefined;

export function loadServiceApi(): { definition: protoLoader.PackageDefinition; api: ProtoGrpcType } {
  if (!cached) {
    const definition = protoLoader.loadSync(SERVICE_PROTO, { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
    cached = { definition, api: grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType };
  }
  return cached;
}

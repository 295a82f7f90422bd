// The generic config API of remote services (proto/netcube/service/v1/service.proto)
// as the server and the client load it, with the loader options netcubed's own
// API uses (the generated types in @netcube/api/generated mirror them).

import type { ProtoGrpcType } from '@netcube/api/generated/service';
import { protoLoaderOf } from '@netcube/api/grpc/proto';

export const SERVICE_PROTO = 'netcube/service/v1/service.proto';

export const loadServiceApi = protoLoaderOf<ProtoGrpcType>([SERVICE_PROTO]);

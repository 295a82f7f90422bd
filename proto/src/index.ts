// @netcube/api: netcube's API, v1, for every process that talks to a netcube cluster
// (netcubed, netcubectl, remote services): the chain format, the etcd store, the
// netcubed client, logging. Nothing here loads native code. Deeper modules by path:
// @netcube/api/generated/... (the messages), @netcube/api/grpc/{proto,call,status,
// convert}, @netcube/api/btf (table entries as JSON), @netcube/api/names (the name
// grammar), @netcube/api/errors (the kinds of failure, each with its gRPC status).
export * from './chain';
export * from './store';
export { Logger, LEVELS, type Level, type Fields } from './log';
export { Backoff } from './store/retry';
export { NetcubeClient, ApiCallError, type ClientOptions, type CallOptions, type SlowPathStream, type HealthStatus } from './grpc/client';
export { ApiError } from './grpc/status';

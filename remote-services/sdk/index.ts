// The SDK of netcube's remote services: a service is a cube type, a config
// message, the tables it derives from config and handlers for its slow path;
// run() does the rest (etcd, daemons, leader election, resync, config API).
// See remote-services/README.md for a walk-through.

export { defineService } from './service';
export type { Cube, CubeInfo, CubeMode, PacketDirection, PacketIn, Port, ServiceDefinition, StaticTables } from './service';
export { run, startService, parseFlags, usage, type RunningService, type ServiceOptions } from './run';
export { ConfigError, ConfigSchema } from './config';
export { HostClock, type ClockSource } from './clock';
export { Table, type TableEntry } from './tables';
export { ServiceClient, type CubeConfigReply, type ServiceClientOptions } from './service-client';
export * as codec from './codec';

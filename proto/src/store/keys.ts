// The etcd key layout of netcube. Every key the cluster writes is built here, so the
// layout can be read in one place:
//
//   /netcube/v1/chains/<name>                         current chain: {version, appliedAt, chain}
//   /netcube/v1/chain-history/<name>/<0000000007>     every applied version and deletion
//   /netcube/v1/hosts/<host>                          host registration, under the host's lease
//   /netcube/v1/status/<host>/<cube>                  what a host observed applying a cube
//   /netcube/v1/types/<name>                          registered cube types with their ELF objects
//   /netcube/v1/objects/<sha256>                      ELF objects of replaced micro-cubes, by content
//   /netcube/v1/services/<type>/...                   owned by each type's remote service:
//   /netcube/v1/services/<type>/leader/...            its leader election
//   /netcube/v1/services/<type>/config/<cube>         config SetConfig gave a cube of the type
//   /netcube/v1/pods/<host>/<netdev>                  a pod's port on a host: the veth a CNI plugin made
//                                                     there, for the controller that places pods in chains

export const ROOT = '/netcube/v1/';
export const CHAINS_PREFIX = `${ROOT}chains/`;
export const CHAIN_HISTORY_PREFIX = `${ROOT}chain-history/`;
export const HOSTS_PREFIX = `${ROOT}hosts/`;
export const STATUS_PREFIX = `${ROOT}status/`;
export const TYPES_PREFIX = `${ROOT}types/`;
export const SERVICES_PREFIX = `${ROOT}services/`;
export const OBJECTS_PREFIX = `${ROOT}objects/`;
export const PODS_PREFIX = `${ROOT}pods/`;

// Versions are zero-padded so that etcd's key order is version order.
const VERSION_DIGITS = 10;
export const MAX_VERSION = 10 ** VERSION_DIGITS - 1;

/** Names become key segments: one that held '/' would alias another key. */
function segment(value: string, argument: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.includes('/')) {
    throw new RangeError(`${argument} must be a non-empty string without '/', got ${JSON.stringify(value)}`);
  }
  return value;
}

export function chainKey(name: string): string {
  return CHAINS_PREFIX + segment(name, 'name');
}

export function chainHistoryPrefix(name: string): string {
  return `${CHAIN_HISTORY_PREFIX}${segment(name, 'name')}/`;
}

export function chainHistoryKey(name: string, version: number): string {
  if (!Number.isInteger(version) || version < 1 || version > MAX_VERSION) {
    throw new RangeError(`version must be an integer from 1 to ${MAX_VERSION}, got ${version}`);
  }
  return chainHistoryPrefix(name) + String(version).padStart(VERSION_DIGITS, '0');
}

export function hostKey(host: string): string {
  return HOSTS_PREFIX + segment(host, 'host');
}

export function statusKey(host: string, cube: string): string {
  return `${STATUS_PREFIX}${segment(host, 'host')}/${segment(cube, 'cube')}`;
}

export function typeKey(name: string): string {
  return TYPES_PREFIX + segment(name, 'name');
}

/** Where the remote service of a cube type keeps its config, leader election and controllers. */
export function servicePrefix(type: string): string {
  return `${SERVICES_PREFIX}${segment(type, 'type')}/`;
}

/** Where the config a service's SetConfig gave its cubes is kept. */
export function serviceConfigPrefix(type: string): string {
  return `${servicePrefix(type)}config/`;
}

export function serviceConfigKey(type: string, cube: string): string {
  return serviceConfigPrefix(type) + segment(cube, 'cube');
}

/** An ELF object stored by its content (replaced micro-cubes name them in chains). */
export function objectKey(sha256: string): string {
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) {
    throw new RangeError(`sha256 must be 64 lower-case hex digits, got ${JSON.stringify(sha256)}`);
  }
  return OBJECTS_PREFIX + sha256;
}

/** The pod ports of one host (store/pod-ports.ts): written by that host's identity only. */
export function podPortsPrefix(host: string): string {
  return `${PODS_PREFIX}${segment(host, 'host')}/`;
}

export function podPortKey(host: string, netdev: string): string {
  return podPortsPrefix(host) + segment(netdev, 'netdev');
}

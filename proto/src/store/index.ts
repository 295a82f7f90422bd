// netcube's desired state in etcd: chains with their history, host leases, status, cube types.
export { Store, StoreOptions } from './store';
export { etcdEndpoints, type EtcdTls } from './etcd';
export * from './errors';
export * from './keys';
export { RetryPolicy, RetryEvent, RetryListener, DEFAULT_RETRY } from './retry';
export {
  StoredChain,
  ChainHistoryEntry,
  HostRegistration,
  RegisteredHost,
  CubeState,
  CUBE_STATES,
  CubeStatus,
  CubeStatusEntry,
  CubeObjects,
  RegisteredCubeType,
  BrokenRecord,
  Decoded,
  MAX_UNPACKED_OBJECT_BYTES,
} from './records';
export { Chains, ApplyOptions, ApplyResult, ChainWatch } from './chains';
export { Hosts, HostLease, HostLeaseState, HostLeaseEvents, HostWatch } from './hosts';
export { Lease, LeaseEvents, LeaseOptions, LeaseState } from './lease';
export { Status, StatusUpdate, WaitOptions, WaitProgress, WaitResult } from './status';
export { CubeTypes, CubeTypeUpload } from './cube-types';
export { Objects, objectDigest } from './objects';
export { ServiceConfigs, ServiceConfigValue, StoredServiceConfig, ServiceConfigWatch, paramsDigest, effectiveConfig } from './service-config';
export { PrefixWatch, PrefixWatchEvents, WatchPut, WatchDelete, WatchState } from './watch';
export { PodPorts, PodPortValue, StoredPodPort, PodPortWatch, podPortProblem } from './pod-ports';

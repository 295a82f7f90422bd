// What the gRPC handlers work with: the daemon's parts, nothing more.

import { Store } from '@netcube/api/store';
import { Logger } from '@netcube/api/log';
import { DataPlaneLogs } from '../runtime/logs';
import { Runtime } from '../runtime/runtime';
import { Metrics } from '../daemon/metrics';
import { Reconciler } from '../daemon/reconciler';
import { SlowPath } from '../slowpath/dispatcher';
import { HeavyCalls } from './heavy';

export interface ApiContext {
  /** This host's name, as chains place cubes on it. */
  readonly host: string;
  /** The network namespace of this host's netdevs (a path); undefined: the daemon's own. */
  readonly netns?: string;
  readonly version: string;
  readonly runtime: Runtime;
  readonly reconciler: Reconciler;
  readonly logs: DataPlaneLogs;
  readonly slowPath: SlowPath;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Admission of the calls that take much memory or CPU (heavy.ts). */
  readonly heavy: HeavyCalls;
  /** The etcd store; throws StoreUnavailableError while etcd has not been reached. */
  store(): Store;
  storeConnected(): boolean;
}

export interface ApiOptions {
  /** Unix socket path; created with mode 0660, group `viewerGid` (else root's). */
  socket: string;
  /** Members of this group are viewers on the unix socket (root is admin). */
  viewerGid?: number;
  /** TCP HOST:PORT, served with mutual TLS only. */
  listen?: string;
  /** This host's certificate and key, and the CA every client's certificate must be signed by. */
  tls?: { cert: string; key: string; ca: string };
}

export interface ApiServer {
  /** Where the API is served: unix:/path, and HOST:PORT for TCP. */
  readonly endpoints: string[];
  close(): Promise<void>;
}

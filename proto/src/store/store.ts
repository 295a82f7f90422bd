// The entry point to netcube's desired state in etcd: one connection, and one object
// per concept on it.

import type { HostCheck } from '../chain';
import type { Etcd3 } from 'etcd3';
import { Chains } from './chains';
import { CubeTypes } from './cube-types';
import { Etcd, EtcdTls, getOp } from './etcd';
import { Lease, LeaseOptions } from './lease';
import { Hosts } from './hosts';
import { ROOT } from './keys';
import { Objects } from './objects';
import { PodPorts } from './pod-ports';
import { ServiceConfigs } from './service-config';
import { DEFAULT_RETRY, RetryListener, RetryPolicy } from './retry';
import { Status } from './status';

export interface StoreOptions {
  /**
   * etcd client URLs or host:port, e.g. `127.0.0.1:2379`; any member of the cluster.
   * Over TLS: `https://HOST:PORT` or `unixs:/PATH`, with `tls`.
   */
  endpoints: string[];
  /** etcd's CA, and this process's certificate and key (its CN is its etcd user when etcd checks client certificates). */
  tls?: EtcdTls;
  /** etcd user/password authentication instead. */
  auth?: { username: string; password: string };
  /** Deadline of each etcd call; default 5 s. */
  callTimeoutMs?: number;
  /** How long and how often calls are retried while etcd is unavailable. */
  retry?: Partial<RetryPolicy>;
  /** Told before every retry: to log, or to show progress while etcd is away. */
  onRetry?: RetryListener;
  /**
   * The data-plane check of chains (loops, tail-call limits), run on every apply and
   * type change: netcubed's runtime rule (node-daemon/src/chain/host-check.ts).
   * Without it, chains are checked as far as their format goes, which is enough for
   * a client that only changes cubes' params (a service's SetConfig).
   */
  hostCheck?: HostCheck;
}

export class Store {
  readonly chains: Chains;
  readonly hosts: Hosts;
  readonly status: Status;
  readonly types: CubeTypes;
  readonly objects: Objects;
  /** The config services' SetConfig gives their cubes. */
  readonly serviceConfigs: ServiceConfigs;
  /** Pods' ports that CNI plugins recorded on their hosts. */
  readonly podPorts: PodPorts;

  private constructor(
    private readonly etcd: Etcd,
    hostCheck: HostCheck | undefined,
  ) {
    this.chains = new Chains(etcd, hostCheck);
    this.hosts = new Hosts(etcd);
    this.status = new Status(etcd, this.chains);
    this.types = new CubeTypes(etcd, hostCheck);
    this.objects = new Objects(etcd);
    this.serviceConfigs = new ServiceConfigs(etcd);
    this.podPorts = new PodPorts(etcd);
  }

  /** Connects and checks that the cluster answers reads (it has a leader), retrying per `retry`. */
  static async connect(options: StoreOptions): Promise<Store> {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new TypeError('options.endpoints must list at least one etcd endpoint');
    }
    const etcd = new Etcd({
      endpoints: [...options.endpoints],
      callTimeoutMs: options.callTimeoutMs ?? 5_000,
      retry: { ...DEFAULT_RETRY, ...options.retry },
      onRetry: options.onRetry,
      tls: options.tls,
      auth: options.auth,
    });
    try {
      await etcd.call('connect to etcd', client => client.kv.range(getOp(ROOT).request_range!));
    } catch (err) {
      await etcd.close();
      throw err;
    }
    return new Store(etcd, options.hostCheck);
  }

  /**
   * A lease kept alive on the store's connection until close() (lease.ts), for what
   * lives in etcd as long as this process does: a service's leadership. It closes
   * with the store.
   */
  async keepLease(options: LeaseOptions): Promise<Lease> {
    const lease = new Lease(this.etcd, options);
    await lease.start();
    return lease;
  }

  /**
   * The store's etcd connection itself, for what the store has no concept of (a
   * service's leader election): one connection per process. It closes with the store.
   */
  get etcdClient(): Etcd3 {
    return this.etcd.client;
  }

  /** Closes watches, revokes host leases, then the connection. */
  close(): Promise<void> {
    return this.etcd.close();
  }
}

// The Kubernetes controller (netcube-k8s): while it leads (the SDK's election, key
// services/k8s/leader), it derives every node's chain from the Kubernetes objects
// and the pod ports in etcd (model/) and applies those that differ; chains named
// k8s-... of nodes gone are deleted. One direction only, as Cilium's watchers: the
// API and the records in, chains out. Every change schedules one pass (passes never
// overlap; changes during one make one more), and the resync period makes a pass
// anyway, so a chain edited by hand comes back. Its etcd identity is service-k8s
// with --owns-chains (store/access.ts): it writes its chains and nothing else.

import { hostname } from 'node:os';
import type { Chain } from '@netcube/api/chain';
import type { Logger } from '@netcube/api/log';
import { NotFoundError, servicePrefix, type PodPortWatch, type Store, type StoredPodPort } from '@netcube/api/store';
import { LeaderElection } from '@netcube/sdk/election';
import type { KubeSource } from './kube/source';
import { clusterChains, DISPATCHER_TYPE, type ClusterSettings } from './model';

export const SERVICE_TYPE = 'k8s';
const CHAIN_PREFIX = `${SERVICE_TYPE}-`;

export interface ControllerOptions {
  store: Store;
  source: KubeSource;
  settings: ClusterSettings;
  log: Logger;
  /** A pass at least this often (kube components' --resync-period). */
  resyncMs: number;
  leaseTtlSeconds?: number;
  replica?: string;
}

export class Controller {
  private readonly election: LeaderElection;
  private podPorts?: PodPortWatch;
  private readonly records = new Map<string, StoredPodPort>();
  private recordsSynced = false;
  private running?: Promise<void>;
  private again = false;
  private resync?: NodeJS.Timeout;
  /** Problems already logged, so each is logged once. */
  private readonly told = new Set<string>();
  private closed = false;
  /** Passes done while leading; what the last one applied. */
  passes = 0;

  constructor(private readonly opts: ControllerOptions) {
    this.election = new LeaderElection(
      opts.store,
      `${servicePrefix(SERVICE_TYPE)}leader`,
      { replica: opts.replica ?? `${hostname()}-${process.pid}`, since: new Date().toISOString() },
      opts.leaseTtlSeconds ?? 10,
      opts.log,
    );
    this.election.on('elected', () => {
      opts.log.info('leading: the chains of the Kubernetes nodes are this replica\'s');
      this.schedule();
    });
    this.election.on('demoted', (reason) => opts.log.warn('no longer leading', { reason }));
  }

  get isLeader(): boolean {
    return this.election.isLeader;
  }

  /** Follows the API and the pod ports, and campaigns. */
  async start(): Promise<void> {
    this.podPorts = this.opts.store.podPorts.watch();
    this.podPorts.on('put', ({ name, value }) => {
      this.records.set(name, value);
      this.schedule();
    });
    this.podPorts.on('delete', ({ name }) => {
      this.records.delete(name);
      this.schedule();
    });
    this.podPorts.on('invalid', ({ name, error }) => this.opts.log.warn('unreadable pod port in etcd, left out', { podPort: name, error: error.message }));
    this.podPorts.on('error', (err) => this.opts.log.error('pod port watch failed', { error: err.message }));
    await this.podPorts.whenSynced();
    this.recordsSynced = true;
    this.opts.source.on('changed', () => this.schedule());
    await this.opts.source.start();
    this.resync = setInterval(() => this.schedule(), this.opts.resyncMs);
    this.election.start();
  }

  /** Stops following and resigns; a second call does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.resync);
    this.podPorts?.close();
    await this.opts.source.stop();
    await this.running;
    await this.election.close();
  }

  /** Runs a pass soon, when leading. */
  schedule(): void {
    if (this.closed || !this.recordsSynced || !this.election.isLeader) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((err) => this.opts.log.error('pass failed; the next change or resync tries again', { error: (err as Error).message }));
      } while (this.again && !this.closed && this.election.isLeader);
      this.running = undefined;
    })();
  }

  private async pass(): Promise<void> {
    const edge = await this.opts.store.types.getType(DISPATCHER_TYPE).then(
      () => true,
      (err) => {
        if (err instanceof NotFoundError) return false;
        throw err;
      },
    );
    const { chains, problems } = clusterChains({ ...this.opts.source.state(), podPorts: [...this.records.values()] }, this.opts.settings, { edge });
    for (const p of problems) {
      const text = `${p.object}: ${p.message}`;
      if (this.told.has(text)) continue;
      this.told.add(text);
      this.opts.log.warn('left out of the chains', { object: p.object, problem: p.message });
    }
    const wanted = new Set<string>();
    for (const chain of chains.values()) {
      wanted.add(chain.metadata.name);
      await this.apply(chain);
    }
    for (const stored of await this.opts.store.chains.list()) {
      if (!stored.name.startsWith(CHAIN_PREFIX) || wanted.has(stored.name)) continue;
      if (!this.election.isLeader) return;
      await this.opts.store.chains.delete(stored.name);
      this.opts.log.info('chain of a node gone deleted', { chain: stored.name });
    }
    this.passes++;
  }

  private async apply(chain: Chain): Promise<void> {
    if (!this.election.isLeader) return;
    try {
      const result = await this.opts.store.chains.apply(chain);
      if (!result.unchanged) this.opts.log.info('chain applied', { chain: chain.metadata.name, version: result.version });
    } catch (err) {
      this.opts.log.error('chain refused', { chain: chain.metadata.name, error: (err as Error).message });
    }
  }
}

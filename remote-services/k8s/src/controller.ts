// The Kubernetes controller (netcube-k8s): while it leads (the SDK's election, key
// services/k8s/leader), it derives every node's chain from the Kubernetes objects
// and the pod ports in etcd (model/) and writes what differs: a chain whose shape
// changed whole, and the config of its lbrp and firewall cubes (the Services, a
// NetworkPolicy's rules) as the services' config records, which netcube-lbrp and
// netcube-firewall follow (service-configs.ts says what goes where, and in which
// order). Chains named k8s-... of nodes gone are deleted, and the config of cubes
// gone. One direction only, as Cilium's watchers: the API and the records in,
// chains and config out. Every change schedules one pass (passes never overlap;
// changes during one make one more), and the resync period makes a pass anyway, so
// a chain or a config edited by hand comes back. Its etcd identity is service-k8s
// with --owns-chains --configures lbrp,firewall (store/access.ts): it writes its
// chains and the config of their cubes, nothing else.

import { hostname } from 'node:os';
import type { Chain } from '@netcube/api/chain';
import type { Logger } from '@netcube/api/log';
import { ConflictError, NotFoundError, servicePrefix, type PodPortWatch, type Store, type StoredChain, type StoredPodPort, type StoredServiceConfig } from '@netcube/api/store';
import { serviceUser } from '@netcube/api/store/access';
import { LeaderElection } from '@netcube/sdk/election';
import type { KubeSource } from './kube/source';
import { clusterChains, DISPATCHER_TYPE, type ClusterSettings } from './model';
import { SerialPasses } from '@netcube/api/passes';
import { CONFIGURED_TYPES, orphanedConfigs, planChain, type ConfigPlan, type ConfigPut } from './service-configs';

export const SERVICE_TYPE = 'k8s';
const CHAIN_PREFIX = `${SERVICE_TYPE}-`;
/** Who the config records say set them: the controller's identity. */
const CONFIG_SETTER = serviceUser(SERVICE_TYPE);
/** The config the catalog's services hold, per type, by cube, as this pass read and wrote it. */
type HeldByType = Map<string, Map<string, StoredServiceConfig>>;

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
  private readonly serial = new SerialPasses(
    () => this.pass(),
    (err) => this.opts.log.error('pass failed; the next change or resync tries again', { error: err.message }),
  );
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
    await this.serial.idle();
    await this.election.close();
  }

  /** Runs a pass soon, when leading. */
  schedule(): void {
    this.serial.schedule(() => !this.closed && this.recordsSynced && this.election.isLeader);
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
    const stored = new Map((await this.opts.store.chains.list()).map((c) => [c.name, c]));
    const held = await this.heldConfigs();
    for (const chain of chains.values()) {
      if (!this.election.isLeader) return;
      await this.write(chain, stored.get(chain.metadata.name), held);
    }
    for (const { type, held: h } of orphanedConfigs(chains.values(), held, CHAIN_PREFIX)) {
      if (!this.election.isLeader) return;
      await this.opts.store.serviceConfigs.forgetStale(type, h);
      this.opts.log.info('config of a cube gone deleted', { service: type, cube: h.cube });
    }
    const wanted = new Set([...chains.values()].map((c) => c.metadata.name));
    for (const name of stored.keys()) {
      if (!name.startsWith(CHAIN_PREFIX) || wanted.has(name)) continue;
      if (!this.election.isLeader) return;
      await this.opts.store.chains.delete(name);
      this.opts.log.info('chain of a node gone deleted', { chain: name });
    }
    this.passes++;
  }

  /** The config the catalog's services hold, per type, by cube. */
  private async heldConfigs(): Promise<HeldByType> {
    const held: HeldByType = new Map();
    for (const type of CONFIGURED_TYPES) held.set(type, new Map((await this.opts.store.serviceConfigs.list(type)).map((h) => [h.cube, h])));
    return held;
  }

  /**
   * What differs of one chain: the chain whole (with the config that must come
   * before it, and then what it leaves to write), or the config of its cubes. A
   * conflict makes another pass; `held` follows what is written.
   */
  private async write(chain: Chain, stored: StoredChain | undefined, held: HeldByType): Promise<void> {
    const name = chain.metadata.name;
    const refused = (err: unknown): void => this.opts.log.error('chain refused', { chain: name, error: (err as Error).message });
    let plan: ConfigPlan;
    try {
      plan = planChain(chain, stored, held);
    } catch (err) {
      return refused(err);
    }
    if (plan.chain) {
      if (!(await this.writeConfigs(plan.before, [], held))) return;
      try {
        const result = await this.opts.store.chains.apply(plan.chain);
        if (!result.unchanged) this.opts.log.info('chain applied', { chain: name, version: result.version });
      } catch (err) {
        return refused(err);
      }
      if (!(await this.writeConfigs([], plan.deletes, held))) return;
      plan = planChain(chain, await this.opts.store.chains.get(name), held);
    }
    await this.writeConfigs(plan.puts, plan.deletes, held);
  }

  /** Sets and forgets config while leading; false when it stopped (not leading, or a conflict: another pass comes). */
  private async writeConfigs(puts: readonly ConfigPut[], deletes: ConfigPlan['deletes'], held: HeldByType): Promise<boolean> {
    for (const put of puts) {
      if (!this.election.isLeader) return false;
      try {
        const set = await this.opts.store.serviceConfigs.put(put.type, put.cube, put.stored, put.params, put.heldRevision, CONFIG_SETTER);
        held.get(put.type)?.set(put.cube, set);
        this.opts.log.info('config set', { service: put.type, cube: put.cube, chain: put.stored.name });
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        // The chain or the config changed since this pass read them: read them again.
        this.serial.repeat();
        return false;
      }
    }
    for (const { type, held: h } of deletes) {
      if (!this.election.isLeader) return false;
      await this.opts.store.serviceConfigs.forgetStale(type, h);
      held.get(type)?.delete(h.cube);
    }
    return true;
  }
}

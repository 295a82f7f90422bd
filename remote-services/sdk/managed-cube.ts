// One cube of a service's type as the leader keeps it (the Cube a service's handlers
// get): its config applied to its tables on its host, and kept so:
//
//   sync('full' | 'config' | 'tables') ─► GetCube (ports, id) ─► static tables
//        reconciled ─► cubeCreated / configChanged ─► ready, ticking
//
// A sync that fails (the daemon has not created the cube yet, a call failed) is
// retried with backoff; one whose host is not connected waits for the link. Which
// cubes exist, their config and their hosts' links are the controller's
// (controller.ts): a cube sees it through CubeKeeper alone.

import { ApiCallError, type NetcubeClient } from '@netcube/api/grpc/client';
import { endpointFromProto } from '@netcube/api/grpc/convert';
import type { Cube__Output } from '@netcube/api/generated/netcube/v1/Cube';
import { sameTableSizes, type ChainSpec, type JsonObject } from '@netcube/api/chain';
import type { Logger } from '@netcube/api/log';
import { Backoff } from '@netcube/api/store/retry';
import type { HostClock } from './clock';
import type { HostLink } from './host-link';
import type { Cube, CubeInfo, CubeMode, PacketDirection, Port, ServiceDefinition } from './service';
import { reconcileTable, Table, TableLayout } from './tables';

/** What a managed cube needs of the controller that keeps it. */
export interface CubeKeeper<C, S> {
  readonly service: ServiceDefinition<C, S>;
  readonly log: Logger;
  /** The link to `host`'s daemon, while the controller keeps one. */
  link(host: string): HostLink | undefined;
  /** Logs a failure of a handler or a call (throttled). */
  noteFailure(cube: ManagedCube<C, S>, what: string, err: unknown): void;
}

/** How much a sync does: the static tables; and configChanged; or all, cubeCreated too. */
export type SyncKind = 'tables' | 'config' | 'full';
const RANK: Record<SyncKind, number> = { tables: 1, config: 2, full: 3 };

/** One cube of the service's type, as the leader keeps it. */
export class ManagedCube<C, S> implements Cube<C, S> {
  info: CubeInfo;
  params: JsonObject;
  /** The last config that passed validation. */
  good?: C;
  /** Why the cube's params do not validate (the last valid config stays in force). */
  configProblem?: string;
  /** Why the last sync did not get through. */
  syncProblem?: string;
  id = 0;
  ports: Port[] = [];
  ready = false;
  readonly state: S;
  readonly log: Logger;
  private layouts?: Map<string, TableLayout>;
  private readonly tables = new Map<string, Table>();
  private pending?: { kind: SyncKind; previous?: C; waiters: (() => void)[] };
  private running = false;
  private retry?: NodeJS.Timeout;
  /** The sync that failed and waits for its retry: any sync that runs first includes it. */
  private failed?: { kind: SyncKind; previous?: C };
  private readonly retryBackoff = new Backoff({ initialDelayMs: 250, maxDelayMs: 5_000 });
  private tickTimer?: NodeJS.Timeout;
  private ticking = false;
  /** Deleted from the chains, or the controller stepped down: nothing more to do. */
  stopped = false;

  constructor(
    private readonly keeper: CubeKeeper<C, S>,
    spec: { info: CubeInfo; params: JsonObject },
  ) {
    this.info = spec.info;
    this.params = spec.params;
    this.log = keeper.log.with({ cube: spec.info.name });
    this.state = keeper.service.state ? keeper.service.state(spec.info) : ({} as S);
  }

  // ----------------------------------------------------------- Cube

  get name(): string {
    return this.info.name;
  }
  get host(): string {
    return this.info.host;
  }
  get chain(): string {
    return this.info.chain;
  }
  get mode(): CubeMode {
    return this.info.mode;
  }
  get portNames(): readonly string[] {
    return this.info.portNames;
  }
  get chainSpec(): ChainSpec {
    return this.info.chainSpec;
  }
  get type(): string {
    return this.keeper.service.type;
  }
  get config(): C {
    if (this.good === undefined) throw new Error(`cube ${this.name} has no valid config: ${this.configProblem}`);
    return this.good;
  }
  /** What keeps the cube from being as its chain says, if anything. */
  get problem(): string | undefined {
    return this.configProblem ?? this.syncProblem;
  }
  get clock(): HostClock {
    return this.link.clock;
  }
  private get link(): HostLink {
    const link = this.keeper.link(this.host);
    if (!link) throw new Error(`host ${this.host} of cube ${this.name} has no link`);
    return link;
  }

  port(name: string): Port {
    const p = this.ports.find((x) => x.name === name);
    if (!p) throw new Error(`cube ${this.name} has no port ${JSON.stringify(name)} (its ports: ${this.ports.map((x) => x.name).join(', ')})`);
    return p;
  }

  portAt(index: number): Port | undefined {
    return this.ports.find((x) => x.index === index);
  }

  table<K = unknown, V = unknown>(name: string): Table<K, V> {
    let t = this.tables.get(name);
    if (!t) this.tables.set(name, (t = new Table(() => this.link.client, this.name, name)));
    return t as Table<K, V>;
  }

  packetOut(port: string, direction: PacketDirection, frame: Buffer, user?: readonly number[]): void {
    try {
      this.link.packetOut(this.name, port, direction === 'ingress' ? 'DIRECTION_INGRESS' : 'DIRECTION_EGRESS', frame, user);
    } catch (err) {
      this.keeper.noteFailure(this, 'packet-out', err);
    }
  }

  // ----------------------------------------------------------- sync

  /** Asks for a sync of at least `kind`; resolves when one covering it has run. */
  sync(kind: SyncKind, previous?: C): Promise<void> {
    return new Promise((resolve) => {
      if (!this.pending) this.pending = { kind, previous, waiters: [] };
      else {
        if (RANK[kind] > RANK[this.pending.kind]) this.pending.kind = kind;
        this.pending.previous ??= previous;
      }
      this.pending.waiters.push(resolve);
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending && !this.stopped) {
        const job = this.pending;
        this.pending = undefined;
        clearTimeout(this.retry);
        // A weaker sync asked for meanwhile (the neighbours' tables) must not drop a failed
        // config change: it runs as part of this one, from the config the tables still have.
        if (this.failed) {
          if (RANK[this.failed.kind] > RANK[job.kind]) job.kind = this.failed.kind;
          job.previous = this.failed.previous ?? job.previous;
          this.failed = undefined;
        }
        const ok = await this.syncNow(job.kind, job.previous);
        if (ok === false && !this.stopped) {
          // Try again later, at the same strength.
          this.failed = { kind: job.kind, previous: job.previous };
          const delay = this.retryBackoff.next();
          this.retry = setTimeout(() => void this.sync(job.kind, job.previous), delay);
        } else {
          this.retryBackoff.reset();
        }
        for (const w of job.waiters) w();
      }
    } finally {
      this.running = false;
    }
  }

  /** True: synced (or nothing to do until something changes); false: retry later. */
  private async syncNow(kind: SyncKind, previous?: C): Promise<boolean | undefined> {
    if (this.good === undefined) return undefined; // an invalid config: wait for a fix
    const link = this.keeper.link(this.host);
    if (!link?.connected) {
      this.ready = false;
      this.syncProblem = `host ${this.host} is not connected${link?.stats.lastError ? ` (${link.stats.lastError})` : ''}`;
      return undefined; // the link's 'ready' brings us back
    }
    const service = this.keeper.service;
    try {
      const client = link.client;
      let remote: Cube__Output;
      try {
        remote = await client.getCube({ name: this.name }, { timeoutMs: 10_000 });
      } catch (err) {
        if (err instanceof ApiCallError && err.codeName === 'NOT_FOUND') {
          this.ready = false;
          this.syncProblem = `not (yet) created on host ${this.host}`;
          return false;
        }
        throw err;
      }
      if (remote.type !== service.type) {
        this.ready = false;
        this.syncProblem = `host ${this.host} runs cube ${this.name} as type ${remote.type}, not ${service.type}`;
        return false;
      }
      // A change of table sizes makes the host load the cube anew (empty tables): its
      // static tables go into the new one, so wait until the host runs it.
      const spec = this.chainSpec.cubes.find((c) => c.name === this.name);
      if (!sameTableSizes(remote.tableSizes, spec?.tableSizes)) {
        this.ready = false;
        this.syncProblem = `host ${this.host} does not run cube ${this.name} with the table sizes of its chain yet (see the chain's status)`;
        return false;
      }
      // A port the chain just added (a pod's) is made by the host's next apply: the
      // service's tables may name it, so wait for it rather than fail the sync.
      const missing = (spec?.ports ?? []).filter((p) => !remote.ports.some((r) => r.name === p));
      if (missing.length > 0) {
        this.ready = false;
        this.syncProblem = `host ${this.host} has not made port${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of cube ${this.name} yet (see the chain's status)`;
        return false;
      }
      const recreated = remote.id !== this.id;
      this.id = remote.id;
      this.ports = remote.ports.map((p) => ({ name: p.name, index: p.index, peer: p.peer?.kind ? endpointFromProto(p.peer, 'peer') : undefined }));
      if (recreated || !this.layouts) {
        const { tables } = await client.listTables({ cube: this.name });
        this.layouts = new Map(tables.map((t) => [t.name, new TableLayout(t)]));
      }
      await this.reconcile(client);
      if (kind === 'full' || recreated) await service.cubeCreated?.(this);
      else if (kind === 'config' && previous !== undefined) await service.configChanged?.(this, previous);
      // Stopped while this sync was under way: it must not start ticking again.
      if (this.stopped) return undefined;
      this.ready = true;
      this.syncProblem = undefined;
      this.startTicks();
      return true;
    } catch (err) {
      this.ready = false;
      this.syncProblem = `sync failed: ${(err as Error).message}`;
      this.keeper.noteFailure(this, 'sync', err);
      return false;
    }
  }

  private async reconcile(client: NetcubeClient): Promise<void> {
    const desired = this.keeper.service.staticTables?.(this) ?? {};
    for (const [name, entries] of Object.entries(desired)) {
      const layout = this.layouts!.get(name);
      if (!layout) throw new Error(`static table ${name} is not a table of type ${this.type} (its tables: ${[...this.layouts!.keys()].join(', ')})`);
      const { put, deleted } = await reconcileTable(client, this.name, layout, entries);
      if (put + deleted > 0) this.log.info('static table reconciled', { table: name, put, deleted });
    }
  }

  private startTicks(): void {
    const { tick, tickSeconds } = this.keeper.service;
    if (!tick || this.tickTimer) return;
    this.tickTimer = setInterval(() => {
      if (!this.ready || this.ticking) return;
      this.ticking = true;
      Promise.resolve()
        .then(() => tick(this))
        .catch((err) => this.keeper.noteFailure(this, 'tick', err))
        .finally(() => (this.ticking = false));
    }, (tickSeconds ?? 1) * 1000);
  }

  stop(): void {
    this.stopped = true;
    this.ready = false;
    clearInterval(this.tickTimer);
    clearTimeout(this.retry);
    this.tickTimer = undefined;
  }
}

// What the elected leader of a service does: follow the chains in etcd for cubes
// of its type and the hosts' registrations, keep a link (client + slow-path
// stream) to every host that has such cubes, and keep each cube in sync:
//
//   chain put/delete, SetConfig's config ──► ManagedCube (config validated) ──► sync on its host:
//        GetCube (ports, id) ─► static tables reconciled ─► cubeCreated / configChanged
//   host link ready (connect, daemon restart, network back) ──► full sync of its cubes
//   every resync interval ──► static tables reconciled again (drift, a recreated cube)
//
// A sync that fails (the daemon has not created the cube yet, a call failed) is
// retried with backoff; one whose host is not connected waits for the link.

import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiCallError, NetcubeClient } from '@netcube/api/grpc/client';
import { endpointFromProto, modeFromProto } from '@netcube/api/grpc/convert';
import type { Cube__Output } from '@netcube/api/generated/netcube/v1/Cube';
import type { PacketIn__Output } from '@netcube/api/generated/netcube/v1/PacketIn';
import type { ChainSpec, CubeSpec, JsonObject } from '@netcube/api/chain';
import type { Logger } from '@netcube/api/log';
import { effectiveConfig, StoreError, type ChainWatch, type HostWatch, type ServiceConfigWatch, type Store, type StoredChain, type StoredServiceConfig } from '@netcube/api/store';
import { Backoff } from '@netcube/api/store/retry';
import type { HostClock } from './clock';
import { ConfigSchema } from './config';
import { chooseEndpoint, clientOptions, HostLink, TlsFiles } from './host-link';
import type { Cube, CubeInfo, CubeMode, PacketDirection, Port, ServiceDefinition } from './service';
import { reconcileTable, Table, TableLayout } from './tables';

export interface ControllerOptions {
  replica: string;
  tls?: TlsFiles;
  /** How often static tables are reconciled again, besides on every change. */
  resyncSeconds: number;
  log: Logger;
}

type SyncKind = 'tables' | 'config' | 'full';
const RANK: Record<SyncKind, number> = { tables: 1, config: 2, full: 3 };

/** Logs at most one line per `everyMs` for each key; counts what it swallowed. */
class Throttle {
  private readonly last = new Map<string, { at: number; skipped: number }>();
  constructor(private readonly everyMs: number) {}
  pass(key: string): { ok: boolean; skipped: number } {
    const now = Date.now();
    const l = this.last.get(key);
    if (l && now - l.at < this.everyMs) {
      l.skipped++;
      return { ok: false, skipped: 0 };
    }
    this.last.set(key, { at: now, skipped: 0 });
    return { ok: true, skipped: l?.skipped ?? 0 };
  }
}

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
  /** The sync that failed, until its retry (or a sync that covers it) runs. */
  private failed?: { kind: SyncKind; previous?: C };
  private readonly retryBackoff = new Backoff({ initialDelayMs: 250, maxDelayMs: 5_000 });
  private tickTimer?: NodeJS.Timeout;
  private ticking = false;
  /** Deleted from the chains, or the controller stepped down: nothing more to do. */
  stopped = false;

  constructor(
    private readonly ctl: Controller<C, S>,
    spec: { info: CubeInfo; params: JsonObject },
  ) {
    this.info = spec.info;
    this.params = spec.params;
    this.log = ctl.log.with({ cube: spec.info.name });
    this.state = ctl.service.state ? ctl.service.state(spec.info) : ({} as S);
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
    return this.ctl.service.type;
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
    const link = this.ctl.links.get(this.host);
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
      this.ctl.noteFailure(this, 'packet-out', err);
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
        // A sync asked for while a failed one waits to be retried covers the failed one too:
        // a weaker one (a resync's 'tables') must not drop a 'full' that has yet to get through.
        clearTimeout(this.retry);
        if (this.failed) {
          if (RANK[this.failed.kind] > RANK[job.kind]) job.kind = this.failed.kind;
          // The older one: the config the tables had before either.
          job.previous = this.failed.previous ?? job.previous;
          this.failed = undefined;
        }
        const ok = await this.syncNow(job.kind, job.previous);
        if (ok === false && !this.stopped) {
          // Try again later, at the same strength.
          const delay = this.retryBackoff.next();
          this.failed = { kind: job.kind, previous: job.previous };
          this.retry = setTimeout(() => {
            const failed = this.failed;
            this.failed = undefined;
            if (failed) void this.sync(failed.kind, failed.previous);
          }, delay);
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
    const link = this.ctl.links.get(this.host);
    if (!link?.connected) {
      this.ready = false;
      this.syncProblem = `host ${this.host} is not connected${link?.stats.lastError ? ` (${link.stats.lastError})` : ''}`;
      return undefined; // the link's 'ready' brings us back
    }
    const service = this.ctl.service;
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
      this.ctl.noteFailure(this, 'sync', err);
      return false;
    }
  }

  private async reconcile(client: NetcubeClient): Promise<void> {
    const desired = this.ctl.service.staticTables?.(this) ?? {};
    for (const [name, entries] of Object.entries(desired)) {
      const layout = this.layouts!.get(name);
      if (!layout) throw new Error(`static table ${name} is not a table of type ${this.type} (its tables: ${[...this.layouts!.keys()].join(', ')})`);
      const { put, deleted } = await reconcileTable(client, this.name, layout, entries);
      if (put + deleted > 0) this.log.info('static table reconciled', { table: name, put, deleted });
    }
  }

  private startTicks(): void {
    const { tick, tickSeconds } = this.ctl.service;
    if (!tick || this.tickTimer) return;
    this.tickTimer = setInterval(() => {
      if (!this.ready || this.ticking) return;
      this.ticking = true;
      Promise.resolve()
        .then(() => tick(this))
        .catch((err) => this.ctl.noteFailure(this, 'tick', err))
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

/** A cube's params through the schema and the service's own checks; throws ConfigError. */
export function checkConfig<C, S>(service: ServiceDefinition<C, S>, schema: ConfigSchema<C>, params: unknown, info: CubeInfo): C {
  const config = schema.normalize(params);
  service.validate?.(config, info);
  return config;
}

export class Controller<C, S> {
  readonly cubes = new Map<string, ManagedCube<C, S>>();
  readonly links = new Map<string, HostLink>();
  private readonly registrations = new Map<string, string[]>();
  private readonly chainCubes = new Map<string, Set<string>>();
  /** Each cube's place in the chains as last seen, and the config SetConfig gave it. */
  private readonly specs = new Map<string, { stored: StoredChain; spec: CubeSpec }>();
  private readonly held = new Map<string, StoredServiceConfig>();
  private chains?: ChainWatch;
  private hosts?: HostWatch;
  private configs?: ServiceConfigWatch;
  private resyncTimer?: NodeJS.Timeout;
  private readonly closing = new AbortController();
  private readonly throttle = new Throttle(2_000);
  readonly stats = { packetsIn: 0, packetsDropped: 0, handlerErrors: 0 };

  constructor(
    readonly service: ServiceDefinition<C, S>,
    readonly schema: ConfigSchema<C>,
    private readonly store: Store,
    private readonly opts: ControllerOptions,
  ) {}

  get log(): Logger {
    return this.opts.log;
  }

  async start(): Promise<void> {
    this.hosts = this.store.hosts.watchHosts();
    this.hosts.on('put', ({ name, value }) => {
      this.registrations.set(name, value.endpoints);
      this.links.get(name)?.setEndpoints(value.endpoints);
    });
    this.hosts.on('delete', ({ name }) => this.log.info('host registration gone (its daemon stopped or lost etcd); still trying its last endpoint', { host: name }));
    this.configs = this.store.serviceConfigs.watch(this.service.type);
    this.configs.on('put', ({ name, value }) => {
      this.held.set(name, value);
      this.reconsider(name);
    });
    this.configs.on('delete', ({ name }) => {
      this.held.delete(name);
      this.reconsider(name);
    });
    // Config that cannot be read stands for nothing: the cube's params in its chain do.
    this.configs.on('invalid', ({ name }) => {
      this.held.delete(name);
      this.reconsider(name);
    });
    // SetConfig's config first, so that a cube's first sync already has it.
    await this.configs.whenSynced();
    this.chains = this.store.chains.watch();
    this.chains.on('put', ({ value }) => this.onChain(value));
    this.chains.on('delete', ({ name }) => this.onChainGone(name));
    for (const w of [this.hosts, this.chains, this.configs]) {
      w.on('error', (err) => this.log.error('etcd watch failed for good', { error: err.message }));
      w.on('invalid', ({ name, error }) => this.log.warn('unreadable value in etcd; skipped', { name, error: error.message }));
    }
    this.resyncTimer = setInterval(() => {
      for (const c of this.cubes.values()) if (c.ready) void c.sync('tables');
    }, this.opts.resyncSeconds * 1000);
    if (this.service.objects) void this.registerType();
    await Promise.all([this.hosts.whenSynced(), this.chains.whenSynced()]);
  }

  async stop(): Promise<void> {
    this.closing.abort();
    clearInterval(this.resyncTimer);
    this.chains?.close();
    this.hosts?.close();
    this.configs?.close();
    for (const c of this.cubes.values()) c.stop();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    this.links.clear();
  }

  // ----------------------------------------------------------- chains

  private onChain(stored: StoredChain): void {
    const mine = stored.chain.spec.cubes.filter((c) => c.type === this.service.type);
    const before = this.chainCubes.get(stored.name) ?? new Set<string>();
    const now = new Set(mine.map((c) => c.name));
    this.chainCubes.set(stored.name, now);
    for (const spec of mine) this.upsert(stored, spec);
    for (const name of before) if (!now.has(name)) this.remove(name);
    this.updateLinks();
  }

  private onChainGone(chain: string): void {
    for (const name of this.chainCubes.get(chain) ?? []) this.remove(name);
    this.chainCubes.delete(chain);
    this.updateLinks();
  }

  /** SetConfig's config of `name` came or went. */
  private reconsider(name: string): void {
    const at = this.specs.get(name);
    if (at) this.upsert(at.stored, at.spec);
  }

  private upsert(stored: StoredChain, spec: CubeSpec): void {
    const chain = stored.name;
    this.specs.set(spec.name, { stored, spec });
    const info: CubeInfo = { name: spec.name, host: spec.host, chain, mode: spec.mode, portNames: [...spec.ports], chainSpec: stored.chain.spec };
    const held = this.held.get(spec.name);
    const { params, source } = effectiveConfig(spec.params, held, chain);
    // The chain gave the cube other params: SetConfig's config no longer stands, nor comes back.
    if (held && source === 'chain') void this.store.serviceConfigs.forgetStale(this.service.type, held).catch(() => undefined);
    let cube = this.cubes.get(spec.name);
    const fresh = !cube;
    if (!cube) this.cubes.set(spec.name, (cube = new ManagedCube(this, { info, params })));
    const moved = !fresh && (cube.host !== info.host || cube.mode !== info.mode || cube.portNames.join() !== info.portNames.join());
    const paramsChanged = fresh || JSON.stringify(cube.params) !== JSON.stringify(params);
    const chainChanged = !fresh && JSON.stringify(cube.chainSpec) !== JSON.stringify(info.chainSpec);
    cube.info = info;
    cube.params = params;
    const previous = cube.good;
    let next = previous;
    if (paramsChanged || moved || chainChanged) {
      try {
        next = this.validate(params, info);
        // Only the rest of the chain changed, and the config means the same: keep it.
        if (!paramsChanged && !moved && previous !== undefined && JSON.stringify(next) === JSON.stringify(previous)) next = previous;
        cube.configProblem = undefined;
      } catch (err) {
        cube.configProblem = `invalid config in chain ${chain}: ${(err as Error).message}${previous === undefined ? '' : '; keeping the last valid config'}`;
        cube.log.error('invalid config; fix the params of the cube in its chain (or SetConfig)', { chain, error: (err as Error).message });
      }
    }
    if (next === undefined) return;
    cube.good = next;
    if (fresh || moved || previous === undefined) void cube.sync('full');
    else if (next !== previous) void cube.sync('config', previous);
    // Its neighbours changed: static tables that derive from them follow.
    else if (chainChanged) void cube.sync('tables');
  }

  validate(params: unknown, info: CubeInfo): C {
    return checkConfig(this.service, this.schema, params, info);
  }

  private remove(name: string): void {
    this.specs.delete(name);
    const cube = this.cubes.get(name);
    if (!cube) return;
    this.cubes.delete(name);
    cube.stop();
    Promise.resolve()
      .then(() => this.service.cubeDeleted?.(cube))
      .catch((err) => this.noteFailure(cube, 'cubeDeleted', err));
  }

  // ----------------------------------------------------------- hosts

  private updateLinks(): void {
    const wanted = new Set([...this.cubes.values()].map((c) => c.host));
    for (const host of wanted) {
      if (this.links.has(host)) continue;
      const link = new HostLink({
        host,
        controller: `${this.service.type}@${this.opts.replica}`,
        type: this.service.type,
        tls: this.opts.tls,
        log: this.log,
        onPacketIn: (h, p) => this.onPacketIn(h, p),
      });
      link.setEndpoints(this.registrations.get(host) ?? []);
      link.on('ready', () => void this.resyncHost(link));
      link.on('down', () => {
        for (const c of this.cubes.values()) if (c.host === host) c.ready = false;
      });
      this.links.set(host, link);
      link.start();
    }
    for (const [host, link] of this.links) {
      if (wanted.has(host)) continue;
      this.links.delete(host);
      void link.close();
    }
  }

  private async resyncHost(link: HostLink): Promise<void> {
    const cubes = [...this.cubes.values()].filter((c) => c.host === link.host);
    await Promise.all(cubes.map((c) => c.sync('full')));
    link.stats.resyncs++;
    this.log.info('host resynced', { host: link.host, cubes: cubes.map((c) => c.name), ready: cubes.filter((c) => c.ready).map((c) => c.name) });
  }

  // ----------------------------------------------------------- slow path

  private onPacketIn(host: string, p: PacketIn__Output): void {
    this.stats.packetsIn++;
    const cube = this.cubes.get(p.cube);
    const port = cube?.ports.find((x) => x.name === p.port);
    if (!cube || cube.host !== host || !cube.ready || !port || !this.service.packetIn) {
      this.stats.packetsDropped++;
      return;
    }
    const timestampNs = BigInt(p.timestampNs);
    cube.clock.observe(timestampNs);
    // Called at once (not in a later microtask): the packet-outs it sends join
    // the batch of this turn, and packets are handled in the order they came.
    try {
      const done = this.service.packetIn(cube, { port, reason: p.reason, user: p.user, frame: p.packet, wireLength: p.wireLength, timestampNs });
      if (done && typeof (done as Promise<void>).then === 'function') (done as Promise<void>).then(undefined, (err: unknown) => this.noteFailure(cube, 'packetIn', err));
    } catch (err) {
      this.noteFailure(cube, 'packetIn', err);
    }
  }

  /** Logs a failure of a handler or a call, at most every 2 s per cube and kind. */
  noteFailure(cube: ManagedCube<C, S>, what: string, err: unknown): void {
    if (this.closing.signal.aborted) return; // calls cut short by stepping down
    this.stats.handlerErrors++;
    const { ok, skipped } = this.throttle.pass(`${cube.name}/${what}`);
    if (ok) cube.log.warn(`${what} failed`, { error: err instanceof Error ? err.message : String(err), ...(skipped ? { alsoFailedSinceLastLine: skipped } : {}) });
  }

  // ----------------------------------------------------------- cube type

  /**
   * Registers the service's own cube type: a registered host checks its objects (a
   * dry run), then the service stores the type in etcd as its own etcd user, which
   * may write its type (hosts may not: @netcube/api's store/access.ts). Retried
   * until it is done.
   */
  private async registerType(): Promise<void> {
    const { objects, type } = this.service;
    const xdpObject = objects?.xdp ? fs.readFileSync(objects.xdp) : undefined;
    const tcObject = objects?.tc ? fs.readFileSync(objects.tc) : undefined;
    const backoff = new Backoff({ initialDelayMs: 500, maxDelayMs: 10_000 });
    while (!this.closing.signal.aborted) {
      for (const [host, endpoints] of this.registrations) {
        const endpoint = chooseEndpoint(endpoints, this.opts.tls);
        if (!endpoint) continue;
        const client = NetcubeClient.connect(clientOptions(endpoint, this.opts.tls));
        try {
          const checked = await client.registerType({ name: type, xdpObject, tcObject, dryRun: true }, { timeoutMs: 30_000 });
          const modes = checked.modes.map((m) => modeFromProto(m, 'modes'));
          const objects = { xdp: xdpObject, tc: tcObject };
          await this.store.types.putType({ name: type, transparent: checked.transparent, microcubes: Math.max(...checked.microcubes) + 1, modes, objects }, { replace: false });
          this.log.info('cube type registered', { type, checkedBy: host });
          return;
        } catch (err) {
          this.log.warn('could not register the cube type', { type, via: host, error: (err as Error).message });
          // Another version of this type is registered (the same name, built in, elsewhere): not ours to replace.
          if ((err instanceof ApiCallError && err.codeName === 'ALREADY_EXISTS') || (err instanceof StoreError && err.code === 'ALREADY_EXISTS')) return;
        } finally {
          client.close();
        }
      }
      await sleep(backoff.next(), undefined, { signal: this.closing.signal }).catch(() => undefined);
    }
  }
}

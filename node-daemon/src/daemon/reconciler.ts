// The reconciler: makes this host's data plane what the chains in etcd say, and
// reports back what it did.
//
// It follows every chain through one watch that survives etcd restarts, and
// applies this host's slice of them to the runtime in one go. When that fails, it
// applies the chains that changed one by one on top of what last worked, so a
// broken chain stays at its previous version (or absent) and reports its error,
// while the others go ahead: each chain is applied atomically or not at all. A chain
// whose document in etcd cannot be read (written by something other than netcube)
// is broken the same way: this host keeps the version it ran, and says so. Status
// per cube goes back to etcd (status-reporter.ts). While etcd is away the data plane
// keeps what it has. Micro-cubes a chain replaces (replacedMicrocubes) are part of
// the topology it applies, their objects fetched from etcd. What a failed chain
// waits for may come later (a netdev, a type): failed chains are tried again when a
// netdev appears (retryFailed) and on every periodic pass.

import { EventEmitter } from 'node:events';
import { ChainWatch, CorruptValueError, CubePlacement, StatusUpdate, Store, StoredChain, WaitTimeoutError } from '@netcube/api/store';
import { Logger } from '@netcube/api/log';
import { SerialPasses } from '@netcube/api/passes';
import { planHost } from '../chain';
import { ApplyReport, Runtime } from '../runtime/runtime';
import { CubeType } from '../runtime/types';
import { Metrics } from './metrics';
import { StatusReporter } from './status-reporter';

export interface ChainOutcome {
  chain: string;
  version: number;
  revision: number;
  error?: string;
}

interface ReconcilerEvents {
  /** After each pass: what every chain on this host came to. */
  reconciled: [ChainOutcome[]];
}

export class Reconciler extends EventEmitter<ReconcilerEvents> {
  /** Desired chains, as the watch last delivered them. */
  private readonly desired = new Map<string, StoredChain>();
  /** The version of each chain this host runs. */
  private readonly applied = new Map<string, StoredChain>();
  /** Chains whose latest version failed here, with why. */
  private readonly failed = new Map<string, { revision: number; error: string; cause: Error }>();
  /** Chains whose document in etcd cannot be read, as of which revision, and why. */
  private readonly unreadable = new Map<string, { revision: number; error: CorruptValueError }>();
  /** Objects of replaced micro-cubes, by sha256, as fetched from etcd. */
  private readonly objects = new Map<string, Buffer>();
  /** Uploaded types registered with the runtime, by the etcd digest they came with. */
  private readonly typeDigests = new Map<string, string>();
  /** Types from etcd whose objects were refused, by the digest refused: not inspected again until they change. */
  private readonly brokenTypes = new Map<string, { sha256: string; error: string }>();
  private watch?: ChainWatch;
  private store?: Store;
  private readonly reporter: StatusReporter;
  private periodic?: NodeJS.Timeout;
  private synced = false;
  private readonly serial = new SerialPasses(
    () => this.pass(),
    (err) => this.log.error('reconcile pass failed', { error: err.message }),
  );
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly runtime: Runtime,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    super();
    this.reporter = new StatusReporter(host, log);
  }

  /** Whether the reconciler has seen the desired state at least once. */
  get ready(): boolean {
    return this.synced;
  }

  /**
   * Starts following the chains in etcd, and passes every `periodicMs` besides. Nothing
   * is applied before the first full list.
   */
  async follow(store: Store, periodicMs: number): Promise<void> {
    this.store = store;
    // Read while the chains are listed; the first report waits for it.
    this.reporter.follow(store);
    this.watch = store.chains.watch();
    this.watch.on('put', ({ name, value }) => {
      this.desired.set(name, value);
      this.unreadable.delete(name);
      this.schedule();
    });
    this.watch.on('delete', ({ name }) => {
      this.desired.delete(name);
      this.unreadable.delete(name);
      this.schedule();
    });
    // The version this host runs stays (it is still in desired), and fails to move on.
    this.watch.on('invalid', ({ name, revision, error }) => {
      this.log.error('chain in etcd cannot be read: this host keeps the version it runs', { chain: name, revision, error: error.message });
      this.unreadable.set(name, { revision, error: error instanceof CorruptValueError ? error : new CorruptValueError(error.message, name) });
      this.schedule();
    });
    this.watch.on('synced', ({ revision }) => {
      this.synced = true;
      this.log.info('desired state synced', { revision, chains: this.desired.size });
      this.schedule();
    });
    this.watch.on('disconnected', (err) => this.log.warn('lost etcd; the data plane keeps its state', { error: err.message }));
    this.watch.on('connected', ({ revision }) => this.log.info('following etcd again', { revision }));
    this.watch.on('error', (err) => this.log.error('chain watch failed', { error: err.message }));
    this.periodic = setInterval(() => this.schedule(), periodicMs);
    this.periodic.unref();
  }

  /** Something a failed chain may have waited for appeared (a netdev): try the failed chains again. */
  retryFailed(why: string): void {
    if (this.failed.size === 0) return;
    this.log.debug('trying failed chains again', { why, chains: [...this.failed.keys()].sort() });
    this.schedule();
  }

  /** Runs a pass soon; passes never overlap and requests during one coalesce into one more. */
  schedule(): void {
    this.serial.schedule(() => this.synced && !this.closed);
  }

  /** The version of `chain` this host runs, if any. */
  appliedVersion(chain: string): StoredChain | undefined {
    return this.applied.get(chain);
  }

  /** Every chain version this host runs (known once etcd has been reached). */
  appliedChains(): StoredChain[] {
    return [...this.applied.values()];
  }

  /**
   * Resolves when this host has applied `chain` at `revision` or later (or, with
   * `deleted`, no longer runs it); rejects with the host's error for that change (as
   * the runtime threw it), with WaitTimeoutError after `timeoutMs`, or with the
   * signal's reason when `signal` aborts.
   */
  waitFor(chain: string, revision: number, opts: { timeoutMs: number; deleted?: boolean; signal?: AbortSignal }): Promise<void> {
    const settled = (): { done: boolean; error?: Error } => {
      const f = this.failed.get(chain);
      if (f && f.revision >= revision) return { done: true, error: f.cause };
      const a = this.applied.get(chain);
      if (opts.deleted) return { done: !a && (this.desired.get(chain)?.revision ?? 0) < revision };
      return { done: !!a && a.revision >= revision };
    };
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.off('reconciled', check);
        opts.signal?.removeEventListener('abort', aborted);
      };
      const check = (): boolean => {
        const s = settled();
        if (!s.done) return false;
        finish();
        if (s.error) reject(s.error);
        else resolve();
        return true;
      };
      const aborted = (): void => {
        finish();
        reject(opts.signal!.reason);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new WaitTimeoutError(`host ${this.host} did not apply chain ${chain} (revision ${revision}) within ${opts.timeoutMs} ms`, [`${this.host}/${chain}`], []));
      }, opts.timeoutMs);
      if (opts.signal?.aborted) return aborted();
      opts.signal?.addEventListener('abort', aborted);
      if (!check()) this.on('reconciled', check);
    });
  }

  private async pass(): Promise<void> {
    const started = process.hrtime.bigint();
    const desired = new Map(this.desired);
    const here = (c: StoredChain): boolean => c.chain.spec.cubes.some((cube) => cube.host === this.host);
    await this.ensureTypes([...desired.values()].filter(here));

    const changes: ApplyReport[] = [];
    const apply = async (chains: Map<string, StoredChain>): Promise<void> => {
      const topology = planHost([...chains.values()].map((c) => c.chain), this.host).topology;
      changes.push(await this.runtime.apply(topology, { objects: (sha256) => this.object(sha256) }));
    };

    try {
      await apply(desired);
      this.applied.clear();
      for (const [name, c] of desired) this.applied.set(name, c);
      this.failed.clear();
    } catch (whole) {
      // Find the chains that fail: add the changed ones, one at a time, to what worked.
      const good = new Map([...this.applied].filter(([name]) => desired.has(name)));
      const changed = [...desired.values()].filter((c) => good.get(c.name)?.version !== c.version).sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const c of changed) {
        const trial = new Map(good).set(c.name, c);
        try {
          await apply(trial);
          good.set(c.name, c);
          this.failed.delete(c.name);
        } catch (err) {
          this.failed.set(c.name, { revision: c.revision, error: (err as Error).message, cause: err as Error });
          this.log.warn('chain not applied', { chain: c.name, version: c.version, error: (err as Error).message });
        }
      }
      if (changed.length === 0) {
        // Nothing new failed, yet the whole did: the host itself is in trouble.
        this.log.error('applying the desired state failed', { error: (whole as Error).message });
      } else {
        await apply(good).catch((err) => this.log.error('re-applying the last good state failed', { error: (err as Error).message }));
      }
      this.applied.clear();
      for (const [name, c] of good) this.applied.set(name, c);
    }
    for (const [name, { revision, error }] of this.unreadable) {
      if (!this.placedHere(name).length) continue;
      const running = this.applied.get(name);
      const keeps = running ? `this host keeps running version ${running.version}` : 'nothing of it runs on this host';
      this.failed.set(name, { revision, error: `${error.message}; ${keeps}`, cause: error });
    }

    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics.observeReconcile(seconds, this.failed.size === 0);
    this.logPass(desired, changes, seconds);
    const outcomes: ChainOutcome[] = [...desired.values()].filter(here).map((c) => ({
      chain: c.name,
      version: c.version,
      revision: c.revision,
      error: this.failed.get(c.name)?.revision === c.revision ? this.failed.get(c.name)!.error : undefined,
    }));
    this.emit('reconciled', outcomes);
    this.reporter.report(this.statuses(desired));
  }

  /** The cubes chain `name` places on this host: as the version here knows it, else as far as its broken document tells. */
  private placedHere(name: string): CubePlacement[] {
    const cubes = this.desired.get(name)?.chain.spec.cubes ?? this.unreadable.get(name)?.error.salvaged.cubes ?? [];
    return cubes.filter((c) => c.host === this.host);
  }

  /**
   * One line per pass: what it changed on this host, or that the data plane already
   * was what etcd says ("nothing to change", which a restarted daemon that adopted
   * everything should say on its first pass).
   */
  private logPass(desired: Map<string, StoredChain>, changes: ApplyReport[], seconds: number): void {
    const union = (pick: (r: ApplyReport) => string[]): string[] => [...new Set(changes.flatMap(pick))].sort();
    const changed = {
      created: union((r) => r.created),
      deleted: union((r) => r.deleted),
      attached: union((r) => r.attached),
      detached: union((r) => r.detached),
      reconfigured: union((r) => r.reconfigured),
      rewired: changes.some((r) => r.rewired),
      microcubes: union((r) => r.microcubes),
    };
    const fields = {
      chains: this.applied.size,
      revision: [...desired.values()].reduce((max, c) => Math.max(max, c.revision), 0),
      failed: [...this.failed.keys()].sort(),
      ms: Math.round(seconds * 1e4) / 10,
    };
    const problems = union((r) => r.problems);
    if (problems.length > 0) this.log.warn('applied, with problems', { problems });
    const resized = union((r) => r.resized);
    if (resized.length > 0) this.log.warn('table sizes changed: cubes loaded anew, their tables start empty', { cubes: resized });
    const nothing = !changed.rewired && [changed.created, changed.deleted, changed.attached, changed.detached, changed.reconfigured, changed.microcubes].every((l) => l.length === 0);
    if (nothing && this.failed.size === 0) this.log.info('reconciled, nothing to change', fields);
    else this.log.info('reconciled', { ...fields, ...changed });
  }

  /** Registers with the runtime the uploaded types this host's cubes need. */
  private async ensureTypes(chains: StoredChain[]): Promise<void> {
    const needed = new Set(chains.flatMap((c) => c.chain.spec.cubes.filter((cube) => cube.host === this.host).map((cube) => cube.type)));
    for (const name of needed) {
      const local = this.runtime.types.get(name);
      if (local?.builtin) continue;
      try {
        const stored = await this.store!.types.getType(name);
        if (local && this.typeDigests.get(name) === stored.sha256) continue;
        // Objects from etcd are checked apart (a malformed one cannot crash this
        // daemon), once per digest: a broken type fails the chains that use it.
        const broken = this.brokenTypes.get(name);
        if (broken?.sha256 === stored.sha256) throw new Error(broken.error);
        let type: CubeType;
        try {
          type = await CubeType.inspect(name, stored.objects, { policy: this.runtime.types.policy });
        } catch (err) {
          this.brokenTypes.set(name, { sha256: stored.sha256, error: (err as Error).message });
          // The chains that place it fail saying so.
          this.runtime.types.broken.set(name, (err as Error).message);
          this.log.warn('cube type refused: its chains cannot be applied here', { type: name, error: (err as Error).message });
          throw err;
        }
        this.brokenTypes.delete(name);
        if (local) this.runtime.unregisterType(name);
        this.runtime.addType(type);
        this.typeDigests.set(name, stored.sha256);
      } catch (err) {
        // The chain using it fails ("unknown cube type", or why the type is refused) and reports that.
        if (err instanceof CorruptValueError && !local) this.runtime.types.broken.set(name, err.message);
        if (!local) this.log.warn('cube type not available on this host', { type: name, error: (err as Error).message });
      }
    }
  }

  /** What this host has to say about each of its cubes in `desired`, now. */
  private statuses(desired: Map<string, StoredChain>): Map<string, StatusUpdate> {
    const now = new Map<string, StatusUpdate>();
    for (const c of desired.values()) {
      const applied = this.applied.get(c.name);
      const failure = this.failed.get(c.name);
      for (const cube of c.chain.spec.cubes) {
        if (cube.host !== this.host) continue;
        if (applied?.version === c.version && failure?.revision !== c.revision) now.set(cube.name, { chain: c.name, version: c.version, revision: c.revision, state: 'applied' });
        else if (failure) now.set(cube.name, { chain: c.name, version: c.version, revision: c.revision, state: 'error', error: failure.error });
        else now.set(cube.name, { chain: c.name, version: c.version, revision: c.revision, state: 'pending' });
      }
    }
    // A chain that cannot be read: its cubes here say so, at the revision of what broke it.
    for (const [name, { revision, error }] of this.unreadable) {
      const failure = this.failed.get(name);
      if (!failure || failure.revision !== revision) continue;
      const version = error.salvaged.version ?? this.desired.get(name)?.version ?? 1;
      for (const cube of this.placedHere(name)) now.set(cube.name, { chain: name, version, revision, state: 'error', error: failure.error });
    }
    return now;
  }

  private async object(sha256: string): Promise<Buffer> {
    let object = this.objects.get(sha256);
    if (!object) {
      object = await this.store!.objects.get(sha256);
      this.objects.set(sha256, object);
    }
    return object;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.periodic);
    this.watch?.close();
    await this.serial.idle();
    await this.reporter.close();
  }
}

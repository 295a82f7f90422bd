// Chains in etcd: apply with optimistic concurrency, history of every version, delete
// with a tombstone, rollback, and a watch of the current chains.

import { Chain, ChainValidationError, checkedChain, diffChains, HostCheck, MAX_CHAIN_BYTES, typeCatalog, TypeCatalog, validateChain } from '../chain';
import { absent, deleteOp, encode, Etcd, getOp, prefixOp, prefixUnchangedSince, putOp, unchangedSince } from './etcd';
import { ConflictError, NotFoundError, ValidationError } from './errors';
import { chainHistoryKey, chainHistoryPrefix, chainKey, CHAINS_PREFIX, TYPES_PREFIX, typeKey } from './keys';
import {
  BrokenRecord,
  ChainHistoryEntry,
  CurrentChainValue,
  Decoded,
  decodeCubeType,
  decodeEach,
  decodeHistoryEntry,
  decodeStoredChain,
  HistoryValue,
  historyVersion,
  RegisteredCubeType,
  StoredChain,
} from './records';
import { CorruptValueError } from './errors';
import { cite } from '../cite';
import { PrefixWatch } from './watch';
import { nameProblem } from '../names';

export interface ApplyOptions {
  /** The types to validate against; by default the types registered in etcd. */
  types?: TypeCatalog;
  /**
   * Refuse (ConflictError) unless the chain is at this version, 0 meaning it must not
   * exist: for a read-modify-write. By default, the version current when apply starts.
   */
  expectedVersion?: number;
}

export interface ApplyResult {
  version: number;
  /** etcd revision of the write; hosts report status against it. */
  revision: number;
  /** The spec was identical to the current version: nothing was written. */
  unchanged: boolean;
}

export type ChainWatch = PrefixWatch<StoredChain>;

// Another chain changing between our read and our write makes us validate again; past
// this many rounds the cluster is too busy for this apply to get through.
const MAX_ROUNDS = 5;

interface Snapshot {
  current?: StoredChain;
  /** The current key, when it holds something that is no chain. */
  broken?: BrokenRecord;
  /** Highest version in the history (the current one, or a tombstone); 0 if never applied. */
  lastVersion: number;
  others: StoredChain[];
  types: RegisteredCubeType[];
  revision: number;
}

export class Chains {
  /** The registered types as the last snapshot with types read them, by key (undefined: a record that cannot be read). */
  private readonly types = new Map<string, { revision: number; type?: RegisteredCubeType }>();

  constructor(
    private readonly etcd: Etcd,
    private readonly hostCheck: HostCheck | undefined,
  ) {}

  /**
   * Validates `chain` against the cluster and writes it as a new version: the current
   * key and its history entry in one transaction, which fails if anyone else applied
   * this chain, or changed another chain or a type it uses, after we read them.
   */
  apply(chain: Chain, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.write(chain, options);
  }

  /** The current version; CorruptValueError, saying what is wrong, when etcd holds something else there. */
  async get(name: string): Promise<StoredChain> {
    const snap = await this.snapshot(name, false);
    if (snap.broken) throw new CorruptValueError(snap.broken.error, snap.broken.key, snap.broken);
    if (!snap.current) throw notFound(name, snap.lastVersion);
    return snap.current;
  }

  /** Current chains, by name; one that cannot be read is left out (listWithBroken has it). */
  async list(): Promise<StoredChain[]> {
    return (await this.listWithBroken()).values;
  }

  /** Current chains, and apart those that cannot be read, with why. */
  async listWithBroken(): Promise<Decoded<StoredChain>> {
    const { ranges } = await this.etcd.read('list chains', [prefixOp(CHAINS_PREFIX)]);
    return decodeEach(ranges[0], CHAINS_PREFIX, decodeStoredChain);
  }

  /**
   * Deletes the current chain and records a tombstone, so the deletion can be rolled
   * back. A chain that cannot be read is deleted the same way.
   */
  async delete(name: string, options: { expectedVersion?: number } = {}): Promise<{ version: number; revision: number }> {
    checkName(name);
    let base = options.expectedVersion;
    for (let round = 1; ; round++) {
      const snap = await this.snapshot(name, false);
      if (!snap.current && !snap.broken) throw notFound(name, snap.lastVersion);
      const at = snap.current?.version ?? snap.broken?.version ?? snap.lastVersion;
      base ??= at;
      if (at !== base) throw conflict(name, base, snap.current);
      const version = snap.lastVersion + 1;
      const entry: HistoryValue = { version, at: new Date().toISOString(), action: 'delete' };
      const { succeeded, revision } = await this.etcd.write(
        `delete chain ${name}`,
        [absent(chainHistoryKey(name, version))],
        [deleteOp(chainKey(name)), putOp(chainHistoryKey(name, version), entry)],
      );
      if (succeeded) return { version, revision };
      if (round === MAX_ROUNDS) throw busy(name);
    }
  }

  /** Every version applied and every deletion, oldest first; an entry that cannot be read is left out. */
  async history(name: string): Promise<ChainHistoryEntry[]> {
    return (await this.historyWithBroken(name)).values;
  }

  /** Every version applied and every deletion, oldest first, and apart the entries that cannot be read. */
  async historyWithBroken(name: string): Promise<Decoded<ChainHistoryEntry>> {
    checkName(name);
    const { ranges } = await this.etcd.read(`read history of chain ${name}`, [prefixOp(chainHistoryPrefix(name))]);
    if (ranges[0].length === 0) throw new NotFoundError(`chain ${name} has no history: it was never applied`);
    const decoded = decodeEach(ranges[0], chainHistoryPrefix(name), decodeHistoryEntry);
    for (const b of decoded.broken) b.version = historyVersion(b.key);
    return decoded;
  }

  async getVersion(name: string, version: number): Promise<ChainHistoryEntry> {
    checkName(name);
    const { ranges } = await this.etcd.read(`read version ${version} of chain ${name}`, [
      getOp(chainHistoryKey(name, version)),
      prefixOp(chainHistoryPrefix(name), { last: true }),
    ]);
    const [entry] = ranges[0];
    if (entry) return decodeHistoryEntry(entry);
    const [last] = ranges[1];
    throw new NotFoundError(
      last
        ? `chain ${name} has no version ${version}; its versions are 1 to ${historyVersion(last.key)}`
        : `chain ${name} has no history: it was never applied`,
    );
  }

  /** Applies the spec of an earlier version as a new version (also after a delete). */
  async rollback(name: string, toVersion: number, options: ApplyOptions = {}): Promise<ApplyResult> {
    const entry = await this.getVersion(name, toVersion);
    if (entry.action === 'delete') {
      throw new ValidationError(`version ${toVersion} of chain ${name} records its deletion, not a spec: roll back to a version that applied one (see its history)`);
    }
    return this.write(entry.chain, options, toVersion);
  }

  /**
   * Takes back version `failed` of chain `name` (a change its caller was told had
   * failed: a host could not apply it): its history entry goes and the chain is
   * `previous` again (absent when undefined), in one transaction, unless anyone
   * changed the chain since. etcd then holds what it held before the change, its
   * revisions aside. `undone` is false when someone did: their change stands.
   */
  async undo(name: string, failed: { version: number; revision: number; deleted?: boolean }, previous: StoredChain | undefined): Promise<{ undone: boolean; revision: number }> {
    checkName(name);
    const restored: CurrentChainValue | undefined = previous && { version: previous.version, appliedAt: previous.appliedAt, chain: previous.chain };
    const { succeeded, revision } = await this.etcd.write(
      `undo version ${failed.version} of chain ${name}`,
      [
        unchangedSince(chainHistoryKey(name, failed.version), failed.revision),
        absent(chainHistoryKey(name, failed.version + 1)),
        unchangedSince(chainKey(name), failed.deleted ? 0 : failed.revision),
      ],
      [deleteOp(chainHistoryKey(name, failed.version)), restored ? putOp(chainKey(name), restored) : deleteOp(chainKey(name))],
    );
    return { undone: succeeded, revision };
  }

  /** Current chains as put/delete events; begins with a put for each existing chain. */
  watch(): ChainWatch {
    return new PrefixWatch(this.etcd, CHAINS_PREFIX, decodeStoredChain, 'chains');
  }

  private async write(chain: Chain, options: ApplyOptions, rollbackOf?: number): Promise<ApplyResult> {
    const spec = validating(() => checkedChain(chain));
    const name = spec.metadata.name;
    let base = options.expectedVersion;
    for (let round = 1; ; round++) {
      const snap = await this.snapshot(name, !options.types);
      const { current } = snap;
      // An edit of what it read cannot build on a chain that cannot be read; a whole new spec replaces it.
      if (snap.broken && options.expectedVersion !== undefined) {
        throw new CorruptValueError(`${snap.broken.error}; apply chain ${name} whole, or delete it, to repair it`, snap.broken.key, snap.broken);
      }
      // Also how a retried write whose first attempt did land (reply lost) ends.
      if (current && diffChains(current.chain, spec).length === 0) {
        return { version: current.version, revision: current.revision, unchanged: true };
      }
      base ??= current?.version ?? 0;
      if ((current?.version ?? 0) !== base) throw conflict(name, base, current);

      const types = options.types ?? typeCatalog(snap.types);
      // The caller's object, not our normalized copy: a chain parsed from a file keeps its line numbers.
      validating(() => validateChain(chain, { types, otherChains: snap.others.map(other => other.chain), hostCheck: this.hostCheck }));

      const version = snap.lastVersion + 1;
      const appliedAt = new Date().toISOString();
      const used = new Set(spec.spec.cubes.map(cube => cube.type));
      const compare = [
        // Nobody wrote this version (apply or delete) since we read the history.
        absent(chainHistoryKey(name, version)),
        // No other chain took a cube name or netdev we checked against.
        prefixUnchangedSince(CHAINS_PREFIX, snap.revision),
        // No registered type we validated against changed or went away.
        ...(options.types ? [] : snap.types.filter(t => used.has(t.name)).map(t => unchangedSince(typeKey(t.name), t.revision))),
      ];
      const currentValue: CurrentChainValue = { version, appliedAt, chain: spec };
      const bytes = encode(currentValue).length;
      if (bytes > MAX_CHAIN_BYTES) {
        throw new ValidationError(`chain ${name} takes ${bytes} bytes as JSON, over the limit of ${MAX_CHAIN_BYTES} bytes a chain (etcd holds it twice per change): split it into several chains`);
      }
      const entry: HistoryValue = { version, at: appliedAt, action: 'apply', chain: spec, ...(rollbackOf ? { rollbackOf } : {}) };
      const { succeeded, revision } = await this.etcd.write(`apply chain ${name}`, compare, [
        putOp(chainKey(name), currentValue),
        putOp(chainHistoryKey(name, version), entry),
      ]);
      if (succeeded) return { version, revision, unchanged: false };
      if (round === MAX_ROUNDS) throw busy(name);
    }
  }

  /**
   * The chain, its newest history version, all chains and (optionally) types, at one
   * revision. Types carry their ELF objects (hundreds of KB in all) and rarely change:
   * they are listed by key and revision only, and read in full (in a second snapshot)
   * only when one is not in `types` as last read.
   */
  private async snapshot(name: string, withTypes: boolean): Promise<Snapshot> {
    checkName(name);
    const ops = [getOp(chainKey(name)), prefixOp(chainHistoryPrefix(name), { last: true }), prefixOp(CHAINS_PREFIX)];
    let { ranges, revision } = await this.etcd.read(`read chain ${name}`, withTypes ? [...ops, prefixOp(TYPES_PREFIX, { keysOnly: true })] : ops);
    if (withTypes) {
      const listed = ranges[3];
      const known = listed.length === this.types.size && listed.every(kv => this.types.get(kv.key)?.revision === kv.modRevision);
      if (!known) {
        ({ ranges, revision } = await this.etcd.read(`read chain ${name}`, [...ops, prefixOp(TYPES_PREFIX)]));
        this.types.clear();
        // A type record that cannot be read is no type: chains placing it are refused as of an unknown type.
        const decoded = decodeEach(ranges[3], TYPES_PREFIX, decodeCubeType);
        for (const type of decoded.values) this.types.set(typeKey(type.name), { revision: type.revision, type });
        for (const b of decoded.broken) this.types.set(b.key, { revision: b.revision });
      }
    }
    const [current, last, all] = ranges;
    // Only the other chains' names and cubes matter here: one that cannot be read is skipped.
    const currentChain = current[0] && decodeEach(current, CHAINS_PREFIX, decodeStoredChain);
    return {
      current: currentChain?.values[0],
      broken: currentChain?.broken[0],
      lastVersion: last[0] ? lastVersion(last[0].key) : 0,
      others: decodeEach(all, CHAINS_PREFIX, decodeStoredChain).values.filter(other => other.name !== name),
      types: withTypes ? [...this.types.values()].flatMap(t => (t.type ? [t.type] : [])) : [],
      revision,
    };
  }
}

/** The newest version in a chain's history, from its key: an entry counts whatever it holds. */
function lastVersion(key: string): number {
  const version = historyVersion(key);
  if (version === undefined) {
    throw new CorruptValueError(`key ${cite(key)} is not a chain history entry (chain-history/<name>/<10-digit version>): it was not written by netcube; delete it with etcdctl`, key);
  }
  return version;
}

function checkName(name: string): void {
  const problem = typeof name === 'string' ? nameProblem(name, 'chain name') : 'chain name must be a string';
  if (problem) throw new ValidationError(problem);
}

/** Runs a chain check, turning its findings into the store's ValidationError. */
function validating<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof ChainValidationError) throw new ValidationError(err.message, err.issues, { cause: err });
    throw err;
  }
}

function notFound(name: string, lastVersion: number): NotFoundError {
  const deleted = lastVersion > 0 ? `; it was deleted (version ${lastVersion}): roll back to an earlier version to restore it` : '';
  return new NotFoundError(`chain ${name} does not exist${deleted}`);
}

function conflict(name: string, expected: number, current: StoredChain | undefined): ConflictError {
  const now = current ? `is at version ${current.version} (applied ${current.appliedAt})` : 'does not exist (now)';
  const wanted = expected === 0 ? 'did not exist' : `was at version ${expected}`;
  return new ConflictError(`chain ${name} changed meanwhile: it ${now}, but this change expected that it ${wanted}; read it again, redo the change and apply`);
}

function busy(name: string): ConflictError {
  return new ConflictError(`chain ${name}: other chains kept changing while it was validated (${MAX_ROUNDS} tries); apply again`);
}

// Chains in etcd: apply with optimistic concurrency, history of every version, delete
// with a tombstone, rollback, and a watch of the current chains.

import { Chain, ChainValidationError, checkedChain, diffChains, HostCheck, nameProblem, typeCatalog, TypeCatalog, validateChain } from '../chain';
import { absent, deleteOp, Etcd, getOp, prefixOp, prefixUnchangedSince, putOp, unchangedSince } from './etcd';
import { ConflictError, NotFoundError, ValidationError } from './errors';
import { chainHistoryKey, chainHistoryPrefix, chainKey, CHAINS_PREFIX, TYPES_PREFIX, typeKey } from './keys';
import {
  ChainHistoryEntry,
  CurrentChainValue,
  decodeCubeType,
  decodeHistoryEntry,
  decodeStoredChain,
  HistoryValue,
  RegisteredCubeType,
  StoredChain,
} from './records';
import { PrefixWatch } from './watch';

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
  /** Highest version in the history (the current one, or a tombstone); 0 if never applied. */
  lastVersion: number;
  others: StoredChain[];
  types: RegisteredCubeType[];
  revision: number;
}

export class Chains {
  /** The registered types as the last snapshot with types read them, by key. */
  private readonly types = new Map<string, RegisteredCubeType>();

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

  async get(name: string): Promise<StoredChain> {
    const snap = await this.snapshot(name, false);
    if (!snap.current) throw notFound(name, snap.lastVersion);
    return snap.current;
  }

  /** Current chains, by name. */
  async list(): Promise<StoredChain[]> {
    const { ranges } = await this.etcd.read('list chains', [prefixOp(CHAINS_PREFIX)]);
    return ranges[0].map(decodeStoredChain);
  }

  /** Deletes the current chain and records a tombstone, so the deletion can be rolled back. */
  async delete(name: string, options: { expectedVersion?: number } = {}): Promise<{ version: number; revision: number }> {
    checkName(name);
    let base = options.expectedVersion;
    for (let round = 1; ; round++) {
      const snap = await this.snapshot(name, false);
      if (!snap.current) throw notFound(name, snap.lastVersion);
      base ??= snap.current.version;
      if (snap.current.version !== base) throw conflict(name, base, snap.current);
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

  /** Every version applied and every deletion, oldest first. */
  async history(name: string): Promise<ChainHistoryEntry[]> {
    checkName(name);
    const { ranges } = await this.etcd.read(`read history of chain ${name}`, [prefixOp(chainHistoryPrefix(name))]);
    if (ranges[0].length === 0) throw new NotFoundError(`chain ${name} has no history: it was never applied`);
    return ranges[0].map(decodeHistoryEntry);
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
        ? `chain ${name} has no version ${version}; its versions are 1 to ${decodeHistoryEntry(last).version}`
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
        for (const kv of ranges[3]) this.types.set(kv.key, decodeCubeType(kv));
      }
    }
    const [current, last, all] = ranges;
    return {
      current: current[0] && decodeStoredChain(current[0]),
      lastVersion: last[0] ? decodeHistoryEntry(last[0]).version : 0,
      others: all.map(decodeStoredChain).filter(other => other.name !== name),
      types: withTypes ? [...this.types.values()] : [],
      revision,
    };
  }
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

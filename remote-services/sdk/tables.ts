// A cube's tables through its daemon's TableService, and the reconciliation of
// the tables a service derives from config ("static" tables): make the kernel's
// table hold exactly the desired entries.
//
// Keys and values are JSON as the maps' BTF describes them (as netcubectl shows
// them: structs as objects, enums by name, arrays as lists). Reconciliation
// compares bytes: the desired entries are encoded here with the BTF the daemon
// gives (ListTables), so "changed" means changed in the kernel's layout, not a
// different spelling of the same value.

import type { NetcubeClient } from '@netcube/api/grpc/client';
import { ApiCallError } from '@netcube/api/grpc/client';
import type { TableInfo__Output } from '@netcube/api/generated/netcube/v1/TableInfo';
import { BtfType, encode } from '@netcube/api/btf';
import type { Entry } from '@netcube/api/generated/netcube/v1/Entry';
import { MAX_BATCH_ENTRIES, MAX_REQUEST_BYTES } from '@netcube/api/grpc/limits';

export interface TableEntry<K = unknown, V = unknown> {
  key: K;
  value: V;
}

const ARRAYS = new Set(['array', 'percpu_array']);
const PER_CPU = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash']);

/** A listing streams one entry per message: 65,536 of them take about 5 s on an idle host. */
const LIST_TIMEOUT_MS = 120_000;

const toJson = (v: unknown): string => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

/** What one entry adds to a request, at most: its bytes and protobuf's framing. */
const entryBytes = (e: Entry): number =>
  32 + (e.keyRaw?.length ?? Buffer.byteLength(e.keyJson ?? '')) + (e.valueRaw?.length ?? Buffer.byteLength(e.valueJson ?? ''));

/**
 * Writes `entries` with as few PutEntries calls as the daemon's limits allow
 * (MAX_BATCH_ENTRIES entries and MAX_REQUEST_BYTES a call); returns how many were written.
 */
async function putEntries(client: NetcubeClient, table: { cube: string; table: string }, entries: readonly Entry[]): Promise<number> {
  let written = 0;
  for (let start = 0; start < entries.length; ) {
    let end = start;
    // Room for the table's name and the message's own framing.
    let bytes = 1024;
    while (end < entries.length && end - start < MAX_BATCH_ENTRIES && bytes + entryBytes(entries[end]) <= MAX_REQUEST_BYTES) bytes += entryBytes(entries[end++]);
    if (end === start) throw new RangeError(`entry ${start} of table ${table.table} of cube ${table.cube} takes more than the ${MAX_REQUEST_BYTES} bytes a request may`);
    written += (await client.putEntries({ table, entries: entries.slice(start, end) })).written;
    start = end;
  }
  return written;
}

/** What the daemon says about one table of a cube. */
export class TableLayout {
  readonly keyType?: BtfType;
  readonly valueType?: BtfType;

  constructor(readonly info: TableInfo__Output) {
    this.keyType = info.keyTypeJson ? (JSON.parse(info.keyTypeJson) as BtfType) : undefined;
    this.valueType = info.valueTypeJson ? (JSON.parse(info.valueTypeJson) as BtfType) : undefined;
  }

  get name(): string {
    return this.info.name;
  }
  get isArray(): boolean {
    return ARRAYS.has(this.info.mapType);
  }

  encodeKey(key: unknown): Buffer {
    if (!this.keyType) throw new TypeError(`table ${this.name} has no BTF for its keys: static tables need it`);
    return encode(this.keyType, key, 'key');
  }
  encodeValue(value: unknown): Buffer {
    if (!this.valueType) throw new TypeError(`table ${this.name} has no BTF for its values: static tables need it`);
    if (PER_CPU.has(this.info.mapType)) throw new TypeError(`table ${this.name} is per-CPU: it cannot be a static table`);
    return encode(this.valueType, value, 'value');
  }
}

/** One table of one cube, read and written through the cube's daemon. */
export class Table<K = unknown, V = unknown> {
  private valueSize?: number;

  constructor(
    private readonly client: () => NetcubeClient,
    readonly cube: string,
    readonly name: string,
  ) {}

  private get ref(): { cube: string; table: string } {
    return { cube: this.cube, table: this.name };
  }

  /** The entry's value, or undefined when the key has none. */
  async get(key: K): Promise<V | undefined> {
    try {
      const e = await this.client().getEntry({ table: this.ref, entry: { keyJson: toJson(key) } });
      return JSON.parse(e.valueJson ?? 'null') as V;
    } catch (err) {
      if (err instanceof ApiCallError && err.codeName === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  async put(key: K, value: V): Promise<void> {
    await this.client().putEntry({ table: this.ref, entry: { keyJson: toJson(key), valueJson: toJson(value) } });
  }

  /** Many entries in kernel batches: one, unless they exceed what one call may carry. */
  async putBatch(entries: readonly TableEntry<K, V>[]): Promise<number> {
    return putEntries(this.client(), this.ref, entries.map((e) => ({ keyJson: toJson(e.key), valueJson: toJson(e.value) })));
  }

  /** Removes the entry; false when there was none. An array's entries always exist: they are zeroed instead. */
  async delete(key: K): Promise<boolean> {
    try {
      await this.client().deleteEntry({ table: this.ref, entry: { keyJson: toJson(key) } });
      return true;
    } catch (err) {
      if (err instanceof ApiCallError && err.codeName === 'NOT_FOUND') return false;
      if (err instanceof ApiCallError && err.codeName === 'FAILED_PRECONDITION') {
        this.valueSize ??= (await this.client().listTables({ cube: this.cube })).tables.find((t) => t.name === this.name)?.valueSize;
        if (this.valueSize === undefined) throw err;
        await this.client().putEntry({ table: this.ref, entry: { keyJson: toJson(key), valueRaw: Buffer.alloc(this.valueSize) } });
        return true;
      }
      throw err;
    }
  }

  /** Every entry (an array lists every slot). A big table takes seconds: its deadline is LIST_TIMEOUT_MS. */
  async list(): Promise<TableEntry<K, V>[]> {
    const out: TableEntry<K, V>[] = [];
    for await (const e of this.client().listEntries({ table: this.ref }, { timeoutMs: LIST_TIMEOUT_MS })) {
      out.push({ key: JSON.parse(e.keyJson ?? 'null') as K, value: JSON.parse(e.valueJson ?? 'null') as V });
    }
    return out;
  }
}

export interface ReconcileResult {
  put: number;
  deleted: number;
}

/**
 * Makes table `layout` of `cube` hold exactly `desired`: puts what is missing or
 * different (in as few batches as the daemon takes), deletes the rest (an array's other slots are zeroed).
 */
export async function reconcileTable(client: NetcubeClient, cube: string, layout: TableLayout, desired: readonly TableEntry[]): Promise<ReconcileResult> {
  const table = { cube, table: layout.name };
  const want = new Map<string, { key: Buffer; value: Buffer }>();
  for (const [i, e] of desired.entries()) {
    let key: Buffer;
    let value: Buffer;
    try {
      key = layout.encodeKey(e.key);
      value = layout.encodeValue(e.value);
    } catch (err) {
      throw new TypeError(`static table ${layout.name}, entry ${i} (${toJson(e.key)}): ${(err as Error).message}`);
    }
    want.set(key.toString('hex'), { key, value });
  }
  const puts: { keyRaw: Buffer; valueRaw: Buffer }[] = [];
  const extra: Buffer[] = [];
  const seen = new Set<string>();
  for await (const e of client.listEntries({ table, raw: true })) {
    const hex = e.keyRaw!.toString('hex');
    seen.add(hex);
    const w = want.get(hex);
    if (w) {
      if (!w.value.equals(e.valueRaw!)) puts.push({ keyRaw: w.key, valueRaw: w.value });
    } else if (!layout.isArray || e.valueRaw!.some((b) => b !== 0)) {
      extra.push(e.keyRaw!);
    }
  }
  for (const [hex, w] of want) if (!seen.has(hex)) puts.push({ keyRaw: w.key, valueRaw: w.value });
  await putEntries(client, table, puts);
  for (const key of extra) {
    if (layout.isArray) {
      await client.putEntry({ table, entry: { keyRaw: key, valueRaw: Buffer.alloc(layout.info.valueSize) } });
    } else {
      try {
        await client.deleteEntry({ table, entry: { keyRaw: key } });
      } catch (err) {
        if (!(err instanceof ApiCallError && err.codeName === 'NOT_FOUND')) throw err;
      }
    }
  }
  return { put: puts.length, deleted: extra.length };
}

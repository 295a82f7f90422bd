// BpfMap: a map the kernel holds, through our own fd. Keys and values are
// Buffers of exactly keySize / valueSize bytes (per-CPU maps: one 8-byte
// aligned slot per possible CPU); btf.ts turns them into JSON when the map
// has BTF.
import type { BtfType } from '@netcube/api/btf';
import { mapTypeNames, native, possibleCpus, type MapHandle, type PinnedHandle } from './addon';
import { ClosedError } from './errors';
import { programHandle, type Program } from './program';
import { checkIndex, checkOptions, checkPath, checkUint32 } from './validate';

/** Map types as libbpf names them (libbpf_bpf_map_type_str). */
export type MapType =
  | 'hash' | 'array' | 'prog_array' | 'perf_event_array' | 'percpu_hash' | 'percpu_array' | 'stack_trace'
  | 'cgroup_array' | 'lru_hash' | 'lru_percpu_hash' | 'lpm_trie' | 'array_of_maps' | 'hash_of_maps' | 'devmap'
  | 'sockmap' | 'cpumap' | 'xskmap' | 'sockhash' | 'cgroup_storage' | 'reuseport_sockarray'
  | 'percpu_cgroup_storage' | 'queue' | 'stack' | 'sk_storage' | 'devmap_hash' | 'struct_ops' | 'ringbuf'
  | 'inode_storage' | 'task_storage' | 'bloom_filter' | 'user_ringbuf' | 'cgrp_storage';

export type UpdateFlag = 'any' | 'noexist' | 'exist';

export interface MapInfo {
  type: MapType;
  id: number;
  name: string;        // as the kernel keeps it: at most 15 characters
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
}

export interface CreateMapOptions {
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  name?: string;
}

/** BPF_F_MMAPABLE: the array can be mmap'ed (storeU64Atomic/loadU64). */
export const MAP_F_MMAPABLE = 1 << 10;

const updateFlags: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };
const perCpuTypes = new Set<MapType>(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);

let handleOf: (map: BpfMap) => MapHandle;

export class BpfMap {
  readonly name: string;
  readonly type: MapType;
  readonly id: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  /** CPUs a per-CPU map keeps a value for: its values are roundUp(valueSize, 8) * possibleCpus bytes. */
  readonly possibleCpus = possibleCpus;
  /** Bytes of a value as lookup/update take them (per-CPU maps: every CPU's slot). */
  readonly valueBytes: number;
  #handle: MapHandle | undefined;
  // The handle's fd, -1 once closed: the per-element operations use it
  // directly, as cheaply as a closed check can be.
  #fd: number;
  #btf: { key?: BtfType; value?: BtfType } | undefined;
  #label: string;

  static {
    handleOf = (map) => map.#live();
  }

  /** @internal Wraps a native handle; use create(), openPinned() or a Collection. */
  constructor(handle: PinnedHandle, name?: string) {
    const info = handle.info();
    if (info.kind !== 'map') {
      handle.close();
      throw new TypeError(`${name ?? 'the object'} is a BPF ${info.kind}, not a map`);
    }
    this.#handle = handle as MapHandle;
    this.#fd = handle.fd;
    this.name = name ?? info.name;
    this.type = info.type as MapType;
    this.id = info.id;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.flags = info.flags;
    this.valueBytes = perCpuTypes.has(this.type) ? Math.ceil(info.valueSize / 8) * 8 * possibleCpus : info.valueSize;
    this.#label = this.name ? `BpfMap '${this.name}'` : `BpfMap #${this.id}`;
    handle.setLabel(this.#label);
  }

  static create(opts: CreateMapOptions): BpfMap {
    checkOptions(opts);
    const type = mapTypeNames.indexOf(opts.type);
    if (type <= 0) throw new RangeError(`options.type: unknown map type '${String(opts.type)}'`);
    checkUint32(opts.keySize, 'options.keySize');
    checkUint32(opts.valueSize, 'options.valueSize');
    checkUint32(opts.maxEntries, 'options.maxEntries');
    const flags = opts.flags ?? 0;
    checkUint32(flags, 'options.flags');
    const name = opts.name ?? '';
    if (typeof name !== 'string' || name.length > 15 || !/^[A-Za-z0-9_.]*$/.test(name)) {
      throw new RangeError('options.name: up to 15 characters of letters, digits, _ and .');
    }
    return new BpfMap(native.mapCreate(type, name, opts.keySize, opts.valueSize, opts.maxEntries, flags), name || undefined);
  }

  static openPinned(path: string): BpfMap {
    checkPath(path, 'path');
    return new BpfMap(native.objGet(path));
  }

  get fd(): number {
    return this.#live().fd;
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  /** The key's BTF type, from the kernel's copy of the map's BTF; undefined without BTF. */
  get keyType(): BtfType | undefined {
    return this.#btfTypes().key;
  }

  get valueType(): BtfType | undefined {
    return this.#btfTypes().value;
  }

  info(): MapInfo {
    const { kind: _, ...rest } = this.#live().info();
    return { ...rest, type: rest.type as MapType };
  }

  lookup(key: Uint8Array): Buffer | undefined {
    const fd = this.#fd;
    if (fd < 0) this.#closed();
    if (!(key instanceof Uint8Array) || key.length !== this.keySize) this.#badBytes('key', key, this.keySize);
    const value = Buffer.allocUnsafe(this.valueBytes);
    return native.mapLookup(fd, key, value, this.#label) ? value : undefined;
  }

  update(key: Uint8Array, value: Uint8Array, flag: UpdateFlag = 'any'): void {
    const fd = this.#fd;
    if (fd < 0) this.#closed();
    if (!(key instanceof Uint8Array) || key.length !== this.keySize) this.#badBytes('key', key, this.keySize);
    if (!(value instanceof Uint8Array) || value.length !== this.valueBytes) {
      this.#badBytes('value', value, this.valueBytes);
    }
    const flags = updateFlags[flag];
    if (flags === undefined) this.#badFlag(flag);
    native.mapUpdate(fd, key, value, flags, this.#label);
  }

  /** Deletes the key; false when it was absent. */
  delete(key: Uint8Array): boolean {
    const fd = this.#fd;
    if (fd < 0) this.#closed();
    if (!(key instanceof Uint8Array) || key.length !== this.keySize) this.#badBytes('key', key, this.keySize);
    return native.mapDelete(fd, key, this.#label);
  }

  /** The key after `key` (the first key without one); undefined at the end. */
  nextKey(key?: Uint8Array): Buffer | undefined {
    const fd = this.#fd;
    if (fd < 0) this.#closed();
    if (key !== undefined && (!(key instanceof Uint8Array) || key.length !== this.keySize)) {
      this.#badBytes('key', key, this.keySize);
    }
    const next = Buffer.allocUnsafe(this.keySize);
    return native.mapNextKey(fd, key ?? null, next, this.#label) ? next : undefined;
  }

  *keys(): IterableIterator<Buffer> {
    for (let key = this.nextKey(); key !== undefined; key = this.nextKey(key)) yield key;
  }

  /** Entries as iteration finds them; keys deleted meanwhile are skipped. */
  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== undefined) yield [key, value];
    }
  }

  /**
   * Every entry, read with BPF_MAP_LOOKUP_BATCH `chunk` entries at a time, or
   * by iteration for map types without batch lookup. Not a snapshot: entries
   * changed meanwhile may or may not show.
   */
  lookupBatch(opts: { chunk?: number } = {}): { keys: Buffer[]; values: Buffer[] } {
    const handle = this.#live();
    const chunk = opts.chunk ?? 256;
    checkIndex(chunk, 'options.chunk', 1, 1 << 24);
    const { count, keys, values } = handle.lookupBatch(chunk);
    const out = { keys: new Array<Buffer>(count), values: new Array<Buffer>(count) };
    for (let i = 0; i < count; i++) {
      out.keys[i] = keys.subarray(i * this.keySize, (i + 1) * this.keySize);
      out.values[i] = values.subarray(i * this.valueBytes, (i + 1) * this.valueBytes);
    }
    return out;
  }

  /**
   * Writes `count` entries, keys and values each concatenated, with
   * BPF_MAP_UPDATE_BATCH (one element at a time where the map type has no
   * batch update). Returns the number written.
   */
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number, flag: UpdateFlag = 'any'): number {
    const handle = this.#live();
    checkUint32(count, 'count');
    if (!(keys instanceof Uint8Array) || keys.length !== count * this.keySize) {
      this.#badBytes('keys', keys, count * this.keySize);
    }
    if (!(values instanceof Uint8Array) || values.length !== count * this.valueBytes) {
      this.#badBytes('values', values, count * this.valueBytes);
    }
    const flags = updateFlags[flag];
    if (flags === undefined) this.#badFlag(flag);
    return handle.updateBatch(keys, values, count, flags);
  }

  /** Deletes `count` concatenated keys; every key must exist. Returns the number deleted. */
  deleteBatch(keys: Uint8Array, count: number): number {
    const handle = this.#live();
    checkUint32(count, 'count');
    if (!(keys instanceof Uint8Array) || keys.length !== count * this.keySize) {
      this.#badBytes('keys', keys, count * this.keySize);
    }
    return handle.deleteBatch(keys, count);
  }

  /** Points slot `index` of a prog array at `program`: one atomic slot write. */
  setProgram(index: number, program: Program): void {
    this.#checkSlot(index);
    const value = Buffer.alloc(4);
    value.writeUInt32LE(programHandle(program).fd);
    this.update(slotKey(index), value);
  }

  /** Empties slot `index` of a prog array; false when it was empty. */
  clearProgram(index: number): boolean {
    this.#checkSlot(index);
    return this.delete(slotKey(index));
  }

  /**
   * Stores `value` in 8-byte word `index` of a BPF_F_MMAPABLE array whose values
   * are whole words (word i of the array's values laid back to back: an array of
   * u64, or a global u64 array in a section of its own) with one aligned 64-bit
   * store through the map's mmap: programs never see half of it, unlike an
   * update(), which copies bytes.
   */
  storeU64Atomic(index: number, value: bigint): void {
    const handle = this.#live();
    this.#checkMmapable(index);
    if (typeof value !== 'bigint') throw new TypeError(`value must be a bigint, got ${typeof value}`);
    if (value < 0n || value > 0xffffffffffffffffn) throw new RangeError(`value ${value} does not fit in 64 bits`);
    handle.storeU64(index, value);
  }

  loadU64(index: number): bigint {
    const handle = this.#live();
    this.#checkMmapable(index);
    return handle.loadU64(index);
  }

  pin(path: string): void {
    const handle = this.#live();
    checkPath(path, 'path');
    handle.pin(path);
  }

  close(): void {
    this.#handle?.close();
    this.#handle = undefined;
    this.#fd = -1;
  }

  toString(): string {
    return this.#label;
  }

  #live(): MapHandle {
    const handle = this.#handle;
    if (handle === undefined) this.#closed();
    return handle;
  }

  #closed(): never {
    throw new ClosedError(this.#label);
  }

  #btfTypes(): { key?: BtfType; value?: BtfType } {
    this.#btf ??= this.#live().btfTypes();
    return this.#btf;
  }

  #checkSlot(index: number): void {
    this.#live();
    if (this.type !== 'prog_array') throw new TypeError(`${this.#label} is a ${this.type} map, not a prog_array`);
    checkIndex(index, 'index', 0, this.maxEntries - 1);
  }

  #checkMmapable(index: number): void {
    if (this.type !== 'array' || (this.flags & MAP_F_MMAPABLE) === 0 || this.valueSize % 8 !== 0) {
      throw new TypeError(`${this.#label} is not a BPF_F_MMAPABLE array of 8-byte words`);
    }
    checkIndex(index, 'index', 0, (this.maxEntries * this.valueSize) / 8 - 1);
  }

  #badBytes(what: string, bytes: unknown, expected: number): never {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`${what} of ${this.#label} must be a Buffer, got ${bytes === null ? 'null' : typeof bytes}`);
    }
    throw new RangeError(`${what} of ${this.#label} is ${bytes.length} bytes, expected ${expected}`);
  }

  #badFlag(flag: unknown): never {
    throw new RangeError(`flag must be 'any', 'noexist' or 'exist', got ${String(flag)}`);
  }
}

function slotKey(index: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  return key;
}

/** @internal The native handle of an open map, for the other modules of the binding. */
export function mapHandle(map: BpfMap, name = 'map'): MapHandle {
  if (!(map instanceof BpfMap)) throw new TypeError(`${name} must be a BpfMap`);
  return handleOf(map);
}

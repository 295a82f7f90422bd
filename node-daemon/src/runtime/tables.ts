// A cube's table, read and written as JSON through the map's BTF (as bpftool map
// dump does), or as raw bytes when a caller passes Buffers.

import { encodeInto } from '@netcube/api/btf';
import { BpfMap, BtfType, decode } from '../bpf';
import { TableScope } from './abi';
import { InvalidArgumentError } from './errors';

export interface TableEntry {
  key: unknown;
  value: unknown;
}

const PER_CPU = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);

export class Table {
  constructor(
    readonly cube: string,
    readonly name: string,
    readonly scope: TableScope,
    readonly map: BpfMap,
  ) {}

  get perCpu(): boolean {
    return PER_CPU.has(this.map.type);
  }

  private get slotSize(): number {
    return Math.ceil(this.map.valueSize / 8) * 8;
  }

  private btf(which: 'key' | 'value'): BtfType {
    const t = which === 'key' ? this.map.keyType : this.map.valueType;
    if (!t) throw new InvalidArgumentError(which, `table ${this.name} of cube ${this.cube} has no BTF type for its ${which}s: pass raw bytes`);
    return t;
  }

  encodeKey(key: unknown): Buffer {
    if (Buffer.isBuffer(key)) return key;
    const out = Buffer.alloc(this.map.keySize);
    this.encodeKeyInto(key, out, 0);
    return out;
  }

  /** A per-CPU table takes one value for every CPU, or an array with one per CPU. */
  encodeValue(value: unknown): Buffer {
    if (Buffer.isBuffer(value)) return value;
    const out = Buffer.alloc(this.map.valueBytes);
    this.encodeValueInto(value, out, 0);
    return out;
  }

  /** As encodeKey, into `out` at `offset`: a batch of keys into one buffer. */
  encodeKeyInto(key: unknown, out: Buffer, offset: number): void {
    try {
      encodeInto(this.btf('key'), key, out, offset, 'key');
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw err;
      throw new InvalidArgumentError('key', `table ${this.name} of cube ${this.cube}: ${(err as Error).message}`);
    }
  }

  /** As encodeValue, into `out` at `offset` (valueBytes of it: a per-CPU value's every slot). */
  encodeValueInto(value: unknown, out: Buffer, offset: number): void {
    try {
      const type = this.btf('value');
      if (!this.perCpu) return encodeInto(type, value, out, offset, 'value');
      const cpus = this.map.possibleCpus;
      const perCpu = Array.isArray(value) && value.length === cpus ? value : new Array<unknown>(cpus).fill(value);
      out.fill(0, offset, offset + this.slotSize * cpus);
      perCpu.forEach((v, cpu) => encodeInto(type, v, out, offset + cpu * this.slotSize, 'value'));
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw err;
      throw new InvalidArgumentError('value', `table ${this.name} of cube ${this.cube}: ${(err as Error).message}`);
    }
  }

  decodeKey(key: Buffer): unknown {
    return this.map.keyType ? decode(this.map.keyType, key) : key.toString('hex');
  }

  decodeValue(value: Buffer): unknown {
    const type = this.map.valueType;
    if (!type) return value.toString('hex');
    if (!this.perCpu) return decode(type, value);
    const out: unknown[] = [];
    for (let off = 0; off < value.length; off += this.slotSize) out.push(decode(type, value.subarray(off, off + this.map.valueSize)));
    return out;
  }

  get(key: unknown): unknown {
    const v = this.map.lookup(this.encodeKey(key));
    return v === undefined ? undefined : this.decodeValue(v);
  }

  put(key: unknown, value: unknown): void {
    this.map.update(this.encodeKey(key), this.encodeValue(value));
  }

  delete(key: unknown): boolean {
    return this.map.delete(this.encodeKey(key));
  }

  *entries(): IterableIterator<TableEntry> {
    for (const [k, v] of this.map.entries()) yield { key: this.decodeKey(k), value: this.decodeValue(v) };
  }

  /** Writes many entries in one batch (BPF_MAP_UPDATE_BATCH where the kernel has it). */
  putBatch(entries: readonly TableEntry[]): number {
    if (entries.length === 0) return 0;
    const keys = Buffer.concat(entries.map((e) => this.encodeKey(e.key)));
    const values = Buffer.concat(entries.map((e) => this.encodeValue(e.value)));
    return this.map.updateBatch(keys, values, entries.length);
  }
}

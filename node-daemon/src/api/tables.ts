// TableService: a cube's tables, read and written in the kernel directly (they are
// live data-plane state, not desired state). Keys and values travel as JSON,
// encoded and decoded through the map's BTF, or as raw bytes.

import { Rpc } from '@netcube/api/grpc/call';
import type { Entry, Entry__Output } from '@netcube/api/generated/netcube/v1/Entry';
import type { TableRef__Output } from '@netcube/api/generated/netcube/v1/TableRef';
import type { TableServiceHandlers } from '@netcube/api/generated/netcube/v1/TableService';
import * as grpc from '@grpc/grpc-js';
import { cite } from '@netcube/api/cite';
import { MAX_BATCH_ENTRIES } from '@netcube/api/grpc/limits';
import { ApiError, failedPrecondition, invalidArgument, notFound } from '@netcube/api/grpc/status';
import { setImmediate as turn } from 'node:timers/promises';
import { BatchError } from '../bpf';
import { Table } from '../runtime/tables';
import { ApiContext } from './context';
import { tableInfoMessage } from './convert';
import { checkName } from './cubes';
import { asField } from './status';

const ARRAYS = new Set(['array', 'percpu_array', 'prog_array', 'perf_event_array', 'cgroup_array', 'array_of_maps']);
/** Entries of a PutEntries encoded between two turns of the event loop: a full batch never holds it for long. */
const ENCODE_SLICE = 2_048;
/** What the kernel says when a table has no room left. */
const FULL = new Set(['E2BIG', 'ENOSPC', 'ENOMEM']);

function tableOf(ctx: ApiContext, ref: TableRef__Output | null | undefined): Table {
  const cube = checkName('table.cube', ref?.cube);
  if (!ref?.table) throw invalidArgument('table.table', 'the table name is empty');
  return ctx.runtime.table(cube, ref.table);
}

function parseJson(field: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidArgument(field, `not JSON: ${cite((err as Error).message, 120)}`);
  }
}

function rawOf(field: string, bytes: Buffer, size: number, what: string): Buffer {
  if (bytes.length !== size) throw invalidArgument(field, `${bytes.length} bytes, but the table's ${what}s are ${size} bytes`);
  return bytes;
}

/** The key of `entry` in the kernel's layout, and whether it came as JSON. */
function keyOf(table: Table, entry: Entry__Output | null | undefined, field: string): { key: Buffer; json: boolean } {
  const key = Buffer.alloc(table.map.keySize);
  return { key, json: keyInto(table, entry, field, key, 0) };
}

function valueOf(table: Table, entry: Entry__Output, field: string): Buffer {
  const value = Buffer.alloc(table.map.valueBytes);
  valueInto(table, entry, field, value, 0);
  return value;
}

/** Writes the key of `entry` into `out` at `offset`, in the kernel's layout; whether it came as JSON. */
function keyInto(table: Table, entry: Entry__Output | null | undefined, field: string, out: Buffer, offset: number): boolean {
  if (entry?.key === 'keyRaw') {
    rawOf(`${field}.key_raw`, entry.keyRaw!, table.map.keySize, 'key').copy(out, offset);
    return false;
  }
  if (entry?.key === 'keyJson') {
    const json = parseJson(`${field}.key_json`, entry.keyJson!);
    asField(`${field}.key_json`, () => table.encodeKeyInto(json, out, offset));
    return true;
  }
  throw invalidArgument(`${field}.key_json`, 'give the key, as key_json or key_raw');
}

function valueInto(table: Table, entry: Entry__Output, field: string, out: Buffer, offset: number): void {
  if (entry.value === 'valueRaw') {
    rawOf(`${field}.value_raw`, entry.valueRaw!, table.map.valueBytes, 'value').copy(out, offset);
    return;
  }
  if (entry.value === 'valueJson') {
    const json = parseJson(`${field}.value_json`, entry.valueJson!);
    return asField(`${field}.value_json`, () => table.encodeValueInto(json, out, offset));
  }
  throw invalidArgument(`${field}.value_json`, 'give the value, as value_json or value_raw');
}

const toJson = (v: unknown): string => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

function entryMessage(table: Table, key: Buffer, value: Buffer, json: boolean): Entry {
  return json ? { keyJson: toJson(table.decodeKey(key)), valueJson: toJson(table.decodeValue(value)) } : { keyRaw: key, valueRaw: value };
}

export function tableService(ctx: ApiContext, rpc: Rpc): TableServiceHandlers {
  return {
    ListTables: rpc.unary('ListTables', async (req) => {
      const name = checkName('cube', req.cube);
      const cube = ctx.runtime.cube(name);
      return {
        tables: cube.type.tables.map((t) => {
          const map = cube.table(t.name).map;
          // The size the kernel gave the map: the type's, or the one the cube's chain set.
          return tableInfoMessage({ ...t, maxEntries: map.maxEntries }, { keyType: map.keyType, valueType: map.valueType });
        }),
      };
    }),

    GetEntry: rpc.unary('GetEntry', async (req) => {
      const table = tableOf(ctx, req.table);
      const { key, json } = keyOf(table, req.entry, 'entry');
      const value = table.map.lookup(key);
      if (!value) throw notFound(`table ${table.name} of cube ${table.cube} has no entry with key ${toJson(table.decodeKey(key))}`);
      return entryMessage(table, key, value, json);
    }),

    PutEntry: rpc.unary('PutEntry', async (req) => {
      const table = tableOf(ctx, req.table);
      if (!req.entry) throw invalidArgument('entry', 'give the entry to put');
      const { key } = keyOf(table, req.entry, 'entry');
      table.map.update(key, valueOf(table, req.entry, 'entry'));
      return {};
    }),

    DeleteEntry: rpc.unary('DeleteEntry', async (req) => {
      const table = tableOf(ctx, req.table);
      const { key } = keyOf(table, req.entry, 'entry');
      if (ARRAYS.has(table.map.type))
        throw failedPrecondition(`table ${table.name} of cube ${table.cube} is an ${table.map.type}: its entries always exist; put zeros instead`);
      if (!table.map.delete(key)) throw notFound(`table ${table.name} of cube ${table.cube} has no entry with key ${toJson(table.decodeKey(key))}`);
      return {};
    }),

    ListEntries: rpc.serverStream('ListEntries', async (req, call, send) => {
      const table = tableOf(ctx, req.table);
      for (const [key, value] of table.map.entries()) {
        call.signal.throwIfAborted();
        await send(entryMessage(table, key, value, !req.raw));
      }
    }),

    // Checked whole before anything is written: too many entries, an entry that does
    // not encode, an array index past the table's end change nothing. A table that
    // fills up part way (a hash table with room for fewer new keys than given) keeps
    // the entries written before it was full, and the answer says exactly which:
    // RESOURCE_EXHAUSTED with the count. A heavy call: it runs in its turn
    // (heavy.ts), and is decoded only then (server.ts).
    PutEntries: rpc.unary('PutEntries', async (req, call) => {
      const table = tableOf(ctx, req.table);
      const entries = req.entries ?? [];
      if (entries.length === 0) return { written: 0 };
      if (entries.length > MAX_BATCH_ENTRIES) {
        throw invalidArgument('entries', `${entries.length} entries, over the limit of ${MAX_BATCH_ENTRIES} a call: split them over several calls`);
      }
      const { maxEntries } = table.map;
      if (entries.length > maxEntries) {
        throw invalidArgument('entries', `${entries.length} entries, but table ${table.name} of cube ${table.cube} holds at most ${maxEntries}: nothing was written`);
      }
      // One buffer each for the keys and the values: no allocation per entry.
      const { keySize, valueBytes } = table.map;
      const keys = Buffer.alloc(entries.length * keySize);
      const values = Buffer.alloc(entries.length * valueBytes);
      for (let i = 0; i < entries.length; i++) {
        if (i > 0 && i % ENCODE_SLICE === 0) {
          await turn();
          call.signal.throwIfAborted();
        }
        keyInto(table, entries[i], `entries[${i}]`, keys, i * keySize);
        if (ARRAYS.has(table.map.type) && keys.readUInt32LE(i * keySize) >= maxEntries) {
          const index = keys.readUInt32LE(i * keySize);
          throw invalidArgument(`entries[${i}].key`, `index ${index} is past the end of table ${table.name} of cube ${table.cube} (${maxEntries} entries, 0 to ${maxEntries - 1}): nothing was written`);
        }
        valueInto(table, entries[i], `entries[${i}]`, values, i * valueBytes);
      }
      try {
        return { written: table.map.updateBatch(keys, values, entries.length) };
      } catch (err) {
        if (err instanceof BatchError && FULL.has(err.code)) {
          const written = err.done === 0 ? 'no entry was written' : `entries[0] to entries[${err.done - 1}] were written (${err.done} of ${err.count}), entries[${err.done}] and after were not`;
          throw new ApiError(
            grpc.status.RESOURCE_EXHAUSTED,
            `table ${table.name} of cube ${table.cube} is full (it holds at most ${maxEntries} entries): ${written} (${err.code}); delete entries or put fewer`,
          );
        }
        throw err;
      }
    }),
  };
}

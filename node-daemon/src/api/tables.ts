// TableService: a cube's tables, read and written in the kernel directly (they are
// live data-plane state, not desired state). Keys and values travel as JSON,
// encoded and decoded through the map's BTF, or as raw bytes.

import { Rpc } from '@netcube/api/grpc/call';
import type { Entry, Entry__Output } from '@netcube/api/generated/netcube/v1/Entry';
import type { TableRef__Output } from '@netcube/api/generated/netcube/v1/TableRef';
import type { TableServiceHandlers } from '@netcube/api/generated/netcube/v1/TableService';
import { failedPrecondition, invalidArgument, notFound } from '@netcube/api/grpc/status';
import { Table } from '../runtime/tables';
import { ApiContext } from './context';
import { tableInfoMessage } from './convert';
import { checkName } from './cubes';
import { asField } from './status';

const ARRAYS = new Set(['array', 'percpu_array', 'prog_array', 'perf_event_array', 'cgroup_array', 'array_of_maps']);

function tableOf(ctx: ApiContext, ref: TableRef__Output | null | undefined): Table {
  const cube = checkName('table.cube', ref?.cube);
  if (!ref?.table) throw invalidArgument('table.table', 'the table name is empty');
  return ctx.runtime.table(cube, ref.table);
}

function parseJson(field: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidArgument(field, `not JSON: ${(err as Error).message}`);
  }
}

function rawOf(field: string, bytes: Buffer, size: number, what: string): Buffer {
  if (bytes.length !== size) throw invalidArgument(field, `${bytes.length} bytes, but the table's ${what}s are ${size} bytes`);
  return bytes;
}

/** The key of `entry` in the kernel's layout, and whether it came as JSON. */
function keyOf(table: Table, entry: Entry__Output | null | undefined, field: string): { key: Buffer; json: boolean } {
  if (entry?.key === 'keyRaw') return { key: rawOf(`${field}.key_raw`, entry.keyRaw!, table.map.keySize, 'key'), json: false };
  if (entry?.key === 'keyJson') {
    const json = parseJson(`${field}.key_json`, entry.keyJson!);
    return { key: asField(`${field}.key_json`, () => table.encodeKey(json)), json: true };
  }
  throw invalidArgument(`${field}.key_json`, 'give the key, as key_json or key_raw');
}

function valueOf(table: Table, entry: Entry__Output, field: string): Buffer {
  if (entry.value === 'valueRaw') return rawOf(`${field}.value_raw`, entry.valueRaw!, table.map.valueBytes, 'value');
  if (entry.value === 'valueJson') {
    const json = parseJson(`${field}.value_json`, entry.valueJson!);
    return asField(`${field}.value_json`, () => table.encodeValue(json));
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
          return tableInfoMessage(t, { keyType: map.keyType, valueType: map.valueType });
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

    PutEntries: rpc.unary('PutEntries', async (req) => {
      const table = tableOf(ctx, req.table);
      const entries = req.entries ?? [];
      if (entries.length === 0) return { written: 0 };
      // Everything is encoded before anything is written: a bad entry changes nothing.
      const keys = entries.map((e, i) => keyOf(table, e, `entries[${i}]`).key);
      const values = entries.map((e, i) => valueOf(table, e, `entries[${i}]`));
      const written = table.map.updateBatch(Buffer.concat(keys), Buffer.concat(values), entries.length);
      return { written };
    }),
  };
}

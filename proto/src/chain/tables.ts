// Sizing a cube's tables from its chain (`tableSizes: { fw_ct: 262144 }`): which
// tables may be sized and how far. One rule for the chain validator (against the
// tables a type's record publishes) and for netcubed (against the objects it
// loads), which also holds each size to its limit of kernel memory per map.

import { cite } from '../cite';

/** The most entries a chain may give one table; the daemon's memory limit per map usually binds first. */
export const MAX_TABLE_ENTRIES = 16 * 1024 * 1024;
/** How many tables one cube may size. */
export const MAX_SIZED_TABLES = 64;

/**
 * Map kinds (as libbpf names them) whose size the code does not depend on: hashes
 * and tries hold what they hold. Arrays, prog arrays and ring buffers are indexed
 * or sized with bounds the program was built with, so they keep their declared size.
 */
export const RESIZABLE_TABLE_KINDS: readonly string[] = ['hash', 'lru_hash', 'percpu_hash', 'lru_percpu_hash', 'lpm_trie'];

/** A table as a cube type declares it (the type's record, netcubed's CubeType.tables). */
export interface TableFacts {
  name: string;
  /** private (one micro-cube), cube (all its micro-cubes) or host (every cube of the host). */
  scope: 'private' | 'cube' | 'host';
  /** The map kind as libbpf names it: hash, lru_hash, array ... */
  mapType: string;
  /** As the type's object declares it: the size a cube gets unless its chain says otherwise. */
  maxEntries: number;
}

/** The facts of a table and nothing else (a runtime's TableInfo or a message carries more). */
export function tableFacts(table: { name: string; scope: string; mapType: string; maxEntries: number }): TableFacts {
  return { name: table.name, scope: table.scope as TableFacts['scope'], mapType: table.mapType, maxEntries: table.maxEntries };
}

/** Whether two lists of tables say the same. */
export function sameTableFacts(a: readonly TableFacts[] | undefined, b: readonly TableFacts[] | undefined): boolean {
  const text = (tables: readonly TableFacts[] | undefined) => JSON.stringify((tables ?? []).map((t) => [t.name, t.scope, t.mapType, t.maxEntries]));
  return text(a) === text(b);
}

/** Whether two cubes' table sizes (table name -> max entries) say the same; absent and empty do. */
export function sameTableSizes(a: Readonly<Record<string, number>> | undefined, b: Readonly<Record<string, number>> | undefined): boolean {
  const text = (s: Readonly<Record<string, number>> | undefined) => JSON.stringify(Object.entries(s ?? {}).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  return text(a) === text(b);
}

/** Table names as BPF objects spell them (the framework's __nc_scope_<table> allows 64 characters). */
const TABLE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Whether `name` could name a table at all (the shape, not whether the type has one). */
export function tableNameProblem(name: string): string | undefined {
  if (TABLE_NAME_RE.test(name)) return undefined;
  return `'${cite(name)}' is not a table name: letters, digits and '_', at most 64 characters`;
}

/** Whether `size` is a size a table may be given, whichever it is. */
export function tableSizeRangeProblem(size: unknown): string | undefined {
  if (typeof size === 'number' && Number.isInteger(size) && size >= 1 && size <= MAX_TABLE_ENTRIES) return undefined;
  const got = typeof size === 'number' ? String(size) : typeof size === 'string' ? `the string '${cite(size)}'` : size === null ? 'nothing' : `a ${Array.isArray(size) ? 'list' : typeof size}`;
  return `a table's size is a whole number of entries from 1 to ${MAX_TABLE_ENTRIES}; got ${got}`;
}

/**
 * Whether cube type `type`, whose tables are `tables`, lets a cube size table
 * `name`: it must be one of the type's tables, of cube scope, and of a kind whose
 * size the code does not depend on. The problem, naming the table and what to do, or undefined.
 */
export function tableResizeProblem(type: string, name: string, tables: readonly TableFacts[]): string | undefined {
  const table = tables.find((t) => t.name === name);
  if (!table) {
    const sizable = tables.filter((t) => t.scope === 'cube' && RESIZABLE_TABLE_KINDS.includes(t.mapType)).map((t) => t.name);
    return `cube type ${type} has no table ${cite(name)}; the tables its cubes may size: ${sizable.join(', ') || 'none'}`;
  }
  if (table.scope !== 'cube') {
    const why = table.scope === 'host' ? 'every cube of the host shares it' : 'it belongs to one micro-cube';
    return `table ${name} of cube type ${type} has ${table.scope} scope (${why}): only tables of cube scope are sized per cube`;
  }
  if (!RESIZABLE_TABLE_KINDS.includes(table.mapType)) {
    return `table ${name} of cube type ${type} is a map of kind ${table.mapType}, which the type's code indexes with bounds fixed when it was built: only ${RESIZABLE_TABLE_KINDS.join(', ')} tables can be sized`;
  }
  return undefined;
}

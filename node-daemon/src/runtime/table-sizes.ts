// A cube's tables sized by its chain (the desired cube's tableSizes, table name ->
// max entries) instead of by its type's object: checked against the type with the
// chain validator's own rule (@netcube/api's chain/tables.ts), and against the
// host's limit of kernel memory per map, which only this daemon knows. Pure.

import { tableNameProblem, tableResizeProblem, tableSizeRangeProblem } from '@netcube/api/chain';
import { InvalidArgumentError } from './errors';
import type { CubeType, TableInfo } from './types';
import { formatBytes, mapBytes, POLICY_FLAGS, type TypePolicy } from '../typecheck/policy';

/** Table name -> max entries; only the tables a chain sizes. */
export type TableSizes = Readonly<Record<string, number>>;

const mapOf = (t: TableInfo) => ({ type: t.mapType, keySize: t.keySize, valueSize: t.valueSize, maxEntries: t.maxEntries });

/**
 * Kernel memory the maps of one cube of `type` take with `sizes`: the type's
 * figure, with each sized table counted at its size instead of the declared one.
 */
export function cubeMapBytes(type: CubeType, sizes: TableSizes | undefined, cpus: number): number {
  let bytes = type.mapBytes;
  for (const t of type.tables) {
    const size = sizes?.[t.name];
    if (size !== undefined) bytes += mapBytes(mapOf({ ...t, maxEntries: size }), cpus) - mapBytes(mapOf(t), cpus);
  }
  return bytes;
}

/**
 * Throws InvalidArgumentError (field `<field>.<table>`: `cubes[2].tableSizes.fw_ct`) for the first
 * size cube `cube` of `type` may not have: a table the type lacks, one it shares
 * beyond the cube or whose code depends on its size, a size out of range, a map
 * over the policy's bytes per map; or (field `<field>`) a cube over its bytes per
 * cube. Nothing is changed by a refusal.
 */
export function checkTableSizes(field: string, cube: string, type: CubeType, sizes: TableSizes | undefined, policy: TypePolicy, cpus: number): void {
  for (const [table, size] of Object.entries(sizes ?? {})) {
    const where = `${field}.${table}`;
    // The message names the chain's field too: the reconciler reports it as the chain's status.
    const what = `cube ${cube}, tableSizes.${table}`;
    const problem = tableNameProblem(table) ?? tableSizeRangeProblem(size) ?? tableResizeProblem(type.name, table, type.tables);
    if (problem) throw new InvalidArgumentError(where, `${what}: ${problem}`);
    const t = type.tables.find((info) => info.name === table)!;
    const bytes = mapBytes(mapOf({ ...t, maxEntries: size }), cpus);
    if (bytes > policy.maxMapBytes) {
      const most = Math.floor(policy.maxMapBytes / (mapBytes(mapOf({ ...t, maxEntries: 1 }), cpus) || 1));
      throw new InvalidArgumentError(
        where,
        `${what}: ${size} entries (${t.mapType}, key ${t.keySize} B, value ${t.valueSize} B) would take ${formatBytes(bytes)} of kernel memory, over this host's limit of ${formatBytes(policy.maxMapBytes)} per map (${POLICY_FLAGS.maxMapBytes}): give it at most ${most} entries`,
      );
    }
  }
  const total = cubeMapBytes(type, sizes, cpus);
  if (total > policy.maxCubeBytes) {
    throw new InvalidArgumentError(
      field,
      `cube ${cube}, tableSizes: with these sizes its maps would take ${formatBytes(total)} of kernel memory together, over this host's limit of ${formatBytes(policy.maxCubeBytes)} per cube (${POLICY_FLAGS.maxCubeBytes}): size its tables smaller`,
    );
  }
}

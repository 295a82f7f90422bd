// Runtime metadata kept on tmpfs next to the bpffs: what the kernel objects under
// bpf/ are (names, ids, port numbers) and the topology last applied. It is what a
// restarted daemon adopts; the kernel objects themselves stay pinned.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { LogLevel } from './abi';
import { Mode, Topology, emptyTopology } from './topology';

export interface CubeRecord {
  id: number;
  type: string;
  /** Digest of the type's objects the cube was loaded from. */
  digest: string;
  mode: Mode;
  /** Port name -> port index. */
  ports: Record<string, number>;
  logLevel: LogLevel;
  /** The sizes its tables were created with where the chain set them (table-sizes.ts). */
  tableSizes?: Record<string, number>;
}

export interface NetdevRecord {
  ifname: string;
  mode: Mode;
  ifindex: number;
  /**
   * The cube (by name and id) and port whose fused entry runs on the netdev, as
   * program `program`: a restarted daemon that finds that program attached knows
   * what it runs (netdev.ts).
   */
  fused?: { cube: string; id: number; port: number; program: number };
}

export interface RuntimeState {
  version: 1;
  topology: Topology;
  cubes: Record<string, CubeRecord>;
  /** Keyed by `<ifname>.<mode>`. */
  netdevs: Record<string, NetdevRecord>;
  /**
   * Cubes of `topology` stacked for a session only (TransientLayer), in no chain:
   * a restarted daemon, whose sessions died with it, removes them at once.
   */
  transient?: string[];
}

export function emptyState(): RuntimeState {
  return { version: 1, topology: emptyTopology(), cubes: {}, netdevs: {} };
}

export function loadState(file: string): RuntimeState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const state = JSON.parse(text) as RuntimeState;
  if (state.version !== 1) throw new Error(`${file}: unknown state version ${String(state.version)}`);
  return state;
}

/**
 * Writes the state atomically: a crash leaves the old file or the new one. Returns
 * what it wrote; given what the file already holds (`written`), writes only if the
 * state says something else.
 */
export function saveState(file: string, state: RuntimeState, written?: string): string {
  const text = JSON.stringify(state, null, 1);
  if (text === written) return text;
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
  return text;
}

/**
 * Carries over what an earlier netcubed kept beside the state, in
 * <root>/microcubes.json: which objects ran in place of each cube's micro-cubes
 * (with the kernel ids of the cube's programs then). A cube whose programs are
 * still those gets them as replacedMicrocubes in `state`'s topology; the file is
 * removed. `programsOf` gives an adopted cube's program ids now. Returns the cubes
 * carried over.
 */
export function migrateMicrocubesFile(root: string, state: RuntimeState, programsOf: (cube: string) => number[] | undefined): string[] {
  const file = path.join(root, 'microcubes.json');
  let old: Record<string, { programs?: unknown; objects?: unknown }>;
  try {
    old = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    // Unreadable: the next apply puts every replaced micro-cube in place again.
    old = {};
  }
  const carried: string[] = [];
  for (const spec of state.topology.cubes) {
    const entry = old?.[spec.name];
    const objects = entry?.objects;
    if (!entry || !Array.isArray(entry.programs) || !objects || typeof objects !== 'object') continue;
    if (entry.programs.join() !== programsOf(spec.name)?.join()) continue;
    const replaced = Object.fromEntries(Object.entries(objects).filter((kv): kv is [string, string] => typeof kv[1] === 'string'));
    if (Object.keys(replaced).length === 0) continue;
    spec.replacedMicrocubes = replaced;
    carried.push(spec.name);
  }
  fs.rmSync(file, { force: true });
  return carried;
}

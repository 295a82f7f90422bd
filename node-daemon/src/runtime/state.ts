// Runtime metadata kept on tmpfs next to the bpffs: what the kernel objects under
// bpf/ are (names, ids, port numbers) and the topology last applied. It is what a
// restarted daemon adopts; the kernel objects themselves stay pinned.

import * as fs from 'node:fs';
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

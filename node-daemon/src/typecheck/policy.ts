// What a cube type's object may contain: the policy every object is held to before
// anything of it is registered. Pure: an ObjectReport (what the object says it
// holds, see report.ts) in, problems out, so the daemon, the inspector child and
// the tests share one rule.
//
// - Programs: only the framework's entry points, as NC_CUBE()/NC_MICROCUBE()
//   declare them: nc_entry and nc_micro_<n>, and nc_netdev (the entry fused with
//   a netdev's, which NC_CUBE() also builds: bpf/include/netcube/netdev.h), in
//   the hook's section ("xdp" or "tc"), of the hook's program type. Nothing else
//   runs (no kprobes, no tracing, no other sections).
// - Maps: the kernel memory each map would take, estimated from its type and
//   sizes, within a limit per map, per cube (all maps one cube of the type
//   creates), and per host (every cube's maps together, checked by the runtime
//   when it creates a cube: see hostMemoryProblem).

import type { Mode } from '../runtime/topology';
import type { MapReport, ObjectReport } from './report';

export interface TypePolicy {
  /** Bytes of kernel memory one map may take. */
  maxMapBytes: number;
  /** Bytes the maps of one cube may take together. */
  maxCubeBytes: number;
  /** Bytes the maps of all cubes of a host may take together. */
  maxHostBytes: number;
}

const MiB = 1024 * 1024;

/**
 * 64 MiB a map is a million 64-byte entries, far more than any built-in type
 * declares (the largest takes about 2 MiB); 256 MiB a cube; 2 GiB a host.
 */
export const DEFAULT_TYPE_POLICY: TypePolicy = { maxMapBytes: 64 * MiB, maxCubeBytes: 256 * MiB, maxHostBytes: 2048 * MiB };

/** The command-line option that sets each limit, named in errors so an operator knows what to change. */
export const POLICY_FLAGS: Record<keyof TypePolicy, string> = {
  maxMapBytes: '--max-map-memory',
  maxCubeBytes: '--max-cube-memory',
  maxHostBytes: '--max-host-memory',
};

/** The section and program type of a cube's programs in each hook (bpf/include/netcube/hook.h: NC_SEC). */
export const HOOK_PROGRAMS: Record<Mode, { section: string; type: string }> = {
  xdp: { section: 'xdp', type: 'xdp' },
  tc: { section: 'tc', type: 'sched_cls' },
};

/**
 * The program of a cube object that is its entry fused with a netdev entry: loaded
 * per netdev whose first cube the cube is (runtime/netdev.ts).
 */
export const NETDEV_PROGRAM = 'nc_netdev';

/** Micro-cubes a cube may have (MAX_MICROCUBES in runtime/abi.ts). */
export function microCubeIndex(program: string): number | undefined {
  if (program === 'nc_entry') return 0;
  const m = /^nc_micro_([1-9][0-9]{0,2})$/.exec(program);
  return m ? Number(m[1]) : undefined;
}

/** Maps the runtime replaces with the host's own (runtime/types.ts HOST_MAPS): they cost the cube nothing. */
const HOST_MAPS = new Set(['.data.nc_gen', 'nc_log_rb', 'nc_pkt_rb', 'nc_errors']);

const PER_CPU = new Set(['percpu_array', 'percpu_hash', 'lru_percpu_hash', 'percpu_cgroup_storage']);
const round8 = (n: number): number => Math.ceil(n / 8) * 8;
/** What the kernel keeps beside each element of a hash map or a trie (struct htab_elem, a bucket, a trie node). */
const ELEMENT_OVERHEAD = 64;

/**
 * The kernel memory a map would take, estimated from its type and sizes the way
 * the kernel sizes it: arrays hold every element up front, hashes and tries
 * grow up to max_entries elements with their bookkeeping, a ring buffer is its
 * size, per-CPU values count once per possible CPU.
 */
export function mapBytes(map: Pick<MapReport, 'type' | 'keySize' | 'valueSize' | 'maxEntries'>, cpus: number): number {
  const copies = PER_CPU.has(map.type) ? cpus : 1;
  const entries = map.maxEntries;
  switch (map.type) {
    case 'ringbuf':
    case 'user_ringbuf':
      return entries;
    case 'array':
    case 'percpu_array':
    case 'prog_array':
    case 'perf_event_array':
    case 'array_of_maps':
    case 'cgroup_array':
    case 'devmap':
    case 'cpumap':
    case 'xskmap':
      return entries * round8(map.valueSize) * copies;
    case 'queue':
    case 'stack':
      return entries * round8(map.valueSize);
    default:
      return entries * (round8(map.keySize) + round8(map.valueSize) * copies + ELEMENT_OVERHEAD);
  }
}

/** 1536 -> "1.5 KiB": sizes in errors as people read them. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The bytes one cube of an object's type would take: its own maps, not the host's. */
export function cubeBytes(report: ObjectReport, cpus: number): number {
  return report.maps.filter((m) => !HOST_MAPS.has(m.name)).reduce((sum, m) => sum + mapBytes(m, cpus), 0);
}

/**
 * What in `report` breaks the policy, each problem a sentence that names the
 * program or map, the limit and its value. `what` names the object in them
 * ("cube type fw (xdp object)").
 */
export function policyProblems(what: string, mode: Mode, report: ObjectReport, policy: TypePolicy, cpus: number): string[] {
  const problems: string[] = [];
  const hook = HOOK_PROGRAMS[mode];
  for (const p of report.programs) {
    if (microCubeIndex(p.name) === undefined && p.name !== NETDEV_PROGRAM) {
      problems.push(
        `${what}: program ${p.name} (section ${JSON.stringify(p.section)}, a ${p.type} program) is not one of the cube's entry points: an object holds only nc_entry, ${NETDEV_PROGRAM} and nc_micro_<n>, as NC_CUBE() and NC_MICROCUBE() declare them`,
      );
    } else if (p.section !== hook.section || p.type !== hook.type) {
      problems.push(
        `${what}: program ${p.name} is a ${p.type} program in section ${JSON.stringify(p.section)}, expected ${hook.type} in section ${JSON.stringify(hook.section)}: build the ${mode} object with -DNC_HOOK_${mode.toUpperCase()}`,
      );
    }
  }
  for (const m of report.maps) {
    const bytes = mapBytes(m, cpus);
    if (bytes > policy.maxMapBytes) {
      problems.push(
        `${what}: map ${m.name} (${m.type}, ${m.maxEntries} entries of key ${m.keySize} B and value ${m.valueSize} B) would take ${formatBytes(bytes)} of kernel memory, over the limit of ${formatBytes(policy.maxMapBytes)} per map (${POLICY_FLAGS.maxMapBytes})`,
      );
    }
  }
  const total = cubeBytes(report, cpus);
  if (total > policy.maxCubeBytes) {
    const biggest = report.maps
      .filter((m) => !HOST_MAPS.has(m.name))
      .sort((a, b) => mapBytes(b, cpus) - mapBytes(a, cpus))
      .slice(0, 3)
      .map((m) => `${m.name} ${formatBytes(mapBytes(m, cpus))}`);
    problems.push(
      `${what}: the maps of one cube would take ${formatBytes(total)} of kernel memory together (the largest: ${biggest.join(', ')}), over the limit of ${formatBytes(policy.maxCubeBytes)} per cube (${POLICY_FLAGS.maxCubeBytes})`,
    );
  }
  return problems;
}

/**
 * Whether one more cube taking `adding` bytes fits in the host's limit beside
 * the `inUse` bytes its cubes already take; the problem, naming the limit, if not.
 */
export function hostMemoryProblem(cube: string, type: string, adding: number, inUse: number, policy: TypePolicy): string | undefined {
  if (inUse + adding <= policy.maxHostBytes) return undefined;
  return `cube ${cube} (type ${type}) would take ${formatBytes(adding)} of kernel memory for its maps, beside the ${formatBytes(inUse)} this host's cubes take: over the limit of ${formatBytes(policy.maxHostBytes)} per host (${POLICY_FLAGS.maxHostBytes})`;
}

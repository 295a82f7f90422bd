// What an apply will change, decided before anything is touched: which cubes stay,
// which are made anew and which go, the port numbers and ids of each, the
// micro-cubes that change, the kept cubes whose settings change, and the complete
// peer words of the generation the apply flips to. Pure: what runs now, the wiring
// (topology.ts) and the kernel's facts about the netdevs (their ifindexes, which
// take bpf_redirect_peer) in, a plan out. runtime.ts (applyNow) carries it out.

import { encodePeer, MAX_CUBES, MAX_PORTS, slotOf } from './abi';
import { FailedPreconditionError, InvalidArgumentError } from './errors';
import { CubeSpec, Hop, Mode, peerOf, Sender, Topology, Wiring } from './topology';
import type { CubeType } from './types';
import { hostMemoryProblem, type TypePolicy } from '../typecheck/policy';
import { sameTableSizes } from '@netcube/api/chain';
import { cubeMapBytes, type TableSizes } from './table-sizes';

/** A cube the host runs now, as the plan sees it (runtime/cube.ts's Cube is one). */
export interface RunningCube {
  readonly name: string;
  readonly id: number;
  readonly type: CubeType;
  readonly mode: Mode;
  readonly ports: ReadonlyMap<string, number>;
  readonly tableSizes: TableSizes;
}

/** What the host runs now. */
export interface HostNow {
  /** By name; `<name>@<id>` for a cube an interrupted apply was replacing. */
  cubes: ReadonlyMap<string, RunningCube>;
  /** The topology last applied: the replaced micro-cubes and log levels the kept cubes run. */
  topology: Topology;
}

export interface PlanFacts {
  type(name: string): CubeType | undefined;
  policy: TypePolicy;
  wiring: Wiring;
  /** The ifindex of every netdev of the wiring. */
  ifindexes: ReadonlyMap<string, number>;
  /** Netdevs whose other end is in another namespace, reached with bpf_redirect_peer under TC (netdev.ts). */
  intoPeer: ReadonlySet<string>;
  /** The kernel's possible CPUs: per-CPU maps take memory for each. */
  cpus: number;
}

/** Where a peer word leads a packet into a cube: that cube and the port it enters. */
export interface PlannedHop {
  cube: string;
  port: number;
}

export interface PlannedWord {
  word: bigint;
  first?: PlannedHop;
}

/** A micro-cube to put in place: the object of `digest`, or the type's own program when undefined. */
export interface MicroCubeChange {
  index: number;
  digest?: string;
}

export interface ApplyPlan {
  /** Cubes that stay, by name. */
  keep: string[];
  /** Cubes to make (a new name, or a change of type, objects, mode or table sizes), with their ids. */
  create: { spec: CubeSpec; id: number }[];
  /** Cubes made anew because their table sizes changed (also in create): their tables start empty. */
  resized: string[];
  /** Running cubes (keys of HostNow.cubes) that go once nothing leads to them. */
  drop: string[];
  /** Port name -> number of every cube of the topology: a kept port keeps its number. */
  ports: Map<string, Map<string, number>>;
  /** Micro-cubes each cube changes to: a new cube's replaced ones, a kept cube's that differ. */
  microcubes: Map<string, MicroCubeChange[]>;
  /** Kept cubes whose settings (log level) change. */
  reconfigure: string[];
  /** The peer word of each port (by number; a transparent cube's by direction) of every cube. */
  cubeWords: Map<string, PlannedWord[]>;
  /** The peer word of each netdev entry, by `<ifname>.<mode>`: the netdevs that keep or get one. */
  entryWords: Map<string, PlannedWord>;
}

/**
 * Plans bringing the host from `now` to `next` (checked already: `facts.wiring` is
 * wire(next)). Throws FailedPreconditionError past the host's limits (cubes, map
 * memory), InvalidArgumentError for a replaced micro-cube the type does not have.
 */
export function planApply(next: Topology, now: HostNow, facts: PlanFacts): ApplyPlan {
  // A map's size is fixed when it is created: new table sizes make a new cube.
  const keep = new Map<string, RunningCube>();
  const newSpecs: CubeSpec[] = [];
  const resized: string[] = [];
  for (const spec of next.cubes) {
    const have = now.cubes.get(spec.name);
    const same = have !== undefined && have.type === facts.type(spec.type) && have.mode === spec.mode;
    if (same && sameTableSizes(have.tableSizes, spec.tableSizes)) keep.set(spec.name, have);
    else newSpecs.push(spec);
    if (same && !sameTableSizes(have.tableSizes, spec.tableSizes)) resized.push(spec.name);
  }
  const drop = [...now.cubes.keys()].filter((key) => !keep.has(key));

  // The host's limit on kernel memory for the maps of the cubes it runs.
  let mapBytes = [...keep.values()].reduce((sum, c) => sum + cubeMapBytes(c.type, c.tableSizes, facts.cpus), 0);
  for (const spec of newSpecs) {
    const type = facts.type(spec.type)!;
    const adding = cubeMapBytes(type, spec.tableSizes, facts.cpus);
    const problem = hostMemoryProblem(spec.name, type.name, adding, mapBytes, facts.policy);
    if (problem) throw new FailedPreconditionError(problem);
    mapBytes += adding;
  }

  const taken = new Set([...now.cubes.values()].map((c) => c.id));
  const freeId = (): number => {
    for (let id = 1; id < MAX_CUBES; id++) if (!taken.has(id)) return taken.add(id), id;
    throw new FailedPreconditionError(`this host already runs ${MAX_CUBES - 1} cubes, the most it can`);
  };
  const create = newSpecs.map((spec) => ({ spec, id: freeId() }));
  const ids = new Map<string, number>([...[...keep].map(([name, c]) => [name, c.id] as const), ...create.map((c) => [c.spec.name, c.id] as const)]);

  const ports = new Map(next.cubes.map((spec) => [spec.name, portNumbers(spec.ports, keep.get(spec.name)?.ports)]));

  const was = new Map(now.topology.cubes.map((c) => [c.name, c]));
  const microcubes = new Map<string, MicroCubeChange[]>();
  const reconfigure: string[] = [];
  for (const spec of next.cubes) {
    const kept = keep.has(spec.name);
    const changes = microCubeChanges(spec, facts.type(spec.type)!, kept ? (was.get(spec.name)?.replacedMicrocubes ?? {}) : {});
    if (changes.length > 0) microcubes.set(spec.name, changes);
    if (kept && was.get(spec.name)?.logLevel !== spec.logLevel) reconfigure.push(spec.name);
  }

  const { cubeWords, entryWords } = peerWords(next, facts, ids, ports);
  return { keep: [...keep.keys()], create, resized, drop, ports, microcubes, reconfigure, cubeWords, entryWords };
}

/** Port numbers: a kept port keeps its number (`old`), a new one takes the lowest free. */
function portNumbers(names: readonly string[], old: ReadonlyMap<string, number> | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of names) if (old?.has(p)) out.set(p, old.get(p)!);
  const taken = new Set(out.values());
  let free = 0;
  for (const p of names) {
    if (out.has(p)) continue;
    while (taken.has(free)) free++;
    out.set(p, free);
    taken.add(free);
  }
  return out;
}

/** The micro-cubes of `spec` whose object differs from what the cube runs (`ran`: none replaced for a new cube). */
function microCubeChanges(spec: CubeSpec, type: CubeType, ran: Record<string, string>): MicroCubeChange[] {
  const want = spec.replacedMicrocubes ?? {};
  const changes: MicroCubeChange[] = [];
  for (const key of new Set([...Object.keys(want), ...Object.keys(ran)])) {
    if (want[key] === ran[key]) continue;
    const index = Number(key);
    if (!type.programs.includes(index))
      throw new InvalidArgumentError('index', `cube ${spec.name} (type ${spec.type}) has micro-cubes ${type.programs.join(', ')}; ${key} is not one of them`);
    changes.push({ index, digest: want[key] });
  }
  return changes;
}

/** The mode of the program that reads a sender's word: its cube's, or the netdev entry's. */
function readerMode(next: Topology, wiring: Wiring): (from: Sender) => Mode | undefined {
  const modes = new Map(next.cubes.map((c) => [c.name, c.mode]));
  return (from) => (from.kind === 'netdev' ? wiring.entries.get(from.netdev) : modes.get(from.cube));
}

/**
 * The netdevs a TC program sends packets out of: under TC, one whose other end lives
 * in another namespace (a pod's veth) is reached with bpf_redirect_peer where nothing
 * is skipped by it (netdev.ts, redirectPeerTargets); XDP words stay plain.
 */
export function tcOutNetdevs(next: Topology, wiring: Wiring): Set<string> {
  const readBy = readerMode(next, wiring);
  return new Set(wiring.words.flatMap((w) => (w.to.kind === 'netdev' && readBy(w.from) === 'tc' ? [w.to.netdev] : [])));
}

/** Every word of the wiring, encoded where the data plane reads it. */
function peerWords(next: Topology, facts: PlanFacts, ids: ReadonlyMap<string, number>, ports: ReadonlyMap<string, ReadonlyMap<string, number>>): Pick<ApplyPlan, 'cubeWords' | 'entryWords'> {
  const { wiring } = facts;
  const readBy = readerMode(next, wiring);
  const at = {
    slot: (cube: string) => slotOf(ids.get(cube)!),
    portIndex: (cube: string, port: string) => ports.get(cube)!.get(port)!,
    ifindex: (netdev: string) => facts.ifindexes.get(netdev)!,
  };
  const firstOf = (hop: Hop): PlannedHop | undefined =>
    hop.kind === 'cube' ? { cube: hop.cube, port: at.portIndex(hop.cube, hop.port) } : hop.kind === 'layer' ? { cube: hop.cube, port: hop.dir } : undefined;
  const none: PlannedWord = { word: 0n };
  const cubeWords = new Map(next.cubes.map((c) => [c.name, new Array<PlannedWord>(MAX_PORTS).fill(none)]));
  const entryWords = new Map<string, PlannedWord>();
  for (const w of wiring.words) {
    const peer = peerOf(w.to, at);
    if (peer.kind === 'netdev' && w.to.kind === 'netdev' && facts.intoPeer.has(w.to.netdev) && readBy(w.from) === 'tc') peer.redirectPeer = true;
    const word = { word: encodePeer(peer), first: firstOf(w.to) };
    if (w.from.kind === 'netdev') entryWords.set(`${w.from.netdev}.${wiring.entries.get(w.from.netdev)}`, word);
    else if (w.from.kind === 'layer') cubeWords.get(w.from.cube)![w.from.dir] = word;
    else cubeWords.get(w.from.cube)![at.portIndex(w.from.cube, w.from.port)] = word;
  }
  return { cubeWords, entryWords };
}

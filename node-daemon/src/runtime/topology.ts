// The logical topology of one host and what it means for the data plane.
//
// A topology is declarative: cubes with named ports, links between two endpoints
// (cube ports or netdevs) and stacks of transparent cubes on an endpoint. This
// module validates one and turns it into peer words, the only thing the data plane
// reads to move packets. It is pure: no kernel, no I/O.
//
// Stacks are onions around their target, layer 0 outermost (nearest the wire for
// a netdev, nearest the link for a cube port). Going inwards a packet crosses the
// ingress layers from outside in; going outwards, the egress layers from inside out.
// A path from a cube port C.p to its link peer is therefore
//   C.p's egress layers (inside out), then
//   the peer's ingress layers (outside in) and the peer port, for a cube port, or
//   the peer netdev's egress layers (inside out) and the netdev, for a netdev;
// and from a netdev N (wire) inwards: N's ingress layers (outside in), then the
// linked port's ingress layers and the port, or the kernel stack when unlinked.

import { CUBE_MODES, formatEndpoint } from '@netcube/api/chain';
import type { CubeMode, CubeSpec as ChainCubeSpec, CubeTypeInfo, Direction as ChainDirection, Endpoint as ChainEndpoint } from '@netcube/api/chain';
import { MAX_PORTS, MAX_TAIL_CALLS, DIR_EGRESS, DIR_INGRESS, LOG_LEVELS, Peer } from './abi';
import { InvalidArgumentError, FailedPreconditionError } from './errors';
import { ifnameProblem, nameProblem, portNameProblem } from '@netcube/api/names';

// Cubes, their modes, directions and what a type says of itself are the chain
// format's (@netcube/api/chain), one definition for both. Links and endpoints are
// one host's here: a chain's link may join two hosts (via), and its endpoints are
// text; chain/plan.ts (planHost) turns a chain's into these, with
// fromChainEndpoint, the one conversion of an endpoint between the two.

export type Mode = CubeMode;
export const MODES: readonly Mode[] = CUBE_MODES;

/**
 * A cube of this host: a chain's cube without what only the cluster needs (its
 * host, its params). A replaced micro-cube's object (replacedMicrocubes: index ->
 * sha256) is given to apply() by ApplyOptions.objects; tables the chain sizes
 * (tableSizes, table-sizes.ts) are set before load, and a change loads the cube anew.
 */
export type CubeSpec = Pick<ChainCubeSpec, 'name' | 'type' | 'mode' | 'ports' | 'logLevel' | 'replacedMicrocubes' | 'tableSizes'>;

export type Endpoint = { cube: string; port: string } | { netdev: string };

export interface LinkSpec {
  a: Endpoint;
  b: Endpoint;
}

export type Direction = ChainDirection;

export interface StackSpec {
  target: Endpoint;
  /** Outermost first. */
  layers: { cube: string; direction: Direction }[];
}

export interface Topology {
  cubes: CubeSpec[];
  links: LinkSpec[];
  stacks: StackSpec[];
}

export function emptyTopology(): Topology {
  return { cubes: [], links: [], stacks: [] };
}

/** What validation needs to know about a cube type: what the cluster knows of it, without its name. */
export type TypeFacts = Readonly<Omit<CubeTypeInfo, 'name' | 'modes' | 'tables'>> & { readonly modes: readonly Mode[] };

/** A chain's endpoint (parsed from `<cube>:<port>` or `netdev:<ifname>`) as one host's. */
export function fromChainEndpoint(e: ChainEndpoint): Endpoint {
  return e.kind === 'port' ? { cube: e.cube, port: e.port } : { netdev: e.ifname };
}

/** One host's endpoint as a chain's. */
export function toChainEndpoint(e: Endpoint): ChainEndpoint {
  return 'netdev' in e ? { kind: 'netdev', ifname: e.netdev } : { kind: 'port', cube: e.cube, port: e.port };
}

/** As a chain writes it: `<cube>:<port>` or `netdev:<ifname>`. */
export function endpointName(e: Endpoint): string {
  return formatEndpoint(toChainEndpoint(e));
}

function endpointKey(e: Endpoint): string {
  return endpointName(e);
}

/** Where the data plane sends a packet: the receiving side of a word. */
export type Hop =
  | { kind: 'cube'; cube: string; port: string }
  | { kind: 'layer'; cube: string; dir: typeof DIR_INGRESS | typeof DIR_EGRESS }
  | { kind: 'netdev'; netdev: string }
  | { kind: 'stack' }
  | { kind: 'none' };

/** A sender: something with a peer word. */
export type Sender =
  | { kind: 'port'; cube: string; port: string }
  | { kind: 'layer'; cube: string; dir: typeof DIR_INGRESS | typeof DIR_EGRESS }
  | { kind: 'netdev'; netdev: string };

export interface Wiring {
  /** Each sender and the hop its word points to. */
  words: { from: Sender; to: Hop }[];
  /** Netdevs that need netcube's entry program, with the hook it must use. */
  entries: Map<string, Mode>;
  /** Mode of each netdev that netcube sends packets out of or receives from. */
  netdevs: Set<string>;
}

/**
 * Checks a topology and computes its wiring. Throws InvalidArgumentError naming the
 * object and what to fix, or FailedPreconditionError for loops and chains longer
 * than the kernel's tail-call limit. Reports the first problem found.
 */
export function wire(topo: Topology, types: (type: string) => TypeFacts | undefined): Wiring {
  const cubes = new Map<string, CubeSpec & { facts: TypeFacts }>();
  topo.cubes.forEach((c, i) => {
    const where = `cubes[${i}]`;
    const nameIssue = nameProblem(c.name, 'cube name');
    if (nameIssue) throw new InvalidArgumentError(`${where}.name`, nameIssue);
    if (cubes.has(c.name)) throw new InvalidArgumentError(`${where}.name`, `cube ${c.name} is declared twice`);
    const facts = types(c.type);
    if (!facts) throw new InvalidArgumentError(`${where}.type`, `cube ${c.name}: unknown cube type ${JSON.stringify(c.type)}; register it first or use a built-in type`);
    if (!MODES.includes(c.mode)) throw new InvalidArgumentError(`${where}.mode`, `cube ${c.name}: mode must be one of ${MODES.join(', ')}`);
    if (!facts.modes.includes(c.mode))
      throw new InvalidArgumentError(`${where}.mode`, `cube ${c.name}: type ${c.type} has no ${c.mode} object (it has ${facts.modes.join(', ') || 'none'})`);
    if (!LOG_LEVELS.includes(c.logLevel))
      throw new InvalidArgumentError(`${where}.logLevel`, `cube ${c.name}: log level must be one of ${LOG_LEVELS.join(', ')}`);
    const ports = c.ports ?? [];
    if (facts.transparent && ports.length > 0)
      throw new InvalidArgumentError(`${where}.ports`, `cube ${c.name} is transparent (type ${c.type}) and has no ports: stack it on a port or netdev instead`);
    if (ports.length > MAX_PORTS) throw new InvalidArgumentError(`${where}.ports`, `cube ${c.name} has ${ports.length} ports, at most ${MAX_PORTS} are allowed`);
    const seen = new Set<string>();
    for (const p of ports) {
      const portIssue = portNameProblem(p);
      if (portIssue) throw new InvalidArgumentError(`${where}.ports`, `cube ${c.name}: ${portIssue}`);
      if (seen.has(p)) throw new InvalidArgumentError(`${where}.ports`, `cube ${c.name}: port ${p} is declared twice`);
      seen.add(p);
    }
    cubes.set(c.name, { ...c, ports, facts });
  });

  const checkEndpoint = (e: Endpoint, where: string): void => {
    if (e && typeof e === 'object' && 'netdev' in e) {
      const netdevIssue = ifnameProblem(e.netdev);
      if (netdevIssue) throw new InvalidArgumentError(where, netdevIssue);
      return;
    }
    if (!e || typeof e !== 'object' || typeof (e as { cube?: unknown }).cube !== 'string')
      throw new InvalidArgumentError(where, 'an endpoint is {cube, port} or {netdev}');
    const c = cubes.get(e.cube);
    if (!c) throw new InvalidArgumentError(where, `no cube named ${e.cube}`);
    if (!c.ports.includes(e.port))
      throw new InvalidArgumentError(where, `cube ${e.cube} has no port ${JSON.stringify(e.port)} (its ports: ${c.ports.join(', ') || 'none'})`);
  };

  // Links: each endpoint at most once; at least one side a cube port.
  const linkOf = new Map<string, Endpoint>();
  topo.links.forEach((l, i) => {
    checkEndpoint(l.a, `links[${i}].a`);
    checkEndpoint(l.b, `links[${i}].b`);
    if ('netdev' in l.a && 'netdev' in l.b)
      throw new InvalidArgumentError(`links[${i}]`, `link ${endpointName(l.a)} - ${endpointName(l.b)} joins two netdevs: one side must be a cube port`);
    for (const [self, other, side] of [[l.a, l.b, 'a'], [l.b, l.a, 'b']] as const) {
      const k = endpointKey(self);
      if (linkOf.has(k))
        throw new InvalidArgumentError(`links[${i}].${side}`, `${endpointName(self)} is already linked to ${endpointName(linkOf.get(k)!)}; remove that link first`);
      linkOf.set(k, other);
    }
    if (!('netdev' in l.a) && !('netdev' in l.b)) {
      const ma = cubes.get(l.a.cube)!.mode;
      const mb = cubes.get(l.b.cube)!.mode;
      if (ma !== mb)
        throw new InvalidArgumentError(`links[${i}]`, `cube ${l.a.cube} runs in ${ma} and cube ${l.b.cube} in ${mb}: XDP and TC programs cannot call each other, use one mode for both`);
    }
  });

  // Stacks: transparent cubes only, each in one place, one stack per endpoint.
  const stackOf = new Map<string, StackSpec>();
  const placed = new Map<string, string>();
  topo.stacks.forEach((s, i) => {
    checkEndpoint(s.target, `stacks[${i}].target`);
    const k = endpointKey(s.target);
    if (stackOf.has(k)) throw new InvalidArgumentError(`stacks[${i}].target`, `${k} has two stacks; list all its transparent cubes in one, outermost first`);
    stackOf.set(k, s);
    s.layers.forEach((layer, j) => {
      const where = `stacks[${i}].layers[${j}]`;
      const c = cubes.get(layer.cube);
      if (!c) throw new InvalidArgumentError(`${where}.cube`, `no cube named ${layer.cube}`);
      if (!c.facts.transparent) throw new InvalidArgumentError(`${where}.cube`, `cube ${layer.cube} (type ${c.type}) is not transparent: link it through its ports instead`);
      if (!['ingress', 'egress', 'both'].includes(layer.direction))
        throw new InvalidArgumentError(`${where}.direction`, 'direction must be ingress, egress or both');
      if (placed.has(layer.cube)) throw new InvalidArgumentError(`${where}.cube`, `transparent cube ${layer.cube} is already stacked on ${placed.get(layer.cube)}`);
      placed.set(layer.cube, k);
    });
  });

  const ingressLayers = (e: Endpoint): Hop[] =>
    (stackOf.get(endpointKey(e))?.layers ?? [])
      .filter((l) => l.direction !== 'egress')
      .map((l) => ({ kind: 'layer', cube: l.cube, dir: DIR_INGRESS }));
  const egressLayers = (e: Endpoint): Hop[] =>
    (stackOf.get(endpointKey(e))?.layers ?? [])
      .filter((l) => l.direction !== 'ingress')
      .map((l): Hop => ({ kind: 'layer', cube: l.cube, dir: DIR_EGRESS }))
      .reverse();

  // The hops a packet takes after leaving a cube through `from`.
  const outwards = (from: { cube: string; port: string }): Hop[] => {
    const peer = linkOf.get(endpointKey(from));
    const rest: Hop[] = !peer
      ? [{ kind: 'none' }]
      : 'netdev' in peer
        ? [...egressLayers(peer), { kind: 'netdev', netdev: peer.netdev }]
        : [...ingressLayers(peer), { kind: 'cube', cube: peer.cube, port: peer.port }];
    return [...egressLayers(from), ...rest];
  };

  const words: Wiring['words'] = [];
  const chain = (from: Sender, hops: Hop[]): void => {
    let sender = from;
    for (const hop of hops) {
      words.push({ from: sender, to: hop });
      if (hop.kind !== 'layer') return;
      sender = { kind: 'layer', cube: hop.cube, dir: hop.dir };
    }
  };

  for (const c of cubes.values())
    for (const port of c.ports) chain({ kind: 'port', cube: c.name, port }, outwards({ cube: c.name, port }));

  // A netdev gets netcube's entry program when it is linked or has ingress layers;
  // packets of an unlinked one go on to the kernel's stack after those layers.
  const netdevs = new Set<string>();
  const entries = new Map<string, Mode>();
  for (const k of new Set([...linkOf.keys(), ...stackOf.keys()])) {
    if (!k.startsWith('netdev:')) continue;
    const netdev = k.slice('netdev:'.length);
    netdevs.add(netdev);
    const peer = linkOf.get(k) as { cube: string; port: string } | undefined;
    const inbound = ingressLayers({ netdev });
    if (!peer && inbound.length === 0) continue;
    const hops: Hop[] = peer
      ? [...inbound, ...ingressLayers(peer), { kind: 'cube', cube: peer.cube, port: peer.port }]
      : [...inbound, { kind: 'stack' }];
    const modes = new Set(hops.flatMap((h) => (h.kind === 'cube' || h.kind === 'layer' ? [cubes.get(h.cube)!.mode] : [])));
    if (modes.size > 1)
      throw new InvalidArgumentError('stacks', `netdev ${netdev}: the cubes on its way in run in both XDP and TC mode; use one mode for all of them`);
    entries.set(netdev, [...modes][0]);
    chain({ kind: 'netdev', netdev }, hops);
  }

  // Directions of a transparent cube that no path uses point nowhere.
  for (const c of cubes.values()) {
    if (!c.facts.transparent) continue;
    for (const dir of [DIR_INGRESS, DIR_EGRESS] as const)
      if (!words.some((w) => w.from.kind === 'layer' && w.from.cube === c.name && w.from.dir === dir))
        words.push({ from: { kind: 'layer', cube: c.name, dir }, to: { kind: 'none' } });
  }

  // Layer modes must match the cubes they sit between.
  for (const w of words) {
    if (w.from.kind === 'netdev') continue;
    const fromMode = cubes.get(w.from.cube)!.mode;
    if ((w.to.kind === 'cube' || w.to.kind === 'layer') && cubes.get(w.to.cube)!.mode !== fromMode)
      throw new InvalidArgumentError('stacks', `cube ${w.from.cube} (${fromMode}) would send packets to cube ${w.to.cube} (${cubes.get(w.to.cube)!.mode}): XDP and TC programs cannot call each other`);
  }

  checkPaths(cubes, words);
  return { words, entries, netdevs };
}

/**
 * Every path a packet can take inside the host must fit the kernel's tail-call
 * limit, and be loop-free unless the loop crosses a cube whose type decrements the
 * TTL (NC_DECREMENTS_TTL(): routers linked in a triangle). A packet that circles
 * such a cycle is stopped at run time by the tail-call limit (counted as
 * tail_call), so a path is walked once around it. A packet enters a standard cube
 * at a port and may leave by any other; each cube, transparent or not, costs one
 * tail call plus one per further micro-cube. Packets can start at a netdev entry
 * or, as packet-outs, at any cube.
 */
function checkPaths(cubes: Map<string, CubeSpec & { facts: TypeFacts }>, words: Wiring['words']): void {
  const next = new Map<string, Hop>();
  const key = (s: Sender): string => (s.kind === 'netdev' ? `netdev:${s.netdev}` : s.kind === 'port' ? `port:${s.cube}:${s.port}` : `layer:${s.cube}:${s.dir}`);
  for (const w of words) next.set(key(w.from), w.to);

  const step = (cube: string): string => {
    const programs = cubes.get(cube)!.facts.microcubes;
    return programs > 1 ? `${cube} (${programs} programs)` : cube;
  };
  let worst: { calls: number; path: string[] } = { calls: 0, path: [] };

  // `path` names the steps so far; `inside` the cubes on it, to find loops.
  const walk = (hop: Hop, calls: number, path: string[], inside: string[]): void => {
    if (hop.kind !== 'cube' && hop.kind !== 'layer') return;
    const c = cubes.get(hop.cube)!;
    if (inside.includes(hop.cube)) {
      const loop = [...inside.slice(inside.indexOf(hop.cube)), hop.cube];
      if (loop.some((name) => cubes.get(name)!.facts.decrementsTtl)) return;
      throw new FailedPreconditionError(
        `loop: ${loop.join(' -> ')}; packets would circle until the kernel's tail-call limit drops them: remove a link to break it (a loop is allowed only through a cube that decrements the TTL, such as a router)`,
      );
    }
    const cost = calls + c.facts.microcubes;
    const here = [...path, step(hop.cube)];
    if (cost > worst.calls) worst = { calls: cost, path: here };
    if (cost > MAX_TAIL_CALLS) return;
    const within = [...inside, hop.cube];
    if (hop.kind === 'layer') {
      const n = next.get(`layer:${hop.cube}:${hop.dir}`);
      if (n) walk(n, cost, here, within);
      return;
    }
    for (const port of c.ports) {
      if (port === hop.port) continue;
      const n = next.get(`port:${hop.cube}:${port}`);
      if (n) walk(n, cost, here, within);
    }
  };

  for (const w of words) if (w.from.kind === 'netdev') walk(w.to, 0, [`netdev:${w.from.netdev}`], []);
  for (const c of cubes.values()) {
    if (c.facts.transparent) {
      for (const dir of [DIR_INGRESS, DIR_EGRESS] as const) walk({ kind: 'layer', cube: c.name, dir }, 0, ['packet-out'], []);
    } else {
      for (const port of c.ports) walk({ kind: 'cube', cube: c.name, port }, 0, ['packet-out'], []);
    }
  }
  if (worst.calls > MAX_TAIL_CALLS)
    throw new FailedPreconditionError(
      `path ${worst.path.join(' -> ')} needs ${worst.calls} tail calls, the kernel allows ${MAX_TAIL_CALLS}; split the chain across hosts or shorten it`,
    );
}

/** Resolves hops to data-plane peers, given where cubes and netdevs are. */
export function peerOf(
  hop: Hop,
  at: { slot(cube: string): number; portIndex(cube: string, port: string): number; ifindex(netdev: string): number },
): Peer {
  switch (hop.kind) {
    case 'cube':
      return { kind: 'cube', slot: at.slot(hop.cube), port: at.portIndex(hop.cube, hop.port) };
    case 'layer':
      return { kind: 'cube', slot: at.slot(hop.cube), port: hop.dir };
    case 'netdev':
      return { kind: 'netdev', ifindex: at.ifindex(hop.netdev) };
    case 'stack':
      return { kind: 'stack' };
    case 'none':
      return { kind: 'none' };
  }
}

/**
 * A transparent cube stacked for a while on top of the topology the chains ask for
 * (a capture session's): outermost on its target, so it sees what crosses the link
 * or the wire. It is in no chain; the runtime keeps it across applies while its
 * target stays (runtime.ts, stackTransient).
 */
export interface TransientLayer {
  cube: CubeSpec;
  target: Endpoint;
  direction: Direction;
}

/**
 * The mode of the cubes a packet meets at `target`, which a cube stacked there must
 * share; undefined when `topo` has no such cube port, or does not use the netdev
 * (neither linked nor stacked on).
 */
export function endpointMode(topo: Topology, target: Endpoint): Mode | undefined {
  const modeOf = (name: string): Mode | undefined => topo.cubes.find((c) => c.name === name)?.mode;
  if (!('netdev' in target)) {
    const c = topo.cubes.find((x) => x.name === target.cube);
    return c && (c.ports ?? []).includes(target.port) ? c.mode : undefined;
  }
  const key = endpointKey(target);
  for (const l of topo.links) {
    if (endpointKey(l.a) === key && !('netdev' in l.b)) return modeOf(l.b.cube);
    if (endpointKey(l.b) === key && !('netdev' in l.a)) return modeOf(l.a.cube);
  }
  const stack = topo.stacks.find((s) => endpointKey(s.target) === key);
  return stack?.layers.length ? modeOf(stack.layers[0].cube) : undefined;
}

/** Why `layer` cannot stay on top of `topo` (its target went, or changed mode; a cube of `topo` took its name), or undefined. */
export function transientProblem(topo: Topology, layer: TransientLayer): string | undefined {
  if (topo.cubes.some((c) => c.name === layer.cube.name)) return `a chain now places a cube named ${layer.cube.name} on this host`;
  const mode = endpointMode(topo, layer.target);
  if (mode === undefined) return `${endpointName(layer.target)} is gone from this host's chains`;
  if (mode !== layer.cube.mode) return `the cubes at ${endpointName(layer.target)} now run in ${mode}, not ${layer.cube.mode}`;
  return undefined;
}

/** `topo` with each of `layers` stacked outermost on its target. */
export function withTransient(topo: Topology, layers: readonly TransientLayer[]): Topology {
  const out: Topology = { cubes: [...topo.cubes], links: topo.links, stacks: topo.stacks.map((s) => ({ target: s.target, layers: [...s.layers] })) };
  for (const layer of layers) {
    out.cubes.push(layer.cube);
    const key = endpointKey(layer.target);
    let stack = out.stacks.find((s) => endpointKey(s.target) === key);
    if (!stack) out.stacks.push((stack = { target: layer.target, layers: [] }));
    stack.layers.unshift({ cube: layer.cube.name, direction: layer.direction });
  }
  return out;
}

/** `topo` without the cubes named in `names`, nor their places in stacks. */
export function withoutCubes(topo: Topology, names: ReadonlySet<string>): Topology {
  return {
    cubes: topo.cubes.filter((c) => !names.has(c.name)),
    links: topo.links,
    stacks: topo.stacks
      .map((s) => ({ target: s.target, layers: s.layers.filter((l) => !names.has(l.cube)) }))
      .filter((s, i) => s.layers.length > 0 || topo.stacks[i].layers.length === 0),
  };
}

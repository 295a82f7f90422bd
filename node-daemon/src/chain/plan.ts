// The one conversion from the chain format (@netcube/api/chain) to the runtime's
// model (runtime/topology.ts): the slice of the desired chains that one host runs, as
// the host's runtime applies it: its cubes, the links between their ports and its
// netdevs, and transparent stacks, outermost layer first (the first attachment listed
// on a target). The two shapes differ on purpose: a chain names endpoints as text
// across hosts, the runtime holds one host's objects.

import { Chain, CubeSpec as ChainCubeSpec, Endpoint, endpointOf, formatEndpoint } from '@netcube/api/chain';
import { fromChainEndpoint, type CubeSpec, type LinkSpec, type StackSpec, type Topology } from '../runtime/topology';

/**
 * The slice of all chains placed on one host, in the form the host's runtime applies
 * (runtime/topology.ts), with what the runtime does not need to know
 * about each cube (its chain, its params).
 */
export interface HostPlan {
  host: string;
  /** Sorted by name. */
  cubes: PlannedCube[];
  topology: Topology;
}

/** A chain's cube placed on this host, with the chain it belongs to. */
export type PlannedCube = Omit<ChainCubeSpec, 'host'> & { chain: string };

export function planHost(chains: readonly Chain[], host: string): HostPlan {
  const cubes: PlannedCube[] = [];
  const links: LinkSpec[] = [];
  const stacks = new Map<string, StackSpec>();

  for (const chain of chains) {
    const hostOf = new Map(chain.spec.cubes.map(cube => [cube.name, cube.host]));
    const here = (e: Endpoint): boolean => e.kind === 'port' && hostOf.get(e.cube) === host;

    for (const cube of chain.spec.cubes) {
      if (cube.host !== host) continue;
      const { host: _placed, ...placed } = structuredClone(cube);
      cubes.push({ ...placed, chain: chain.metadata.name });
    }

    for (const link of chain.spec.links) {
      const from = endpointOf(link.from);
      const to = endpointOf(link.to);
      if (link.via) {
        // Cubes on two hosts: each host links its own cube's port to its side's netdev.
        if (here(from)) links.push({ a: fromChainEndpoint(from), b: { netdev: link.via.from } });
        if (here(to)) links.push({ a: fromChainEndpoint(to), b: { netdev: link.via.to } });
      } else if (here(from) || here(to)) {
        links.push({ a: fromChainEndpoint(from), b: fromChainEndpoint(to) });
      }
    }

    for (const attachment of chain.spec.attachments) {
      if (hostOf.get(attachment.cube) !== host) continue;
      const target = endpointOf(attachment.to);
      const key = formatEndpoint(target);
      let stack = stacks.get(key);
      if (!stack) stacks.set(key, (stack = { target: fromChainEndpoint(target), layers: [] }));
      stack.layers.push({ cube: attachment.cube, direction: attachment.direction });
    }
  }

  return {
    host,
    cubes: cubes.sort((a, b) => compare(a.name, b.name)),
    topology: {
      cubes: cubes.map(runtimeCube),
      links,
      stacks: [...stacks.entries()].sort(([a], [b]) => compare(a, b)).map(([, s]) => s),
    },
  };
}

/** A planned cube as the runtime takes it (its CubeSpec): without its chain and params. */
function runtimeCube(cube: PlannedCube): CubeSpec {
  const { name, type, mode, ports, logLevel, replacedMicrocubes, tableSizes } = cube;
  return {
    name,
    type,
    mode,
    ports: [...ports],
    logLevel,
    ...(replacedMicrocubes ? { replacedMicrocubes: { ...replacedMicrocubes } } : {}),
    ...(tableSizes ? { tableSizes: { ...tableSizes } } : {}),
  };
}

/** Code-point order: plans must not depend on the locale of the machine that makes them. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

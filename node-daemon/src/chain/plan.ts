// The slice of the desired chains that one host runs, as a reconciler applies it: cubes,
// the peer of each port, the netdevs that feed cube ports, and transparent stacks.

import { formatEndpoint, parseEndpoint } from './schema';
import {
  Chain,
  Endpoint,
  HostPlan,
  NetdevPeer,
  PlannedCube,
  PortEndpoint,
  PortPeer,
  StackDirection,
  TransparentStack,
} from './types';

/** The directions a stack of `direction` runs in. */
export function stackDirections(direction: 'ingress' | 'egress' | 'both'): StackDirection[] {
  return direction === 'both' ? ['ingress', 'egress'] : [direction];
}

/** For chains that passed validation; a malformed endpoint here is a caller's bug. */
export function endpointOf(text: string): Endpoint {
  const endpoint = parseEndpoint(text);
  if (!endpoint) throw new TypeError(`endpoint '${text}' is not <cube>:<port> or netdev:<ifname>; validate the chain first`);
  return endpoint;
}

export function planHost(chains: readonly Chain[], host: string): HostPlan {
  const cubes: PlannedCube[] = [];
  const ports: PortPeer[] = [];
  const netdevs: NetdevPeer[] = [];
  const stacks = new Map<string, TransparentStack>();

  const connect = (end: PortEndpoint, ifname: string) => {
    ports.push({ cube: end.cube, port: end.port, peer: { kind: 'netdev', ifname } });
    netdevs.push({ ifname, cube: end.cube, port: end.port });
  };

  for (const chain of chains) {
    const hostOf = new Map(chain.spec.cubes.map(cube => [cube.name, cube.host]));
    const here = (end: Endpoint): end is PortEndpoint => end.kind === 'port' && hostOf.get(end.cube) === host;

    for (const cube of chain.spec.cubes) {
      if (cube.host !== host) continue;
      const { name, type, mode, logLevel } = cube;
      cubes.push({ name, chain: chain.metadata.name, type, mode, ports: [...cube.ports], logLevel, params: structuredClone(cube.params) });
    }

    for (const link of chain.spec.links) {
      const from = endpointOf(link.from);
      const to = endpointOf(link.to);
      if (from.kind === 'port' && to.kind === 'port') {
        if (link.via) {
          // Each host sees its own half: its cube's port peers with its side's netdev.
          if (here(from)) connect(from, link.via.from);
          if (here(to)) connect(to, link.via.to);
        } else if (here(from) && here(to)) {
          ports.push({ cube: from.cube, port: from.port, peer: { kind: 'cube', cube: to.cube, port: to.port } });
          ports.push({ cube: to.cube, port: to.port, peer: { kind: 'cube', cube: from.cube, port: from.port } });
        }
      } else if (here(from) && to.kind === 'netdev') {
        connect(from, to.ifname);
      } else if (here(to) && from.kind === 'netdev') {
        connect(to, from.ifname);
      }
    }

    for (const attachment of chain.spec.attachments) {
      if (hostOf.get(attachment.cube) !== host) continue;
      const target = endpointOf(attachment.to);
      for (const direction of stackDirections(attachment.direction)) {
        const key = `${formatEndpoint(target)} ${direction}`;
        let stack = stacks.get(key);
        if (!stack) stacks.set(key, (stack = { target, direction, cubes: [] }));
        stack.cubes.push(attachment.cube);
      }
    }
  }

  // Chains list stacks from the wire (or port) inwards; egress traffic goes outwards.
  for (const stack of stacks.values()) {
    if (stack.direction === 'egress') stack.cubes.reverse();
  }

  return {
    host,
    cubes: cubes.sort((a, b) => compare(a.name, b.name)),
    ports: ports.sort((a, b) => compare(a.cube, b.cube) || compare(a.port, b.port)),
    netdevs: netdevs.sort((a, b) => compare(a.ifname, b.ifname)),
    stacks: [...stacks.values()].sort(
      (a, b) => compare(formatEndpoint(a.target), formatEndpoint(b.target)) || compare(a.direction, b.direction),
    ),
  };
}

/** Code-point order: plans must not depend on the locale of the machine that makes them. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

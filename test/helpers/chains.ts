// Topologies the integration tests and benchmarks build again and again: a line
// of two-port cubes between two netdevs, and the table entries that make the
// simpleforwarders in it forward.

import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { CubeSpec, LinkSpec, Mode, StackSpec, Topology } from '../../node-daemon/src/runtime/topology';

/** A cube of a line: its name and type; its ports are p0 (towards `from`) and p1. */
export interface LineCube {
  name: string;
  type: string;
}

/**
 * from -> cubes[0].p0, cubes[0].p1 -> cubes[1].p0, ..., cubes[n-1].p1 -> to.
 * With no cubes at all it is an empty topology.
 */
export function lineTopology(mode: Mode, cubes: readonly LineCube[], from: string, to: string, stacks: StackSpec[] = []): Topology {
  const specs: CubeSpec[] = cubes.map((c) => ({ name: c.name, type: c.type, mode, ports: ['p0', 'p1'], logLevel: 'info' }));
  const links: LinkSpec[] = [];
  cubes.forEach((c, i) => {
    links.push({ a: i === 0 ? { netdev: from } : { cube: cubes[i - 1].name, port: 'p1' }, b: { cube: c.name, port: 'p0' } });
  });
  if (cubes.length > 0) links.push({ a: { cube: cubes[cubes.length - 1].name, port: 'p1' }, b: { netdev: to } });
  return { cubes: specs, links, stacks };
}

/** Transparent cubes of a topology's stacks, added as cubes of `mode`. */
export function withStack(topo: Topology, mode: Mode, stack: StackSpec, types: Record<string, string>): Topology {
  const cubes = stack.layers.map((l): CubeSpec => ({ name: l.cube, type: types[l.cube], mode, ports: [], logLevel: 'info' }));
  return { cubes: [...topo.cubes, ...cubes], links: topo.links, stacks: [...topo.stacks, stack] };
}

/**
 * Makes every simpleforwarder of `rt` forward p0 <-> p1 (its table is empty, so
 * dropping, when created); also the benchmarks' builds of it (simpleforwarder_*).
 */
export function forwardBothWays(rt: Runtime): void {
  for (const name of rt.cubeNames()) {
    const cube = rt.cube(name);
    if (!/^simpleforwarder(_|$)/.test(cube.type.name)) continue;
    const p0 = cube.ports.get('p0')!;
    const p1 = cube.ports.get('p1')!;
    const actions = cube.table('actions');
    actions.put(p0, { action: 'FWD_FORWARD', out_port: p1 });
    actions.put(p1, { action: 'FWD_FORWARD', out_port: p0 });
  }
}

// Programming the service catalog's cubes from the tests and benchmarks, through
// the same pure translators the control planes use (remote-services/<name>/tables.ts),
// straight into a runtime's tables.
import type { ExecutionContext } from 'ava';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { compileFirewall, counterIndex, DIRECTIONS, type FirewallTables, type SlotAssignment } from '@netcube/firewall/tables';
import { compileLb, type LbIds, type LbTables } from '@netcube/lbrp/tables';
import { createHostNetns, openRuntime, registerTestTypes } from './dataplane';

/** What the next firewall compile needs to know of the last. */
export interface FirewallState {
  activeBank: number;
  slots?: SlotAssignment;
}

/**
 * Writes a compiled rule set into the bank packets are not using: its rules' new
 * counter slots zeroed first, then its tables. Packets keep using the old bank
 * until activate().
 */
export function writeFirewall(cube: Cube, config: unknown, state: FirewallState = { activeBank: 1 }): FirewallTables {
  const compiled = compileFirewall(config, { activeBank: state.activeBank, previous: state.slots });
  const counters = cube.table('fw_counters');
  DIRECTIONS.forEach((dir, di) => {
    for (const slot of compiled.freshSlots[dir]) counters.put(counterIndex(di, slot), { packets: 0, bytes: 0 });
  });
  for (const [name, entries] of Object.entries(compiled.tables)) cube.table(name).putBatch(entries);
  return compiled;
}

/** Switches every packet to the compiled bank; returns the state for the next compile. */
export function activate(cube: Cube, compiled: FirewallTables): FirewallState {
  cube.table(compiled.activate.table).put(compiled.activate.key, compiled.activate.value);
  return { activeBank: compiled.bank, slots: compiled.slots };
}

/** writeFirewall, then activate. */
export function loadFirewall(cube: Cube, config: unknown, state?: FirewallState): { compiled: FirewallTables; state: FirewallState } {
  const compiled = writeFirewall(cube, config, state);
  return { compiled, state: activate(cube, compiled) };
}

/** A firewall counter summed over the CPUs. */
export function firewallCounter(cube: Cube, dir: (typeof DIRECTIONS)[number], slot: number): { packets: number; bytes: number } {
  const perCpu = cube.table('fw_counters').get(counterIndex(DIRECTIONS.indexOf(dir), slot)) as { packets: number; bytes: number }[];
  return perCpu.reduce((a, c) => ({ packets: a.packets + c.packets, bytes: a.bytes + c.bytes }), { packets: 0, bytes: 0 });
}

/**
 * Writes a load balancer's config into its tables, in the order that keeps
 * packets right: backends and Maglev tables before the services that use them,
 * freed backends emptied last. Returns the ids for the next compile.
 */
export function loadLb(cube: Cube, config: unknown, previous?: LbIds): LbTables {
  const compiled = compileLb(config, { ports: Object.fromEntries(cube.ports), previous });
  const t = compiled.tables;
  for (const name of ['lb_ports', 'lb_config', 'lb_hosts', 'lb_backends', 'lb_maglev', 'lb_services'] as const) cube.table(name).putBatch(t[name]);
  for (const name of ['lb_services', 'lb_hosts'] as const) {
    const keep = new Set(t[name].map((e) => JSON.stringify(e.key)));
    const table = cube.table(name);
    for (const { key } of [...table.entries()]) if (!keep.has(JSON.stringify(key))) table.delete(key);
  }
  for (const id of compiled.freedBackends) cube.table('lb_backends').put(id, { addr: '::', port: 0, pad: 0 });
  return compiled;
}

/** A transparent cube `g` stacked both ways on netdev n0, and probe cube q behind it. */
export interface StackedFixture {
  rt: Runtime;
  g: Cube;
  q: Cube;
  gen: number;
}

/**
 * A runtime in a namespace of its own with a transparent cube `g` of `type`
 * stacked both ways on netdev n0, which is linked to port a of probe cube q
 * (marking what it receives): going in, g sends on to q (verdict mark); going
 * out, to n0 (redirect). Removed in the test's teardown.
 */
export async function stackedCube(t: ExecutionContext, mode: Mode, type: string): Promise<StackedFixture> {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  await rt.apply({
    cubes: [
      { name: 'g', type, mode, ports: [], logLevel: 'info' },
      { name: 'q', type: 'probe', mode, ports: ['a'], logLevel: 'info' },
    ],
    links: [{ a: { netdev: 'n0' }, b: { cube: 'q', port: 'a' } }],
    stacks: [{ target: { netdev: 'n0' }, layers: [{ cube: 'g', direction: 'both' }] }],
  });
  const q = rt.cube('q');
  q.table('probe_actions').put(q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  return { rt, g: rt.cube('g'), q, gen: rt.host.currentGen };
}

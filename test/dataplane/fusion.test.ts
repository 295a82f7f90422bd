// A netdev's entry runs its first cube fused (one program: no tail call into the
// cube), for every built-in cube type with ports, in both hooks. What can keep a
// type from fusing is the kernel's bound on a program's constant tail-call sites
// (1,024 poke descriptors): each nc_redirect a cube inlines is a tree of them
// (bpf/include/netcube/deliver.h), so a type with many ways out falls back to the
// entry without a cube, and its packets pay one tail call more. A type that does
// shows here by name, with the verifier's words.
import test from 'ava';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, openRuntime } from '../helpers/dataplane';

for (const mode of ['xdp', 'tc'] as const satisfies readonly Mode[]) {
  test(`${mode}: every built-in cube type with ports runs fused with a netdev's entry`, async (t) => {
    const ns = await createHostNetns(t);
    const rt = await openRuntime(t, { netns: ns.path });
    const types = rt.types.list().filter((type) => type.builtin && !type.transparent);
    const names = types.map((type) => type.name);
    for (const name of ['bridge', 'lbrp', 'router', 'simpleforwarder']) t.true(names.includes(name), `${name} among the built-in types with ports: ${names.join(', ')}`);
    const unfused: string[] = [];
    for (const type of types) {
      const report = await rt.apply({
        cubes: [{ name: 'c', type: type.name, mode, ports: ['a', 'b'], logLevel: 'info' }],
        links: [{ a: { cube: 'c', port: 'a' }, b: { netdev: 'n0' } }],
        stacks: [],
      });
      if (report.problems.length > 0) unfused.push(`${type.name}: ${report.problems.join('; ')}`);
      await rt.apply({ cubes: [], links: [], stacks: [] });
    }
    t.deepEqual(unfused, []);
  });
}

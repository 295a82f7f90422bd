// Deleting everything: an empty topology leaves no cube or netdev pin, no filled
// prog-array slot, no host table, and nothing attached to any netdev.
import test from 'ava';
import type { Topology } from '../../node-daemon/src/runtime/topology';
import { emptyTopology } from '../../node-daemon/src/runtime/topology';
import { lineTopology, withStack } from '../helpers/chains';
import { attachments, filledSlots, openRuntime, pins, registerTestTypes } from '../helpers/dataplane';
import { createTestbed } from '../helpers/testbed';

const HOST_PINS = ['host/errors', 'host/gen', 'host/log_rb', 'host/pkt_rb', 'host/progs_tc', 'host/progs_xdp'];

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: applying an empty topology removes every pin and attachment`, async (t) => {
    const bed = await createTestbed(t, { mode, outs: 2 });
    const rt = await openRuntime(t, { netns: bed.host.path });
    await registerTestTypes(rt);
    // Cubes of every kind: with ports, transparent (on a netdev and on a port),
    // with micro-cubes and a host table; entries on every netdev (in0 and out0 are
    // linked, packets can enter by either; out1 has an ingress stack).
    let topo: Topology = lineTopology(mode, [{ name: 'r', type: 'relay' }, { name: 'p', type: 'probe' }], bed.in, bed.outs[0]);
    topo = withStack(topo, mode, { target: { netdev: bed.in }, layers: [{ cube: 'g1', direction: 'both' }] }, { g1: 'ddosmitigator' });
    topo = withStack(topo, mode, { target: { cube: 'p', port: 'p1' }, layers: [{ cube: 'g2', direction: 'ingress' }] }, { g2: 'ddosmitigator' });
    topo = withStack(topo, mode, { target: { netdev: bed.outs[1] }, layers: [{ cube: 'g3', direction: 'ingress' }] }, { g3: 'ddosmitigator' });
    // What the testbed itself runs on them (in 'tc', an XDP pass program on in0).
    const netdevs = [bed.in, ...bed.outs];
    const untouched = await Promise.all(netdevs.map((n) => attachments(bed.host.name, n)));
    await rt.apply(topo);
    const hook = mode === 'xdp' ? 'xdp' : 'tcIngress';
    for (const ifname of netdevs) {
      const a = await attachments(bed.host.name, ifname);
      t.true(mode === 'xdp' ? a.xdp !== 0 : a.tcIngress.length === 1, `${ifname} has no ${hook} entry`);
    }
    t.is(Object.keys(filledSlots(rt)).length, 5); // every cube's entry, for packet-out
    t.true(pins(rt).some((p) => p.startsWith('host/tables/')));

    const report = await rt.apply(emptyTopology());
    t.deepEqual(report.deleted.sort(), ['g1', 'g2', 'g3', 'p', 'r']);
    t.deepEqual(report.detached.sort(), [bed.in, ...bed.outs].map((n) => `${n}.${mode}`));

    t.deepEqual(pins(rt), HOST_PINS);
    t.deepEqual(filledSlots(rt), {});
    t.deepEqual(rt.cubeNames(), []);
    t.deepEqual(rt.topology(), emptyTopology());
    t.deepEqual(untouched.flatMap((a) => a.tcIngress), []);
    t.deepEqual(untouched.map((a) => a.xdp !== 0), netdevs.map((n) => mode === 'tc' && n === bed.in));
    for (const [i, ifname] of netdevs.entries()) t.deepEqual(await attachments(bed.host.name, ifname), untouched[i], ifname);
  });
}

// A chain of three cubes between two netdevs, with real traffic: every frame the
// generator sends arrives, and every cube on the way counted it.
import test from 'ava';
import { openRuntime } from '../helpers/dataplane';
import { forwardBothWays, lineTopology } from '../helpers/chains';
import { createTestbed } from '../helpers/testbed';

const FRAMES = 20_000;

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: a 3-cube chain between two netdevs delivers every packet`, async (t) => {
    const bed = await createTestbed(t, { mode });
    const rt = await openRuntime(t, { netns: bed.host.path });
    const cubes = [
      { name: 'fwd1', type: 'simpleforwarder' },
      { name: 'mid', type: 'nop' },
      { name: 'fwd2', type: 'simpleforwarder' },
    ];
    await rt.apply(lineTopology(mode, cubes, bed.in, bed.outs[0]));
    forwardBothWays(rt);

    await bed.generator.send(FRAMES, { delivered: bed.received });
    const received = await bed.sinks[0].settle(FRAMES);

    // A frame lost on a veth (a ring overrun) is not the chain's: say so first.
    t.deepEqual(await bed.drops(), {});
    t.is(bed.generator.sent, FRAMES);
    t.is(received, FRAMES);
    for (const { name } of cubes) {
      const p0 = rt.portStats(name, 'p0');
      const p1 = rt.portStats(name, 'p1');
      t.is(p0.rxPackets, BigInt(FRAMES), `${name}:p0 rx`);
      t.is(p1.txPackets, BigInt(FRAMES), `${name}:p1 tx`);
      t.is(p0.drops, 0n, `${name}:p0 drops`);
    }
    t.deepEqual(rt.host.errorCounts(), new Array(8).fill(0n));
  });
}

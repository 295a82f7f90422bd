// A transparent ddosmitigator in a live chain drops exactly the frames of the
// blacklisted sources: the sink sees every frame of every other source and none
// of theirs, and the mitigator counted each one it dropped.
import test from 'ava';
import { parseIpv4 } from '@netcube/sdk/packet';
import type { Endpoint } from '../../node-daemon/src/runtime/topology';
import { forwardBothWays, lineTopology, withStack } from '../helpers/chains';
import { openRuntime } from '../helpers/dataplane';
import { createTestbed } from '../helpers/testbed';
import { streamFrame } from '../helpers/traffic';

const SOURCES = ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5', '10.1.0.6'];
const BLACKLISTED = new Set(['10.1.0.2', '10.1.0.5']);
const PER_SOURCE = 10_000;

for (const mode of ['xdp', 'tc'] as const) {
  for (const where of ['netdev', 'port'] as const) {
    test(`${mode}: a ddosmitigator stacked on a ${where} drops exactly the blacklisted sources`, async (t) => {
      const bed = await createTestbed(t, { mode, frames: SOURCES.map((src) => streamFrame({ src })) });
      const rt = await openRuntime(t, { netns: bed.host.path });
      // in0 -> fwd -> out0, the mitigator on the way in: on in0 itself, or on fwd's port facing it.
      const target: Endpoint = where === 'netdev' ? { netdev: bed.in } : { cube: 'fwd', port: 'p0' };
      await rt.apply(
        withStack(lineTopology(mode, [{ name: 'fwd', type: 'simpleforwarder' }], bed.in, bed.outs[0]), mode,
                  { target, layers: [{ cube: 'guard', direction: 'ingress' }] }, { guard: 'ddosmitigator' }),
      );
      forwardBothWays(rt);
      const blacklist = rt.table('guard', 'blacklist_v4');
      for (const src of BLACKLISTED) blacklist.put(parseIpv4(src), 0);

      // One run per source and round, each source's frames in turn; a run starts
      // once every frame before it arrived or was dropped by the mitigator.
      const ingress = () => rt.portStats('guard', 'ingress');
      const accounted = () => bed.received() + Number(ingress().drops);
      await bed.generator.send(PER_SOURCE * SOURCES.length, { perRun: PER_SOURCE / 4, delivered: accounted });
      const passed = PER_SOURCE * (SOURCES.length - BLACKLISTED.size);
      await bed.sinks[0].settle(passed);

      // A frame lost on a veth (a ring overrun) is not the mitigator's: say so first.
      t.deepEqual(await bed.drops(), {});
      t.deepEqual(bed.generator.sentOf, SOURCES.map(() => PER_SOURCE));
      for (const src of SOURCES) {
        t.is(bed.sinks[0].from(src), BLACKLISTED.has(src) ? 0 : PER_SOURCE, src);
        t.is(blacklist.get(parseIpv4(src)), BLACKLISTED.has(src) ? PER_SOURCE : undefined, `${src} in the blacklist`);
      }
      t.is(bed.sinks[0].frames, passed);
      const guard = ingress();
      t.is(guard.rxPackets, BigInt(PER_SOURCE * SOURCES.length));
      t.is(guard.drops, BigInt(PER_SOURCE * BLACKLISTED.size));
      t.is(guard.txPackets, BigInt(passed));
      t.is(rt.portStats('fwd', 'p1').txPackets, BigInt(passed));
    });
  }
}

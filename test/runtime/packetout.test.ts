import test from 'ava';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import { openRuntime, registerTestTypes } from '../helpers/dataplane';
import { createNetns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const frame = ethernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1, dport: 2, payload: Buffer.from('hi') }) }) });

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: packet-out enters a cube port, or leaves through it`, async (t) => {
    const ns = await createNetns(t);
    const rt = await openRuntime(t, { netns: ns.path });
    await registerTestTypes(rt);
    await rt.apply({
      cubes: [
        { name: 'a', type: 'probe', mode, ports: ['p0', 'p1'], logLevel: 'info' },
        { name: 'b', type: 'probe', mode, ports: ['q0'], logLevel: 'info' },
      ],
      links: [{ a: { cube: 'a', port: 'p1' }, b: { cube: 'b', port: 'q0' } }],
      stacks: [],
    });
    rt.cube('a').table('probe_actions').put(0, { op: 'PROBE_DROP', arg: 0, user0: 0, log: 0 });
    rt.cube('b').table('probe_actions').put(0, { op: 'PROBE_DROP', arg: 0, user0: 0, log: 0 });
    t.false(rt.packetOutReady);
    t.throws(() => rt.sendPacket({ cube: 'a', port: 'p0', direction: 'ingress', frame }), { name: 'FailedPreconditionError', message: /packet-out is not set up on this host yet/ });
    const setup = rt.preparePacketOut();
    t.is(rt.preparePacketOut(), setup, 'one setup at a time');
    await setup;
    t.true(rt.packetOutReady);
    await rt.preparePacketOut();
    // Synchronous from here on.
    t.true(rt.sendPacket({ cube: 'a', port: 'p0', direction: 'ingress', frame }));
    t.true(rt.sendPacket({ cube: 'a', port: 'p1', direction: 'egress', frame }));
    t.true(rt.sendPacket({ cube: 'a', port: 'p1', direction: 'egress', frame }));
    await waitFor('both packets at cube b', () => rt.cube('b').portStats('q0').drops >= 2n, 1_000, 10);
    t.is(rt.cube('a').portStats('p0').drops, 1n);
    t.is(rt.cube('b').portStats('q0').rxPackets, 2n);
    t.is(rt.cube('b').portStats('q0').drops, 2n);
  });
}

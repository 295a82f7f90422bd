import test from 'ava';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import { entering, openRuntime, registerTestTypes, runProgram } from '../helpers/dataplane';

const frame = ethernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1, dport: 2, payload: Buffer.from('hi') }) }) });

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: probe a -> probe b`, async (t) => {
    const rt = await openRuntime(t);
    await registerTestTypes(rt);
    const r = await rt.apply({
      cubes: [
        { name: 'a', type: 'probe', mode, ports: ['p0', 'p1'], logLevel: 'info' },
        { name: 'b', type: 'probe', mode, ports: ['q0', 'q1'], logLevel: 'info' },
      ],
      links: [{ a: { cube: 'a', port: 'p1' }, b: { cube: 'b', port: 'q1' } }],
      stacks: [],
    });
    t.log(r);
    const a = rt.cube('a');
    const b = rt.cube('b');
    a.table('probe_actions').put(0, { op: 'PROBE_REDIRECT', arg: 1, user0: 7, log: 0 });
    b.table('probe_actions').put(1, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
    t.log(a.table('probe_actions').get(0));
    const gen = rt.host.currentGen;
    const res = await runProgram(a.program(), mode, frame, entering(0, a.id, gen));
    t.log(res);
    t.is(res.verdict, 'mark');
    t.deepEqual(res.md, { inPort: 1, cubeId: b.id, reason: 0, flags: gen, user: [0, 0, 0] });
    t.deepEqual(res.frame, frame);
    t.is(a.portStats('p1').txPackets, 1n);
  });
}

// simpleforwarder: its table says, per in-port, forward (to which port), drop, or
// hand the packet to the controller.
//
// Fixture: simpleforwarder f with ports p0 (linked to netdev n0), p1 (linked to
// port a of probe cube q, which marks what it receives) and p2 (unconnected);
// its table forwards p0 -> p1 and p1 -> p0, and says nothing about p2.
import { ethernet, ipv4, tcp, TcpFlags, udp } from '@netcube/sdk/packet';
import { HOOK_ID, Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, entering, openRuntime, registerTestTypes } from '../helpers/dataplane';
import { errors, packetRecords, table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  f: Cube;
  q: Cube;
  gen: number;
}

async function fixture(t: Parameters<Parameters<typeof table>[1]>[0], mode: Mode): Promise<Fixture> {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  const cube = (name: string, type: string, ports: string[]) => ({ name, type, mode, ports, logLevel: 'info' as const });
  await rt.apply({
    cubes: [cube('f', 'simpleforwarder', ['p0', 'p1', 'p2']), cube('q', 'probe', ['a'])],
    links: [
      { a: { cube: 'f', port: 'p0' }, b: { netdev: 'n0' } },
      { a: { cube: 'f', port: 'p1' }, b: { cube: 'q', port: 'a' } },
    ],
    stacks: [],
  });
  const f = rt.cube('f');
  const q = rt.cube('q');
  q.table('probe_actions').put(q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  act(f, 'p0', { action: 'FWD_FORWARD', out_port: f.ports.get('p1')! });
  act(f, 'p1', { action: 'FWD_FORWARD', out_port: f.ports.get('p0')! });
  return { rt, f, q, gen: rt.host.currentGen };
}

function act(f: Cube, port: string | number, entry: { action: string; out_port: number }): void {
  f.table('actions').put(typeof port === 'number' ? port : f.ports.get(port)!, entry);
}

const into = (port: string) => (x: Fixture): Metadata => entering(x.f.ports.get(port)!, x.f.id, x.gen);

const frame = ethernet({
  src: '02:00:00:00:00:01',
  dst: '02:00:00:00:00:02',
  payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1000, dport: 2000, payload: Buffer.from('forward me') }) }),
});
const syn = ethernet({
  src: '02:00:00:00:00:03',
  dst: '02:00:00:00:00:04',
  vlan: { id: 42 },
  payload: ipv4({ src: '192.168.1.1', dst: '192.168.1.2', ttl: 3, payload: tcp({ sport: 40000, dport: 443, flags: TcpFlags.SYN, seq: 1 }) }),
});
const jumbo = ethernet({
  src: '02:00:00:00:00:01',
  dst: '02:00:00:00:00:02',
  payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1, dport: 2, payload: Buffer.alloc(1472, 1) }) }),
});

const rows: Row<Fixture>[] = [
  {
    description: 'forwards p0 to p1, into the cube port linked there, with fresh metadata',
    input: frame,
    md: (x) => ({ ...into('p0')(x), user: [1, 2, 3] }),
    verdict: 'mark',
    outMd: (x) => entering(x.q.ports.get('a')!, x.q.id, x.gen),
    check: (t, x) => {
      t.like(x.rt.portStats('f', 'p0'), { rxPackets: 1n, rxBytes: BigInt(frame.length), drops: 0n, toController: 0n });
      t.like(x.rt.portStats('f', 'p1'), { txPackets: 1n, txBytes: BigInt(frame.length) });
    },
  },
  {
    description: 'forwards p1 to p0, out of the netdev linked there',
    input: frame,
    md: into('p1'),
    verdict: 'redirect',
    check: (t, x) => {
      t.like(x.rt.portStats('f', 'p1'), { rxPackets: 1n });
      t.like(x.rt.portStats('f', 'p0'), { txPackets: 1n });
    },
  },
  {
    description: 'forwards a VLAN-tagged TCP SYN as it is, TTL and all',
    input: syn,
    md: into('p1'),
    verdict: 'redirect',
  },
  {
    description: 'forwards a full-size frame, counting its bytes',
    input: jumbo,
    md: into('p1'),
    verdict: 'redirect',
    check: (t, x) => {
      t.like(x.rt.portStats('f', 'p1'), { rxBytes: BigInt(jumbo.length) });
      t.like(x.rt.portStats('f', 'p0'), { txBytes: BigInt(jumbo.length) });
    },
  },
  {
    description: 'drops what enters a port its table says nothing about',
    input: frame,
    md: into('p2'),
    verdict: 'drop',
    check: (t, x) => {
      t.like(x.rt.portStats('f', 'p2'), { rxPackets: 1n, drops: 1n });
      t.deepEqual(errors(x.rt), {});
    },
  },
  {
    description: 'drops what its table says to drop',
    input: frame,
    setup: (x) => act(x.f, 'p0', { action: 'FWD_DROP', out_port: 0 }),
    md: into('p0'),
    verdict: 'drop',
    check: (t, x) => {
      t.like(x.rt.portStats('f', 'p0'), { rxPackets: 1n, drops: 1n });
      t.like(x.rt.portStats('f', 'p1'), { txPackets: 0n });
    },
  },
  {
    description: 'forwarding to an unconnected port drops, counted on the in-port',
    input: frame,
    setup: (x) => act(x.f, 'p0', { action: 'FWD_FORWARD', out_port: x.f.ports.get('p2')! }),
    md: into('p0'),
    verdict: 'drop',
    check: (t, x) => {
      t.like(x.rt.portStats('f', 'p0'), { drops: 1n });
      t.like(x.rt.portStats('f', 'p2'), { txPackets: 0n });
    },
  },
  {
    description: 'forwarding to a port out of range drops, counted on the in-port',
    input: frame,
    setup: (x) => act(x.f, 'p0', { action: 'FWD_FORWARD', out_port: 40 }),
    md: into('p0'),
    verdict: 'drop',
    check: (t, x) => t.like(x.rt.portStats('f', 'p0'), { drops: 1n }),
  },
  {
    description: 'hands a packet to the controller: the whole frame and its metadata in one record',
    input: syn,
    setup: (x) => act(x.f, 'p1', { action: 'FWD_CONTROLLER', out_port: 0 }),
    md: into('p1'),
    verdict: 'drop',
    check: async (t, x, _res, mode) => {
      const recs = await packetRecords(t, x.rt.host.pktRing, 1);
      t.deepEqual(recs, [
        { cubeId: x.f.id, inPort: x.f.ports.get('p1')!, reason: 0, hook: mode, user: [0, 0, 0], wireLen: syn.length, packet: syn },
      ]);
      t.like(x.rt.portStats('f', 'p1'), { rxPackets: 1n, toController: 1n, drops: 0n });
      t.is(HOOK_ID[mode], mode === 'xdp' ? 1 : 2);
    },
  },
  {
    description: 'without netcube metadata: dropped and counted',
    input: frame,
    verdict: 'drop',
    check: (t, x) => {
      t.deepEqual(errors(x.rt), { no_metadata: 1 });
      t.like(x.rt.portStats('f', 'p0'), { rxPackets: 0n, drops: 0n });
    },
  },
];

table(rows, fixture, (x) => x.f.program());

// nop: a packet entering one port leaves by the other, whatever it is.
//
// Fixture: nop cube c, p0 linked to netdev n0, p1 to port a of probe cube q
// (which marks what it receives, so the metadata it got can be read); nop cube
// lone, p0 linked to q.b, p1 unconnected.
import { arp, ArpOp, ethernet, ipv4, ipv6, udp } from '@netcube/sdk/packet';
import { Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, entering, openRuntime, registerTestTypes } from '../helpers/dataplane';
import { errors, table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  c: Cube;
  lone: Cube;
  q: Cube;
  gen: number;
}

async function fixture(t: Parameters<Parameters<typeof table>[1]>[0], mode: Mode): Promise<Fixture> {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  const cube = (name: string, type: string, ports: string[]) => ({ name, type, mode, ports, logLevel: 'info' as const });
  await rt.apply({
    cubes: [cube('c', 'nop', ['p0', 'p1']), cube('lone', 'nop', ['p0', 'p1']), cube('q', 'probe', ['a', 'b'])],
    links: [
      { a: { cube: 'c', port: 'p0' }, b: { netdev: 'n0' } },
      { a: { cube: 'c', port: 'p1' }, b: { cube: 'q', port: 'a' } },
      { a: { cube: 'lone', port: 'p0' }, b: { cube: 'q', port: 'b' } },
    ],
    stacks: [],
  });
  const q = rt.cube('q');
  for (const port of ['a', 'b']) q.table('probe_actions').put(q.ports.get(port)!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  return { rt, c: rt.cube('c'), lone: rt.cube('lone'), q, gen: rt.host.currentGen };
}

const port = (cube: Cube, name: string): number => cube.ports.get(name)!;
const into = (cube: (f: Fixture) => Cube, name: string) => (f: Fixture): Metadata => entering(port(cube(f), name), cube(f).id, f.gen);

const udpFrame = ethernet({
  src: '02:00:00:00:00:01',
  dst: '02:00:00:00:00:02',
  payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1000, dport: 2000, payload: Buffer.from('nop') }) }),
});
const bigFrame = ethernet({
  src: '02:00:00:00:00:01',
  dst: '02:00:00:00:00:02',
  payload: ipv6({ src: 'fd00::1', dst: 'fd00::2', payload: udp({ sport: 1, dport: 2, payload: Buffer.alloc(1400, 7) }) }),
});
const arpFrame = ethernet({
  src: '02:00:00:00:00:01',
  dst: 'ff:ff:ff:ff:ff:ff',
  payload: arp({ op: ArpOp.REQUEST, senderMac: '02:00:00:00:00:01', senderIp: '10.0.0.1', targetMac: '00:00:00:00:00:00', targetIp: '10.0.0.2' }),
});

const rows: Row<Fixture>[] = [
  {
    description: 'enters p1, leaves by p0 for the netdev it is linked to',
    input: udpFrame,
    md: into((f) => f.c, 'p1'),
    verdict: 'redirect',
    check: (t, f) => {
      t.like(f.rt.portStats('c', 'p1'), { rxPackets: 1n, rxBytes: BigInt(udpFrame.length), txPackets: 0n, drops: 0n });
      t.like(f.rt.portStats('c', 'p0'), { rxPackets: 0n, txPackets: 1n, txBytes: BigInt(udpFrame.length), drops: 0n });
      t.deepEqual(errors(f.rt), {});
    },
  },
  {
    description: 'enters p0, leaves by p1 into the cube port it is linked to, with fresh metadata',
    input: udpFrame,
    // Words, a reason and the packet-out flag of its own: none of them goes on.
    md: (f) => ({ ...into((g) => g.c, 'p0')(f), reason: 9, flags: f.gen | 0x2, user: [7, 8, 9] }),
    verdict: 'mark',
    outMd: (f) => entering(port(f.q, 'a'), f.q.id, f.gen),
    check: (t, f) => {
      t.like(f.rt.portStats('c', 'p1'), { txPackets: 1n });
      t.like(f.rt.portStats('q', 'a'), { rxPackets: 1n });
    },
  },
  {
    description: 'carries any frame unchanged: 1.4 kB of IPv6, counted in bytes',
    input: bigFrame,
    md: into((f) => f.c, 'p1'),
    verdict: 'redirect',
    check: (t, f) => {
      t.like(f.rt.portStats('c', 'p1'), { rxBytes: BigInt(bigFrame.length) });
      t.like(f.rt.portStats('c', 'p0'), { txBytes: BigInt(bigFrame.length) });
    },
  },
  {
    description: 'carries an ARP request',
    input: arpFrame,
    md: into((f) => f.c, 'p0'),
    verdict: 'mark',
    outMd: (f) => entering(port(f.q, 'a'), f.q.id, f.gen),
  },
  {
    description: 'leaves by an unconnected port: dropped, a drop of the port it came in on',
    input: udpFrame,
    program: (f) => f.lone.program(),
    md: into((f) => f.lone, 'p0'),
    verdict: 'drop',
    check: (t, f) => {
      t.like(f.rt.portStats('lone', 'p0'), { rxPackets: 1n, drops: 1n });
      t.like(f.rt.portStats('lone', 'p1'), { txPackets: 0n });
      t.deepEqual(errors(f.rt), {});
    },
  },
  {
    description: 'enters by a port the cube does not have: dropped',
    input: udpFrame,
    md: (f) => entering(5, f.c.id, f.gen),
    verdict: 'drop',
    check: (t, f) => {
      t.like(f.rt.portStats('c', 'p0'), { txPackets: 0n });
      t.like(f.rt.portStats('c', 'p1'), { txPackets: 0n });
    },
  },
  {
    description: 'without netcube metadata: dropped and counted',
    input: udpFrame,
    verdict: 'drop',
    check: (t, f) => {
      t.deepEqual(errors(f.rt), { no_metadata: 1 });
      t.like(f.rt.portStats('c', 'p0'), { rxPackets: 0n, txPackets: 0n });
    },
  },
  {
    description: "with another cube's metadata: dropped and counted",
    input: udpFrame,
    md: (f) => entering(0, f.q.id, f.gen),
    verdict: 'drop',
    check: (t, f) => {
      t.deepEqual(errors(f.rt), { no_metadata: 1 });
      t.like(f.rt.portStats('c', 'p0'), { rxPackets: 0n });
    },
  },
];

table(rows, fixture, (f) => f.c.program());

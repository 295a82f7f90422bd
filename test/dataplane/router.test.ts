// router: routes IPv4 by longest prefix, rewrites the MACs from its neighbour
// table and decrements the TTL (patching the header checksum); what it cannot do
// alone goes to the control plane with a reason: ARP for its own addresses (1), a
// next hop without a neighbour entry (2, next hop in user[0], out-port in user[1]),
// packets for the router itself (3), and TTLs that run out (4).
//
// Fixture: router r with ports p0 (netdev n0; 10.0.0.1/24, secondary 10.5.0.1/24),
// p1 (probe cube q, which marks what it receives; 10.1.0.1/24) and p2 (unconnected,
// no address). Routes: the three connected ones, and 10.9.0.0/16 via 10.1.0.254 on p1.
// Neighbours: 10.1.0.5 on p1.
import type { ExecutionContext } from 'ava';
import { be32 } from '@netcube/sdk/codec';
import { arp, ArpOp, ethernet, icmpEchoRequest, ipv4, ipv6, tcp, udp, type Ipv4Options } from '@netcube/sdk/packet';
import { Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, entering, openRuntime, registerTestTypes } from '../helpers/dataplane';
import { fixtureLimit } from '../helpers/limit';
import { errors, packetRecords, table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  r: Cube;
  q: Cube;
  gen: number;
}

const MAC0 = '02:00:00:00:01:00'; // the router's on p0
const MAC1 = '02:00:00:00:01:01'; // the router's on p1
const HOST0 = '02:00:00:00:00:10'; // a host behind p0
const NEIGH5 = '02:00:00:00:00:15'; // 10.1.0.5
const GW = '02:00:00:00:00:fe'; // 10.1.0.254
const BCAST = 'ff:ff:ff:ff:ff:ff';

/** Fixtures alive at once: see helpers/limit. */
const place = fixtureLimit(6);

async function fixture(t: ExecutionContext, mode: Mode): Promise<Fixture> {
  await place(t);
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  const cube = (name: string, type: string, ports: string[]) => ({ name, type, mode, ports, logLevel: 'info' as const });
  await rt.apply({
    cubes: [cube('r', 'router', ['p0', 'p1', 'p2']), cube('q', 'probe', ['a'])],
    links: [
      { a: { cube: 'r', port: 'p0' }, b: { netdev: 'n0' } },
      { a: { cube: 'r', port: 'p1' }, b: { cube: 'q', port: 'a' } },
    ],
    stacks: [],
  });
  const f = { rt, r: rt.cube('r'), q: rt.cube('q'), gen: rt.host.currentGen };
  f.q.table('probe_actions').put(f.q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  const iface = (port: string, addr: string, prefixlen: number, mac: string) => {
    f.r.table('router_ports').put(idx(f, port), { addr, prefixlen, mac });
    f.r.table('local_addrs').put(addr, idx(f, port));
  };
  iface('p0', '10.0.0.1', 24, MAC0);
  iface('p1', '10.1.0.1', 24, MAC1);
  // A secondary address is in local_addrs only: router_ports holds the primary one.
  f.r.table('local_addrs').put('10.5.0.1', idx(f, 'p0'));
  route(f, '10.0.0.0', 24, 'p0');
  route(f, '10.5.0.0', 24, 'p0');
  route(f, '10.1.0.0', 24, 'p1');
  route(f, '10.9.0.0', 16, 'p1', '10.1.0.254');
  neighbour(f, '10.1.0.5', NEIGH5, 'p1');
  return f;
}

const idx = (f: Fixture, port: string): number => f.r.ports.get(port)!;

function route(f: Fixture, addr: string, prefixlen: number, port: string, nexthop?: string): void {
  f.r.table('routes').put({ prefixlen, addr }, { nexthop: nexthop ?? '0.0.0.0', port: idx(f, port) });
}

function neighbour(f: Fixture, ip: string, mac: string, port: string): void {
  f.r.table('neighbours').put(ip, { mac, port: idx(f, port), seen_ns: process.hrtime.bigint().toString() });
}

const into = (port: string) => (f: Fixture): Metadata => entering(idx(f, port), f.r.id, f.gen);
const intoQ = (f: Fixture): Metadata => entering(f.q.ports.get('a')!, f.q.id, f.gen);

function packet(macs: { src: string; dst: string }, ip: Omit<Partial<Ipv4Options>, 'dst'> & { dst: string }, vlan?: number): Buffer {
  return ethernet({
    ...macs,
    ...(vlan !== undefined ? { vlan: { id: vlan } } : {}),
    payload: ipv4({ src: '10.0.0.10', ttl: 64, payload: udp({ sport: 5000, dport: 53, payload: Buffer.from('route me, please') }), ...ip }),
  });
}

/** What arrives at p0 from the host behind it, addressed to the router's MAC. */
const fromHost0 = (dst: string, ip: Omit<Partial<Ipv4Options>, 'dst'> = {}) => packet({ src: HOST0, dst: MAC0 }, { ...ip, dst });

/** One packet went to the control plane, whole, with this reason and these words. */
const toController = (inPort: string, reason: number, user: (f: Fixture) => number[], sent: Buffer) => async (t: ExecutionContext, f: Fixture, _res: unknown, mode: Mode) => {
  const recs = await packetRecords(t, f.rt.host.pktRing, 1);
  t.deepEqual(recs, [{ cubeId: f.r.id, inPort: idx(f, inPort), reason, hook: mode, user: user(f), wireLen: sent.length, packet: sent }]);
  t.like(f.rt.portStats('r', inPort), { rxPackets: 1n, toController: 1n, drops: 0n });
  t.deepEqual(errors(f.rt), {});
};
const noWords = () => [0, 0, 0];

const dropped = (port: string) => (t: ExecutionContext, f: Fixture) => {
  t.like(f.rt.portStats('r', port), { rxPackets: 1n, drops: 1n, toController: 0n });
  t.like(f.rt.portStats('r', 'p1'), { txPackets: 0n });
};

/** A copy of an IPv4 frame whose header says it is 60 bytes long. */
function ihl15(frame: Buffer): Buffer {
  const out = Buffer.from(frame);
  out[14] = 0x4f;
  return out;
}

const arpFrame = (op: number, target: string, dst = BCAST, sender = '10.0.0.10', vlan?: number) =>
  ethernet({
    src: HOST0,
    dst,
    ...(vlan !== undefined ? { vlan: { id: vlan } } : {}),
    payload: arp({ op, senderMac: HOST0, senderIp: sender, targetMac: op === ArpOp.REPLY ? MAC0 : undefined, targetIp: target }),
  });

const rows: Row<Fixture>[] = [
  // ------------------------------------------------------------- forwarding
  {
    description: 'forwards to a neighbour on a connected subnet: MACs rewritten, TTL decremented, checksum patched',
    input: fromHost0('10.1.0.5'),
    md: (f) => ({ ...into('p0')(f), user: [1, 2, 3] }),
    verdict: 'mark',
    output: packet({ src: MAC1, dst: NEIGH5 }, { dst: '10.1.0.5', ttl: 63 }),
    outMd: intoQ,
    check: (t, f) => {
      t.like(f.rt.portStats('r', 'p0'), { rxPackets: 1n, drops: 0n, toController: 0n });
      t.like(f.rt.portStats('r', 'p1'), { txPackets: 1n });
    },
  },
  {
    description: 'forwards by a static route to its next hop\'s MAC',
    input: fromHost0('10.9.200.7'),
    setup: (f) => neighbour(f, '10.1.0.254', GW, 'p1'),
    md: into('p0'),
    verdict: 'mark',
    output: packet({ src: MAC1, dst: GW }, { dst: '10.9.200.7', ttl: 63 }),
  },
  {
    description: 'the longest prefix wins: a /24 inside the /16 goes straight to the host',
    input: fromHost0('10.9.1.5'),
    setup: (f) => {
      route(f, '10.9.1.0', 24, 'p1');
      neighbour(f, '10.9.1.5', NEIGH5, 'p1');
    },
    md: into('p0'),
    verdict: 'mark',
    output: packet({ src: MAC1, dst: NEIGH5 }, { dst: '10.9.1.5', ttl: 63 }),
  },
  {
    description: 'forwards out of a netdev port',
    input: packet({ src: NEIGH5, dst: MAC1 }, { src: '10.1.0.5', dst: '10.0.0.10', ttl: 2 }),
    setup: (f) => neighbour(f, '10.0.0.10', HOST0, 'p0'),
    md: into('p1'),
    verdict: 'redirect',
    output: packet({ src: MAC0, dst: HOST0 }, { src: '10.1.0.5', dst: '10.0.0.10', ttl: 1 }),
    check: (t, f) => t.like(f.rt.portStats('r', 'p0'), { txPackets: 1n }),
  },
  {
    description: 'patches the checksum right for other headers too (TTL 200, id 0xfeff)',
    input: fromHost0('10.1.0.5', { ttl: 200, id: 0xfeff }),
    md: into('p0'),
    verdict: 'mark',
    output: packet({ src: MAC1, dst: NEIGH5 }, { dst: '10.1.0.5', ttl: 199, id: 0xfeff }),
  },
  {
    description: 'routes TCP with IP options as well',
    input: packet({ src: HOST0, dst: MAC0 }, { dst: '10.1.0.5', options: Buffer.from([1, 1, 1, 0]), payload: tcp({ sport: 1, dport: 2, seq: 9 }) }),
    md: into('p0'),
    verdict: 'mark',
    output: packet({ src: MAC1, dst: NEIGH5 }, { dst: '10.1.0.5', ttl: 63, options: Buffer.from([1, 1, 1, 0]), payload: tcp({ sport: 1, dport: 2, seq: 9 }) }),
  },

  // ------------------------------------------------------------- to the control plane
  {
    description: 'no neighbour for the destination: to the control plane with the next hop and out-port',
    input: fromHost0('10.1.0.6'),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 2, (f) => [be32('10.1.0.6'), idx(f, 'p1'), 0], fromHost0('10.1.0.6')),
  },
  {
    description: 'no neighbour for a static route\'s next hop: the next hop in user[0], not the destination',
    input: fromHost0('10.9.3.3'),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 2, (f) => [be32('10.1.0.254'), idx(f, 'p1'), 0], fromHost0('10.9.3.3')),
  },
  {
    description: 'a packet for one of the router\'s addresses: to the control plane (local)',
    input: packet({ src: HOST0, dst: MAC0 }, { dst: '10.1.0.1', payload: icmpEchoRequest({ id: 7, seq: 1 }) }),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 3, noWords, packet({ src: HOST0, dst: MAC0 }, { dst: '10.1.0.1', payload: icmpEchoRequest({ id: 7, seq: 1 }) })),
  },
  {
    description: 'a link-layer broadcast for the router\'s address: to the control plane',
    input: packet({ src: HOST0, dst: BCAST }, { dst: '10.0.0.1' }),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 3, noWords, packet({ src: HOST0, dst: BCAST }, { dst: '10.0.0.1' })),
  },
  {
    description: 'TTL 1 would run out here: to the control plane (time exceeded)',
    input: fromHost0('10.1.0.5', { ttl: 1 }),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 4, noWords, fromHost0('10.1.0.5', { ttl: 1 })),
  },
  {
    description: 'TTL 0 as well',
    input: fromHost0('10.1.0.5', { ttl: 0 }),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 4, noWords, fromHost0('10.1.0.5', { ttl: 0 })),
  },
  {
    description: 'an ARP request for the in-port\'s address: to the control plane',
    input: arpFrame(ArpOp.REQUEST, '10.0.0.1'),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 1, noWords, arpFrame(ArpOp.REQUEST, '10.0.0.1')),
  },
  {
    description: 'an ARP request for a secondary address of the in-port: to the control plane',
    input: arpFrame(ArpOp.REQUEST, '10.5.0.1', BCAST, '10.5.0.10'),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 1, noWords, arpFrame(ArpOp.REQUEST, '10.5.0.1', BCAST, '10.5.0.10')),
  },
  {
    description: 'a packet for a secondary address: to the control plane (local)',
    input: packet({ src: HOST0, dst: MAC0 }, { src: '10.5.0.10', dst: '10.5.0.1', payload: icmpEchoRequest({ id: 7, seq: 2 }) }),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 3, noWords, packet({ src: HOST0, dst: MAC0 }, { src: '10.5.0.10', dst: '10.5.0.1', payload: icmpEchoRequest({ id: 7, seq: 2 }) })),
  },
  {
    description: 'a host of the secondary subnet is reached by its connected route',
    input: packet({ src: '02:00:00:00:01:99', dst: MAC1 }, { src: '10.1.0.5', dst: '10.5.0.10' }),
    md: into('p1'),
    verdict: 'drop',
    check: toController('p1', 2, (f) => [be32('10.5.0.10'), idx(f, 'p0'), 0], packet({ src: '02:00:00:00:01:99', dst: MAC1 }, { src: '10.1.0.5', dst: '10.5.0.10' })),
  },
  {
    description: 'an ARP reply to the router: to the control plane',
    input: arpFrame(ArpOp.REPLY, '10.0.0.1', MAC0),
    md: into('p0'),
    verdict: 'drop',
    check: toController('p0', 1, noWords, arpFrame(ArpOp.REPLY, '10.0.0.1', MAC0)),
  },

  // ------------------------------------------------------------- dropped
  {
    description: 'ARP between other hosts of the segment is not the router\'s business: dropped',
    input: arpFrame(ArpOp.REQUEST, '10.0.0.20'),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'an ARP request for the router\'s address on another port: dropped',
    input: arpFrame(ArpOp.REQUEST, '10.1.0.1'),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'an ARP request for a secondary address of another port: dropped',
    input: arpFrame(ArpOp.REQUEST, '10.5.0.1', BCAST, '10.1.0.10'),
    md: into('p1'),
    verdict: 'drop',
    check: (t, f) => t.like(f.rt.portStats('r', 'p1'), { rxPackets: 1n, drops: 1n, toController: 0n }),
  },
  {
    description: 'no route: dropped',
    input: fromHost0('192.168.1.1'),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'no route and TTL 1: dropped, not time exceeded',
    input: fromHost0('192.168.1.1', { ttl: 1 }),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'a frame for another MAC: dropped',
    input: packet({ src: HOST0, dst: '02:00:00:00:99:99' }, { dst: '10.1.0.5' }),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'a link-layer broadcast for another address is never forwarded (RFC 1812 5.3.4)',
    input: packet({ src: HOST0, dst: BCAST }, { dst: '10.1.0.5' }),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'a VLAN-tagged frame: dropped (ports are untagged interfaces)',
    input: packet({ src: HOST0, dst: MAC0 }, { dst: '10.1.0.5' }, 10),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'a VLAN-tagged ARP request for the router: dropped',
    input: arpFrame(ArpOp.REQUEST, '10.0.0.1', BCAST, '10.0.0.10', 10),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'IPv6: dropped',
    input: ethernet({ src: HOST0, dst: MAC0, payload: ipv6({ src: 'fd00::1', dst: 'fd00::2', payload: udp({ sport: 1, dport: 2 }) }) }),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'a port without an address takes no packets',
    input: fromHost0('10.1.0.5'),
    md: into('p2'),
    verdict: 'drop',
    check: (t, f) => t.like(f.rt.portStats('r', 'p2'), { rxPackets: 1n, drops: 1n }),
  },
  {
    description: 'a route out of a port without an address: dropped',
    input: fromHost0('172.16.0.1'),
    setup: (f) => route(f, '172.16.0.0', 12, 'p2'),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'an IPv4 header that claims more than the frame holds: dropped',
    input: ihl15(fromHost0('10.1.0.5')),
    md: into('p0'),
    verdict: 'drop',
    check: dropped('p0'),
  },
  {
    description: 'without netcube metadata: dropped and counted',
    input: fromHost0('10.1.0.5'),
    verdict: 'drop',
    check: (t, f) => t.deepEqual(errors(f.rt), { no_metadata: 1 }),
  },
];

table(rows, fixture, (f) => f.r.program());

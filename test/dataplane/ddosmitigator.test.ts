// ddosmitigator: a transparent cube that drops packets from blacklisted IPv4 and
// IPv6 sources, and to blacklisted destinations, on their way in and counts them
// per entry; packets on their way out, and anything that is not IP, go on untouched.
//
// Fixture: netdev n0 linked to port a of probe cube q (which marks what it
// receives), with ddosmitigator g stacked on n0 in both directions. Going in,
// g sends on to q:a; going out, to n0. Blacklisted sources: 10.0.0.66 and
// fd00::66; destinations: 10.0.0.99 and fd00::99.
import { arp, ArpOp, ethernet, icmpEchoRequest, ipv4, ipv6, parseIp, tcp, udp } from '@netcube/sdk/packet';
import { DIR_EGRESS, DIR_INGRESS, Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, entering, errors, openRuntime, registerTestTypes } from '../helpers/dataplane';
import { table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  g: Cube;
  q: Cube;
  gen: number;
}

const BAD4 = '10.0.0.66';
const BAD6 = 'fd00::66';
const GOOD4 = '10.0.0.1';
const GOOD6 = 'fd00::1';
const BAD_DST4 = '10.0.0.99';
const BAD_DST6 = 'fd00::99';

async function fixture(t: Parameters<Parameters<typeof table>[1]>[0], mode: Mode): Promise<Fixture> {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  await rt.apply({
    cubes: [
      { name: 'g', type: 'ddosmitigator', mode, ports: [], logLevel: 'info' },
      { name: 'q', type: 'probe', mode, ports: ['a'], logLevel: 'info' },
    ],
    links: [{ a: { netdev: 'n0' }, b: { cube: 'q', port: 'a' } }],
    stacks: [{ target: { netdev: 'n0' }, layers: [{ cube: 'g', direction: 'both' }] }],
  });
  const g = rt.cube('g');
  const q = rt.cube('q');
  q.table('probe_actions').put(q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  g.table('blacklist_v4').put(parseIp(BAD4), 0);
  g.table('blacklist_v6').put(parseIp(BAD6), 0);
  // The destination tables' keys are typed addresses: they take them as text.
  g.table('blacklist_dst_v4').put(BAD_DST4, 0);
  g.table('blacklist_dst_v6').put(BAD_DST6, 0);
  return { rt, g, q, gen: rt.host.currentGen };
}

const going = (dir: number) => (f: Fixture): Metadata => entering(dir, f.g.id, f.gen);
const toQ = (f: Fixture): Metadata => entering(f.q.ports.get('a')!, f.q.id, f.gen);
const macs = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };

const v4 = (src: string, extra: Partial<Parameters<typeof ipv4>[0]> = {}) =>
  ethernet({ ...macs, payload: ipv4({ src, dst: '10.0.0.2', payload: udp({ sport: 53, dport: 53, payload: Buffer.from('flood') }), ...extra }) });
const v6 = (src: string, dst = 'fd00::2') => ethernet({ ...macs, payload: ipv6({ src, dst, payload: tcp({ sport: 1, dport: 80, payload: Buffer.alloc(8) }) }) });
const tagged = (src: string) =>
  ethernet({ ...macs, vlan: { id: 7 }, payload: ipv4({ src, dst: '10.0.0.2', payload: icmpEchoRequest({ id: 1, seq: 1 }) }) });

/** A copy of an IPv4 frame with another header length (in 32-bit words). */
function withIhl(frame: Buffer, ihl: number): Buffer {
  const out = Buffer.from(frame);
  out[14] = 0x40 | ihl;
  return out;
}

/** Drops counted on the blacklist entry of `src`, and by the cube. */
const dropped = (src: string, v: 4 | 6) => (t: Parameters<NonNullable<Row<Fixture>['check']>>[0], f: Fixture) => {
  t.is(f.g.table(`blacklist_v${v}`).get(parseIp(src)), 1, `blacklist entry of ${src}`);
  t.like(f.rt.portStats('g', 'ingress'), { rxPackets: 1n, drops: 1n, txPackets: 0n });
  t.deepEqual(errors(f.rt), {});
};
/** Drops counted on the destination blacklist entry of `dst`, and by the cube; the other entries untouched. */
const droppedTo = (dst: string, v: 4 | 6) => (t: Parameters<NonNullable<Row<Fixture>['check']>>[0], f: Fixture) => {
  t.deepEqual([...f.g.table(`blacklist_dst_v${v}`).entries()], [{ key: dst, value: 1 }], 'the key reads back as an address');
  t.is(f.g.table(`blacklist_v${v}`).get(v === 4 ? BAD4 : BAD6), 0);
  t.like(f.rt.portStats('g', 'ingress'), { rxPackets: 1n, drops: 1n, txPackets: 0n });
  t.deepEqual(errors(f.rt), {});
};
/** Went through, leaving the blacklist's counters alone. */
const passed = (dir: 'ingress' | 'egress') => (t: Parameters<NonNullable<Row<Fixture>['check']>>[0], f: Fixture) => {
  t.is(f.g.table('blacklist_v4').get(parseIp(BAD4)), 0);
  t.is(f.g.table('blacklist_v6').get(parseIp(BAD6)), 0);
  t.is(f.g.table('blacklist_dst_v4').get(BAD_DST4), 0);
  t.is(f.g.table('blacklist_dst_v6').get(BAD_DST6), 0);
  t.like(f.rt.portStats('g', dir), { rxPackets: 1n, txPackets: 1n, drops: 0n });
};

const rows: Row<Fixture>[] = [
  {
    description: 'drops IPv4 from a blacklisted source on its way in, and counts it',
    input: v4(BAD4),
    md: going(DIR_INGRESS),
    verdict: 'drop',
    check: dropped(BAD4, 4),
  },
  {
    description: 'lets IPv4 from any other source in, with fresh metadata for the next cube',
    input: v4(GOOD4),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    outMd: toQ,
    check: passed('ingress'),
  },
  {
    description: 'drops IPv6 from a blacklisted source on its way in',
    input: v6(BAD6),
    md: going(DIR_INGRESS),
    verdict: 'drop',
    check: dropped(BAD6, 6),
  },
  {
    description: 'lets IPv6 from any other source in',
    input: v6(GOOD6),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    outMd: toQ,
    check: passed('ingress'),
  },
  {
    description: 'drops IPv4 to a blacklisted destination on its way in, and counts it on that entry',
    input: v4(GOOD4, { dst: BAD_DST4 }),
    md: going(DIR_INGRESS),
    verdict: 'drop',
    check: droppedTo(BAD_DST4, 4),
  },
  {
    description: 'drops IPv6 to a blacklisted destination on its way in',
    input: v6(GOOD6, BAD_DST6),
    md: going(DIR_INGRESS),
    verdict: 'drop',
    check: droppedTo(BAD_DST6, 6),
  },
  {
    description: 'a packet from a blacklisted source to a blacklisted destination counts on the source',
    input: v4(BAD4, { dst: BAD_DST4 }),
    md: going(DIR_INGRESS),
    verdict: 'drop',
    check: (t, f) => {
      dropped(BAD4, 4)(t, f);
      t.is(f.g.table('blacklist_dst_v4').get(BAD_DST4), 0);
    },
  },
  {
    description: 'does not look at packets on their way out: one to a blacklisted destination leaves by n0',
    input: v4(GOOD4, { dst: BAD_DST4 }),
    md: going(DIR_EGRESS),
    verdict: 'redirect',
    check: passed('egress'),
  },
  {
    description: 'looks past a VLAN tag: drops a tagged ICMP echo from a blacklisted source',
    input: tagged(BAD4),
    md: going(DIR_INGRESS),
    verdict: 'drop',
    check: dropped(BAD4, 4),
  },
  {
    description: 'looks past IPv4 options: drops a blacklisted source whose header is 24 bytes',
    input: v4(BAD4, { options: Buffer.from([1, 1, 1, 0]) }),
    md: going(DIR_INGRESS),
    verdict: 'drop',
    check: dropped(BAD4, 4),
  },
  {
    description: 'does not look at packets on their way out: a blacklisted source leaves by n0',
    input: v4(BAD4),
    md: going(DIR_EGRESS),
    verdict: 'redirect',
    check: passed('egress'),
  },
  {
    description: 'lets ARP in',
    input: ethernet({ ...macs, payload: arp({ op: ArpOp.REPLY, senderMac: macs.src, senderIp: BAD4, targetMac: macs.dst, targetIp: GOOD4 }) }),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    outMd: toQ,
    check: passed('ingress'),
  },
  {
    description: 'lets a frame whose IPv4 header claims more bytes than there are in, unread',
    input: withIhl(v4(BAD4), 15),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    outMd: toQ,
    check: passed('ingress'),
  },
  {
    // TC test runs refuse a frame this short (the kernel reads the IP header
    // when it builds the skb); XDP shows the parser's own bound.
    modes: ['xdp'],
    description: 'lets a frame cut inside its IPv4 header in, unread',
    input: v4(BAD4).subarray(0, 14 + 12),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    outMd: toQ,
    check: passed('ingress'),
  },
  {
    description: 'without netcube metadata: dropped and counted',
    input: v4(GOOD4),
    verdict: 'drop',
    check: (t, f) => {
      t.deepEqual(errors(f.rt), { no_metadata: 1 });
      t.like(f.rt.portStats('g', 'ingress'), { rxPackets: 0n });
    },
  },
];

table(rows, fixture, (f) => f.g.program());

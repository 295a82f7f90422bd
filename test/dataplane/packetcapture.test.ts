// packetcapture: a transparent cube that copies the packets a session asks for
// into its own ring (struct nc_pkt_rec records, the session in user[0]) and
// always lets them go on, unchanged; an idle one copies nothing.
//
// Fixture: netdev n0 linked to port a of probe cube q (which marks what it
// receives), with packetcapture c stacked on n0 in both directions. Going in, c
// sends on to q:a; going out, to n0. Each row sets the capture up as a session
// would (captureConfigValue), or leaves it idle.
import { arp, ArpOp, ethernet, icmpEchoRequest, ipv4, ipv6, tcp, udp } from '@netcube/sdk/packet';
import test from 'ava';
import { CaptureSpec, captureConfigValue } from '../../node-daemon/src/capture/config';
import { DIR_EGRESS, DIR_INGRESS, Metadata, PKT_MAX, decodePacketRecord } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, entering, errors, openRuntime, records, registerTestTypes, runProgram } from '../helpers/dataplane';
import { fixtureLimit } from '../helpers/limit';
import { table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  c: Cube;
  q: Cube;
  gen: number;
}

const SESSION = 0x5e55;
const place = fixtureLimit(6);

async function fixture(t: Parameters<Parameters<typeof table>[1]>[0], mode: Mode): Promise<Fixture> {
  await place(t);
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  await rt.apply({
    cubes: [
      { name: 'c', type: 'packetcapture', mode, ports: [], logLevel: 'info' },
      { name: 'q', type: 'probe', mode, ports: ['a'], logLevel: 'info' },
    ],
    links: [{ a: { netdev: 'n0' }, b: { cube: 'q', port: 'a' } }],
    stacks: [{ target: { netdev: 'n0' }, layers: [{ cube: 'c', direction: 'both' }] }],
  });
  const q = rt.cube('q');
  q.table('probe_actions').put(q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  return { rt, c: rt.cube('c'), q, gen: rt.host.currentGen };
}

/** A session as the daemon starts one: `spec` over an open capture of everything, its lease as given (else 10 minutes from now). */
function capturing(spec: Partial<CaptureSpec> = {}, leaseUntil?: bigint) {
  return (f: Fixture): void => {
    const full: CaptureSpec = {
      target: { cube: 'c' },
      direction: 'both',
      filter: { addresses: [], ports: [] },
      snapLength: PKT_MAX,
      rate: 0,
      burst: 0,
      count: 0n,
      ...spec,
    };
    f.c.table('capture_config').put(0, captureConfigValue(full, SESSION, true, leaseUntil ?? process.hrtime.bigint() + 600_000_000_000n));
  };
}

const going = (dir: number) => (f: Fixture): Metadata => entering(dir, f.c.id, f.gen);
const toQ = (f: Fixture): Metadata => entering(f.q.ports.get('a')!, f.q.id, f.gen);
const macs = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };

const udp4 = (src = '10.0.0.1', dst = '10.0.0.2', sport = 5000, dport = 53, size = 5) =>
  ethernet({ ...macs, payload: ipv4({ src, dst, payload: udp({ sport, dport, payload: Buffer.alloc(size, 0xab) }) }) });
const tcp6 = (src = 'fd00::1', dst = 'fd00::2', dport = 80) =>
  ethernet({ ...macs, payload: ipv6({ src, dst, payload: tcp({ sport: 40000, dport, payload: Buffer.alloc(8) }) }) });
const ping4 = ethernet({ ...macs, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: icmpEchoRequest({ id: 7, seq: 1 }) }) });
const arpFrame = ethernet({ ...macs, payload: arp({ op: ArpOp.REQUEST, senderMac: macs.src, senderIp: '10.0.0.1', targetMac: '00:00:00:00:00:00', targetIp: '10.0.0.2' }) });

type Check = NonNullable<Row<Fixture>['check']>;

const counters = (f: Fixture): Record<string, number> => {
  const perCpu = f.c.table('capture_counters').get(0) as Record<string, number>[];
  const sum: Record<string, number> = { captured: 0, over_rate: 0, ring_full: 0 };
  for (const cpu of perCpu) for (const k of Object.keys(sum)) sum[k] += Number(cpu[k]);
  return sum;
};

/** The frame was copied once, whole (or its first `snap` bytes), going `dir`, stamped by the session. */
const copied =
  (frame: Buffer, dir: number, snap = frame.length): Check =>
  async (t, f, _res, mode) => {
    const before = process.hrtime.bigint();
    const recs = (await records(f.c.table('capture_ring').map, 1)).map(decodePacketRecord);
    t.is(recs.length, 1, 'records');
    const r = recs[0];
    t.true(r.packet.equals(frame.subarray(0, snap)), 'the packet, byte for byte');
    t.is(r.wireLen, frame.length);
    t.is(r.inPort, dir, 'direction');
    t.is(r.user[0], SESSION, 'session');
    t.is(r.hook, mode);
    t.is(r.cubeId, f.c.id);
    t.true(r.tsNs > 0n && r.tsNs <= before, 'stamped with the data plane clock');
    t.deepEqual(counters(f), { captured: 1, over_rate: 0, ring_full: 0 });
    t.deepEqual(errors(f.rt), {});
  };

/** Nothing was copied; the packet still went on. */
const notCopied: Check = async (t, f) => {
  t.is((await records(f.c.table('capture_ring').map, 0)).length, 0, 'records');
  t.deepEqual(counters(f), { captured: 0, over_rate: 0, ring_full: 0 });
  t.deepEqual(errors(f.rt), {});
};

const rows: Row<Fixture>[] = [
  { description: 'idle (no session): lets a packet in and copies nothing', input: udp4(), md: going(DIR_INGRESS), verdict: 'mark', outMd: toQ, check: notCopied },
  { description: 'idle: lets a packet out and copies nothing', input: udp4(), md: going(DIR_EGRESS), verdict: 'redirect', check: notCopied },
  {
    description: 'a session copies a packet going in, whole, and lets it go on unchanged',
    setup: capturing(),
    input: udp4(),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    outMd: toQ,
    check: copied(udp4(), DIR_INGRESS),
  },
  { description: 'a session copies a packet going out', setup: capturing(), input: tcp6(), md: going(DIR_EGRESS), verdict: 'redirect', check: copied(tcp6(), DIR_EGRESS) },
  {
    description: 'a full-size frame is copied whole (the larger record)',
    setup: capturing(),
    input: udp4('10.0.0.1', '10.0.0.2', 5000, 53, 1472),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(udp4('10.0.0.1', '10.0.0.2', 5000, 53, 1472), DIR_INGRESS),
  },
  {
    description: 'the snap length keeps the first bytes and the wire length',
    setup: capturing({ snapLength: 34 }),
    input: udp4('10.0.0.1', '10.0.0.2', 5000, 53, 300),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(udp4('10.0.0.1', '10.0.0.2', 5000, 53, 300), DIR_INGRESS, 34),
  },
  { description: 'ARP is copied when the filter is empty', setup: capturing(), input: arpFrame, md: going(DIR_INGRESS), verdict: 'mark', check: copied(arpFrame, DIR_INGRESS) },
  {
    description: 'a session whose lease ran out (its daemon died) copies nothing',
    setup: capturing({}, process.hrtime.bigint() - 1n),
    input: udp4(),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    outMd: toQ,
    check: notCopied,
  },
  {
    description: 'direction ingress: a packet going out is not copied',
    setup: capturing({ direction: 'ingress' }),
    input: udp4(),
    md: going(DIR_EGRESS),
    verdict: 'redirect',
    check: notCopied,
  },
  {
    description: 'direction egress: a packet going out is copied',
    setup: capturing({ direction: 'egress' }),
    input: udp4(),
    md: going(DIR_EGRESS),
    verdict: 'redirect',
    check: copied(udp4(), DIR_EGRESS),
  },
  {
    description: 'src 10.0.0.0/24 matches a source inside it',
    setup: capturing({ filter: { addresses: [{ prefix: '::ffff:10.0.0.0/120', side: 'src' }], ports: [] } }),
    input: udp4('10.0.0.9'),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(udp4('10.0.0.9'), DIR_INGRESS),
  },
  {
    description: 'src 10.0.0.0/24 does not match a source outside it (nor its destination)',
    setup: capturing({ filter: { addresses: [{ prefix: '::ffff:10.0.0.0/120', side: 'src' }], ports: [] } }),
    input: udp4('10.0.1.9', '10.0.0.2'),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: notCopied,
  },
  {
    description: 'host fd00::2 (either side) matches it as the destination',
    setup: capturing({ filter: { addresses: [{ prefix: 'fd00::2/128', side: 'either' }], ports: [] } }),
    input: tcp6(),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(tcp6(), DIR_INGRESS),
  },
  {
    description: 'host A and host B: a conversation between two hosts, in both directions',
    setup: capturing({
      filter: {
        addresses: [
          { prefix: '::ffff:10.0.0.2/128', side: 'either' },
          { prefix: '::ffff:10.0.0.1/128', side: 'either' },
        ],
        ports: [],
      },
    }),
    input: udp4('10.0.0.2', '10.0.0.1'),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(udp4('10.0.0.2', '10.0.0.1'), DIR_INGRESS),
  },
  {
    description: 'an IPv4 prefix does not match IPv6 packets',
    setup: capturing({ filter: { addresses: [{ prefix: '::ffff:0.0.0.0/96', side: 'either' }], ports: [] } }),
    input: tcp6(),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: notCopied,
  },
  {
    description: 'dst port 53 and udp match a DNS query',
    setup: capturing({ filter: { addresses: [], ports: [{ port: 53, side: 'dst' }], protocol: 17 } }),
    input: udp4(),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(udp4(), DIR_INGRESS),
  },
  {
    description: 'dst port 53 does not match its reply (source port 53)',
    setup: capturing({ filter: { addresses: [], ports: [{ port: 53, side: 'dst' }] } }),
    input: udp4('10.0.0.2', '10.0.0.1', 53, 5000),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: notCopied,
  },
  {
    description: 'port 80 (either side) matches TCP over IPv6',
    setup: capturing({ filter: { addresses: [], ports: [{ port: 80, side: 'either' }] } }),
    input: tcp6(),
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(tcp6(), DIR_INGRESS),
  },
  {
    description: 'a port filter does not take an ICMP echo identifier for a port',
    setup: capturing({ filter: { addresses: [], ports: [{ port: 7, side: 'either' }] } }),
    input: ping4,
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: notCopied,
  },
  {
    description: 'protocol icmp matches a ping, and the family 4',
    setup: capturing({ filter: { addresses: [], ports: [], protocol: 1, family: 4 } }),
    input: ping4,
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: copied(ping4, DIR_INGRESS),
  },
  {
    description: 'family 6 does not match IPv4',
    setup: capturing({ filter: { addresses: [], ports: [], family: 6 } }),
    input: ping4,
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: notCopied,
  },
  {
    description: 'a filter on IP fields does not match ARP',
    setup: capturing({ filter: { addresses: [], ports: [], protocol: 6 } }),
    input: arpFrame,
    md: going(DIR_INGRESS),
    verdict: 'mark',
    check: notCopied,
  },
  {
    description: 'without netcube metadata: dropped and counted, nothing copied',
    setup: capturing(),
    input: udp4(),
    verdict: 'drop',
    check: async (t, f) => {
      t.deepEqual(errors(f.rt), { no_metadata: 1 });
      t.is((await records(f.c.table('capture_ring').map, 0)).length, 0);
    },
  },
];

table(rows, fixture, (f) => f.c.program());

// Many packets at once: test runs repeated in the kernel, going out (to n0), so
// that no cube after c changes the metadata a repetition enters with.
for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: the rate copies a burst, counts the rest, and lets every packet on`, async (t) => {
    const f = await fixture(t, mode);
    capturing({ rate: 1, burst: 3 })(f);
    const started = process.hrtime.bigint();
    t.is((await runProgram(f.c.program(), mode, udp4(), going(DIR_EGRESS)(f), { repeat: 10 })).verdict, 'redirect');
    // The burst, and one more for every second the runs took (the rate refills).
    const refills = Math.floor(Number(process.hrtime.bigint() - started) / 1e9);
    const n = counters(f);
    t.true(n.captured >= 3 && n.captured <= 3 + refills, JSON.stringify(n));
    t.deepEqual(n, { captured: n.captured, over_rate: 10 - n.captured, ring_full: 0 });
    t.is((await records(f.c.table('capture_ring').map, n.captured)).length, n.captured);
    t.like(f.rt.portStats('c', 'egress'), { rxPackets: 10n, txPackets: 10n, drops: 0n });
  });

  test(`${mode}: a full ring is counted, and packets still go on`, async (t) => {
    const f = await fixture(t, mode);
    capturing()(f);
    // 4 MB hold about 2,700 full-size records; nobody reads them.
    const frame = udp4('10.0.0.1', '10.0.0.2', 5000, 53, 1472);
    const runs = 4000;
    t.is((await runProgram(f.c.program(), mode, frame, going(DIR_EGRESS)(f), { repeat: runs })).verdict, 'redirect');
    const n = counters(f);
    t.is(n.captured + n.ring_full, runs);
    t.true(n.ring_full > 0 && n.captured > 2000, JSON.stringify(n));
    t.like(f.rt.portStats('c', 'egress'), { rxPackets: BigInt(runs), txPackets: BigInt(runs), drops: 0n });
  });
}

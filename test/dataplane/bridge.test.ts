// bridge: learns source MACs per VLAN, forwards known unicast out of the learnt
// port, and floods the rest to the other ports of the frame's VLAN — under TC by
// itself (copies to netdev ports, the frame into at most one cube port), under
// XDP and with several cube ports through the control plane (reason FLOOD, VLAN in
// user[0]). Ports are plain (VLAN-unaware), access or trunk; a trunk with allowed
// VLANs (bridge_trunk_vlans) carries only those and its native VLAN, both ways.
//
// Fixture: bridge b with ports p0 (netdev n0), p1 (netdev n2), p2 (probe cube q),
// p3 (probe cube r) and p4 (unconnected); q and r mark what they receive. Every
// port starts plain, the FDB empty, aging at its default.
//
// Under TC the kernel keeps a VLAN tag in the skb's metadata, not in the frame,
// and a test run cannot set that metadata: rows that bring a tagged frame in run
// under XDP only, and a tag pushed under TC does not show in the output frame.
import type { ExecutionContext } from 'ava';
import { ethernet, ipv4, parseMac, udp } from '@netcube/sdk/packet';
import { Program } from '../../node-daemon/src/bpf';
import { Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, entering, openRuntime, registerTestTypes } from '../helpers/dataplane';
import { fixtureLimit } from '../helpers/limit';
import { errors, packetRecords, table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  b: Cube;
  q: Cube;
  r: Cube;
  gen: number;
  netns: string;
  /** When the row's setup ended: a stamp the run wrote is not older. */
  setUpNs?: bigint;
}

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const BCAST = 'ff:ff:ff:ff:ff:ff';
const MCAST_SRC = '03:00:00:00:00:0c';

/** Fixtures alive at once: see helpers/limit. */
const place = fixtureLimit(6);

async function fixture(t: ExecutionContext, mode: Mode): Promise<Fixture> {
  await place(t);
  const ns = await createHostNetns(t, 2);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  const cube = (name: string, type: string, ports: string[]) => ({ name, type, mode, ports, logLevel: 'info' as const });
  await rt.apply({
    cubes: [cube('b', 'bridge', ['p0', 'p1', 'p2', 'p3', 'p4']), cube('q', 'probe', ['a']), cube('r', 'probe', ['a'])],
    links: [
      { a: { cube: 'b', port: 'p0' }, b: { netdev: 'n0' } },
      { a: { cube: 'b', port: 'p1' }, b: { netdev: 'n2' } },
      { a: { cube: 'b', port: 'p2' }, b: { cube: 'q', port: 'a' } },
      { a: { cube: 'b', port: 'p3' }, b: { cube: 'r', port: 'a' } },
    ],
    stacks: [],
  });
  const f = { rt, b: rt.cube('b'), q: rt.cube('q'), r: rt.cube('r'), gen: rt.host.currentGen, netns: ns.path };
  for (const probe of [f.q, f.r]) probe.table('probe_actions').put(probe.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  return f;
}

/**
 * The bridge's entry program, run from inside the fixture's namespace: copies a
 * flood clones out of a netdev must find that netdev by its ifindex there.
 */
function bridgeProgram(f: Fixture): Program {
  const prog = f.b.program();
  return new Proxy(prog, {
    get: (target, key) => (key === 'testRun' ? (o: Parameters<Program['testRun']>[0]) => target.testRun({ ...o, netns: f.netns }) : Reflect.get(target, key)),
  });
}

const idx = (f: Fixture, port: string): number => f.b.ports.get(port)!;
const into = (port: string) => (f: Fixture): Metadata => entering(idx(f, port), f.b.id, f.gen);
const intoProbe = (probe: 'q' | 'r') => (f: Fixture): Metadata => entering(f[probe].ports.get('a')!, f[probe].id, f.gen);

/** A 60-byte frame (64 tagged): no padding, so pushing and popping a tag is exact. */
function frame(src: string, dst: string, vlan?: number): Buffer {
  return ethernet({
    src,
    dst,
    ...(vlan !== undefined ? { vlan: { id: vlan } } : {}),
    payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1000, dport: 2000, payload: Buffer.alloc(18, 0x42) }) }),
    minLength: 0,
  });
}

const nowNs = (): bigint => process.hrtime.bigint();
const fdbKey = (mac: string, vlan = 0) => ({ mac, vlan });

/** Puts an FDB entry `ageNs` old. */
function learnt(f: Fixture, mac: string, port: string, vlan = 0, ageNs = 0n): void {
  // The clock counts from boot: on a machine up for less than ageNs the stamp wraps
  // below zero, which the bridge's signed ages read as that old all the same.
  const seenNs = BigInt.asUintN(64, nowNs() - ageNs);
  f.b.table('fdb').put(fdbKey(mac, vlan), { port: idx(f, port), seen_ns: seenNs.toString() });
}

function portMode(f: Fixture, port: string, mode: 'BRIDGE_PORT_PLAIN' | 'BRIDGE_PORT_ACCESS' | 'BRIDGE_PORT_TRUNK', vlan = 0): void {
  f.b.table('bridge_ports').put(idx(f, port), { mode, vlan });
}

/** Makes `port` a trunk (native VLAN `native`) that carries only `allowed` besides it, as the service writes it. */
function trunkAllowing(f: Fixture, port: string, native: number, allowed: number[]): void {
  f.b.table('bridge_ports').put(idx(f, port), { mode: 'BRIDGE_PORT_TRUNK', vlan: native, flags: 1 });
  const word = new Array<bigint>(64).fill(0n);
  for (const v of allowed) word[v >> 6] |= 1n << BigInt(v & 63);
  f.b.table('bridge_trunk_vlans').put(idx(f, port), { word: word.map(String) });
}

const stats = (f: Fixture, port: string) => f.rt.portStats('b', port);

/** The FDB entry of `mac`: its port's name, and when it was seen. */
function fdbEntry(f: Fixture, mac: string, vlan = 0): { port: string; seenNs: bigint } | undefined {
  const e = f.b.table('fdb').get(fdbKey(mac, vlan)) as { port: number; seen_ns: number | string } | undefined;
  if (!e) return undefined;
  const port = [...f.b.ports].find(([, i]) => i === e.port)?.[0] ?? `#${e.port}`;
  return { port, seenNs: BigInt(e.seen_ns) };
}

/** The run stamped `mac`'s entry: seen after the row's setup ended. */
const stampedByRun = (t: ExecutionContext, f: Fixture, mac: string, what: string): void => {
  const e = fdbEntry(f, mac)!;
  t.true(e.seenNs >= f.setUpNs!, `${what}: seen ${Number(f.setUpNs! - e.seenNs) / 1e6} ms before the run`);
};

/** The frame went to the control plane to be flooded: one record with the VLAN in user[0]. */
const floodedByController = (inPort: string, vlan: number, sent: Buffer) => async (t: ExecutionContext, f: Fixture, _res: unknown, mode: Mode) => {
  const recs = await packetRecords(t, f.rt.host.pktRing, 1);
  t.deepEqual(recs, [{ cubeId: f.b.id, inPort: idx(f, inPort), reason: 1, hook: mode, user: [vlan, 0, 0], wireLen: sent.length, packet: sent }]);
  t.like(stats(f, inPort), { rxPackets: 1n, toController: 1n, drops: 0n });
  t.like(stats(f, 'p1'), { txPackets: 0n });
  t.deepEqual(errors(f.rt), {});
};

const rows: Row<Fixture>[] = [
  // ------------------------------------------------------------- learning and forwarding
  {
    description: 'forwards known unicast out of the learnt netdev port, learning the source',
    input: frame(A, B),
    setup: (f) => {
      learnt(f, B, 'p1');
      f.setUpNs = nowNs();
    },
    md: into('p0'),
    verdict: 'redirect',
    check: (t, f) => {
      t.like(fdbEntry(f, A), { port: 'p0' });
      stampedByRun(t, f, A, 'learnt just now');
      t.like(stats(f, 'p0'), { rxPackets: 1n, drops: 0n });
      t.like(stats(f, 'p1'), { txPackets: 1n, txBytes: 60n });
    },
  },
  {
    description: 'forwards known unicast into the cube linked to the learnt port, with fresh metadata',
    input: frame(A, B),
    setup: (f) => learnt(f, B, 'p2'),
    md: (f) => ({ ...into('p0')(f), user: [7, 8, 9] }),
    verdict: 'mark',
    outMd: intoProbe('q'),
    check: (t, f) => t.like(stats(f, 'p2'), { txPackets: 1n }),
  },
  {
    description: 'drops a frame whose destination was learnt on the port it came in on',
    input: frame(A, B),
    setup: (f) => learnt(f, B, 'p0'),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => t.like(stats(f, 'p0'), { rxPackets: 1n, drops: 1n }),
  },
  {
    description: 'moves a MAC that shows up on another port',
    input: frame(A, B),
    setup: (f) => {
      learnt(f, A, 'p1', 0, 10n * 1_000_000_000n);
      learnt(f, B, 'p2');
    },
    md: into('p0'),
    verdict: 'mark',
    check: (t, f) => t.like(fdbEntry(f, A), { port: 'p0' }),
  },
  {
    description: 'refreshes a MAC seen again on its port (after a second)',
    input: frame(A, B),
    setup: (f) => {
      learnt(f, A, 'p0', 0, 5n * 1_000_000_000n);
      learnt(f, B, 'p1');
      f.setUpNs = nowNs();
    },
    md: into('p0'),
    verdict: 'redirect',
    check: (t, f) => stampedByRun(t, f, A, 'refreshed'),
  },
  {
    description: 'never learns a group address as a source',
    input: frame(MCAST_SRC, B),
    setup: (f) => learnt(f, B, 'p1'),
    md: into('p0'),
    verdict: 'redirect',
    check: (t, f) => t.is(fdbEntry(f, MCAST_SRC), undefined),
  },
  {
    description: 'an entry older than the default aging time (300 s) counts as unknown: flooded',
    modes: ['xdp'],
    input: frame(A, B),
    setup: (f) => learnt(f, B, 'p1', 0, 301n * 1_000_000_000n),
    md: into('p0'),
    verdict: 'drop',
    check: floodedByController('p0', 0, frame(A, B)),
  },
  {
    description: 'bridge_config sets the aging time: an entry 2 s old is unknown with 1 s',
    modes: ['xdp'],
    input: frame(A, B),
    setup: (f) => {
      f.b.table('bridge_config').put(0, { aging_ns: 1_000_000_000 });
      learnt(f, B, 'p1', 0, 2n * 1_000_000_000n);
    },
    md: into('p0'),
    verdict: 'drop',
    check: floodedByController('p0', 0, frame(A, B)),
  },
  {
    description: 'bridge_config sets the aging time: an entry 2 s old is known with 10 s',
    input: frame(A, B),
    setup: (f) => {
      f.b.table('bridge_config').put(0, { aging_ns: 10_000_000_000 });
      learnt(f, B, 'p1', 0, 2n * 1_000_000_000n);
    },
    md: into('p0'),
    verdict: 'redirect',
  },
  {
    description: 'drops a frame whose 802.1Q tag is cut short',
    input: Buffer.concat([parseMac(B), parseMac(A), Buffer.from([0x81, 0x00, 0x00])]),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => t.like(stats(f, 'p0'), { drops: 1n }),
  },
  {
    description: 'without netcube metadata: dropped and counted',
    input: frame(A, B),
    verdict: 'drop',
    check: (t, f) => t.deepEqual(errors(f.rt), { no_metadata: 1 }),
  },

  // ------------------------------------------------------------- flooding
  {
    description: 'XDP cannot copy a frame: a broadcast goes to the control plane to be flooded',
    modes: ['xdp'],
    input: frame(A, BCAST),
    md: into('p0'),
    verdict: 'drop',
    check: async (t, f, res, mode) => {
      await floodedByController('p0', 0, frame(A, BCAST))(t, f, res, mode);
      t.like(fdbEntry(f, A), { port: 'p0' }, 'the source is learnt before the frame goes');
    },
  },
  {
    description: 'TC floods by itself: a copy out of each other netdev port, the frame into the one cube port',
    modes: ['tc'],
    input: frame(A, BCAST),
    setup: (f) => portMode(f, 'p3', 'BRIDGE_PORT_ACCESS', 99),
    md: into('p0'),
    verdict: 'mark',
    outMd: intoProbe('q'),
    check: (t, f) => {
      t.like(stats(f, 'p1'), { txPackets: 1n, txBytes: 60n });
      t.like(stats(f, 'p2'), { txPackets: 1n });
      t.like(stats(f, 'p3'), { txPackets: 0n });
      t.like(stats(f, 'p0'), { txPackets: 0n, toController: 0n, drops: 0n });
    },
  },
  {
    description: 'TC floods unknown unicast the same way',
    modes: ['tc'],
    input: frame(A, B),
    setup: (f) => portMode(f, 'p2', 'BRIDGE_PORT_ACCESS', 99),
    md: into('p0'),
    verdict: 'mark',
    outMd: intoProbe('r'),
    check: (t, f) => t.like(stats(f, 'p1'), { txPackets: 1n }),
  },
  {
    description: 'TC, from a cube port with no other cube port in the VLAN: copies out of the netdevs, the frame is done with',
    modes: ['tc'],
    input: frame(A, BCAST),
    setup: (f) => portMode(f, 'p3', 'BRIDGE_PORT_ACCESS', 99),
    md: into('p2'),
    verdict: 'drop',
    check: (t, f) => {
      t.like(stats(f, 'p0'), { txPackets: 1n });
      t.like(stats(f, 'p1'), { txPackets: 1n });
      t.like(stats(f, 'p2'), { rxPackets: 1n, drops: 0n, toController: 0n });
    },
  },
  {
    description: 'TC with two cube ports in the VLAN: the control plane floods, and nothing was copied before',
    modes: ['tc'],
    input: frame(A, BCAST),
    md: into('p0'),
    verdict: 'drop',
    check: floodedByController('p0', 0, frame(A, BCAST)),
  },

  // ------------------------------------------------------------- VLANs
  {
    description: 'access port: an untagged frame belongs to its VLAN, and leaves a trunk tagged',
    input: frame(A, B),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 10);
      portMode(f, 'p1', 'BRIDGE_PORT_TRUNK', 0);
      learnt(f, B, 'p1', 10);
    },
    md: into('p0'),
    verdict: 'redirect',
    output: (_f, mode) => (mode === 'xdp' ? frame(A, B, 10) : frame(A, B)),
    check: (t, f) => {
      t.like(fdbEntry(f, A, 10), { port: 'p0' }, 'learnt in VLAN 10');
      t.is(fdbEntry(f, A, 0), undefined);
    },
  },
  {
    description: 'trunk: a tagged frame leaves an access port of its VLAN untagged',
    modes: ['xdp'],
    input: frame(A, B, 10),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_TRUNK', 0);
      portMode(f, 'p1', 'BRIDGE_PORT_ACCESS', 10);
      learnt(f, B, 'p1', 10);
    },
    md: into('p0'),
    verdict: 'redirect',
    output: frame(A, B),
  },
  {
    description: 'trunk: an untagged frame belongs to the native VLAN and leaves another trunk untagged',
    input: frame(A, B),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_TRUNK', 5);
      portMode(f, 'p1', 'BRIDGE_PORT_TRUNK', 5);
      learnt(f, B, 'p1', 5);
    },
    md: into('p0'),
    verdict: 'redirect',
  },
  {
    description: 'trunk: a frame of the native VLAN leaves a trunk with another native VLAN tagged',
    modes: ['xdp'],
    input: frame(A, B),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_TRUNK', 5);
      portMode(f, 'p1', 'BRIDGE_PORT_TRUNK', 0);
      learnt(f, B, 'p1', 5);
    },
    md: into('p0'),
    verdict: 'redirect',
    output: frame(A, B, 5),
  },
  {
    description: 'trunk without a native VLAN drops untagged frames',
    input: frame(A, B),
    setup: (f) => portMode(f, 'p0', 'BRIDGE_PORT_TRUNK', 0),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => {
      t.like(stats(f, 'p0'), { drops: 1n });
      t.is(fdbEntry(f, A), undefined, 'nothing learnt from a refused frame');
    },
  },
  {
    description: 'access port drops tagged frames',
    modes: ['xdp'],
    input: frame(A, B, 10),
    setup: (f) => portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 10),
    md: into('p0'),
    verdict: 'drop',
  },
  {
    description: 'a plain port keeps a tagged frame tagged, in the VLAN of its tag',
    modes: ['xdp'],
    input: frame(A, B, 7),
    setup: (f) => learnt(f, B, 'p1', 7),
    md: into('p0'),
    verdict: 'redirect',
    check: (t, f) => t.like(fdbEntry(f, A, 7), { port: 'p0' }),
  },
  {
    description: 'a known destination on a port outside the frame\'s VLAN: dropped',
    input: frame(A, B),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 10);
      portMode(f, 'p1', 'BRIDGE_PORT_ACCESS', 20);
      learnt(f, B, 'p1', 10);
    },
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => t.like(stats(f, 'p1'), { txPackets: 0n }),
  },
  {
    description: 'the same MAC in two VLANs is two entries: the frame goes by its own VLAN',
    input: frame(A, B),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 20);
      portMode(f, 'p2', 'BRIDGE_PORT_ACCESS', 20);
      learnt(f, B, 'p1', 10);
      learnt(f, B, 'p2', 20);
    },
    md: into('p0'),
    verdict: 'mark',
    outMd: intoProbe('q'),
  },
  {
    description: 'a flood to the control plane carries the VLAN of an access port in user[0]',
    modes: ['xdp'],
    input: frame(A, BCAST),
    setup: (f) => portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 10),
    md: into('p0'),
    verdict: 'drop',
    check: floodedByController('p0', 10, frame(A, BCAST)),
  },
  {
    description: 'TC floods within the VLAN only: the other netdev port is in another VLAN, the cube port in this one',
    modes: ['tc'],
    input: frame(A, BCAST),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 10);
      portMode(f, 'p1', 'BRIDGE_PORT_ACCESS', 20);
      portMode(f, 'p2', 'BRIDGE_PORT_ACCESS', 10);
      portMode(f, 'p3', 'BRIDGE_PORT_ACCESS', 20);
    },
    md: into('p0'),
    verdict: 'mark',
    outMd: intoProbe('q'),
    check: (t, f) => t.like(stats(f, 'p1'), { txPackets: 0n }),
  },

  // ------------------------------------------------------------- allowed VLANs of a trunk
  {
    description: 'trunk with allowed VLANs: a tagged frame of a listed VLAN comes in',
    modes: ['xdp'],
    input: frame(A, B, 100),
    setup: (f) => {
      trunkAllowing(f, 'p0', 0, [20, 100, 4094]);
      learnt(f, B, 'p1', 100);
    },
    md: into('p0'),
    verdict: 'redirect',
    check: (t, f) => t.like(fdbEntry(f, A, 100), { port: 'p0' }),
  },
  {
    description: 'trunk with allowed VLANs: a tagged frame of a VLAN not listed is dropped coming in, nothing learnt',
    modes: ['xdp'],
    input: frame(A, B, 30),
    setup: (f) => {
      trunkAllowing(f, 'p0', 0, [20, 100]);
      learnt(f, B, 'p1', 30);
    },
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => {
      t.like(stats(f, 'p0'), { rxPackets: 1n, drops: 1n });
      t.like(stats(f, 'p1'), { txPackets: 0n });
      t.is(fdbEntry(f, A, 30), undefined);
    },
  },
  {
    description: 'trunk with allowed VLANs: its native VLAN comes in untagged though not listed',
    input: frame(A, B),
    setup: (f) => {
      trunkAllowing(f, 'p0', 5, [20]);
      portMode(f, 'p1', 'BRIDGE_PORT_ACCESS', 5);
      learnt(f, B, 'p1', 5);
    },
    md: into('p0'),
    verdict: 'redirect',
    check: (t, f) => t.like(fdbEntry(f, A, 5), { port: 'p0' }),
  },
  {
    description: 'trunk with allowed VLANs: a known destination behind it in a VLAN not listed is not sent out of it',
    input: frame(A, B),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 30);
      trunkAllowing(f, 'p1', 0, [20]);
      learnt(f, B, 'p1', 30);
    },
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => t.like(stats(f, 'p1'), { txPackets: 0n }),
  },
  {
    description: 'trunk with allowed VLANs: a known destination behind it in a listed VLAN leaves tagged',
    input: frame(A, B),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 20);
      trunkAllowing(f, 'p1', 0, [20]);
      learnt(f, B, 'p1', 20);
    },
    md: into('p0'),
    verdict: 'redirect',
    output: (_f, mode) => (mode === 'xdp' ? frame(A, B, 20) : frame(A, B)),
    check: (t, f) => t.like(stats(f, 'p1'), { txPackets: 1n }),
  },
  {
    description: 'TC floods past a trunk that does not carry the VLAN, into the trunk that does',
    modes: ['tc'],
    input: frame(A, BCAST),
    setup: (f) => {
      portMode(f, 'p0', 'BRIDGE_PORT_ACCESS', 30);
      trunkAllowing(f, 'p1', 0, [20]);
      trunkAllowing(f, 'p2', 0, [20, 30]);
      trunkAllowing(f, 'p3', 0, [40]);
    },
    md: into('p0'),
    verdict: 'mark',
    outMd: intoProbe('q'),
    check: (t, f) => {
      t.like(stats(f, 'p1'), { txPackets: 0n });
      t.like(stats(f, 'p2'), { txPackets: 1n });
      t.like(stats(f, 'p3'), { txPackets: 0n });
    },
  },
];

table(rows, fixture, bridgeProgram);

// The framework's own programs: the netdev entry (what netcube attaches to a
// netdev: its first cube's entry fused with the netdev's), the entry's general
// way (the entry without a cube, which packets take while a netdev's first cube
// changes), and packet-out's inject program (what delivers a frame the daemon
// sends with a trailer naming its destination).
//
// Fixture: netdev n0 linked to port a of probe cube q (which marks what it
// receives); netdev n2 with only a ddosmitigator g stacked on its way in, so that
// what g lets through goes on to the kernel. The inject program is loaded against
// the host's maps, as the runtime loads it.
import * as path from 'node:path';
import { ethernet, ipv4, parseIp, udp } from '@netcube/sdk/packet';
import { CollectionSpec, Program, ifindex } from '../../node-daemon/src/bpf';
import { INJECT_MAGIC, MD_F_PACKET_OUT, Metadata, encodeInjectTrailer, encodePeer, slotOf } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import { DEFAULT_OBJECTS_DIR, type Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { INJECT_HOST_MAPS } from '../../node-daemon/src/runtime/packetout';
import { createHostNetns, entering, errors, netdevEntry, openRuntime, registerTestTypes, unfusedEntry } from '../helpers/dataplane';
import { fixtureLimit } from '../helpers/limit';
import { table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  mode: Mode;
  q: Cube;
  g: Cube;
  n0: Program;
  n2: Program;
  /** The entry without a cube, on n0's and n2's maps. */
  unfused: { n0: Program; n2: Program };
  /** A fused entry from before a rewiring (a row's setup keeps it). */
  stale?: Program;
  inject: Program;
  /** ifindex of n1, a netdev netcube does not use. */
  n1: number;
}

/** Fixtures alive at once: see helpers/limit. */
const place = fixtureLimit(6);

async function fixture(t: Parameters<Parameters<typeof table>[1]>[0], mode: Mode): Promise<Fixture> {
  await place(t);
  const ns = await createHostNetns(t, 2);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  await rt.apply({
    cubes: [
      { name: 'q', type: 'probe', mode, ports: ['a'], logLevel: 'info' },
      { name: 'g', type: 'ddosmitigator', mode, ports: [], logLevel: 'info' },
    ],
    links: [{ a: { netdev: 'n0' }, b: { cube: 'q', port: 'a' } }],
    stacks: [{ target: { netdev: 'n2' }, layers: [{ cube: 'g', direction: 'ingress' }] }],
  });
  const q = rt.cube('q');
  q.table('probe_actions').put(q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  const g = rt.cube('g');
  g.table('blacklist_v4').put(parseIp('10.0.0.66'), 0);
  // The entry programs, as pinned by the runtime.
  const entry = (ifname: string): Program => netdevEntry(rt, ifname, mode);
  const spec = CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'framework', `inject.${mode}.o`));
  for (const name of INJECT_HOST_MAPS) spec.maps.get(name)?.replaceWith(rt.host.framework(name, mode));
  const coll = await spec.load();
  const unfused = { n0: await unfusedEntry(rt, 'n0', mode), n2: await unfusedEntry(rt, 'n2', mode) };
  const f: Fixture = {
    rt,
    mode,
    q,
    g,
    n0: entry('n0'),
    n2: entry('n2'),
    unfused: { n0: unfused.n0.program('nc_netdev'), n2: unfused.n2.program('nc_netdev') },
    inject: coll.program('nc_inject'),
    n1: await ifindex('n1', ns.name),
  };
  t.teardown(() => {
    f.n0.close();
    f.n2.close();
    f.stale?.close();
    unfused.n0.close();
    unfused.n2.close();
    coll.close();
  });
  return f;
}

const frame = ethernet({
  src: '02:00:00:00:00:01',
  dst: '02:00:00:00:00:02',
  payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 9, dport: 9, payload: Buffer.from('from the wire') }) }),
});
const fromBlacklisted = ethernet({
  src: '02:00:00:00:00:01',
  dst: '02:00:00:00:00:02',
  payload: ipv4({ src: '10.0.0.66', dst: '10.0.0.2', payload: udp({ sport: 9, dport: 9, payload: Buffer.from('flood') }) }),
});

/** What q sees of a frame entering port a. */
const intoQ = (f: Fixture, flags = f.rt.host.currentGen, user: [number, number, number] = [0, 0, 0]): Metadata => ({
  ...entering(f.q.ports.get('a')!, f.q.id, flags),
  user,
});

/** Metadata another program left: bytes netcube must not take for its own. */
const foreign = (n: number): Buffer => Buffer.alloc(n, 0xa5);

const entryRows: Row<Fixture>[] = [
  {
    description: 'netdev entry: a frame from the wire enters the linked cube port, stamped with the current generation',
    input: frame,
    verdict: 'mark',
    outMd: (f) => intoQ(f),
    check: (t, f) => {
      t.like(f.rt.portStats('q', 'a'), { rxPackets: 1n, rxBytes: BigInt(frame.length) });
      t.deepEqual(errors(f.rt), {});
    },
  },
  {
    description: 'netdev entry: after a flip, the new generation',
    input: frame,
    // Any change of peer words flips: a cube more, linked nowhere.
    setup: async (f, mode) => {
      const topo = f.rt.topology();
      await f.rt.apply({ ...topo, cubes: [...topo.cubes, { name: 'extra', type: 'nop', mode, ports: ['p0'], logLevel: 'info' }] });
    },
    verdict: 'mark',
    outMd: (f) => intoQ(f),
    check: (t, f) => t.is(f.rt.host.currentGen, 0),
  },
  ...[4, 8, 20, 32].map(
    (n): Row<Fixture> => ({
      modes: ['xdp'],
      description: `netdev entry: a frame carrying ${n} bytes of another XDP program's metadata gets netcube's own`,
      input: frame,
      md: () => foreign(n),
      verdict: 'mark',
      outMd: (f) => intoQ(f),
    }),
  ),
  {
    modes: ['tc'],
    description: "netdev entry: a frame carrying someone else's skb->cb gets netcube's metadata",
    input: frame,
    md: () => foreign(20),
    verdict: 'mark',
    outMd: (f) => intoQ(f),
  },
  {
    description: 'netdev entry: with only an ingress stack, what the stack lets through goes on to the kernel',
    input: frame,
    program: (f) => f.n2,
    verdict: 'pass',
    check: (t, f) => t.like(f.rt.portStats('g', 'ingress'), { rxPackets: 1n, txPackets: 1n, drops: 0n }),
  },
  {
    description: 'netdev entry: with only an ingress stack, what the stack drops is dropped',
    input: fromBlacklisted,
    program: (f) => f.n2,
    verdict: 'drop',
    check: (t, f) => t.like(f.rt.portStats('g', 'ingress'), { rxPackets: 1n, drops: 1n }),
  },
];

/** The entry rows again, the way packets take while a netdev's first cube changes. */
const unfusedRows: Row<Fixture>[] = entryRows.map((row) => ({
  ...row,
  description: row.description.replace('netdev entry:', 'netdev entry, unfused:'),
  program: (f) => (row.program?.(f) === f.n2 ? f.unfused.n2 : f.unfused.n0),
}));

const rewiredRows: Row<Fixture>[] = [
  {
    description: "netdev entry: a fused entry from before its netdev was rewired sends packets the general way, into the netdev's new first cube",
    input: frame,
    setup: async (f, mode) => {
      f.stale = netdevEntry(f.rt, 'n0', mode);
      const topo = f.rt.topology();
      await f.rt.apply({
        ...topo,
        cubes: [...topo.cubes, { name: 'q2', type: 'probe', mode, ports: ['b', 'a'], logLevel: 'info' }],
        links: [{ a: { netdev: 'n0' }, b: { cube: 'q2', port: 'a' } }],
      });
      const q2 = f.rt.cube('q2');
      q2.table('probe_actions').put(q2.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
    },
    program: (f) => f.stale!,
    verdict: 'mark',
    outMd: (f) => entering(f.rt.cube('q2').ports.get('a')!, f.rt.cube('q2').id, f.rt.host.currentGen),
    check: async (t, f, _res, mode) => {
      t.like(f.rt.portStats('q2', 'a'), { rxPackets: 1n });
      t.like(f.rt.portStats('q', 'a'), { rxPackets: 0n });
      // What n0 runs now is q2's own entry, fused.
      const now = netdevEntry(f.rt, 'n0', mode);
      t.not(now.id, f.stale!.id);
      now.close();
    },
  },
];

/** `frame` followed by a packet-out trailer for `peer`, by default of the fixture's generation and hook. */
function trailed(peer: (f: Fixture) => bigint, opts: { gen?: (f: Fixture) => number; user?: number[]; otherHook?: boolean; magic?: number } = {}) {
  return (f: Fixture): Buffer => {
    const hook = opts.otherHook ? (f.mode === 'xdp' ? 'tc' : 'xdp') : f.mode;
    const trailer = encodeInjectTrailer(peer(f), opts.gen?.(f) ?? f.rt.host.currentGen, hook, opts.user);
    if (opts.magic !== undefined) trailer.writeUInt32LE(opts.magic, 24);
    return Buffer.concat([frame, trailer]);
  };
}
const toQ = (f: Fixture): bigint => encodePeer({ kind: 'cube', slot: slotOf(f.q.id), port: f.q.ports.get('a')! });

const injectRows: Row<Fixture>[] = [
  {
    description: 'packet-out into a cube port: enters it with the words of the trailer, marked as packet-out',
    input: trailed(toQ, { user: [1, 2, 3] }),
    output: frame,
    verdict: 'mark',
    outMd: (f) => intoQ(f, f.rt.host.currentGen | MD_F_PACKET_OUT, [1, 2, 3]),
    check: (t, f) => t.like(f.rt.portStats('q', 'a'), { rxPackets: 1n, rxBytes: BigInt(frame.length) }),
  },
  {
    description: 'packet-out: the generation comes from the trailer',
    input: trailed(toQ, { gen: (f) => 1 - f.rt.host.currentGen }),
    output: frame,
    verdict: 'mark',
    outMd: (f) => intoQ(f, (1 - f.rt.host.currentGen) | MD_F_PACKET_OUT),
  },
  {
    description: 'packet-out to a netdev: leaves by it',
    input: trailed((x) => encodePeer({ kind: 'netdev', ifindex: x.n1 })),
    output: frame,
    verdict: 'redirect',
  },
  {
    description: 'packet-out to a netdev marked for bpf_redirect_peer: redirected (under TC into its other end, under XDP as before)',
    input: trailed((x) => encodePeer({ kind: 'netdev', ifindex: x.n1, redirectPeer: true })),
    output: frame,
    verdict: 'redirect',
  },
  {
    description: "packet-out to the kernel's stack: passed",
    input: trailed(() => encodePeer({ kind: 'stack' })),
    output: frame,
    verdict: 'pass',
  },
  {
    description: 'packet-out to no peer: dropped',
    input: trailed(() => encodePeer({ kind: 'none' })),
    output: frame,
    verdict: 'drop',
  },
  {
    description: "packet-out for the other hook's cubes: left alone for that hook's program",
    input: trailed(toQ, { otherHook: true }),
    verdict: 'pass',
  },
  {
    description: 'packet-out with a bad magic: dropped as it is',
    input: trailed(toQ, { magic: INJECT_MAGIC ^ 1 }),
    verdict: 'drop',
    check: (t, f) => t.like(f.rt.portStats('q', 'a'), { rxPackets: 0n }),
  },
  {
    description: 'packet-out too short for a trailer and an Ethernet header: dropped',
    input: (f) => trailed(toQ)(f).subarray(frame.length - 10),
    verdict: 'drop',
    check: (t, f) => t.like(f.rt.portStats('q', 'a'), { rxPackets: 0n }),
  },
];

table(entryRows, fixture, (f) => f.n0);
table(unfusedRows, fixture, (f) => f.unfused.n0);
table(rewiredRows, fixture, (f) => f.n0);
table(injectRows, fixture, (f) => f.inject);

// The framework's helpers, as a cube author uses them, through the probe test
// cube (bpf/testdata/cubes/probe.bpf.c), whose table says per in-port which
// helper to call: nc_redirect, nc_drop, nc_pass, nc_forward, nc_call,
// nc_to_controller and nc_log, with the counters each one keeps.
//
// Fixture: probe a (ports p0..p3) and probe b (q0, q1), created in that order so
// that b's id follows a's; a:p1 is linked to b:q0, a:p2 to netdev n0, a:p3 to
// nothing. b marks whatever it receives, so the metadata it got can be read.
import test from 'ava';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import { LOG_LEVELS, Metadata, PKT_MAX, decodeLogRecord } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime, RuntimeOptions } from '../../node-daemon/src/runtime/runtime';
import type { CubeSpec, Mode, Topology } from '../../node-daemon/src/runtime/topology';
import { createHostNetns, entering, errors, openRuntime, packetRecords, records, registerTestTypes, runProgram } from '../helpers/dataplane';
import { table, type Row } from '../helpers/rows';

type Op = 'PROBE_DROP' | 'PROBE_PASS' | 'PROBE_REDIRECT' | 'PROBE_CALL' | 'PROBE_CONTROLLER' | 'PROBE_MARK' | 'PROBE_FORWARD';

interface Fixture {
  rt: Runtime;
  a: Cube;
  b: Cube;
  gen: number;
}

function topology(mode: Mode, logLevel: CubeSpec['logLevel'] = 'info', p1To: 'b' | 'n0' = 'b'): Topology {
  return {
    cubes: [
      { name: 'a', type: 'probe', mode, ports: ['p0', 'p1', 'p2', 'p3'], logLevel },
      { name: 'b', type: 'probe', mode, ports: ['q0', 'q1'], logLevel },
    ],
    links: [
      { a: { cube: 'a', port: 'p1' }, b: p1To === 'b' ? { cube: 'b', port: 'q0' } : { netdev: 'n0' } },
      ...(p1To === 'b' ? [{ a: { cube: 'a', port: 'p2' }, b: { netdev: 'n0' } }] : []),
    ],
    stacks: [],
  };
}

async function open(t: Parameters<Parameters<typeof table>[1]>[0], mode: Mode, opts: Partial<RuntimeOptions> = {}): Promise<Fixture> {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path, ...opts });
  await registerTestTypes(rt);
  await rt.apply(topology(mode));
  const a = rt.cube('a');
  const b = rt.cube('b');
  t.is(b.id, a.id + 1);
  for (const q of ['q0', 'q1']) b.table('probe_actions').put(b.ports.get(q)!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  return { rt, a, b, gen: rt.host.currentGen };
}

/** Makes a do `op` with `arg` for packets entering `port`. */
function does(port: string, op: Op, arg = 0, more: { user0?: number; log?: number } = {}) {
  return (f: Fixture): void => f.a.table('probe_actions').put(f.a.ports.get(port)!, { op, arg, user0: more.user0 ?? 0, log: more.log ?? 0 });
}
const portOf = (f: Fixture, port: string): number => f.a.ports.get(port)!;
const into = (port: string) => (f: Fixture): Metadata => entering(portOf(f, port), f.a.id, f.gen);
const intoB = (f: Fixture): Metadata => entering(f.b.ports.get('q0')!, f.b.id, f.gen);

const frame = ethernet({
  src: '02:00:00:00:00:01',
  dst: '02:00:00:00:00:02',
  payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 7, dport: 7, payload: Buffer.from('probe') }) }),
});

const rows: Row<Fixture>[] = [
  {
    description: 'nc_redirect to a port linked to a cube: the cube gets the packet with fresh metadata',
    input: frame,
    setup: (f) => does('p0', 'PROBE_REDIRECT', portOf(f, 'p1'), { user0: 5 })(f),
    md: into('p0'),
    verdict: 'mark',
    outMd: intoB,
    check: (t, f) => {
      t.like(f.rt.portStats('a', 'p0'), { rxPackets: 1n, rxBytes: BigInt(frame.length), txPackets: 0n, drops: 0n });
      t.like(f.rt.portStats('a', 'p1'), { rxPackets: 0n, txPackets: 1n, txBytes: BigInt(frame.length) });
      t.like(f.rt.portStats('b', 'q0'), { rxPackets: 1n });
    },
  },
  {
    description: 'nc_redirect to a port linked to a netdev: redirected',
    input: frame,
    setup: (f) => does('p0', 'PROBE_REDIRECT', portOf(f, 'p2'))(f),
    md: into('p0'),
    verdict: 'redirect',
    check: (t, f) => t.like(f.rt.portStats('a', 'p2'), { txPackets: 1n }),
  },
  {
    description: 'nc_redirect to an unconnected port: dropped, a drop of the in-port',
    input: frame,
    setup: (f) => does('p0', 'PROBE_REDIRECT', portOf(f, 'p3'))(f),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => {
      t.like(f.rt.portStats('a', 'p0'), { rxPackets: 1n, drops: 1n });
      t.like(f.rt.portStats('a', 'p3'), { txPackets: 0n });
    },
  },
  {
    description: 'nc_redirect to a port out of range: dropped, a drop of the in-port',
    input: frame,
    setup: does('p0', 'PROBE_REDIRECT', 40),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => t.like(f.rt.portStats('a', 'p0'), { drops: 1n }),
  },
  {
    description: 'nc_drop: dropped and counted',
    input: frame,
    setup: does('p0', 'PROBE_DROP'),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => {
      t.like(f.rt.portStats('a', 'p0'), { rxPackets: 1n, drops: 1n, txPackets: 0n });
      t.deepEqual(errors(f.rt), {});
    },
  },
  {
    description: "nc_pass: to the kernel's stack",
    input: frame,
    setup: does('p0', 'PROBE_PASS'),
    md: into('p0'),
    verdict: 'pass',
    check: (t, f) => t.like(f.rt.portStats('a', 'p0'), { rxPackets: 1n, drops: 0n, txPackets: 0n }),
  },
  {
    description: 'nc_forward: on in its direction, out of the port it came in by',
    input: frame,
    setup: does('p1', 'PROBE_FORWARD'),
    md: into('p1'),
    verdict: 'mark',
    outMd: intoB,
    check: (t, f) => t.like(f.rt.portStats('a', 'p1'), { rxPackets: 1n, txPackets: 1n }),
  },
  {
    description: "nc_call: micro-cube 1 runs with the packet's metadata and the cube's words",
    input: frame,
    setup: does('p0', 'PROBE_CALL', 1, { user0: 41 }),
    md: into('p0'),
    verdict: 'mark',
    // probe's micro-cube 1 sets user[1] = user[0] + 1.
    outMd: (f) => ({ ...into('p0')(f), user: [41, 42, 0] }),
    check: (t, f) => {
      t.is(f.a.table('probe_calls').get(0), 1);
      t.deepEqual(errors(f.rt), {});
    },
  },
  {
    description: 'nc_call into an empty micro-cube slot: dropped, a tail-call error',
    input: frame,
    setup: does('p0', 'PROBE_CALL', 2),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => t.deepEqual(errors(f.rt), { tail_call: 1 }),
  },
  {
    description: "nc_call past the cube's own slots: dropped, never into the next cube's",
    input: frame,
    // a's slot + 9 is b's micro-cube 1.
    setup: does('p0', 'PROBE_CALL', 9),
    md: into('p0'),
    verdict: 'drop',
    check: (t, f) => {
      t.deepEqual(errors(f.rt), { tail_call: 1 });
      t.is(f.b.table('probe_calls').get(0), 0);
    },
  },
  {
    description: 'nc_to_controller: packet and metadata in one record of the host ring',
    input: frame,
    setup: does('p0', 'PROBE_CONTROLLER', 7, { user0: 0x55 }),
    md: into('p0'),
    verdict: 'drop',
    check: async (t, f, _res, mode) => {
      const recs = await packetRecords(t, f.rt.host.pktRing, 1);
      t.deepEqual(recs, [{ cubeId: f.a.id, inPort: portOf(f, 'p0'), reason: 7, hook: mode, user: [0x55, 0, 0], wireLen: frame.length, packet: frame }]);
      t.like(f.rt.portStats('a', 'p0'), { rxPackets: 1n, toController: 1n, drops: 0n });
    },
  },
  ...[
    { what: 'a packet too long for a short record takes a full one', bytes: 600 },
    { what: `a packet longer than ${PKT_MAX} bytes: its first ${PKT_MAX}, and its length`, bytes: 3000 },
  ].map(({ what, bytes }): Row<Fixture> => {
    const long = ethernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1, dport: 2, payload: Buffer.alloc(bytes, 0xab) }) }) });
    return {
      description: `nc_to_controller: ${what}`,
      input: long,
      setup: does('p0', 'PROBE_CONTROLLER', 7),
      md: into('p0'),
      verdict: 'drop',
      check: async (t, f) => {
        const [rec] = await packetRecords(t, f.rt.host.pktRing, 1);
        t.is(rec.wireLen, long.length);
        t.deepEqual(rec.packet, long.subarray(0, PKT_MAX));
      },
    };
  }),
  {
    description: 'nc_log: a record in the host log ring, formatted later',
    input: frame,
    setup: does('p0', 'PROBE_PASS', 0, { user0: 0xbeef, log: 1 }),
    md: into('p0'),
    verdict: 'pass',
    check: async (t, f) => {
      const recs = (await records(f.rt.host.logRing, 1)).map(decodeLogRecord);
      t.is(recs.length, 1);
      t.like(recs[0], { cubeId: f.a.id, level: 'info', fmt: 'probe: in-port %u user %x from %I', args: [BigInt(portOf(f, 'p0')), 0xbeefn, 0x0100000an] });
    },
  },
  {
    description: 'without netcube metadata: dropped and counted',
    input: frame,
    setup: does('p0', 'PROBE_MARK'),
    verdict: 'drop',
    check: (t, f) => {
      t.deepEqual(errors(f.rt), { no_metadata: 1 });
      t.like(f.rt.portStats('a', 'p0'), { rxPackets: 0n });
    },
  },
  {
    // Only XDP has a metadata area of its own size; TC's skb->cb is always 20 bytes.
    modes: ['xdp'],
    description: 'with a metadata area too small for netcube metadata: dropped and counted',
    input: frame,
    setup: does('p0', 'PROBE_MARK'),
    md: () => Buffer.alloc(8),
    verdict: 'drop',
    check: (t, f) => t.deepEqual(errors(f.rt), { no_metadata: 1 }),
  },
];

table(rows, (t, mode) => open(t, mode), (f) => f.a.program());

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: nc_log follows the log level set at run time, without a reload`, async (t) => {
    const f = await open(t, mode);
    does('p0', 'PROBE_PASS', 0, { log: 1 })(f);
    const program = f.a.program().id;
    const run = () => runProgram(f.a.program(), mode, frame, entering(portOf(f, 'p0'), f.a.id, f.rt.host.currentGen));

    // The probe logs at info: one run at each level, in ring order.
    const logged: string[] = [];
    for (const level of LOG_LEVELS) {
      await f.rt.apply(topology(mode, level));
      await run();
      if (LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf('info')) logged.push(level);
    }
    const recs = (await records(f.rt.host.logRing, logged.length)).map(decodeLogRecord);
    t.is(recs.length, logged.length);
    t.true(recs.every((r) => r.level === 'info' && r.cubeId === f.a.id));
    t.is(f.rt.cube('a'), f.a);
    t.is(f.a.program().id, program);
    t.deepEqual(errors(f.rt), {});
  });

  test(`${mode}: a packet follows the peer words of the generation its metadata names`, async (t) => {
    const f = await open(t, mode);
    does('p0', 'PROBE_REDIRECT', portOf(f, 'p1'))(f);
    const before = f.rt.host.currentGen;
    // Rewire a:p1 from b:q0 to n0: written to the other generation, then flipped.
    await f.rt.apply(topology(mode, 'info', 'n0'));
    const after = f.rt.host.currentGen;
    t.not(after, before);
    const run = (gen: number) => runProgram(f.a.program(), mode, frame, entering(portOf(f, 'p0'), f.a.id, gen));

    const old = await run(before);
    t.is(old.verdict, 'mark');
    t.deepEqual(old.md, entering(f.b.ports.get('q0')!, f.b.id, before));
    const now = await run(after);
    t.is(now.verdict, 'redirect');
    t.like(f.rt.portStats('b', 'q0'), { rxPackets: 1n });
  });

  test(`${mode}: nc_to_controller past the cube's slow-path rate: dropped and counted`, async (t) => {
    const f = await open(t, mode, { slowPath: { rate: 1, burst: 1 } });
    does('p0', 'PROBE_CONTROLLER', 3)(f);
    // Three packets within one test run, microseconds apart: the bucket holds one.
    const res = await runProgram(f.a.program(), mode, frame, into('p0')(f), { repeat: 3 });
    t.is(res.verdict, 'drop');
    t.is((await records(f.rt.host.pktRing, 1)).length, 1);
    t.deepEqual(errors(f.rt), { pkt_rate: 2 });
    t.like(f.rt.portStats('a', 'p0'), { rxPackets: 3n, toController: 1n, drops: 2n });
  });
}

// Cycles through cubes that decrement the TTL (NC_DECREMENTS_TTL()): three routers
// linked port to port in a triangle are a valid topology. Their routes for
// 10.9.0.0/16 point round the triangle, each at the next router, so a packet for
// it circles: the TTL ends it when it runs out first (the router hands it to its
// control plane, reason 4), else the kernel's tail-call limit does, dropped and
// counted (tail_call). Loops of cubes that do not decrement the TTL stay refused.
//
// Fixture: r1, r2, r3 with ports a, b (and up on r1, on netdev n0): rN:a is linked
// to r(N+1):b on the subnet 10.N(N+1).0.0/24, where rN:a is .1 and r(N+1):b is .2.
import test, { type ExecutionContext } from 'ava';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { MAX_TAIL_CALLS } from '../../node-daemon/src/runtime/abi';
import { createHostNetns, entering, errors, openRuntime, packetRecords, registerTestType, runProgram } from '../helpers/dataplane';

const ROUTERS = ['r1', 'r2', 'r3'];
const mac = (router: number, port: number): string => `02:00:00:00:0${router}:0${port}`;
const HOST = '02:00:00:00:00:10';

async function triangle(t: ExecutionContext, mode: Mode): Promise<Runtime> {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  const cube = (name: string, ports: string[]) => ({ name, type: 'router', mode, ports, logLevel: 'info' as const });
  await rt.apply({
    cubes: [cube('r1', ['a', 'b', 'up']), cube('r2', ['a', 'b']), cube('r3', ['a', 'b'])],
    links: [
      { a: { cube: 'r1', port: 'a' }, b: { cube: 'r2', port: 'b' } },
      { a: { cube: 'r2', port: 'a' }, b: { cube: 'r3', port: 'b' } },
      { a: { cube: 'r3', port: 'a' }, b: { cube: 'r1', port: 'b' } },
      { a: { cube: 'r1', port: 'up' }, b: { netdev: 'n0' } },
    ],
    stacks: [],
  });
  ROUTERS.forEach((name, i) => {
    const n = i + 1, next = (i + 1) % 3 + 1, prev = (i + 2) % 3 + 1;
    const r = rt.cube(name);
    const port = (p: string, addr: string, m: string) => {
      r.table('router_ports').put(r.ports.get(p)!, { addr, prefixlen: 24, mac: m });
      r.table('local_addrs').put(addr, r.ports.get(p)!);
    };
    port('a', `10.${n}${next}.0.1`, mac(n, 1));
    port('b', `10.${prev}${n}.0.2`, mac(n, 2));
    r.table('routes').put({ prefixlen: 24, addr: `10.${n}${next}.0.0` }, { nexthop: '0.0.0.0', port: r.ports.get('a')! });
    r.table('routes').put({ prefixlen: 24, addr: `10.${prev}${n}.0.0` }, { nexthop: '0.0.0.0', port: r.ports.get('b')! });
    // Round the triangle: via the next router's b.
    r.table('routes').put({ prefixlen: 16, addr: '10.9.0.0' }, { nexthop: `10.${n}${next}.0.2`, port: r.ports.get('a')! });
    r.table('neighbours').put(`10.${n}${next}.0.2`, { mac: mac(next, 2), port: r.ports.get('a')!, seen_ns: process.hrtime.bigint().toString() });
  });
  const r1 = rt.cube('r1');
  r1.table('router_ports').put(r1.ports.get('up')!, { addr: '10.0.0.1', prefixlen: 24, mac: mac(1, 3) });
  return rt;
}

const circling = (ttl: number): Buffer =>
  ethernet({ src: HOST, dst: mac(1, 3), payload: ipv4({ src: '10.0.0.10', dst: '10.9.0.1', ttl, payload: udp({ sport: 5000, dport: 53, payload: Buffer.from('round and round') }) }) });

const send = (rt: Runtime, mode: Mode, frame: Buffer) => {
  const r1 = rt.cube('r1');
  return runProgram(r1.program(), mode, frame, entering(r1.ports.get('up')!, r1.id, rt.host.currentGen));
};

/** Packets each router forwarded out of its port a. */
const forwarded = (rt: Runtime): number[] => ROUTERS.map((r) => Number(rt.portStats(r, 'a').txPackets));

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: a packet circling three routers is stopped by the tail-call limit, dropped and counted`, async (t) => {
    const rt = await triangle(t, mode);
    const res = await send(rt, mode, circling(64));
    t.is(res.verdict, 'drop');
    t.deepEqual(errors(rt), { tail_call: 1 });
    // Every hop round the triangle is one tail call: the kernel allows MAX_TAIL_CALLS.
    const hops = forwarded(rt).reduce((a, b) => a + b, 0);
    t.is(hops, MAX_TAIL_CALLS + 1, `hops per router: ${forwarded(rt).join(', ')}`);
  });

  test(`${mode}: a circling packet whose TTL runs out first goes to its router's control plane`, async (t) => {
    const rt = await triangle(t, mode);
    const res = await send(rt, mode, circling(5));
    t.is(res.verdict, 'drop');
    t.deepEqual(errors(rt), {});
    t.deepEqual(forwarded(rt), [2, 1, 1]);
    // r2 got it a second time with TTL 1: "time exceeded" is its control plane's to say.
    const [rec] = await packetRecords(t, rt.host.pktRing, 1);
    t.like(rec, { cubeId: rt.cube('r2').id, inPort: rt.cube('r2').ports.get('b')!, reason: 4 });
  });
}

test('a loop of cubes that do not decrement the TTL is refused, naming the loop', async (t) => {
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestType(rt, 'probe');
  const cube = (name: string) => ({ name, type: 'probe', mode: 'xdp' as const, ports: ['a', 'b'], logLevel: 'info' as const });
  const err = await t.throwsAsync(
    rt.apply({
      cubes: [cube('p1'), cube('p2')],
      links: [
        { a: { cube: 'p1', port: 'b' }, b: { cube: 'p2', port: 'a' } },
        { a: { cube: 'p2', port: 'b' }, b: { cube: 'p1', port: 'a' } },
      ],
      stacks: [],
    }),
  );
  t.regex(err!.message, /^loop: p\d -> p\d -> p\d; .*only through a cube that decrements the TTL/);
  t.deepEqual(rt.cubeNames(), []);
});

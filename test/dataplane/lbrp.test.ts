// lbrp: a load balancer between frontend ports (clients) and a backend port. A
// client's packet to a service (virtual IP, port, protocol) goes to a backend the
// service's Maglev table picks, its source kept; the answers come back as the
// service's, out of the client's port. A flow keeps its backend while it lives;
// a service without backends refuses (TCP reset, ICMP port unreachable). Tables
// from the translator (remote-services/lbrp/tables.ts).
//
// Fixture: lbrp l with frontend f0 (netdev n0; host 10.0.0.10), frontend f1
// (probe cube qa; hosts 10.0.1.10 and fd00::10) and backend port be (probe cube
// qb). Where a packet goes shows in the verdict and metadata: out of f0 a
// redirect, into qa or qb a mark with that cube's id.
import type { ExecutionContext } from 'ava';
import { Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import type { LbConfig, LbIds } from '@netcube/lbrp/tables';
import { arp, ArpOp, ethernet, icmpUnreachable, icmpv6, parseFrame, tcp } from '@netcube/sdk/packet';
import { loadLb } from '../helpers/catalog';
import { createHostNetns, entering, openRuntime, registerTestTypes, runProgram } from '../helpers/dataplane';
import { ipFrame, MAC_A, MAC_B, TcpFlags, tcpFrame, udpFrame } from '../helpers/flows';
import { fixtureLimit } from '../helpers/limit';
import { table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  l: Cube;
  qa: Cube;
  qb: Cube;
  gen: number;
  ids?: LbIds;
}

const CLIENT0 = '10.0.0.10';
const CLIENT1 = '10.0.1.10';
const CLIENT6 = 'fd00::10';
const WEB = '10.96.0.1';
const BACKENDS = ['10.1.0.1', '10.1.0.2', '10.1.0.3'];

const CONFIG: LbConfig = {
  backendPort: 'be',
  frontends: { f0: { hosts: [CLIENT0] }, f1: { hosts: [CLIENT1, CLIENT6] } },
  services: [
    { vip: WEB, port: 80, protocol: 'tcp', backends: BACKENDS.map((address) => ({ address, port: 8080 })) },
    { vip: '10.96.0.2', port: 53, protocol: 'udp', backends: [{ address: '10.1.0.4' }] },
    { vip: '10.96.0.3', port: 80, protocol: 'tcp', backends: [] },
    { vip: '10.96.0.4', port: 80, protocol: 'udp' },
    { vip: 'fd00:96::1', port: 443, protocol: 'tcp', backends: [{ address: 'fd00:1::1', port: 8443 }] },
    { vip: 'fd00:96::2', port: 53, protocol: 'udp' },
    { vip: '10.96.0.5', port: 80, protocol: 'tcp', backends: BACKENDS.map((address) => ({ address })), affinitySeconds: 100 },
  ],
};

const place = fixtureLimit(6);

async function fixture(t: ExecutionContext, mode: Mode): Promise<Fixture> {
  await place(t);
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  const applied = await rt.apply({
    cubes: [
      { name: 'l', type: 'lbrp', mode, ports: ['f0', 'f1', 'be'], logLevel: 'info' },
      { name: 'qa', type: 'probe', mode, ports: ['a'], logLevel: 'info' },
      { name: 'qb', type: 'probe', mode, ports: ['a'], logLevel: 'info' },
    ],
    links: [
      { a: { cube: 'l', port: 'f0' }, b: { netdev: 'n0' } },
      { a: { cube: 'l', port: 'f1' }, b: { cube: 'qa', port: 'a' } },
      { a: { cube: 'l', port: 'be' }, b: { cube: 'qb', port: 'a' } },
    ],
    stacks: [],
  });
  // n0's entry runs l itself (fused): its packets take no tail call into l.
  if (applied.problems.length > 0) throw new Error(`n0 does not run l fused with its entry: ${applied.problems.join('; ')}`);
  for (const q of [rt.cube('qa'), rt.cube('qb')]) q.table('probe_actions').put(q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  const f: Fixture = { rt, l: rt.cube('l'), qa: rt.cube('qa'), qb: rt.cube('qb'), gen: rt.host.currentGen };
  f.ids = loadLb(f.l, CONFIG).ids;
  return f;
}

/** An ARP frame from the router's side (MAC_B): a request broadcast, a reply to `dst`. */
const arpFrame = (op: number, target: string, dst = 'ff:ff:ff:ff:ff:ff', sender = '10.1.0.254') =>
  ethernet({ src: MAC_B, dst, payload: arp({ op, senderMac: MAC_B, senderIp: sender, targetMac: op === ArpOp.REPLY ? MAC_A : undefined, targetIp: target }) });

const into = (port: string) => (f: Fixture): Metadata => entering(f.l.ports.get(port)!, f.l.id, f.gen);
const atQ = (which: 'a' | 'b') => (f: Fixture): Metadata => {
  const q = which === 'a' ? f.qa : f.qb;
  return entering(q.ports.get('a')!, q.id, f.gen);
};

const sent = (...frames: [Buffer, string][]) => async (f: Fixture, mode: Mode) => {
  for (const [frame, port] of frames) {
    const res = await runProgram(f.l.program(), mode, frame, into(port)(f));
    if (res.verdict === 'drop') throw new Error('a setup packet was dropped');
  }
};

const mapped = (a: string): string => (a.includes(':') ? a : `::ffff:${a}`);
const unmapped = (a: string): string => (a.startsWith('::ffff:') ? a.slice(7) : a);

/** The backend (address, port) the session of a client's flow names. */
function backendOf(f: Fixture, proto: number, client: string, sport: number, vip: string, dport: number): { address: string; port: number } {
  const s = f.l.table('lb_sessions').get({ saddr: mapped(client), daddr: mapped(vip), sport, dport, proto, pad: [0, 0, 0] }) as { backend: number } | undefined;
  if (!s) throw new Error(`no session for ${client}:${sport} -> ${vip}:${dport}`);
  const b = f.l.table('lb_backends').get(s.backend) as { addr: string; port: number };
  return { address: unmapped(b.addr), port: b.port };
}

const toBackends = (client: { src: string; dst: string }, sport: number, flags: number) => (f: Fixture) => {
  const b = backendOf(f, 6, client.src, sport, client.dst, 80);
  return tcpFrame({ src: client.src, dst: b.address }, sport, b.port, flags);
};
const back = (b: { address: string; port: number }, client: string, cport: number, flags: number) => tcpFrame({ src: b.address, dst: client, macs: { src: MAC_B, dst: MAC_A } }, b.port, cport, flags);

const syn0 = tcpFrame({ src: CLIENT0, dst: WEB }, 40000, 80, TcpFlags.SYN);
const syn1 = tcpFrame({ src: CLIENT1, dst: WEB }, 40001, 80, TcpFlags.SYN);

/** A refusal goes back to the client: its MACs swapped, from the service. */
const refusalMacs = { src: MAC_B, dst: MAC_A };

const rows: Row<Fixture>[] = [
  // ------------------------------------------------------------- to a service and back
  {
    description: 'a SYN to a service goes to a backend, its destination rewritten, its source kept',
    input: syn0,
    md: into('f0'),
    verdict: 'mark',
    output: toBackends({ src: CLIENT0, dst: WEB }, 40000, TcpFlags.SYN),
    outMd: atQ('b'),
    check: (t, f) => t.true(BACKENDS.includes(backendOf(f, 6, CLIENT0, 40000, WEB, 80).address)),
  },
  {
    description: 'the backend\'s answer comes back from the service, out of the client\'s port (f0: the netdev)',
    setup: sent([syn0, 'f0']),
    input: (f) => back(backendOf(f, 6, CLIENT0, 40000, WEB, 80), CLIENT0, 40000, TcpFlags.SYN | TcpFlags.ACK),
    md: into('be'),
    verdict: 'redirect',
    output: tcpFrame({ src: WEB, dst: CLIENT0, macs: { src: MAC_B, dst: MAC_A } }, 80, 40000, TcpFlags.SYN | TcpFlags.ACK),
  },
  {
    description: '... out of f1 for a client that came in on f1',
    setup: sent([syn1, 'f1']),
    input: (f) => back(backendOf(f, 6, CLIENT1, 40001, WEB, 80), CLIENT1, 40001, TcpFlags.SYN | TcpFlags.ACK),
    md: into('be'),
    verdict: 'mark',
    outMd: atQ('a'),
    output: tcpFrame({ src: WEB, dst: CLIENT1, macs: { src: MAC_B, dst: MAC_A } }, 80, 40001, TcpFlags.SYN | TcpFlags.ACK),
  },
  {
    description: 'the rest of the flow keeps its backend',
    setup: async (f, mode) => {
      await sent([syn0, 'f0'])(f, mode);
      await sent([back(backendOf(f, 6, CLIENT0, 40000, WEB, 80), CLIENT0, 40000, TcpFlags.SYN | TcpFlags.ACK), 'be'])(f, mode);
    },
    input: tcpFrame({ src: CLIENT0, dst: WEB }, 40000, 80, TcpFlags.ACK),
    md: into('f0'),
    verdict: 'mark',
    output: toBackends({ src: CLIENT0, dst: WEB }, 40000, TcpFlags.ACK),
  },
  {
    description: 'removing a backend keeps the flows of the others on theirs',
    setup: async (f, mode) => {
      await sent([syn0, 'f0'])(f, mode);
      await sent([back(backendOf(f, 6, CLIENT0, 40000, WEB, 80), CLIENT0, 40000, TcpFlags.SYN | TcpFlags.ACK), 'be'])(f, mode);
      const mine = backendOf(f, 6, CLIENT0, 40000, WEB, 80).address;
      const gone = BACKENDS.find((b) => b !== mine)!;
      const services = CONFIG.services!.map((s) => (s.vip === WEB ? { ...s, backends: s.backends!.filter((b) => b.address !== gone) } : s));
      f.ids = loadLb(f.l, { ...CONFIG, services }, f.ids).ids;
    },
    input: tcpFrame({ src: CLIENT0, dst: WEB }, 40000, 80, TcpFlags.ACK),
    md: into('f0'),
    verdict: 'mark',
    output: toBackends({ src: CLIENT0, dst: WEB }, 40000, TcpFlags.ACK),
  },
  {
    description: 'a flow whose backend was removed is dropped (it cannot be moved mid-connection)',
    setup: async (f, mode) => {
      await sent([syn0, 'f0'])(f, mode);
      await sent([back(backendOf(f, 6, CLIENT0, 40000, WEB, 80), CLIENT0, 40000, TcpFlags.SYN | TcpFlags.ACK), 'be'])(f, mode);
      const mine = backendOf(f, 6, CLIENT0, 40000, WEB, 80).address;
      const services = CONFIG.services!.map((s) => (s.vip === WEB ? { ...s, backends: s.backends!.filter((b) => b.address !== mine) } : s));
      f.ids = loadLb(f.l, { ...CONFIG, services }, f.ids).ids;
    },
    input: tcpFrame({ src: CLIENT0, dst: WEB }, 40000, 80, TcpFlags.ACK),
    md: into('f0'),
    verdict: 'drop',
  },
  {
    description: 'a segment of no flow (an ACK) to a service is dropped',
    input: tcpFrame({ src: CLIENT0, dst: WEB }, 40000, 80, TcpFlags.ACK),
    md: into('f0'),
    verdict: 'drop',
  },
  {
    description: 'UDP: a datagram to a service goes to its backend, port kept',
    input: udpFrame({ src: CLIENT1, dst: '10.96.0.2' }, 5353, 53),
    md: into('f1'),
    verdict: 'mark',
    outMd: atQ('b'),
    output: udpFrame({ src: CLIENT1, dst: '10.1.0.4' }, 5353, 53),
  },
  {
    description: 'IPv6: to a service and to its backend\'s port',
    input: tcpFrame({ src: CLIENT6, dst: 'fd00:96::1' }, 40000, 443, TcpFlags.SYN),
    md: into('f1'),
    verdict: 'mark',
    outMd: atQ('b'),
    output: tcpFrame({ src: CLIENT6, dst: 'fd00:1::1' }, 40000, 8443, TcpFlags.SYN),
  },
  {
    description: 'IPv6: the answer back, from the service, out of f1',
    setup: sent([tcpFrame({ src: CLIENT6, dst: 'fd00:96::1' }, 40000, 443, TcpFlags.SYN), 'f1']),
    input: tcpFrame({ src: 'fd00:1::1', dst: CLIENT6, macs: { src: MAC_B, dst: MAC_A } }, 8443, 40000, TcpFlags.SYN | TcpFlags.ACK),
    md: into('be'),
    verdict: 'mark',
    outMd: atQ('a'),
    output: tcpFrame({ src: 'fd00:96::1', dst: CLIENT6, macs: { src: MAC_B, dst: MAC_A } }, 443, 40000, TcpFlags.SYN | TcpFlags.ACK),
  },
  {
    description: 'session affinity: a client\'s next connection goes to the same backend',
    setup: sent([tcpFrame({ src: CLIENT0, dst: '10.96.0.5' }, 40000, 80, TcpFlags.SYN), 'f0']),
    input: tcpFrame({ src: CLIENT0, dst: '10.96.0.5' }, 40077, 80, TcpFlags.SYN),
    md: into('f0'),
    verdict: 'mark',
    output: (f) => {
      const b = backendOf(f, 6, CLIENT0, 40077, '10.96.0.5', 80);
      return tcpFrame({ src: CLIENT0, dst: b.address }, 40077, b.port, TcpFlags.SYN);
    },
    check: (t, f) => t.deepEqual(backendOf(f, 6, CLIENT0, 40077, '10.96.0.5', 80), backendOf(f, 6, CLIENT0, 40000, '10.96.0.5', 80)),
  },
  {
    description: 'new flows spread over the backends by the Maglev table (900 clients, each backend 300 +- 15%)',
    setup: async (f, mode) => {
      for (let i = 0; i < 900; i++) await sent([tcpFrame({ src: `10.0.${2 + (i >> 8)}.${i & 0xff}`, dst: WEB }, 30000 + i, 80, TcpFlags.SYN), 'f0'])(f, mode);
    },
    input: syn0,
    md: into('f0'),
    verdict: 'mark',
    output: toBackends({ src: CLIENT0, dst: WEB }, 40000, TcpFlags.SYN),
    check: (t, f) => {
      const counts = new Map<string, number>();
      for (let i = 0; i < 900; i++) {
        const b = backendOf(f, 6, `10.0.${2 + (i >> 8)}.${i & 0xff}`, 30000 + i, WEB, 80).address;
        counts.set(b, (counts.get(b) ?? 0) + 1);
      }
      for (const b of BACKENDS) t.true(Math.abs((counts.get(b) ?? 0) - 300) <= 45, `${b}: ${counts.get(b) ?? 0} of 900`);
    },
  },

  // ------------------------------------------------------------- refusals
  {
    description: 'a service without backends refuses TCP with a reset, back out of the client\'s port',
    input: tcpFrame({ src: CLIENT0, dst: '10.96.0.3' }, 40000, 80, TcpFlags.SYN),
    md: into('f0'),
    verdict: 'redirect',
    // A reset is 54 bytes: nothing pads it to Ethernet's 60 on its way (the NIC would, on a wire).
    output: ipFrame({ src: '10.96.0.3', dst: CLIENT0, macs: refusalMacs, minLength: 0 }, tcp({ sport: 80, dport: 40000, seq: 0, ack: 1001, flags: TcpFlags.RST | TcpFlags.ACK, window: 0 })),
  },
  {
    description: '... and UDP with ICMP port unreachable quoting the datagram',
    input: udpFrame({ src: CLIENT1, dst: '10.96.0.4' }, 5353, 80, Buffer.from('a question of some length')),
    md: into('f1'),
    verdict: 'mark',
    outMd: atQ('a'),
    output: (() => {
      const asked = udpFrame({ src: CLIENT1, dst: '10.96.0.4' }, 5353, 80, Buffer.from('a question of some length'));
      const ip = parseFrame(asked).ipv4!;
      return ipFrame({ src: '10.96.0.4', dst: CLIENT1, macs: refusalMacs }, icmpUnreachable({ code: 3, original: asked.subarray(ip.offset) }));
    })(),
  },
  {
    description: '... and IPv6 UDP with ICMPv6 port unreachable',
    input: udpFrame({ src: CLIENT6, dst: 'fd00:96::2' }, 5353, 53, Buffer.alloc(30, 7)),
    md: into('f1'),
    verdict: 'mark',
    outMd: atQ('a'),
    output: (() => {
      const asked = udpFrame({ src: CLIENT6, dst: 'fd00:96::2' }, 5353, 53, Buffer.alloc(30, 7));
      return ipFrame({ src: 'fd00:96::2', dst: CLIENT6, macs: refusalMacs }, icmpv6({ type: 1, code: 4, body: asked.subarray(14, 14 + 48) }));
    })(),
  },

  // ------------------------------------------------------------- everything else
  {
    description: 'from a client, not to a service: on to the backend port untouched',
    input: udpFrame({ src: CLIENT0, dst: '10.1.0.1' }, 5353, 53),
    md: into('f0'),
    verdict: 'mark',
    outMd: atQ('b'),
  },
  {
    description: 'from the backends, not an answer: to the frontend port of its destination host',
    input: udpFrame({ src: '10.1.0.1', dst: CLIENT1 }, 53, 5353),
    md: into('be'),
    verdict: 'mark',
    outMd: atQ('a'),
  },
  {
    description: 'from the backends to a host no frontend has, and no default: dropped',
    input: udpFrame({ src: '10.1.0.1', dst: '10.0.9.9' }, 53, 5353),
    md: into('be'),
    verdict: 'drop',
  },
  {
    description: 'with a default frontend, to that port',
    setup: (f) => {
      f.ids = loadLb(f.l, { ...CONFIG, defaultFrontend: 'f0' }, f.ids).ids;
    },
    input: udpFrame({ src: '10.1.0.1', dst: '10.0.9.9' }, 53, 5353),
    md: into('be'),
    verdict: 'redirect',
  },
  // ------------------------------------------------------------- ARP between the backends' router and the frontends' hosts
  {
    description: 'ARP from the backends (a router asking for a host): to the frontend port of its target address',
    input: arpFrame(ArpOp.REQUEST, CLIENT1),
    md: into('be'),
    verdict: 'mark',
    outMd: atQ('a'),
  },
  {
    description: '... and its answer to a host, to that host\'s port (f0: the netdev)',
    input: arpFrame(ArpOp.REPLY, CLIENT0, MAC_A),
    md: into('be'),
    verdict: 'redirect',
  },
  {
    description: 'ARP about a host no frontend has, and no default: dropped',
    input: arpFrame(ArpOp.REQUEST, '10.0.9.9'),
    md: into('be'),
    verdict: 'drop',
  },
  {
    description: 'ARP from a frontend: to the backend port, as everything not for a service',
    input: arpFrame(ArpOp.REQUEST, '10.0.0.1', 'ff:ff:ff:ff:ff:ff', CLIENT0),
    md: into('f0'),
    verdict: 'mark',
    outMd: atQ('b'),
  },
  {
    description: 'an answer whose service flow is over is not translated: it is some other flow now',
    setup: async (f, mode) => {
      await sent([udpFrame({ src: CLIENT1, dst: '10.96.0.2' }, 5353, 53), 'f1'])(f, mode);
      const ct = f.l.table('lb_ct');
      for (const { key, value } of [...ct.entries()]) ct.put(key, { ...(value as object), expires_ns: 1 });
    },
    input: udpFrame({ src: '10.1.0.4', dst: CLIENT1, macs: { src: MAC_B, dst: MAC_A } }, 53, 5353),
    md: into('be'),
    verdict: 'mark',
    outMd: atQ('a'),
  },
];

table(rows, fixture, (f) => f.l.program());

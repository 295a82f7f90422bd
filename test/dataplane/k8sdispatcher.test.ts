// k8sdispatcher: a Kubernetes node's edge between its uplink (port ext, netdev n0)
// and its chain (port int). From the chain, pods' packets to the outside are
// masqueraded to the node's address and leave by the kernel's routes and
// neighbours; NodePort answers go back out (reverse-translated for policy
// Cluster). From the uplink, NodePort traffic goes in (policy Cluster with the
// cluster SNAT address as its source), answers to masqueraded flows too; the rest
// is the node kernel's. The router's ARP for its gateway is answered. Tables from
// the translator (remote-services/k8sdispatcher/tables.ts).
//
// Fixture: a namespace where n0 (MAC_A) holds the node's address 192.0.2.1/24, its
// default route via 192.0.2.254 (MAC_B, a permanent neighbour), forwarding on (as
// on every Kubernetes node: bpf_fib_lookup refuses otherwise); dispatcher d with
// ext linked to n0 and int to port a of probe cube q (marking what it receives).
// Out of the uplink is a redirect, into the chain a mark. Expected frames are
// built whole, checksums included: a rewrite matches only when every checksum was
// patched right.
import type { ExecutionContext } from 'ava';
import { DIR_EGRESS, DIR_INGRESS, Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { compileDispatcher, type DispatcherConfig } from '@netcube/k8sdispatcher/tables';
import { arp, ArpOp, ethernet } from '@netcube/sdk/packet';
import { createHostNetns, entering, openRuntime, registerTestTypes, runProgram } from '../helpers/dataplane';
import { echoReply, echoRequest, icmpErrorAbout, MAC_A, MAC_B, TcpFlags, tcpFrame, udpFrame, type Ends } from '../helpers/flows';
import { fixtureLimit } from '../helpers/limit';
import { table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  d: Cube;
  q: Cube;
  gen: number;
  netns: string;
}

const NODE = '192.0.2.1';
const ON_LINK = '192.0.2.77'; // no neighbour entry
const OUTSIDE = '198.51.100.7';
const HOP = '198.51.100.1'; // a router on the way, sending ICMP errors
const CLIENT = '203.0.113.9';
const POD = '10.244.1.10';
const OTHER_POD = '10.244.2.10';
const SNAT = '10.244.1.254';
const GATEWAY = '169.254.1.1';
const ROUTER = '169.254.1.2';
const ROUTER_MAC = '02:00:00:00:00:0c';
const GATEWAY_MAC = '02:00:00:00:00:0d';
const PORTS = { first: 61000, last: 65535 };

const CONFIG: DispatcherConfig = {
  uplinkPort: 'ext',
  nodeAddress: NODE,
  clusterCidr: '10.244.0.0/16',
  masqueradePorts: `${PORTS.first}-${PORTS.last}`,
  clusterSnatAddress: SNAT,
  gateway: GATEWAY,
  routerMac: ROUTER_MAC,
  nodePorts: [
    { protocol: 'tcp', port: 30080, cluster: true },
    { protocol: 'udp', port: 30053, cluster: false },
    { protocol: 'udp', port: 30054, cluster: true },
  ],
};

const place = fixtureLimit(6);

async function fixture(t: ExecutionContext, mode: Mode): Promise<Fixture> {
  await place(t);
  const ns = await createHostNetns(t);
  await ns.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  await ns.exec('ip', ['link', 'set', 'n0', 'address', MAC_A]);
  await ns.exec('ip', ['addr', 'add', `${NODE}/24`, 'dev', 'n0']);
  await ns.exec('ip', ['neigh', 'replace', '192.0.2.254', 'lladdr', MAC_B, 'dev', 'n0', 'nud', 'permanent']);
  await ns.exec('ip', ['route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'n0']);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestTypes(rt);
  await rt.apply({
    cubes: [
      { name: 'd', type: 'k8sdispatcher', mode, ports: ['ext', 'int'], logLevel: 'info' },
      { name: 'q', type: 'probe', mode, ports: ['a'], logLevel: 'info' },
    ],
    links: [
      { a: { cube: 'd', port: 'ext' }, b: { netdev: 'n0' } },
      { a: { cube: 'd', port: 'int' }, b: { cube: 'q', port: 'a' } },
    ],
    stacks: [],
  });
  const q = rt.cube('q');
  q.table('probe_actions').put(q.ports.get('a')!, { op: 'PROBE_MARK', arg: 0, user0: 0, log: 0 });
  const f: Fixture = { rt, d: rt.cube('d'), q, gen: rt.host.currentGen, netns: ns.path };
  configure(f, CONFIG);
  return f;
}

function configure(f: Fixture, config: DispatcherConfig): void {
  const tables = compileDispatcher(config, { ports: Object.fromEntries(f.d.ports), gatewayMac: GATEWAY_MAC });
  for (const [name, entries] of Object.entries(tables)) f.d.table(name).putBatch(entries);
}

const into = (port: 'ext' | 'int') => (f: Fixture): Metadata => entering(f.d.ports.get(port)!, f.d.id, f.gen);
const EXT = into('ext');
const INT = into('int');

/** Sends frames through the cube first, each its way. */
const sent = (...frames: [Buffer, typeof EXT][]) => async (f: Fixture, mode: Mode) => {
  for (const [frame, md] of frames) {
    const res = await runProgram(f.d.program(), mode, frame, md(f), { netns: f.netns });
    if (res.verdict === 'drop') throw new Error('a setup packet was dropped');
  }
};

const mapped = (a: string): string => `::ffff:${a}`;
const PROTO = { tcp: 6, udp: 17, icmp: 1 } as const;

/** The port (ICMP: identifier) a session gives the flow arriving `dir` from src:sport to dst:dport. */
function sessionPort(f: Fixture, dir: number, proto: keyof typeof PROTO, src: string, sport: number, dst: string, dport: number): number {
  const s = f.d.table('nat_sessions').get({ saddr: mapped(src), daddr: mapped(dst), sport, dport, proto: PROTO[proto], dir, pad: 0 }) as { port: number } | undefined;
  if (!s) throw new Error(`no session for ${proto} ${src}:${sport} -> ${dst}:${dport}`);
  return s.port;
}
const masqueradePort = (f: Fixture, proto: keyof typeof PROTO, sport: number, dport: number, dst = OUTSIDE): number => sessionPort(f, DIR_EGRESS, proto, POD, sport, dst, dport);
const snatPort = (f: Fixture, proto: keyof typeof PROTO, sport: number, dport: number): number => sessionPort(f, DIR_INGRESS, proto, CLIENT, sport, NODE, dport);

const COUNTERS = ['masqueraded', 'nodePortSnat', 'nodePortLocal', 'toKernel', 'arpAnswered', 'noRoute', 'noNeighbour', 'noPort', 'invalid', 'notOurs'] as const;
const counted = (want: Partial<Record<(typeof COUNTERS)[number], number>>) => (t: ExecutionContext, f: Fixture) => {
  const sum = (i: number) => (f.d.table('disp_counters').get(i) as number[]).reduce((a, b) => a + Number(b), 0);
  t.like(Object.fromEntries(COUNTERS.map((name, i) => [name, sum(i)])), want);
};

const inRange = (t: ExecutionContext, port: number) => t.true(port >= PORTS.first && port <= PORTS.last, `port ${port}`);

// MACs: from the router into the dispatcher, from the dispatcher to the router,
// out of the uplink (n0 to its gateway), in from the uplink.
const FROM_ROUTER = { src: ROUTER_MAC, dst: GATEWAY_MAC };
const TO_ROUTER = { src: GATEWAY_MAC, dst: ROUTER_MAC };
const OUT = { src: MAC_A, dst: MAC_B };
const IN = { src: MAC_B, dst: MAC_A };

const pod = (dst = OUTSIDE): Ends => ({ src: POD, dst, macs: FROM_ROUTER });
const udpOut = udpFrame(pod(), 5353, 53);
const synOut = tcpFrame(pod(), 40000, 443, TcpFlags.SYN);
const nodePortSyn = tcpFrame({ src: CLIENT, dst: NODE, macs: IN }, 40000, 30080, TcpFlags.SYN);

const rows: Row<Fixture>[] = [
  // ------------------------------------------------------------- masquerade
  {
    description: 'masquerade: a pod\'s UDP to the outside leaves from the node\'s address and a masquerade port, to the route\'s neighbour',
    input: udpOut,
    md: INT,
    verdict: 'redirect',
    output: (f) => udpFrame({ src: NODE, dst: OUTSIDE, macs: OUT }, masqueradePort(f, 'udp', 5353, 53), 53),
    check: (t, f) => {
      inRange(t, masqueradePort(f, 'udp', 5353, 53));
      counted({ masqueraded: 1 })(t, f);
    },
  },
  {
    description: 'masquerade: the answer comes back to the pod, into the chain to the router\'s MAC',
    setup: sent([udpOut, INT]),
    input: (f) => udpFrame({ src: OUTSIDE, dst: NODE, macs: IN }, 53, masqueradePort(f, 'udp', 5353, 53)),
    md: EXT,
    verdict: 'mark',
    output: udpFrame({ src: OUTSIDE, dst: POD, macs: TO_ROUTER }, 53, 5353),
  },
  {
    description: 'masquerade: more of the flow keeps its port',
    setup: sent([udpOut, INT]),
    input: udpOut,
    md: INT,
    verdict: 'redirect',
    output: (f) => udpFrame({ src: NODE, dst: OUTSIDE, macs: OUT }, masqueradePort(f, 'udp', 5353, 53), 53),
    check: counted({ masqueraded: 1 }),
  },
  {
    description: 'masquerade: a TCP SYN out ...',
    input: synOut,
    md: INT,
    verdict: 'redirect',
    output: (f) => tcpFrame({ src: NODE, dst: OUTSIDE, macs: OUT }, masqueradePort(f, 'tcp', 40000, 443), 443, TcpFlags.SYN),
  },
  {
    description: 'masquerade: ... and its SYN-ACK back in',
    setup: sent([synOut, INT]),
    input: (f) => tcpFrame({ src: OUTSIDE, dst: NODE, macs: IN }, 443, masqueradePort(f, 'tcp', 40000, 443), TcpFlags.SYN | TcpFlags.ACK),
    md: EXT,
    verdict: 'mark',
    output: tcpFrame({ src: OUTSIDE, dst: POD, macs: TO_ROUTER }, 443, 40000, TcpFlags.SYN | TcpFlags.ACK),
  },
  {
    description: 'masquerade: ICMP echo takes a masquerade identifier ...',
    input: echoRequest(pod(), 77),
    md: INT,
    verdict: 'redirect',
    output: (f) => echoRequest({ src: NODE, dst: OUTSIDE, macs: OUT }, masqueradePort(f, 'icmp', 77, 77)),
  },
  {
    description: 'masquerade: ... and the reply gets the pod\'s back',
    setup: sent([echoRequest(pod(), 77), INT]),
    input: (f) => echoReply({ src: OUTSIDE, dst: NODE, macs: IN }, masqueradePort(f, 'icmp', 77, 77)),
    md: EXT,
    verdict: 'mark',
    output: echoReply({ src: OUTSIDE, dst: POD, macs: TO_ROUTER }, 77),
  },
  {
    description: 'masquerade: an ICMP error about a masqueraded flow reaches the pod, its quoted packet translated back',
    setup: sent([udpOut, INT]),
    input: (f) => icmpErrorAbout({ src: HOP, dst: NODE, macs: IN }, udpFrame({ src: NODE, dst: OUTSIDE, macs: OUT }, masqueradePort(f, 'udp', 5353, 53), 53)),
    md: EXT,
    verdict: 'mark',
    output: icmpErrorAbout({ src: HOP, dst: POD, macs: TO_ROUTER }, udpOut),
  },
  {
    description: 'a TCP segment of no flow from a pod cannot open one: dropped and counted',
    input: tcpFrame(pod(), 40000, 443, TcpFlags.ACK),
    md: INT,
    verdict: 'drop',
    check: counted({ invalid: 1, masqueraded: 0 }),
  },
  {
    description: 'a pod\'s packet to another pod\'s address is not the edge\'s: dropped, never out with a pod\'s address',
    input: udpFrame(pod(OTHER_POD), 5353, 53),
    md: INT,
    verdict: 'drop',
    check: counted({ notOurs: 1, masqueraded: 0 }),
  },
  {
    description: 'TC: a next hop without a neighbour entry goes to the kernel to resolve it (bpf_redirect_neigh)',
    modes: ['tc'],
    input: udpFrame(pod(ON_LINK), 5353, 53),
    md: INT,
    verdict: 'redirect',
    output: (f) => udpFrame({ src: NODE, dst: ON_LINK, macs: FROM_ROUTER }, masqueradePort(f, 'udp', 5353, 53, ON_LINK), 53),
  },
  {
    description: 'XDP: a next hop without a neighbour entry: dropped and counted',
    modes: ['xdp'],
    input: udpFrame(pod(ON_LINK), 5353, 53),
    md: INT,
    verdict: 'drop',
    output: (f) => udpFrame({ src: NODE, dst: ON_LINK, macs: FROM_ROUTER }, masqueradePort(f, 'udp', 5353, 53, ON_LINK), 53),
    check: counted({ noNeighbour: 1 }),
  },
  // ------------------------------------------------------------- NodePort
  {
    description: 'NodePort, policy Cluster: the client\'s SYN goes in from the cluster SNAT address and a port',
    input: nodePortSyn,
    md: EXT,
    verdict: 'mark',
    output: (f) => tcpFrame({ src: SNAT, dst: NODE, macs: TO_ROUTER }, snatPort(f, 'tcp', 40000, 30080), 30080, TcpFlags.SYN),
    check: (t, f) => {
      inRange(t, snatPort(f, 'tcp', 40000, 30080));
      counted({ nodePortSnat: 1, toKernel: 0 })(t, f);
    },
  },
  {
    description: 'NodePort, policy Cluster: the answer goes back out to the client, from the NodePort',
    setup: sent([nodePortSyn, EXT]),
    input: (f) => tcpFrame({ src: NODE, dst: SNAT, macs: FROM_ROUTER }, 30080, snatPort(f, 'tcp', 40000, 30080), TcpFlags.SYN | TcpFlags.ACK),
    md: INT,
    verdict: 'redirect',
    output: tcpFrame({ src: NODE, dst: CLIENT, macs: OUT }, 30080, 40000, TcpFlags.SYN | TcpFlags.ACK),
  },
  {
    description: 'NodePort, policy Cluster, UDP: in from the cluster SNAT address',
    input: udpFrame({ src: CLIENT, dst: NODE, macs: IN }, 5000, 30054),
    md: EXT,
    verdict: 'mark',
    output: (f) => udpFrame({ src: SNAT, dst: NODE, macs: TO_ROUTER }, snatPort(f, 'udp', 5000, 30054), 30054),
  },
  {
    description: 'NodePort, policy Local: in with the client\'s address',
    input: udpFrame({ src: CLIENT, dst: NODE, macs: IN }, 5000, 30053),
    md: EXT,
    verdict: 'mark',
    output: udpFrame({ src: CLIENT, dst: NODE, macs: TO_ROUTER }, 5000, 30053),
    check: counted({ nodePortLocal: 1, nodePortSnat: 0 }),
  },
  {
    description: 'NodePort, policy Local: the answer (the node\'s address, from the NodePort lbrp) goes out as it is',
    input: udpFrame({ src: NODE, dst: CLIENT, macs: FROM_ROUTER }, 30053, 5000),
    md: INT,
    verdict: 'redirect',
    output: udpFrame({ src: NODE, dst: CLIENT, macs: OUT }, 30053, 5000),
  },
  // ------------------------------------------------------------- the node's own
  ...(
    [
      ['SSH to the node', tcpFrame({ src: CLIENT, dst: NODE, macs: IN }, 40000, 22, TcpFlags.SYN)],
      ['VXLAN to the node', udpFrame({ src: '192.0.2.2', dst: NODE, macs: IN }, 40000, 4789)],
      ['a ping to the node', echoRequest({ src: CLIENT, dst: NODE, macs: IN }, 9)],
      ['a NodePort\'s port on UDP where it is TCP', udpFrame({ src: CLIENT, dst: NODE, macs: IN }, 5000, 30080)],
      ['a packet to another address', udpFrame({ src: CLIENT, dst: '192.0.2.9', macs: IN }, 5000, 30053)],
      ['ARP for the node', ethernet({ src: MAC_B, dst: 'ff:ff:ff:ff:ff:ff', payload: arp({ op: ArpOp.REQUEST, senderMac: MAC_B, senderIp: '192.0.2.254', targetIp: NODE }) })],
    ] as const
  ).map(
    ([what, frame]): Row<Fixture> => ({
      description: `the node's own: ${what} goes to the node's kernel untouched`,
      input: frame,
      md: EXT,
      verdict: 'pass',
      check: counted({ toKernel: 1 }),
    }),
  ),
  {
    description: 'not configured yet: even NodePort traffic goes to the node\'s kernel (a new dispatcher never cuts the node off)',
    setup: (f) => f.d.table('disp_config').put(0, { ...(f.d.table('disp_config').get(0) as object), configured: 0 }),
    input: nodePortSyn,
    md: EXT,
    verdict: 'pass',
  },
  {
    description: 'not configured yet: nothing from the chain gets out',
    setup: (f) => f.d.table('disp_config').put(0, { ...(f.d.table('disp_config').get(0) as object), configured: 0 }),
    input: udpOut,
    md: INT,
    verdict: 'drop',
  },
  // ------------------------------------------------------------- ARP
  {
    description: 'ARP: the router\'s request for its gateway is answered with the dispatcher\'s MAC, back into the chain',
    input: ethernet({ src: ROUTER_MAC, dst: 'ff:ff:ff:ff:ff:ff', payload: arp({ op: ArpOp.REQUEST, senderMac: ROUTER_MAC, senderIp: ROUTER, targetIp: GATEWAY }) }),
    md: INT,
    verdict: 'mark',
    output: ethernet({ src: GATEWAY_MAC, dst: ROUTER_MAC, payload: arp({ op: ArpOp.REPLY, senderMac: GATEWAY_MAC, senderIp: GATEWAY, targetMac: ROUTER_MAC, targetIp: ROUTER }) }),
    check: counted({ arpAnswered: 1 }),
  },
  {
    description: 'ARP: a request for another address is dropped',
    input: ethernet({ src: ROUTER_MAC, dst: 'ff:ff:ff:ff:ff:ff', payload: arp({ op: ArpOp.REQUEST, senderMac: ROUTER_MAC, senderIp: ROUTER, targetIp: '169.254.1.3' }) }),
    md: INT,
    verdict: 'drop',
    check: counted({ arpAnswered: 0 }),
  },
];

table(rows, fixture, (f) => f.d.program(), (f) => f.netns);

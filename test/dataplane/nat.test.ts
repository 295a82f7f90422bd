// nat: a transparent cube on the outside netdev that translates: going out, SNAT
// rules give inside sources the rule's address and a port from its range; coming
// in, DNAT rules forward an outside address (and port) inside; answers go back
// translated, ICMP errors too (their quoted packet with them), checksums patched
// incrementally. Rules come from the translator (remote-services/nat/tables.ts).
//
// Fixture: netdev n0 (the outside) linked to port a of probe cube q (which marks
// what it receives), nat g stacked on n0 both ways: coming in, g sends on to q:a
// (verdict mark); going out, to n0 (redirect). Expected frames are built whole,
// with their checksums, by the packet library: a rewrite matches only when every
// checksum was patched right.
import type { ExecutionContext } from 'ava';
import { DIR_EGRESS, DIR_INGRESS, Metadata } from '../../node-daemon/src/runtime/abi';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { compileNat, type NatConfig, translations } from '@netcube/nat/tables';
import { stackedCube, type StackedFixture } from '../helpers/catalog';
import { entering, runProgram } from '../helpers/dataplane';
import { echoReply, echoRequest, icmpErrorAbout, MAC_A, MAC_B, TcpFlags, tcpFrame, udpFrame, type Ends } from '../helpers/flows';
import { fixtureLimit } from '../helpers/limit';
import { table, type Row } from '../helpers/rows';

type Fixture = StackedFixture;

const PUBLIC = '203.0.113.1';
const PUBLIC2 = '203.0.113.2';
const REMOTE = '198.51.100.7';
const INSIDE = '10.0.0.10';
const SERVER = '10.0.0.5';
const PUBLIC6 = '2001:db8::1';
const REMOTE6 = '2001:db8:ffff::7';
const INSIDE6 = 'fd00::10';

const CONFIG: NatConfig = {
  snat: [
    { from: '10.0.0.0/24', masquerade: true, ports: '20000-20099' },
    { from: 'fd00::/64', to: PUBLIC6 },
  ],
  dnat: [
    { address: PUBLIC, protocol: 'tcp', port: 8080, to: SERVER, toPort: 80 },
    { address: PUBLIC2, to: '10.0.0.6' },
  ],
};

/** Fixtures alive at once: see helpers/limit. */
const place = fixtureLimit(6);

async function fixture(t: ExecutionContext, mode: Mode): Promise<Fixture> {
  await place(t);
  const f = await stackedCube(t, mode, 'nat');
  configure(f, CONFIG);
  return f;
}

function configure(f: Fixture, config: NatConfig): void {
  const tables = compileNat(config, { masqueradeAddress: PUBLIC });
  for (const name of ['nat_snat_rules', 'nat_dnat_rules'] as const) {
    const t = f.g.table(name);
    for (const { key } of [...t.entries()]) t.delete(key);
    for (const e of tables[name]) t.put(e.key, e.value);
  }
}

const going = (dir: number) => (f: Fixture): Metadata => entering(dir, f.g.id, f.gen);
const OUT = going(DIR_EGRESS);
const IN = going(DIR_INGRESS);

/** Sends frames through the cube first, each its way. */
const sent = (...frames: [Buffer, typeof OUT][]) => async (f: Fixture, mode: Mode) => {
  for (const [frame, md] of frames) {
    const res = await runProgram(f.g.program(), mode, frame, md(f));
    if (res.verdict === 'drop') throw new Error('a setup packet was dropped');
  }
};

const mapped = (a: string): string => (a.includes(':') ? a : `::ffff:${a}`);
const PROTO = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 } as const;

/** The port (or ICMP identifier) a flow going out got, from its egress session. */
function outsidePort(f: Fixture, proto: keyof typeof PROTO, src: string, sport: number, dst: string, dport: number): number {
  const s = f.g.table('nat_sessions').get({ saddr: mapped(src), daddr: mapped(dst), sport, dport, proto: PROTO[proto], dir: DIR_EGRESS, pad: 0 }) as { port: number } | undefined;
  if (!s) throw new Error(`no session for ${proto} ${src}:${sport} -> ${dst}:${dport}`);
  return s.port;
}

const counters = (f: Fixture): number[] => {
  const perCpu = (i: number) => (f.g.table('nat_counters').get(i) as number[]).reduce((a, b) => a + b, 0);
  return [0, 1, 2, 3, 4].map(perCpu);
};
const counted = (want: Partial<Record<'snat' | 'dnat' | 'noPort' | 'invalid' | 'icmpErrors', number>>) => (t: ExecutionContext, f: Fixture) => {
  const [snat, dnat, noPort, invalid, icmpErrors] = counters(f);
  t.like({ snat, dnat, noPort, invalid, icmpErrors }, want);
};

const inside: Ends = { src: INSIDE, dst: REMOTE };
const fromRemote = (dst: string): Ends => ({ src: REMOTE, dst, macs: { src: MAC_B, dst: MAC_A } });
const udpOut = udpFrame(inside, 5353, 53);
const synOut = tcpFrame(inside, 40000, 443, TcpFlags.SYN);

const rows: Row<Fixture>[] = [
  // ------------------------------------------------------------- SNAT
  {
    description: 'SNAT: UDP going out takes the masquerade address and a port of the rule\'s range',
    input: udpOut,
    md: OUT,
    verdict: 'redirect',
    output: (f) => udpFrame({ src: PUBLIC, dst: REMOTE }, outsidePort(f, 'udp', INSIDE, 5353, REMOTE, 53), 53),
    check: (t, f) => {
      const port = outsidePort(f, 'udp', INSIDE, 5353, REMOTE, 53);
      t.true(port >= 20000 && port <= 20099, `port ${port}`);
      t.deepEqual(translations([...f.g.table('nat_sessions').entries()]), [{ protocol: 'udp', inside: `${INSIDE}:5353`, outside: `${PUBLIC}:${port}`, peer: `${REMOTE}:53` }]);
      counted({ snat: 1, dnat: 0 })(t, f);
    },
  },
  {
    description: 'SNAT: the answer comes back to the inside address and port',
    setup: sent([udpOut, OUT]),
    input: (f) => udpFrame(fromRemote(PUBLIC), 53, outsidePort(f, 'udp', INSIDE, 5353, REMOTE, 53)),
    md: IN,
    verdict: 'mark',
    output: udpFrame({ src: REMOTE, dst: INSIDE, macs: { src: MAC_B, dst: MAC_A } }, 53, 5353),
  },
  {
    description: 'SNAT: more of the flow keeps its port',
    setup: sent([udpOut, OUT]),
    input: udpOut,
    md: OUT,
    verdict: 'redirect',
    output: (f) => udpFrame({ src: PUBLIC, dst: REMOTE }, outsidePort(f, 'udp', INSIDE, 5353, REMOTE, 53), 53),
    check: counted({ snat: 1 }),
  },
  {
    description: 'SNAT: TCP, the SYN out ...',
    input: synOut,
    md: OUT,
    verdict: 'redirect',
    output: (f) => tcpFrame({ src: PUBLIC, dst: REMOTE }, outsidePort(f, 'tcp', INSIDE, 40000, REMOTE, 443), 443, TcpFlags.SYN),
  },
  {
    description: 'SNAT: ... and the SYN-ACK back in',
    setup: sent([synOut, OUT]),
    input: (f) => tcpFrame(fromRemote(PUBLIC), 443, outsidePort(f, 'tcp', INSIDE, 40000, REMOTE, 443), TcpFlags.SYN | TcpFlags.ACK),
    md: IN,
    verdict: 'mark',
    output: tcpFrame({ src: REMOTE, dst: INSIDE, macs: { src: MAC_B, dst: MAC_A } }, 443, 40000, TcpFlags.SYN | TcpFlags.ACK),
  },
  {
    description: 'SNAT: ICMP echo takes an identifier as its port; the reply gets its own back',
    setup: sent([echoRequest(inside, 77), OUT]),
    input: (f) => echoReply(fromRemote(PUBLIC), outsidePort(f, 'icmp', INSIDE, 77, REMOTE, 77)),
    md: IN,
    verdict: 'mark',
    output: echoReply({ src: REMOTE, dst: INSIDE, macs: { src: MAC_B, dst: MAC_A } }, 77),
  },
  {
    description: 'SNAT: the echo request itself goes out with the new identifier',
    input: echoRequest(inside, 77),
    md: OUT,
    verdict: 'redirect',
    output: (f) => echoRequest({ src: PUBLIC, dst: REMOTE }, outsidePort(f, 'icmp', INSIDE, 77, REMOTE, 77)),
  },
  {
    description: 'SNAT, IPv6: to the rule\'s address, a port of the default range',
    input: udpFrame({ src: INSIDE6, dst: REMOTE6 }, 5353, 53),
    md: OUT,
    verdict: 'redirect',
    output: (f) => udpFrame({ src: PUBLIC6, dst: REMOTE6 }, outsidePort(f, 'udp', INSIDE6, 5353, REMOTE6, 53), 53),
    check: (t, f) => t.true(outsidePort(f, 'udp', INSIDE6, 5353, REMOTE6, 53) >= 1024),
  },
  {
    description: 'SNAT, IPv6: the answer comes back',
    setup: sent([udpFrame({ src: INSIDE6, dst: REMOTE6 }, 5353, 53), OUT]),
    input: (f) => udpFrame({ src: REMOTE6, dst: PUBLIC6, macs: { src: MAC_B, dst: MAC_A } }, 53, outsidePort(f, 'udp', INSIDE6, 5353, REMOTE6, 53)),
    md: IN,
    verdict: 'mark',
    output: udpFrame({ src: REMOTE6, dst: INSIDE6, macs: { src: MAC_B, dst: MAC_A } }, 53, 5353),
  },
  {
    description: 'a source no SNAT rule names goes out untouched',
    input: udpFrame({ src: '10.1.0.1', dst: REMOTE }, 5353, 53),
    md: OUT,
    verdict: 'redirect',
    check: counted({ snat: 0 }),
  },
  {
    description: 'a TCP segment of no flow from a translated source cannot be translated: dropped and counted',
    input: tcpFrame(inside, 40000, 443, TcpFlags.ACK),
    md: OUT,
    verdict: 'drop',
    check: counted({ invalid: 1, snat: 0 }),
  },
  {
    description: 'ports run out: a flow that finds none free is dropped and counted',
    setup: async (f, mode) => {
      configure(f, { snat: [{ from: '10.0.0.0/24', to: PUBLIC, ports: '30000-30001' }] });
      await sent([udpFrame({ src: '10.0.0.1', dst: REMOTE }, 1000, 53), OUT], [udpFrame({ src: '10.0.0.2', dst: REMOTE }, 1000, 53), OUT])(f, mode);
    },
    input: udpFrame({ src: '10.0.0.3', dst: REMOTE }, 1000, 53),
    md: OUT,
    verdict: 'drop',
    check: (t, f) => {
      counted({ snat: 2, noPort: 1 })(t, f);
      const ports = ['10.0.0.1', '10.0.0.2'].map((src) => outsidePort(f, 'udp', src, 1000, REMOTE, 53)).sort();
      t.deepEqual(ports, [30000, 30001], 'two flows, two ports');
    },
  },
  {
    description: 'a flow whose connection expired frees its port for the next flow',
    setup: async (f, mode) => {
      configure(f, { snat: [{ from: '10.0.0.0/24', to: PUBLIC, ports: '30000-30000' }] });
      await sent([udpFrame({ src: '10.0.0.1', dst: REMOTE }, 1000, 53), OUT])(f, mode);
      const ct = f.g.table('nat_ct');
      for (const { key, value } of [...ct.entries()]) ct.put(key, { ...(value as object), expires_ns: 1 });
    },
    input: udpFrame({ src: '10.0.0.2', dst: REMOTE }, 1000, 53),
    md: OUT,
    verdict: 'redirect',
    output: udpFrame({ src: PUBLIC, dst: REMOTE }, 30000, 53),
    check: counted({ snat: 2, noPort: 0 }),
  },

  // ------------------------------------------------------------- DNAT
  {
    description: 'port forwarding: a SYN to the public address and port goes to the inside server\'s',
    input: tcpFrame(fromRemote(PUBLIC), 50000, 8080, TcpFlags.SYN),
    md: IN,
    verdict: 'mark',
    output: tcpFrame({ src: REMOTE, dst: SERVER, macs: { src: MAC_B, dst: MAC_A } }, 50000, 80, TcpFlags.SYN),
    check: counted({ dnat: 1 }),
  },
  {
    description: 'port forwarding: the server\'s answer goes out from the public address and port',
    setup: sent([tcpFrame(fromRemote(PUBLIC), 50000, 8080, TcpFlags.SYN), IN]),
    input: tcpFrame({ src: SERVER, dst: REMOTE }, 80, 50000, TcpFlags.SYN | TcpFlags.ACK),
    md: OUT,
    verdict: 'redirect',
    output: tcpFrame({ src: PUBLIC, dst: REMOTE }, 8080, 50000, TcpFlags.SYN | TcpFlags.ACK),
  },
  {
    description: 'DNAT of a whole address: any port goes to the inside host, unchanged',
    input: udpFrame(fromRemote(PUBLIC2), 4000, 7000),
    md: IN,
    verdict: 'mark',
    output: udpFrame({ src: REMOTE, dst: '10.0.0.6', macs: { src: MAC_B, dst: MAC_A } }, 4000, 7000),
  },
  {
    description: 'to the public address, a port nothing forwards: untouched (for the host itself)',
    input: tcpFrame(fromRemote(PUBLIC), 50000, 22, TcpFlags.SYN),
    md: IN,
    verdict: 'mark',
    check: counted({ dnat: 0 }),
  },
  {
    description: 'a forwarded port without a connection (an ACK) is dropped',
    input: tcpFrame(fromRemote(PUBLIC), 50000, 8080, TcpFlags.ACK),
    md: IN,
    verdict: 'drop',
    check: counted({ invalid: 1 }),
  },

  // ------------------------------------------------------------- ICMP errors
  {
    description: 'an ICMP error about a translated flow: translated back, the quoted packet as it left the inside',
    setup: sent([udpOut, OUT]),
    input: (f) => {
      const sentOut = udpFrame({ src: PUBLIC, dst: REMOTE }, outsidePort(f, 'udp', INSIDE, 5353, REMOTE, 53), 53);
      return icmpErrorAbout({ src: '192.0.2.254', dst: PUBLIC, macs: { src: MAC_B, dst: MAC_A } }, sentOut);
    },
    md: IN,
    verdict: 'mark',
    output: icmpErrorAbout({ src: '192.0.2.254', dst: INSIDE, macs: { src: MAC_B, dst: MAC_A } }, udpOut),
    check: counted({ icmpErrors: 1 }),
  },
  {
    description: 'an ICMP error from inside about a forwarded flow: from the public address, quoting what the outside sent',
    setup: sent([tcpFrame(fromRemote(PUBLIC), 50000, 8080, TcpFlags.SYN), IN]),
    input: icmpErrorAbout({ src: SERVER, dst: REMOTE }, tcpFrame({ src: REMOTE, dst: SERVER }, 50000, 80, TcpFlags.SYN)),
    md: OUT,
    verdict: 'redirect',
    output: icmpErrorAbout({ src: PUBLIC, dst: REMOTE }, tcpFrame({ src: REMOTE, dst: PUBLIC }, 50000, 8080, TcpFlags.SYN)),
  },
  {
    description: 'IPv6: packet too big about a translated flow, translated back',
    setup: sent([udpFrame({ src: INSIDE6, dst: REMOTE6 }, 5353, 53), OUT]),
    input: (f) => {
      const sentOut = udpFrame({ src: PUBLIC6, dst: REMOTE6 }, outsidePort(f, 'udp', INSIDE6, 5353, REMOTE6, 53), 53);
      return icmpErrorAbout({ src: '2001:db8:fe::1', dst: PUBLIC6, macs: { src: MAC_B, dst: MAC_A } }, sentOut);
    },
    md: IN,
    verdict: 'mark',
    output: icmpErrorAbout({ src: '2001:db8:fe::1', dst: INSIDE6, macs: { src: MAC_B, dst: MAC_A } }, udpFrame({ src: INSIDE6, dst: REMOTE6 }, 5353, 53)),
  },
  {
    description: 'an ICMP error about no translated flow goes through untouched',
    input: icmpErrorAbout({ src: '192.0.2.254', dst: PUBLIC, macs: { src: MAC_B, dst: MAC_A } }, udpFrame({ src: PUBLIC, dst: REMOTE }, 1, 2)),
    md: IN,
    verdict: 'mark',
    check: counted({ icmpErrors: 0 }),
  },
];

table(rows, fixture, (f) => f.g.program());

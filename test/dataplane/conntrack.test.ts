// Connection tracking (bpf/include/netcube/conntrack.h), through ctprobe: a test
// cube that tracks every packet, commits what is new, and leaves the verdict in
// the metadata: user[0] the state (NEW 0, ESTABLISHED 1, RELATED 2, INVALID 3,
// UNTRACKED 4), user[1] the direction (ORIGINAL 0, REPLY 1), user[2] the flow's
// TCP state (NONE 0, SYN_SENT 1, SYN_RECV 2, ESTABLISHED 3, FIN_WAIT 4,
// TIME_WAIT 5, CLOSE 6) or 0xff when it has no entry.
//
// Each row's setup sends the packets before it through the same cube; the row's
// input is the packet whose verdict is checked, and its check reads the table.
// Fixture: ctprobe c with one port, p.
import type { ExecutionContext } from 'ava';
import { Metadata } from '../../node-daemon/src/runtime/abi';
import type { Cube } from '../../node-daemon/src/runtime/cube';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { arp, ArpOp, ethernet, ipv4, neighborSolicitation, tcp } from '@netcube/sdk/packet';
import { createHostNetns, entering, openRuntime, registerTestType, runProgram } from '../helpers/dataplane';
import { echoReply, echoRequest, icmpErrorAbout, icmpFrame, ipFrame, MAC_A, MAC_B, rawFrame, TcpFlags, tcpFrame, udpFrame } from '../helpers/flows';
import { fixtureLimit } from '../helpers/limit';
import { table, type Row } from '../helpers/rows';

interface Fixture {
  rt: Runtime;
  c: Cube;
  gen: number;
  /** CLOCK_MONOTONIC when the fixture was ready, before the row's first packet. */
  readyNs: bigint;
}

/** Fixtures alive at once: see helpers/limit. */
const place = fixtureLimit(6);

async function fixture(t: ExecutionContext, mode: Mode): Promise<Fixture> {
  await place(t);
  const ns = await createHostNetns(t);
  const rt = await openRuntime(t, { netns: ns.path });
  await registerTestType(rt, 'ctprobe');
  await rt.apply({ cubes: [{ name: 'c', type: 'ctprobe', mode, ports: ['p'], logLevel: 'info' }], links: [], stacks: [] });
  return { rt, c: rt.cube('c'), gen: rt.host.currentGen, readyNs: process.hrtime.bigint() };
}

const NEW = 0, ESTABLISHED = 1, RELATED = 2, INVALID = 3, UNTRACKED = 4;
const ORIGINAL = 0, REPLY = 1;
const T = { NONE: 0, SYN_SENT: 1, SYN_RECV: 2, ESTABLISHED: 3, FIN_WAIT: 4, TIME_WAIT: 5, CLOSE: 6, NO_ENTRY: 0xff };
const TCP_STATES = ['NC_CT_TCP_NONE', 'NC_CT_TCP_SYN_SENT', 'NC_CT_TCP_SYN_RECV', 'NC_CT_TCP_ESTABLISHED', 'NC_CT_TCP_FIN_WAIT', 'NC_CT_TCP_TIME_WAIT', 'NC_CT_TCP_CLOSE'];

const into = (f: Fixture): Metadata => entering(f.c.ports.get('p')!, f.c.id, f.gen);
const verdict = (state: number, dir: number, tcpState: number) => (f: Fixture): Metadata => ({ ...into(f), user: [state, dir, tcpState] });

/** Sends `frames` through the cube first, in order. */
const after = (...frames: Buffer[]) => async (f: Fixture, mode: Mode) => {
  for (const frame of frames) {
    const res = await runProgram(f.c.program(), mode, frame, into(f));
    if (res.verdict !== 'mark') throw new Error(`setup packet: verdict ${res.verdict}`);
  }
};

interface Entry {
  key: { addr_a: string; addr_b: string; port_a: number; port_b: number; proto: number };
  value: { expires_ns: number | string; tcp: string; opened_by_b: number; seen_reply: number; fin_original: number; fin_reply: number };
}
const entries = (f: Fixture): Entry[] => [...f.c.table('ctprobe_flows').entries()] as Entry[];

/** The table holds exactly one flow, `key`, in `tcp` state, given `seconds` to live by the row's last packet. */
const oneFlow = (key: Entry['key'], value: Partial<Omit<Entry['value'], 'expires_ns'>>, seconds: number) => (t: ExecutionContext, f: Fixture) => {
  const now = process.hrtime.bigint();
  const all = entries(f);
  t.is(all.length, 1, `one entry for both directions: ${JSON.stringify(all)}`);
  t.deepEqual(all[0].key, { ...key, pad: [0, 0, 0] } as Entry['key']);
  t.like(all[0].value, value);
  // That packet went through between the fixture's readiness and now, however
  // long the row took on a busy machine; the coarse clock lags by a tick (10 ms at most).
  const ttl = BigInt(seconds) * 1_000_000_000n;
  const expires = BigInt(all[0].value.expires_ns);
  const s = (ns: bigint): string => (Number(ns) / 1e9).toFixed(2);
  t.true(expires >= f.readyNs + ttl - 10_000_000n && expires <= now + ttl, `expires ${s(expires - f.readyNs)} s after the row began and ${s(expires - now)} s from now, expected ${seconds} s after one of its packets`);
};
const noFlows = (t: ExecutionContext, f: Fixture) => t.deepEqual(entries(f), []);

// 10.0.0.1 sorts before 10.0.0.2: the client is end a of its flows.
const C4 = '10.0.0.1', S4 = '10.0.0.2';
const C6 = 'fd00::1', S6 = 'fd00::2';
const out4 = { src: C4, dst: S4 };
const back4 = { src: S4, dst: C4, macs: { src: MAC_B, dst: MAC_A } };
const out6 = { src: C6, dst: S6 };
const back6 = { src: S6, dst: C6, macs: { src: MAC_B, dst: MAC_A } };

const syn = tcpFrame(out4, 40000, 80, TcpFlags.SYN);
const synAck = tcpFrame(back4, 80, 40000, TcpFlags.SYN | TcpFlags.ACK);
const ack = tcpFrame(out4, 40000, 80, TcpFlags.ACK);
const data = tcpFrame(back4, 80, 40000, TcpFlags.ACK | TcpFlags.PSH, Buffer.from('hello'));
const finOut = tcpFrame(out4, 40000, 80, TcpFlags.FIN | TcpFlags.ACK);
const finBack = tcpFrame(back4, 80, 40000, TcpFlags.FIN | TcpFlags.ACK);
const rst = tcpFrame(back4, 80, 40000, TcpFlags.RST);
const handshake = [syn, synAck, ack];
const tcpKey4 = { addr_a: `::ffff:${C4}`, addr_b: `::ffff:${S4}`, port_a: 40000, port_b: 80, proto: 6 };

const udpOut = udpFrame(out4, 5353, 53);
const udpBack = udpFrame(back4, 53, 5353);

/** A copy of an IPv4 frame that is a fragment at `offset` bytes. */
function laterFragment(frame: Buffer, offset: number): Buffer {
  const out = Buffer.from(frame);
  out.writeUInt16BE(offset / 8, 14 + 6);
  const ihl = (out[14] & 0x0f) * 4;
  out.writeUInt16BE(0, 14 + 10);
  let sum = 0;
  for (let i = 0; i < ihl; i += 2) sum += out.readUInt16BE(14 + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  out.writeUInt16BE(~sum & 0xffff, 14 + 10);
  return out;
}

/** IPv6 with a hop-by-hop options header (8 bytes of padding) before TCP. */
function withHopByHop(src: string, dst: string, sport: number, dport: number, flags: number): Buffer {
  const segment = tcp({ sport, dport, flags, seq: 1 });
  const plain = ipFrame({ src, dst }, segment);
  const tcpBytes = plain.subarray(14 + 40);
  const hbh = Buffer.from([6, 0, 1, 4, 0, 0, 0, 0]); // next header TCP, length 0 (8 bytes), PadN
  return ipFrame({ src, dst }, Buffer.concat([hbh, tcpBytes]), 0);
}

const rows: Row<Fixture>[] = [
  // ------------------------------------------------------------- TCP
  {
    description: 'TCP: a SYN opens a flow: new, original, SYN_SENT, for the SYN timeout (60 s)',
    input: syn,
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.SYN_SENT),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.SYN_SENT], opened_by_b: 0, seen_reply: 0 }, 60),
  },
  {
    description: 'TCP: the SYN-ACK is established, in reply, and finds the same entry',
    setup: after(syn),
    input: synAck,
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.SYN_RECV),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.SYN_RECV], seen_reply: 1 }, 60),
  },
  {
    description: 'TCP: the handshake\'s ACK establishes the connection, for 6 hours',
    setup: after(syn, synAck),
    input: ack,
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, ORIGINAL, T.ESTABLISHED),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.ESTABLISHED], seen_reply: 1 }, 21600),
  },
  {
    description: 'TCP: data both ways after the handshake is established',
    setup: after(...handshake),
    input: data,
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.ESTABLISHED),
  },
  {
    description: 'TCP: a retransmitted SYN before any answer is still new',
    setup: after(syn),
    input: syn,
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.SYN_SENT),
  },
  {
    description: 'TCP: a segment without SYN and without a flow is invalid, and opens nothing',
    input: ack,
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },
  {
    description: 'TCP: an ACK from the opening end before the SYN-ACK is invalid',
    setup: after(syn),
    input: ack,
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.SYN_SENT] }, 60),
  },
  {
    description: 'TCP: a SYN-ACK from the opening end is invalid',
    setup: after(syn),
    input: tcpFrame(out4, 40000, 80, TcpFlags.SYN | TcpFlags.ACK),
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
  },
  {
    description: 'TCP: SYN with FIN is invalid',
    input: tcpFrame(out4, 40000, 80, TcpFlags.SYN | TcpFlags.FIN),
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },
  {
    description: 'TCP: no flags at all is invalid, even on an established connection',
    setup: after(...handshake),
    input: tcpFrame(out4, 40000, 80, 0),
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
  },
  {
    description: 'TCP: a SYN the cube did not let through opened nothing: its SYN-ACK is invalid',
    setup: async (f, mode) => {
      f.c.table('ctprobe_refuse').put(0, 1);
      await after(syn)(f, mode);
      f.c.table('ctprobe_refuse').put(0, 0);
    },
    input: synAck,
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },
  {
    description: 'TCP: a FIN from one end: FIN_WAIT, for 120 s',
    setup: after(...handshake),
    input: finOut,
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, ORIGINAL, T.FIN_WAIT),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.FIN_WAIT], fin_original: 1, fin_reply: 0 }, 120),
  },
  {
    description: 'TCP: FIN from both ends closes the connection early: TIME_WAIT, 30 s',
    setup: after(...handshake, finOut),
    input: finBack,
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.TIME_WAIT),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.TIME_WAIT], fin_original: 1, fin_reply: 1 }, 30),
  },
  {
    description: 'TCP: a reset closes the connection: CLOSE, gone in 10 s',
    setup: after(...handshake, data),
    input: rst,
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.CLOSE),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.CLOSE] }, 10),
  },
  {
    description: 'TCP: a reset without a flow is invalid',
    input: rst,
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },
  {
    description: 'TCP: a SYN on a closed connection\'s ports opens a new one, from whichever end sends it',
    setup: after(...handshake, finOut, finBack),
    input: tcpFrame(back4, 80, 40000, TcpFlags.SYN),
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.SYN_SENT),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.SYN_SENT], opened_by_b: 1, seen_reply: 0, fin_original: 0, fin_reply: 0 }, 60),
  },
  {
    description: 'TCP: an expired flow is gone: its next segment is invalid',
    setup: async (f, mode) => {
      await after(...handshake)(f, mode);
      const [e] = entries(f);
      f.c.table('ctprobe_flows').put(e.key, { ...e.value, expires_ns: (process.hrtime.bigint() - 1_000_000_000n).toString() });
    },
    input: data,
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
  },
  {
    description: 'TCP: timeouts come from the table\'s config (SYN 5 s)',
    setup: (f) => f.c.table('ctprobe_flows_config').put(0, { tcp_syn: 5 }),
    input: syn,
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.SYN_SENT),
    check: oneFlow(tcpKey4, { tcp: TCP_STATES[T.SYN_SENT] }, 5),
  },
  {
    description: 'TCP: a header cut short is not tracked as a flow (invalid)',
    input: tcpFrame(out4, 40000, 80, TcpFlags.SYN).subarray(0, 14 + 20 + 12),
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },

  // ------------------------------------------------------------- UDP
  {
    description: 'UDP: the first datagram opens a flow for 30 s',
    input: udpOut,
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.NONE),
    check: oneFlow({ addr_a: `::ffff:${C4}`, addr_b: `::ffff:${S4}`, port_a: 5353, port_b: 53, proto: 17 }, { tcp: TCP_STATES[0], seen_reply: 0 }, 30),
  },
  {
    description: 'UDP: more datagrams the same way before an answer are still new',
    setup: after(udpOut),
    input: udpOut,
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.NONE),
  },
  {
    description: 'UDP: the answer makes it established, a stream kept for 180 s',
    setup: after(udpOut),
    input: udpBack,
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.NONE),
    check: oneFlow({ addr_a: `::ffff:${C4}`, addr_b: `::ffff:${S4}`, port_a: 5353, port_b: 53, proto: 17 }, { seen_reply: 1 }, 180),
  },
  {
    description: 'UDP: an answer after the flow expired opens a new flow the other way',
    setup: async (f, mode) => {
      await after(udpOut)(f, mode);
      const [e] = entries(f);
      f.c.table('ctprobe_flows').put(e.key, { ...e.value, expires_ns: 1 });
    },
    input: udpBack,
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.NONE),
    check: oneFlow({ addr_a: `::ffff:${C4}`, addr_b: `::ffff:${S4}`, port_a: 5353, port_b: 53, proto: 17 }, { opened_by_b: 1, seen_reply: 0 }, 30),
  },
  {
    description: 'UDP on a VLAN is tracked all the same',
    input: ethernet({ src: MAC_A, dst: MAC_B, vlan: { id: 7 }, payload: ipv4({ src: C4, dst: S4, payload: tcp({ sport: 1, dport: 2, flags: TcpFlags.SYN }) }) }),
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.SYN_SENT),
  },

  // ------------------------------------------------------------- ICMP
  {
    description: 'ICMP: an echo request opens a flow keyed by its identifier, for 30 s',
    input: echoRequest(out4, 77),
    verdict: 'mark',
    outMd: verdict(NEW, ORIGINAL, T.NONE),
    check: oneFlow({ addr_a: `::ffff:${C4}`, addr_b: `::ffff:${S4}`, port_a: 77, port_b: 77, proto: 1 }, { tcp: TCP_STATES[T.NONE], seen_reply: 0 }, 30),
  },
  {
    description: 'ICMP: the echo reply is established',
    setup: after(echoRequest(out4, 77)),
    input: echoReply(back4, 77),
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.NONE),
  },
  {
    description: 'ICMP: an echo reply with another identifier is invalid',
    setup: after(echoRequest(out4, 77)),
    input: echoReply(back4, 78),
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
  },
  {
    description: 'ICMP: port unreachable about a tracked UDP flow is related (to the datagram it quotes, original)',
    setup: after(udpOut),
    input: icmpErrorAbout(back4, udpOut),
    verdict: 'mark',
    outMd: verdict(RELATED, ORIGINAL, T.NONE),
    check: (t, f) => t.is(entries(f).length, 1, 'no entry of its own'),
  },
  {
    description: 'ICMP: an error about a segment of an established TCP connection is related, in the segment\'s direction',
    setup: after(...handshake),
    input: icmpErrorAbout({ src: '192.0.2.1', dst: S4 }, data),
    verdict: 'mark',
    outMd: verdict(RELATED, REPLY, T.ESTABLISHED),
  },
  {
    description: 'ICMP: an error about no tracked flow is invalid',
    input: icmpErrorAbout(back4, udpOut),
    verdict: 'mark',
    outMd: verdict(INVALID, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },
  {
    description: 'ICMP: a message neither echo nor error (timestamp) is untracked',
    input: icmpFrame(out4, 13),
    verdict: 'mark',
    outMd: verdict(UNTRACKED, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },

  // ------------------------------------------------------------- IPv6
  {
    description: 'IPv6: the TCP handshake, keyed by the IPv6 addresses',
    setup: after(tcpFrame(out6, 40000, 443, TcpFlags.SYN)),
    input: tcpFrame(back6, 443, 40000, TcpFlags.SYN | TcpFlags.ACK),
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.SYN_RECV),
    check: oneFlow({ addr_a: C6, addr_b: S6, port_a: 40000, port_b: 443, proto: 6 }, { tcp: TCP_STATES[T.SYN_RECV] }, 60),
  },
  {
    description: 'IPv6: ICMPv6 echo request and reply',
    setup: after(echoRequest(out6, 9)),
    input: echoReply(back6, 9),
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.NONE),
    check: oneFlow({ addr_a: C6, addr_b: S6, port_a: 9, port_b: 9, proto: 58 }, { seen_reply: 1 }, 30),
  },
  {
    description: 'IPv6: packet too big about a tracked TCP segment is related',
    setup: after(tcpFrame(out6, 40000, 443, TcpFlags.SYN), tcpFrame(back6, 443, 40000, TcpFlags.SYN | TcpFlags.ACK)),
    input: icmpErrorAbout({ src: 'fd00::ff', dst: C6 }, tcpFrame(out6, 40000, 443, TcpFlags.ACK, Buffer.alloc(64))),
    verdict: 'mark',
    outMd: verdict(RELATED, ORIGINAL, T.SYN_RECV),
  },
  {
    description: 'IPv6: a hop-by-hop options header is stepped over to the TCP ports',
    setup: after(withHopByHop(C6, S6, 40000, 443, TcpFlags.SYN)),
    input: tcpFrame(back6, 443, 40000, TcpFlags.SYN | TcpFlags.ACK),
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.SYN_RECV),
  },
  {
    description: 'IPv6: neighbour discovery is untracked',
    input: ipFrame({ src: 'fe80::1', dst: 'ff02::1:ff00:2', ttl: 255 }, neighborSolicitation({ target: 'fe80::2', sourceMac: MAC_A })),
    verdict: 'mark',
    outMd: verdict(UNTRACKED, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },

  // ------------------------------------------------------------- other
  {
    description: 'other protocols (GRE) are tracked by address pair, for 600 s',
    setup: after(rawFrame(out4, 47)),
    input: rawFrame(back4, 47),
    verdict: 'mark',
    outMd: verdict(ESTABLISHED, REPLY, T.NONE),
    check: oneFlow({ addr_a: `::ffff:${C4}`, addr_b: `::ffff:${S4}`, port_a: 0, port_b: 0, proto: 47 }, { seen_reply: 1 }, 600),
  },
  {
    description: 'an IPv4 fragment after the first carries no ports: untracked',
    input: laterFragment(udpOut, 8),
    verdict: 'mark',
    outMd: verdict(UNTRACKED, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },
  {
    description: 'ARP is not IP: untracked',
    input: ethernet({ src: MAC_A, dst: 'ff:ff:ff:ff:ff:ff', payload: arp({ op: ArpOp.REQUEST, senderMac: MAC_A, senderIp: C4, targetIp: S4 }) }),
    verdict: 'mark',
    outMd: verdict(UNTRACKED, ORIGINAL, T.NO_ENTRY),
    check: noFlows,
  },
];

table(rows.map((row) => ({ md: into, ...row })), fixture, (f) => f.c.program());

// Frames the Linux kernel built (see fixtures/capture-linux-frames.py): the parser must
// find every checksum valid, the builders must make the same bytes from the same
// fields, and describe() must read them as tcpdump would. Captured on veth, so unpadded.
import test from 'ava';
import {
  arp,
  ArpOp,
  BROADCAST_MAC,
  describe,
  diffFrames,
  ethernet,
  icmp,
  icmpEchoReply,
  icmpEchoRequest,
  IcmpType,
  icmpUnreachable,
  IcmpUnreachableCode,
  icmpv6,
  icmpv6EchoReply,
  icmpv6EchoRequest,
  Icmpv6Type,
  ipv4,
  ipv6,
  neighborAdvertisement,
  neighborSolicitation,
  parseFrame,
  tcp,
  TcpFlags,
  udp,
  type ParsedFrame,
} from '@netcube/sdk/packet';
import { linuxFrames } from './fixtures/linux-frames';

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const frame = (name: keyof typeof linuxFrames): Buffer => Buffer.from(linuxFrames[name], 'hex');
const text = (value: string): Buffer => Buffer.from(value);
/** The IP packet a kernel error message quotes, for rebuilding the message. */
const quotedBody = (name: keyof typeof linuxFrames, at: number): Buffer => frame(name).subarray(at);

interface Case {
  name: keyof typeof linuxFrames;
  rebuilt: () => Buffer;
  summary: string;
}

const cases: Case[] = [
  {
    name: 'arpRequest',
    rebuilt: () => ethernet({ src: MAC_A, dst: BROADCAST_MAC, minLength: 0, payload: arp({ op: ArpOp.REQUEST, senderMac: MAC_A, senderIp: '10.0.0.1', targetIp: '10.0.0.2' }) }),
    summary: 'ARP, Request who-has 10.0.0.2 tell 10.0.0.1',
  },
  {
    name: 'arpReply',
    rebuilt: () =>
      ethernet({ src: MAC_B, dst: MAC_A, minLength: 0, payload: arp({ op: ArpOp.REPLY, senderMac: MAC_B, senderIp: '10.0.0.2', targetMac: MAC_A, targetIp: '10.0.0.1' }) }),
    summary: 'ARP, Reply 10.0.0.2 is-at 02:00:00:00:00:0b',
  },
  {
    name: 'icmpEchoRequest',
    rebuilt: () =>
      ethernet({
        src: MAC_A,
        dst: MAC_B,
        minLength: 0,
        payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 0xf15a, df: true, payload: icmpEchoRequest({ id: 0x1234, seq: 1, payload: text('netcube ping') }) }),
      }),
    summary: '10.0.0.1 > 10.0.0.2: ICMP echo request, id 4660, seq 1, length 20',
  },
  {
    name: 'icmpEchoReply',
    rebuilt: () =>
      ethernet({
        src: MAC_B,
        dst: MAC_A,
        minLength: 0,
        payload: ipv4({ src: '10.0.0.2', dst: '10.0.0.1', id: 0x88fc, payload: icmpEchoReply({ id: 0x1234, seq: 1, payload: text('netcube ping') }) }),
      }),
    summary: '10.0.0.2 > 10.0.0.1: ICMP echo reply, id 4660, seq 1, length 20',
  },
  {
    name: 'udp',
    rebuilt: () =>
      ethernet({
        src: MAC_A,
        dst: MAC_B,
        minLength: 0,
        payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 0x7f9d, df: true, payload: udp({ sport: 40000, dport: 5000, payload: text('hello netcube') }) }),
      }),
    summary: '10.0.0.1.40000 > 10.0.0.2.5000: UDP, length 13',
  },
  {
    // Linux quotes as much of the datagram as fits in 576 bytes (RFC 1812), here all of it.
    name: 'icmpPortUnreachable',
    rebuilt: () =>
      ethernet({
        src: MAC_B,
        dst: MAC_A,
        minLength: 0,
        payload: ipv4({ src: '10.0.0.2', dst: '10.0.0.1', id: 0x8935, dscp: 48, payload: icmp({ type: 3, code: 3, body: quotedBody('udp', 14) }) }),
      }),
    summary: '10.0.0.2 > 10.0.0.1: ICMP 10.0.0.2 udp port 5000 unreachable, length 49',
  },
  {
    name: 'tcpRstAck',
    rebuilt: () =>
      ethernet({
        src: MAC_B,
        dst: MAC_A,
        minLength: 0,
        payload: ipv4({
          src: '10.0.0.2',
          dst: '10.0.0.1',
          df: true,
          payload: tcp({ sport: 80, dport: 40002, seq: 0, ack: 0x08686031, flags: TcpFlags.RST | TcpFlags.ACK, window: 0 }),
        }),
      }),
    summary: '10.0.0.2.80 > 10.0.0.1.40002: Flags [R.], seq 0, ack 141058097, win 0, length 0',
  },
  {
    // The SYN carries options the builder does not write; the IP layer around it is rebuilt.
    name: 'tcpSyn',
    rebuilt: () =>
      ethernet({ src: MAC_A, dst: MAC_B, minLength: 0, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 0x607a, df: true, protocol: 6, payload: frame('tcpSyn').subarray(34) }) }),
    summary: '10.0.0.1.40002 > 10.0.0.2.80: Flags [S], seq 141058096, win 64240, length 0',
  },
  {
    name: 'neighborSolicitation',
    rebuilt: () =>
      ethernet({
        src: MAC_A,
        dst: '33:33:ff:00:00:02',
        minLength: 0,
        payload: ipv6({ src: 'fd00::1', dst: 'ff02::1:ff00:2', hopLimit: 255, payload: neighborSolicitation({ target: 'fd00::2', sourceMac: MAC_A }) }),
      }),
    summary: 'fd00::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has fd00::2, length 32',
  },
  {
    name: 'neighborAdvertisement',
    rebuilt: () =>
      ethernet({
        src: MAC_B,
        dst: MAC_A,
        minLength: 0,
        payload: ipv6({
          src: 'fd00::2',
          dst: 'fd00::1',
          hopLimit: 255,
          payload: neighborAdvertisement({ target: 'fd00::2', targetMac: MAC_B, solicited: true, override: true }),
        }),
      }),
    summary: 'fd00::2 > fd00::1: ICMP6, neighbor advertisement, tgt is fd00::2, length 32',
  },
  {
    name: 'icmpv6EchoRequest',
    rebuilt: () =>
      ethernet({
        src: MAC_A,
        dst: MAC_B,
        minLength: 0,
        payload: ipv6({ src: 'fd00::1', dst: 'fd00::2', flowLabel: 0xb391b, payload: icmpv6EchoRequest({ id: 0x5678, seq: 1, payload: text('netcube ping6') }) }),
      }),
    summary: 'fd00::1 > fd00::2: ICMP6, echo request, id 22136, seq 1, length 21',
  },
  {
    name: 'icmpv6EchoReply',
    rebuilt: () =>
      ethernet({
        src: MAC_B,
        dst: MAC_A,
        minLength: 0,
        payload: ipv6({ src: 'fd00::2', dst: 'fd00::1', flowLabel: 0x2851c, payload: icmpv6EchoReply({ id: 0x5678, seq: 1, payload: text('netcube ping6') }) }),
      }),
    summary: 'fd00::2 > fd00::1: ICMP6, echo reply, id 22136, seq 1, length 21',
  },
  {
    name: 'udp6',
    rebuilt: () =>
      ethernet({
        src: MAC_A,
        dst: MAC_B,
        minLength: 0,
        payload: ipv6({ src: 'fd00::1', dst: 'fd00::2', flowLabel: 0xa8b42, payload: udp({ sport: 40001, dport: 5001, payload: text('hello netcube6') }) }),
      }),
    summary: 'fd00::1.40001 > fd00::2.5001: UDP, length 14',
  },
  {
    name: 'icmpv6PortUnreachable',
    rebuilt: () =>
      ethernet({
        src: MAC_B,
        dst: MAC_A,
        minLength: 0,
        payload: ipv6({ src: 'fd00::2', dst: 'fd00::1', flowLabel: 0x53425, payload: icmpv6({ type: 1, code: 4, body: quotedBody('udp6', 14) }) }),
      }),
    summary: 'fd00::2 > fd00::1: ICMP6, destination unreachable, unreachable port, fd00::2 udp port 5001, length 70',
  },
];

test('every captured frame has a case', (t) => {
  t.deepEqual(cases.map((c) => c.name).sort(), Object.keys(linuxFrames).sort());
});

/** Every checksum the parse found, by layer; all must be true. */
function checksums(parsed: ParsedFrame): Record<string, boolean | undefined> {
  const found: Record<string, boolean | undefined> = {};
  for (const layer of ['ipv4', 'icmp', 'icmpv6', 'udp', 'tcp'] as const) {
    if (parsed[layer]) found[layer] = parsed[layer]!.checksumOk;
  }
  return found;
}

for (const { name, rebuilt, summary } of cases) {
  test(`Linux ${name}: checksums verify`, (t) => {
    const parsed = parseFrame(frame(name));
    t.is(parsed.truncated, undefined);
    t.is(parsed.malformed, undefined);
    for (const [layer, ok] of Object.entries(checksums(parsed))) t.true(ok, `${layer} checksum`);
  });

  test(`Linux ${name}: the builders make the same bytes`, (t) => {
    t.is(diffFrames(rebuilt(), frame(name)), undefined);
  });

  test(`Linux ${name}: described like tcpdump`, (t) => {
    t.is(describe(frame(name)), summary);
  });
}

test('the kernel port unreachable quotes more than RFC 792 asks; ours is its prefix', (t) => {
  const kernel = parseFrame(frame('icmpPortUnreachable'));
  t.is(kernel.icmp?.type, IcmpType.DESTINATION_UNREACHABLE);
  t.is(kernel.icmp?.quoted?.udp?.dport, 5000);
  t.deepEqual(kernel.icmp?.quoted?.payload, text('hello netcube'));
  const ours = icmpUnreachable({ code: IcmpUnreachableCode.PORT, original: quotedBody('udp', 14) }).encode(Buffer.alloc(4), Buffer.alloc(4));
  t.deepEqual(ours.subarray(8), kernel.payload.subarray(0, 28));
});

test('parsed fields of the kernel SYN, options included', (t) => {
  const { tcp: syn, ipv4: ip } = parseFrame(frame('tcpSyn'));
  t.like(ip, { offset: 14, ttl: 64, df: true, protocol: 6, src: '10.0.0.1', dst: '10.0.0.2' });
  t.like(syn, { offset: 34, sport: 40002, dport: 80, seq: 0x08686030, flags: TcpFlags.SYN, headerLength: 40, window: 64240 });
  t.is(syn?.options.length, 20);
  t.is(syn?.options[0], 2, 'MSS first');
});

test('parsed fields of the kernel neighbor discovery pair', (t) => {
  const solicitation = parseFrame(frame('neighborSolicitation')).icmpv6;
  t.is(solicitation?.type, Icmpv6Type.NEIGHBOR_SOLICITATION);
  t.deepEqual(solicitation?.nd, { target: 'fd00::2', router: false, solicited: false, override: false, sourceMac: MAC_A });
  const advertisement = parseFrame(frame('neighborAdvertisement')).icmpv6;
  t.deepEqual(advertisement?.nd, { target: 'fd00::2', router: false, solicited: true, override: true, targetMac: MAC_B });
});

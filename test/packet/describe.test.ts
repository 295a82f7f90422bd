import test from 'ava';
import {
  arp,
  ArpOp,
  describe,
  ethernet,
  icmp,
  icmpEchoRequest,
  icmpTimeExceeded,
  IcmpTimeExceededCode,
  icmpUnreachable,
  IcmpUnreachableCode,
  icmpv6,
  Icmpv6Type,
  ipv4,
  ipv6,
  tcp,
  TcpFlags,
  udp,
  type EthernetPayload,
} from '@netcube/sdk/packet';

const A = '02:00:00:00:00:01';
const B = '02:00:00:00:00:02';
const frame = (payload: EthernetPayload): Buffer => ethernet({ src: A, dst: B, payload });
const v4 = (payload: Parameters<typeof ipv4>[0]['payload']): Buffer => frame(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload }));
const original = ipv4({ src: '10.0.0.1', dst: '10.0.0.9', payload: udp({ sport: 1234, dport: 53, payload: Buffer.alloc(10) }) }).bytes;

test('the examples from the brief', (t) => {
  t.is(describe(v4(udp({ sport: 1234, dport: 80, payload: Buffer.alloc(18) }))), '10.0.0.1.1234 > 10.0.0.2.80: UDP, length 18');
  t.is(
    describe(frame(arp({ op: ArpOp.REQUEST, senderMac: A, senderIp: '10.0.0.1', targetIp: '10.0.0.2' }))),
    'ARP, Request who-has 10.0.0.2 tell 10.0.0.1',
  );
});

test('ARP', (t) => {
  t.is(
    describe(frame(arp({ op: ArpOp.REQUEST, senderMac: A, senderIp: '10.0.0.1', targetMac: B, targetIp: '10.0.0.2' }))),
    'ARP, Request who-has 10.0.0.2 (02:00:00:00:00:02) tell 10.0.0.1',
  );
  t.is(describe(frame(arp({ op: ArpOp.REPLY, senderMac: B, senderIp: '10.0.0.2', targetMac: A, targetIp: '10.0.0.1' }))), 'ARP, Reply 10.0.0.2 is-at 02:00:00:00:00:02');
  t.is(
    describe(frame(arp({ op: 9, senderMac: B, senderIp: '10.0.0.2', targetIp: '10.0.0.1' }))),
    'ARP, op 9, sender 10.0.0.2 (02:00:00:00:00:02), target 10.0.0.1 (00:00:00:00:00:00)',
  );
});

test('TCP flags, sequence ranges and acknowledgements', (t) => {
  const segment = (flags: number, payload?: Buffer): string => describe(v4(tcp({ sport: 1, dport: 2, seq: 100, ack: 200, flags, window: 512, payload })));
  t.is(segment(TcpFlags.SYN), '10.0.0.1.1 > 10.0.0.2.2: Flags [S], seq 100, win 512, length 0');
  t.is(segment(TcpFlags.SYN | TcpFlags.ACK), '10.0.0.1.1 > 10.0.0.2.2: Flags [S.], seq 100, ack 200, win 512, length 0');
  t.is(segment(TcpFlags.PSH | TcpFlags.ACK, Buffer.alloc(10)), '10.0.0.1.1 > 10.0.0.2.2: Flags [P.], seq 100:110, ack 200, win 512, length 10');
  t.is(segment(TcpFlags.FIN | TcpFlags.ACK), '10.0.0.1.1 > 10.0.0.2.2: Flags [F.], seq 100, ack 200, win 512, length 0');
  t.is(segment(TcpFlags.RST), '10.0.0.1.1 > 10.0.0.2.2: Flags [R], seq 100, win 512, length 0');
  t.is(segment(0), '10.0.0.1.1 > 10.0.0.2.2: Flags [none], seq 100, win 512, length 0');
  t.is(segment(TcpFlags.SYN | TcpFlags.ECE | TcpFlags.CWR), '10.0.0.1.1 > 10.0.0.2.2: Flags [SEW], seq 100, win 512, length 0');
});

test('ICMP messages', (t) => {
  t.is(describe(v4(icmpEchoRequest({ id: 1, seq: 2, payload: Buffer.alloc(56) }))), '10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 2, length 64');
  t.is(describe(v4(icmpTimeExceeded({ original }))), '10.0.0.1 > 10.0.0.2: ICMP time exceeded in-transit, length 36');
  t.is(describe(v4(icmpTimeExceeded({ original, code: IcmpTimeExceededCode.REASSEMBLY }))), '10.0.0.1 > 10.0.0.2: ICMP ip reassembly time exceeded, length 36');
  const unreachable = (code: number, mtu?: number): string => describe(v4(icmpUnreachable({ code, mtu, original })));
  t.is(unreachable(IcmpUnreachableCode.NET), '10.0.0.1 > 10.0.0.2: ICMP net 10.0.0.9 unreachable, length 36');
  t.is(unreachable(IcmpUnreachableCode.HOST), '10.0.0.1 > 10.0.0.2: ICMP host 10.0.0.9 unreachable, length 36');
  t.is(unreachable(IcmpUnreachableCode.PROTOCOL), '10.0.0.1 > 10.0.0.2: ICMP 10.0.0.9 protocol 17 unreachable, length 36');
  t.is(unreachable(IcmpUnreachableCode.PORT), '10.0.0.1 > 10.0.0.2: ICMP 10.0.0.9 udp port 53 unreachable, length 36');
  t.is(unreachable(IcmpUnreachableCode.FRAGMENTATION_NEEDED, 1400), '10.0.0.1 > 10.0.0.2: ICMP 10.0.0.9 unreachable - need to frag (mtu 1400), length 36');
  t.is(unreachable(IcmpUnreachableCode.ADMIN_PROHIBITED), '10.0.0.1 > 10.0.0.2: ICMP 10.0.0.9 unreachable, code 13, length 36');
  t.is(describe(v4(icmp({ type: 13 }))), '10.0.0.1 > 10.0.0.2: ICMP type 13, code 0, length 8');
});

test('ICMPv6 messages and other protocols', (t) => {
  const v6 = (payload: Parameters<typeof ipv6>[0]['payload']): Buffer => frame(ipv6({ src: 'fd00::1', dst: 'fd00::2', payload }));
  t.is(describe(v6(icmpv6({ type: Icmpv6Type.PACKET_TOO_BIG, rest: 1280 }))), 'fd00::1 > fd00::2: ICMP6, packet too big, mtu 1280, length 8');
  t.is(describe(v6(icmpv6({ type: Icmpv6Type.TIME_EXCEEDED }))), 'fd00::1 > fd00::2: ICMP6, time exceeded in-transit, length 8');
  t.is(describe(v6(icmpv6({ type: Icmpv6Type.DESTINATION_UNREACHABLE, code: 3 }))), 'fd00::1 > fd00::2: ICMP6, destination unreachable, code 3, length 8');
  t.is(describe(v6(icmpv6({ type: Icmpv6Type.ROUTER_SOLICITATION }))), 'fd00::1 > fd00::2: ICMP6, type 133, code 0, length 8');
  t.is(describe(frame(ipv6({ src: 'fd00::1', dst: 'fd00::2', nextHeader: 253, payload: Buffer.alloc(4) }))), 'fd00::1 > fd00::2: ip-proto-253, length 4');
  t.is(describe(frame(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 47, payload: Buffer.alloc(4) }))), '10.0.0.1 > 10.0.0.2: ip-proto-47, length 4');
});

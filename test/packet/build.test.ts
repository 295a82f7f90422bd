// Builders against frames written out byte by byte; every checksum literal here is
// recomputed by the independent reference, so neither side checks itself.
import test from 'ava';
import {
  arp,
  ArpOp,
  BROADCAST_MAC,
  ethernet,
  icmp,
  icmpEchoReply,
  icmpEchoRequest,
  icmpTimeExceeded,
  icmpUnreachable,
  IcmpUnreachableCode,
  icmpv6EchoRequest,
  ipv4,
  ipv6,
  ipv6MulticastMac,
  neighborAdvertisement,
  neighborSolicitation,
  parseFrame,
  parseIpv6,
  solicitedNodeAddress,
  tcp,
  TcpFlags,
  udp,
} from '@netcube/sdk/packet';
import { hex, pseudoHeader4, pseudoHeader6, referenceChecksum } from './reference';

const A = '02:00:00:00:00:01';
const B = '02:00:00:00:00:02';

const udpFrame = hex(`
  020000000002 020000000001 0800               # dst, src, IPv4
  4500 0021 0007 4000 4011 26c3                # IHL 5, length 33, id 7, DF, TTL 64, UDP, checksum
  0a000001 0a000002                            # 10.0.0.1 -> 10.0.0.2
  04d2 0050 000d a2dd                          # 1234 -> 80, length 13, checksum
  68656c6c6f                                   # 'hello'
  00000000000000000000000000                   # padding to 60
`);

test('the reference agrees with the checksum literals of the UDP frame', (t) => {
  const ip = Buffer.from(udpFrame.subarray(14, 34));
  ip.writeUInt16BE(0, 10);
  t.is(referenceChecksum(ip), 0x26c3);
  const segment = Buffer.from(udpFrame.subarray(34, 47));
  segment.writeUInt16BE(0, 6);
  t.is(referenceChecksum(pseudoHeader4('10.0.0.1', '10.0.0.2', 17, 13), segment), 0xa2dd);
});

test('Ethernet / IPv4 / UDP', (t) => {
  const frame = ethernet({
    src: A,
    dst: B,
    payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 7, df: true, payload: udp({ sport: 1234, dport: 80, payload: Buffer.from('hello') }) }),
  });
  t.deepEqual(frame, udpFrame);
});

test('padding is configurable', (t) => {
  const payload = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 7, df: true, payload: udp({ sport: 1234, dport: 80, payload: Buffer.from('hello') }) });
  t.deepEqual(ethernet({ src: A, dst: B, payload, minLength: 0 }), udpFrame.subarray(0, 47));
  t.is(ethernet({ src: A, dst: B, payload, minLength: 64 }).length, 64);
});

test('Ethernet with an 802.1Q tag', (t) => {
  const frame = ethernet({ src: A, dst: B, vlan: { id: 10, pcp: 3, dei: true }, payload: hex('0102'), ethertype: 0x88b5, minLength: 0 });
  t.deepEqual(frame, hex('020000000002 020000000001 8100 700a 88b5 0102')); // TCI: pcp 3, dei, id 10
});

test('IPv4 / TCP SYN-ACK', (t) => {
  const frame = ethernet({
    src: B,
    dst: A,
    minLength: 0,
    payload: ipv4({
      src: '10.0.0.2',
      dst: '10.0.0.1',
      df: true,
      payload: tcp({ sport: 80, dport: 1234, seq: 1000, ack: 2001, flags: TcpFlags.SYN | TcpFlags.ACK, window: 29200 }),
    }),
  });
  t.deepEqual(
    frame,
    hex(`
      020000000001 020000000002 0800
      4500 0028 0000 4000 4006 26ce 0a000002 0a000001   # TCP, checksum 26ce
      0050 04d2 000003e8 000007d1                       # 80 -> 1234, seq 1000, ack 2001
      5012 7210 18e5 0000                               # data offset 5, SYN+ACK, window 29200, checksum, urgent
    `),
  );
  const ip = Buffer.from(frame.subarray(14, 34));
  ip.writeUInt16BE(0, 10);
  t.is(referenceChecksum(ip), 0x26ce);
});

test('IPv4 fields: TTL, DSCP/ECN, fragments, options, protocol for raw payloads', (t) => {
  const packet = ipv4({
    src: '192.0.2.1',
    dst: '198.51.100.2',
    ttl: 1,
    dscp: 46,
    ecn: 1,
    id: 0xbeef,
    mf: true,
    fragmentOffset: 1480,
    options: hex('94040000'),
    protocol: 253,
    payload: hex('cafe'),
  }).bytes;
  t.deepEqual(packet.subarray(0, 10), hex('46 b9 001a beef 20b9 01 fd')); // IHL 6, EF + ECT(1), length 26, MF + 185*8
  t.is(referenceChecksum(Buffer.concat([packet.subarray(0, 10), packet.subarray(12, 24)])), packet.readUInt16BE(10));
  t.deepEqual(packet.subarray(20), hex('94040000 cafe'));
});

test('ICMP echo request and reply', (t) => {
  const request = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: icmpEchoRequest({ id: 0x1234, seq: 1, payload: Buffer.from('ping') }) }).bytes;
  t.deepEqual(request, hex('4500 0020 0000 0000 4001 66db 0a000001 0a000002  0800 06fa 1234 0001 70696e67'));
  const reply = ipv4({ src: '10.0.0.2', dst: '10.0.0.1', payload: icmpEchoReply({ id: 0x1234, seq: 1, payload: Buffer.from('ping') }) }).bytes;
  t.deepEqual(reply.subarray(20), hex('0000 0efa 1234 0001 70696e67'));
  t.is(referenceChecksum(hex('0000 0000 1234 0001 70696e67')), 0x0efa);
});

test('ICMP time exceeded quotes the IP header and 8 bytes (RFC 792)', (t) => {
  const original = udpFrame.subarray(14, 47);
  const message = ipv4({ src: '10.0.0.254', dst: '10.0.0.1', payload: icmpTimeExceeded({ original }) }).bytes;
  t.deepEqual(
    message,
    hex(`
      4500 0038 0000 0000 4001 65c7 0a0000fe 0a000001   # 10.0.0.254 -> 10.0.0.1, ICMP, length 56
      0b00 4cf3 00000000                                 # time exceeded in transit
      4500 0021 0007 4000 4011 26c3 0a000001 0a000002    # the original header
      04d2 0050 000d a2dd                                # and its first 8 bytes: the UDP header
    `),
  );
  t.is(referenceChecksum(Buffer.concat([hex('0b00 0000 00000000'), original.subarray(0, 28)])), 0x4cf3);
});

test('ICMP destination unreachable, with the next-hop MTU when fragmentation is needed', (t) => {
  const original = udpFrame.subarray(14, 47);
  const port = icmpUnreachable({ code: IcmpUnreachableCode.PORT, original }).encode(Buffer.alloc(4), Buffer.alloc(4));
  t.deepEqual(port.subarray(0, 2), hex('0303'));
  t.deepEqual(port.subarray(4, 8), hex('00000000'));
  t.deepEqual(port.subarray(8), original.subarray(0, 28));
  t.is(referenceChecksum(Buffer.concat([port.subarray(0, 2), port.subarray(4)])), port.readUInt16BE(2));
  const mtu = icmpUnreachable({ code: IcmpUnreachableCode.FRAGMENTATION_NEEDED, mtu: 1400, original }).encode(Buffer.alloc(4), Buffer.alloc(4));
  t.is(mtu.readUInt32BE(4), 1400);
});

test('ICMP errors refuse something that is not an IPv4 packet', (t) => {
  t.throws(() => icmpTimeExceeded({ original: udpFrame }), {
    instanceOf: RangeError,
    message:
      'icmpTimeExceeded.original must be the IPv4 packet that caused the error, from its header on (got 60 bytes, version 0); slice a frame at parseFrame(frame).ipv4.offset',
  });
  t.throws(() => icmpUnreachable({ code: 3, original: Buffer.alloc(0) }), { instanceOf: RangeError, message: /got 0 bytes, version undefined/ });
});

test('ARP request and reply', (t) => {
  const request = ethernet({ src: A, dst: BROADCAST_MAC, payload: arp({ op: ArpOp.REQUEST, senderMac: A, senderIp: '10.0.0.1', targetIp: '10.0.0.2' }) });
  t.deepEqual(
    request,
    hex(`
      ffffffffffff 020000000001 0806
      0001 0800 06 04 0001                 # Ethernet, IPv4, sizes, request
      020000000001 0a000001                # sender
      000000000000 0a000002                # target
      000000000000000000000000000000000000 # padding to 60
    `),
  );
  const reply = arp({ op: ArpOp.REPLY, senderMac: B, senderIp: '10.0.0.2', targetMac: A, targetIp: '10.0.0.1' });
  t.deepEqual(reply.bytes, hex('0001 0800 06 04 0002 020000000002 0a000002 020000000001 0a000001'));
});

test('IPv6 / UDP', (t) => {
  const packet = ipv6({ src: 'fd00::1', dst: 'fd00::2', trafficClass: 0xb8, flowLabel: 0x12345, payload: udp({ sport: 1234, dport: 53, payload: Buffer.from('hi') }) });
  t.deepEqual(
    packet.bytes,
    hex(`
      6b812345 000a 11 40                                                       # version 6, TC b8, flow 12345, length 10, UDP, hop limit 64
      fd000000000000000000000000000001 fd000000000000000000000000000002
      04d2 0035 000a 9865 6869
    `),
  );
});

test('neighbor solicitation to the solicited-node group, with the source MAC option', (t) => {
  const target = 'fe80::2';
  const group = solicitedNodeAddress(target);
  const frame = ethernet({
    src: A,
    dst: ipv6MulticastMac(group),
    minLength: 0,
    payload: ipv6({ src: 'fe80::1', dst: group, hopLimit: 255, payload: neighborSolicitation({ target, sourceMac: A }) }),
  });
  t.deepEqual(
    frame,
    hex(`
      3333ff000002 020000000001 86dd
      60000000 0020 3a ff fe800000000000000000000000000001 ff0200000000000000000001ff000002
      87 00 7a97 00000000 fe800000000000000000000000000002   # solicitation for fe80::2
      01 01 020000000001                                      # source link-layer address
    `),
  );
});

test('neighbor advertisement flags and target MAC option', (t) => {
  const message = neighborAdvertisement({ target: 'fe80::2', targetMac: B, solicited: true, override: true }).encode(
    parseIpv6('fe80::2'),
    parseIpv6('fe80::1'),
  );
  t.deepEqual(message.subarray(4), hex('60000000 fe800000000000000000000000000002 0201 020000000002'));
  const zeroed = Buffer.from(message);
  zeroed.writeUInt16BE(0, 2);
  t.is(referenceChecksum(pseudoHeader6(parseIpv6('fe80::2'), parseIpv6('fe80::1'), 58, message.length), zeroed), message.readUInt16BE(2));
  const router = neighborAdvertisement({ target: 'fe80::2', router: true }).encode(parseIpv6('fe80::2'), parseIpv6('fe80::1'));
  t.deepEqual(router.subarray(4, 8), hex('80000000'));
  t.is(router.length, 24);
});

test('ICMPv6 echo checksum covers the pseudo-header', (t) => {
  const src = parseIpv6('fd00::1');
  const dst = parseIpv6('fd00::2');
  const message = icmpv6EchoRequest({ id: 7, seq: 9, payload: Buffer.from('x') }).encode(src, dst);
  t.deepEqual(message.subarray(4), hex('0007 0009 78'));
  const zeroed = Buffer.from(message);
  zeroed.writeUInt16BE(0, 2);
  t.is(referenceChecksum(pseudoHeader6(src, dst, 58, message.length), zeroed), message.readUInt16BE(2));
});

test('overridden checksums are written as given, to test how a data plane treats bad ones', (t) => {
  const frame = ethernet({
    src: A,
    dst: B,
    payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', checksum: 0xdead, payload: udp({ sport: 1, dport: 2, checksum: 0 }) }),
  });
  const parsed = parseFrame(frame);
  t.is(parsed.ipv4?.checksum, 0xdead);
  t.false(parsed.ipv4?.checksumOk);
  t.is(parsed.udp?.checksum, 0);
  t.true(parsed.udp?.checksumOk, 'zero means "no checksum" over IPv4');
  const bad = icmp({ type: 8, checksum: 0x1111 }).encode(Buffer.alloc(4), Buffer.alloc(4));
  t.is(bad.readUInt16BE(2), 0x1111);
});

test('builders name the argument and the bad value', (t) => {
  const payload = udp({ sport: 1, dport: 2 });
  t.throws(() => ethernet({ src: 'aa:bb', dst: B, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload }) }), {
    instanceOf: RangeError,
    message: /^ethernet\.src: invalid MAC address 'aa:bb'/,
  });
  t.throws(() => ethernet({ src: A, dst: Buffer.alloc(4), payload: hex('00'), ethertype: 1 }), {
    instanceOf: TypeError,
    message: 'ethernet.dst must be a MAC address string or a 6-byte Buffer, got a 4-byte Buffer',
  });
  t.throws(() => ethernet({ src: A, dst: B, payload: hex('00') }), {
    instanceOf: TypeError,
    message: 'ethernet.ethertype is required when the payload is a Buffer',
  });
  t.throws(() => ethernet({ src: A, dst: B, vlan: { id: 4096 }, payload: hex('00'), ethertype: 1 }), {
    instanceOf: RangeError,
    message: 'ethernet.vlan.id must be an integer from 0 to 4095, got 4096',
  });
  t.throws(() => ipv4({ src: '10.0.0.1', dst: '10.0.0.300', payload }), { instanceOf: RangeError, message: /^ipv4\.dst: invalid IPv4 address '10\.0\.0\.300'/ });
  t.throws(() => ipv4({ src: '10.0.0.1', dst: '10.0.0.2', ttl: 256, payload }), { instanceOf: RangeError, message: 'ipv4.ttl must be an integer from 0 to 255, got 256' });
  t.throws(() => ipv4({ src: '10.0.0.1', dst: '10.0.0.2', fragmentOffset: 100, payload }), { instanceOf: RangeError, message: /ipv4\.fragmentOffset is in bytes, a multiple of 8/ });
  t.throws(() => ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: hex('00') }), { instanceOf: TypeError, message: 'ipv4.protocol is required when the payload is a Buffer' });
  t.throws(() => ipv6({ src: 'fd00::1', dst: 'fd00::2', flowLabel: 2 ** 20, payload }), { instanceOf: RangeError, message: /ipv6\.flowLabel must be an integer from 0 to 1048575/ });
  t.throws(() => ipv6({ src: '10.0.0.1', dst: 'fd00::2', payload }), { instanceOf: RangeError, message: /^ipv6\.src: invalid IPv6 address '10\.0\.0\.1'/ });
  t.throws(() => udp({ sport: 70000, dport: 1 }), { instanceOf: RangeError, message: 'udp.sport must be an integer from 0 to 65535, got 70000' });
  t.throws(() => udp({ sport: '80' as unknown as number, dport: 1 }), { instanceOf: TypeError, message: "udp.sport must be a number, got '80'" });
  t.throws(() => tcp({ sport: 1, dport: 2, seq: 2 ** 32 }), { instanceOf: RangeError, message: 'tcp.seq must be an integer from 0 to 4294967295, got 4294967296' });
  t.throws(() => icmpEchoRequest({ id: 1.5 }), { instanceOf: RangeError, message: 'icmpEchoRequest.id must be an integer from 0 to 65535, got 1.5' });
  t.throws(() => arp({ op: ArpOp.REQUEST, senderMac: A, senderIp: '10.0.0.1', targetIp: 'fd00::1' }), { instanceOf: RangeError, message: /^arp\.targetIp: invalid IPv4 address/ });
  t.throws(() => neighborSolicitation({ target: 'fe80::1', sourceMac: 'nope' }), { instanceOf: RangeError, message: /^neighborSolicitation\.sourceMac: invalid MAC address 'nope'/ });
});

import test from 'ava';
import {
  describe,
  diffFrames,
  EtherType,
  ethernet,
  icmpTimeExceeded,
  IpProtocol,
  ipv4,
  ipv6,
  parseFrame,
  parseIpv6,
  parsePacket,
  tcp,
  udp,
} from '@netcube/sdk/packet';
import { linuxFrames } from './fixtures/linux-frames';
import { hex } from './reference';

const A = '02:00:00:00:00:01';
const B = '02:00:00:00:00:02';
const hello = Buffer.from('hello');

function udpFrame(extra: { vlan?: { id: number; pcp?: number } } = {}): Buffer {
  return ethernet({
    src: A,
    dst: B,
    ...extra,
    payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 7, payload: udp({ sport: 1234, dport: 80, payload: hello }) }),
  });
}

test('a padded frame: every layer, the data, and the padding apart', (t) => {
  const parsed = parseFrame(udpFrame());
  t.deepEqual(parsed.eth, { dst: B, src: A, ethertype: EtherType.IPV4 });
  t.like(parsed.ipv4, { offset: 14, headerLength: 20, totalLength: 33, id: 7, ttl: 64, protocol: 17, checksumOk: true, src: '10.0.0.1', dst: '10.0.0.2' });
  t.deepEqual(parsed.udp, { offset: 34, sport: 1234, dport: 80, length: 13, checksum: parsed.udp!.checksum, checksumOk: true });
  t.deepEqual(parsed.payload, hello);
  t.deepEqual(parsed.padding, Buffer.alloc(13));
  t.is(parsed.truncated, undefined);
  t.is(parsed.malformed, undefined);
  t.deepEqual(Object.keys(parsed), ['eth', 'ipv4', 'udp', 'payload', 'padding']);
});

test('an 802.1Q tag moves every offset by 4', (t) => {
  const parsed = parseFrame(udpFrame({ vlan: { id: 100, pcp: 5 } }));
  t.deepEqual(parsed.eth?.vlan, { id: 100, pcp: 5, dei: false });
  t.is(parsed.eth?.ethertype, EtherType.IPV4);
  t.is(parsed.ipv4?.offset, 18);
  t.is(parsed.udp?.offset, 38);
  t.true(parsed.udp?.checksumOk);
  t.is(describe(udpFrame({ vlan: { id: 100 } })), 'vlan 100: 10.0.0.1.1234 > 10.0.0.2.80: UDP, length 5');
});

test('every prefix of every frame parses without throwing and names the outermost layer cut short', (t) => {
  const frames = Object.entries(linuxFrames).map(([name, bytes]) => [name, Buffer.from(bytes, 'hex')] as const);
  for (const [name, whole] of frames) {
    const ethertype = whole.readUInt16BE(12);
    const network = ethertype === EtherType.ARP ? 'arp' : ethertype === EtherType.IPV4 ? 'ipv4' : 'ipv6';
    t.is(parseFrame(whole).truncated, undefined, name);
    for (let length = 0; length < whole.length; length++) {
      const cut = whole.subarray(0, length);
      const parsed = parseFrame(cut);
      t.is(parsed.truncated, length < 14 ? 'eth' : network, `${name} cut to ${length}`);
      t.is(parsed.malformed, undefined, `${name} cut to ${length}`);
      t.true(describe(cut).endsWith(`[|${parsed.truncated}]`), `${name} cut to ${length}: ${describe(cut)}`);
    }
  }
});

test('a cut-short UDP datagram: headers that fit are decoded, checksums left unjudged', (t) => {
  const whole = udpFrame();
  const inHeader = parseFrame(whole.subarray(0, 14 + 20 + 4));
  t.is(inHeader.truncated, 'ipv4');
  t.truthy(inHeader.ipv4);
  t.is(inHeader.udp, undefined);
  t.deepEqual(inHeader.payload, whole.subarray(34, 38));

  const inData = parseFrame(whole.subarray(0, 14 + 20 + 8 + 2));
  t.is(inData.truncated, 'ipv4');
  t.is(inData.udp?.dport, 80);
  t.is(inData.udp?.checksumOk, undefined);
  t.deepEqual(inData.payload, Buffer.from('he'));
  t.is(describe(whole.subarray(0, 44)), '10.0.0.1.1234 > 10.0.0.2.80: UDP, length 5 [|ipv4]');
});

test('a frame shorter than an Ethernet header', (t) => {
  const parsed = parseFrame(hex('0102030405'));
  t.is(parsed.eth, undefined);
  t.is(parsed.truncated, 'eth');
  t.deepEqual(parsed.payload, hex('0102030405'));
  t.is(describe(hex('0102030405')), '5 bytes [|eth]');
  t.is(parseFrame(hex('020000000002 020000000001 8100 00')).truncated, 'eth');
});

test('a UDP length past the IP payload marks udp, not ipv4', (t) => {
  const frame = udpFrame();
  frame.writeUInt16BE(40, 38); // UDP length 40, but the IP packet holds 13 bytes of UDP
  const parsed = parseFrame(frame);
  t.is(parsed.truncated, 'udp');
  t.is(parsed.udp?.checksumOk, undefined);
  t.deepEqual(parsed.payload, hello);
});

test('headers that make no sense are reported, not thrown', (t) => {
  const withByte = (at: number, value: number, frame = udpFrame()): Buffer => {
    frame[at] = value;
    return frame;
  };
  const cases: Array<[Buffer, string]> = [
    [withByte(14, 0x44), 'ipv4: header length 16 is less than 20'],
    [withByte(14, 0x55), 'ipv4: version is 5'],
    [withByte(17, 10), 'ipv4: total length 10 is less than the header length 20'],
    [withByte(39, 4), 'udp: length 4 is less than 8'],
  ];
  for (const [frame, malformed] of cases) {
    const parsed = parseFrame(frame);
    t.is(parsed.malformed, malformed);
    t.true(describe(frame).endsWith(`[malformed: ${malformed}]`));
  }
  t.is(parseFrame(withByte(14, 0x44)).ipv4, undefined);

  const segment = tcp({ sport: 1, dport: 2 }).encode(hex('0a000001'), hex('0a000002'));
  segment[12] = 0x30;
  const badTcp = ethernet({ src: A, dst: B, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 6, payload: segment }) });
  t.is(parseFrame(badTcp).malformed, 'tcp: data offset gives a header of 12 bytes, less than 20');

  const arp = Buffer.from(linuxFrames.arpRequest, 'hex');
  arp[18] = 8; // hardware address length
  t.regex(parseFrame(arp).malformed ?? '', /^arp: only Ethernet\/IPv4 is decoded, got hardware type 1 \(8 bytes\)/);

  const ns = Buffer.from(linuxFrames.neighborSolicitation, 'hex');
  ns[ns.length - 7] = 0; // option length 0
  t.is(parseFrame(ns).malformed, 'icmpv6: neighbor discovery option 1 has length 0');
});

test('IPv4 fragments: the first decodes its transport header, later ones do not', (t) => {
  const first = ethernet({ src: A, dst: B, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 9, mf: true, payload: udp({ sport: 1, dport: 53, payload: hello }) }) });
  const parsedFirst = parseFrame(first);
  t.is(parsedFirst.udp?.dport, 53);
  t.is(parsedFirst.udp?.checksumOk, undefined, 'a fragment does not hold the whole datagram');

  const later = ethernet({ src: A, dst: B, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', id: 9, fragmentOffset: 1480, protocol: IpProtocol.UDP, payload: hello }) });
  const parsedLater = parseFrame(later);
  t.is(parsedLater.udp, undefined);
  t.is(parsedLater.ipv4?.fragmentOffset, 1480);
  t.deepEqual(parsedLater.payload, hello);
  t.is(describe(later), '10.0.0.1 > 10.0.0.2: fragment, id 9, offset 1480, length 5');
});

test('IPv6 extension headers are stepped over to the transport header', (t) => {
  const src = parseIpv6('fd00::1');
  const dst = parseIpv6('fd00::2');
  const segment = udp({ sport: 5, dport: 7, payload: hello }).encode(src, dst);
  const hopByHop = hex('11 00 0104 00000000'); // next UDP, length 8, PadN
  const frame = ethernet({ src: A, dst: B, payload: ipv6({ src, dst, nextHeader: IpProtocol.HOP_BY_HOP, payload: Buffer.concat([hopByHop, segment]) }) });
  const parsed = parseFrame(frame);
  t.like(parsed.ipv6, { nextHeader: 0, protocol: 17, headerLength: 48, payloadLength: 21 });
  t.like(parsed.udp, { offset: 62, dport: 7, checksumOk: true });
  t.deepEqual(parsed.payload, hello);
});

test('IPv6 fragments', (t) => {
  const src = parseIpv6('fd00::1');
  const dst = parseIpv6('fd00::2');
  const segment = udp({ sport: 5, dport: 7, payload: hello }).encode(src, dst);
  const fragmentHeader = (offset: number, more: boolean): Buffer => {
    const header = hex('11 00 0000 0000abcd');
    header.writeUInt16BE(offset | (more ? 1 : 0), 2);
    return header;
  };
  const first = parseFrame(ethernet({ src: A, dst: B, payload: ipv6({ src, dst, nextHeader: IpProtocol.FRAGMENT, payload: Buffer.concat([fragmentHeader(0, true), segment]) }) }));
  t.deepEqual(first.ipv6?.fragment, { id: 0xabcd, offset: 0, mf: true });
  t.is(first.ipv6?.protocol, 17);
  t.is(first.udp?.dport, 7);
  t.is(first.udp?.checksumOk, undefined);

  const laterFrame = ethernet({ src: A, dst: B, payload: ipv6({ src, dst, nextHeader: IpProtocol.FRAGMENT, payload: Buffer.concat([fragmentHeader(1448, false), hello]) }) });
  const later = parseFrame(laterFrame);
  t.is(later.ipv6?.protocol, IpProtocol.FRAGMENT);
  t.is(later.udp, undefined);
  t.deepEqual(later.payload, hello);
  t.is(describe(laterFrame), 'fd00::1 > fd00::2: fragment, id 43981, offset 1448, length 5');
});

test('an extension header cut short stops decoding there', (t) => {
  const frame = ethernet({ src: A, dst: B, minLength: 0, payload: ipv6({ src: 'fd00::1', dst: 'fd00::2', nextHeader: IpProtocol.HOP_BY_HOP, payload: hex('11 01 0000') }) });
  const parsed = parseFrame(frame);
  t.is(parsed.truncated, 'ipv6');
  t.is(parsed.ipv6?.protocol, IpProtocol.HOP_BY_HOP);
  t.is(parsed.udp, undefined);
});

test('an ICMP error decodes the packet it quotes, which is cut short by design', (t) => {
  const original = udpFrame().subarray(14, 47);
  const frame = ethernet({ src: B, dst: A, payload: ipv4({ src: '10.0.0.254', dst: '10.0.0.1', payload: icmpTimeExceeded({ original }) }) });
  const { icmp } = parseFrame(frame);
  t.like(icmp, { offset: 34, type: 11, code: 0, checksumOk: true, rest: 0 });
  t.is(icmp?.quoted?.ipv4?.offset, 42, 'offsets count from the start of the frame');
  t.is(icmp?.quoted?.ipv4?.dst, '10.0.0.2');
  t.like(icmp?.quoted?.udp, { offset: 62, sport: 1234, dport: 80, checksumOk: undefined });
  t.is(icmp?.quoted?.truncated, 'ipv4');
  t.is(describe(frame), '10.0.0.254 > 10.0.0.1: ICMP time exceeded in-transit, length 36');
});

test('parsePacket decodes from the network header on', (t) => {
  const packet = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1, dport: 2, payload: hello }) }).bytes;
  const parsed = parsePacket(packet, EtherType.IPV4);
  t.is(parsed.ipv4?.offset, 0);
  t.is(parsed.udp?.offset, 20);
  t.true(parsed.udp?.checksumOk);
  t.throws(() => parsePacket(packet, 0x10000), { instanceOf: RangeError, message: 'ethertype must be an integer from 0 to 65535, got 65536' });
});

test('an EtherType not decoded leaves the rest as payload', (t) => {
  const frame = ethernet({ src: A, dst: B, ethertype: 0x88b5, payload: hex('0102') });
  const parsed = parseFrame(frame);
  t.is(parsed.eth?.ethertype, 0x88b5);
  t.is(parsed.payload.length, 46);
  t.is(describe(frame), '02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype 0x88b5, length 60');
});

test('random bytes never make the parser, describe or diff throw', (t) => {
  let seed = 7;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) >> 8;
  const ethertypes = [0x0800, 0x86dd, 0x0806, 0x8100, 0x1234];
  const kernelFrames = Object.values(linuxFrames).map((text) => Buffer.from(text, 'hex'));
  for (let round = 0; round < 3000; round++) {
    const frame = Buffer.from(kernelFrames[round % kernelFrames.length]);
    // Flip a few bytes past the MACs, or write garbage after a chosen EtherType.
    if (round % 2 === 0) {
      for (let flips = 1 + (random() % 4); flips > 0; flips--) frame[12 + (random() % (frame.length - 12))] = random() & 0xff;
    } else {
      frame.writeUInt16BE(ethertypes[random() % ethertypes.length], 12);
      for (let i = 14; i < frame.length; i++) frame[i] = random() & 0xff;
    }
    const cut = frame.subarray(0, random() % (frame.length + 1));
    t.notThrows(() => {
      parseFrame(cut);
      describe(cut);
      diffFrames(cut, frame);
    }, cut.toString('hex'));
  }
});

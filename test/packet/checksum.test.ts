import test from 'ava';
import {
  checksumValid,
  icmpChecksum,
  internetChecksum,
  ipv4HeaderChecksum,
  onesComplementSum,
  parseIpv6,
  pseudoHeaderSum,
  transportChecksum,
  updateChecksum,
} from '@netcube/sdk/packet';
import { hex, pseudoHeader4, pseudoHeader6, referenceChecksum } from './reference';

test('RFC 1071 section 3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2', (t) => {
  const data = hex('0001 f203 f4f5 f6f7');
  t.is(onesComplementSum(data), 0xddf2);
  t.is(internetChecksum(data), 0x220d);
  t.is(referenceChecksum(data), 0x220d);
});

test('an odd last byte counts as the high byte of a word', (t) => {
  t.is(onesComplementSum(hex('0001 f203 f4f5 f6')), onesComplementSum(hex('0001 f203 f4f5 f600')));
  t.is(internetChecksum(hex('ab')), 0x54ff);
});

test('the widely published IPv4 header example has checksum b861', (t) => {
  // 192.168.0.1 -> 192.168.0.199, UDP, total length 115, DF, TTL 64.
  const header = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
  t.is(ipv4HeaderChecksum(header), 0xb861);
  t.true(checksumValid(header));
  header.writeUInt16BE(0, 10);
  t.is(referenceChecksum(header), 0xb861);
  t.is(ipv4HeaderChecksum(header), 0xb861, 'the field is taken as zero whatever it holds');
});

test('the IPv4 header checksum covers options and stops at the header length', (t) => {
  const packet = hex(`
    4600 0020 0001 0000 4001 0000 0a00 0001 0a00 0002  # IHL 6
    9404 0000                                           # router alert option
    0800 0000 0000 0000                                 # not part of the header
  `);
  const header = packet.subarray(0, 24);
  t.is(ipv4HeaderChecksum(packet), referenceChecksum(header));
  t.throws(() => ipv4HeaderChecksum(packet.subarray(0, 22)), { instanceOf: RangeError, message: /needs a whole IPv4 header, got 22 bytes with header length 24/ });
});

test('UDP over IPv4: the library and the reference agree on a hand-built datagram', (t) => {
  const udp = hex('04d2 0050 000d a2dd 68656c6c6f'); // 1234 -> 80, length 13, 'hello'
  const src = hex('0a000001');
  const dst = hex('0a000002');
  t.is(transportChecksum(src, dst, 17, udp), 0xa2dd);
  const zeroed = Buffer.from(udp);
  zeroed.writeUInt16BE(0, 6);
  t.is(referenceChecksum(pseudoHeader4('10.0.0.1', '10.0.0.2', 17, 13), zeroed), 0xa2dd);
  t.true(checksumValid(udp, pseudoHeaderSum(src, dst, 17, udp.length)));
  udp[8] ^= 1;
  t.false(checksumValid(udp, pseudoHeaderSum(src, dst, 17, udp.length)));
});

test('TCP over IPv4: a SYN-ACK with checksum 18e5', (t) => {
  const segment = hex('0050 04d2 000003e8 000007d1 5012 7210 18e5 0000'); // 80 -> 1234, seq 1000, ack 2001
  t.is(transportChecksum(hex('0a000002'), hex('0a000001'), 6, segment), 0x18e5);
  const zeroed = Buffer.from(segment);
  zeroed.writeUInt16BE(0, 16);
  t.is(referenceChecksum(pseudoHeader4('10.0.0.2', '10.0.0.1', 6, 20), zeroed), 0x18e5);
});

test('UDP over IPv6 and ICMPv6 use the RFC 8200 pseudo-header', (t) => {
  const src = parseIpv6('fd00::1');
  const dst = parseIpv6('fd00::2');
  const udp = hex('04d2 0035 000a 0000 6869'); // 1234 -> 53, 'hi'
  t.is(transportChecksum(src, dst, 17, udp), 0x9865);
  t.is(referenceChecksum(pseudoHeader6(src, dst, 17, 10), udp), 0x9865);

  const solicitation = hex('8700 0000 00000000 fe800000000000000000000000000002 0101 02000000 0001');
  const from = parseIpv6('fe80::1');
  const to = parseIpv6('ff02::1:ff00:2');
  t.is(transportChecksum(from, to, 58, solicitation), 0x7a97);
  t.is(referenceChecksum(pseudoHeader6(from, to, 58, solicitation.length), solicitation), 0x7a97);
});

test('a UDP checksum that computes to zero is sent as ffff', (t) => {
  // Choose the data word so that the whole sum is ffff, i.e. the checksum is 0.
  const src = hex('0a000001');
  const dst = hex('0a000002');
  const udp = hex('0001 0002 000a 0000 0000');
  const partial = referenceChecksum(pseudoHeader4('10.0.0.1', '10.0.0.2', 17, 10), udp);
  udp.writeUInt16BE(partial, 8); // adding the complement makes the sum all ones
  t.is(referenceChecksum(pseudoHeader4('10.0.0.1', '10.0.0.2', 17, 10), udp), 0);
  t.is(transportChecksum(src, dst, 17, udp), 0xffff);
});

test('ICMP has no pseudo-header', (t) => {
  const echo = hex('0800 06fa 1234 0001 70696e67'); // echo request, id 0x1234, seq 1, 'ping'
  t.is(icmpChecksum(echo), 0x06fa);
  echo.writeUInt16BE(0, 2);
  t.is(referenceChecksum(echo), 0x06fa);
});

test('the library agrees with the reference on random data of every length up to 300', (t) => {
  let seed = 12345;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff;
  for (let length = 0; length <= 300; length++) {
    const data = Buffer.from(Array.from({ length }, random));
    t.is(internetChecksum(data), referenceChecksum(data), `length ${length}`);
  }
  t.is(internetChecksum(Buffer.alloc(65536, 0xff)), referenceChecksum(Buffer.alloc(65536, 0xff)));
});

test('RFC 1624 incremental update matches recomputing, TTL by TTL', (t) => {
  let seed = 99;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff;
  for (let round = 0; round < 200; round++) {
    const header = Buffer.from(Array.from({ length: 20 }, random));
    header[0] = 0x45;
    header.writeUInt16BE(ipv4HeaderChecksum(header), 10);
    for (let ttl = header[8]; ttl > 0; ttl -= 17) {
      const oldWord = header.readUInt16BE(8);
      const newWord = ((ttl - 1) << 8) | header[9];
      const updated = updateChecksum(header.readUInt16BE(10), oldWord, newWord);
      header.writeUInt16BE(newWord, 8);
      t.is(updated, ipv4HeaderChecksum(header));
      header.writeUInt16BE(updated, 10);
    }
  }
});

test('RFC 1624 section 4 example: the update that eqn. 2 gets wrong', (t) => {
  // A header whose checksum is dd2f; a word changes from 5555 to 3285, giving 0000 by recomputation.
  t.is(updateChecksum(0xdd2f, 0x5555, 0x3285), 0x0000);
});

test('checksum functions name what is wrong with their input', (t) => {
  t.throws(() => transportChecksum(hex('0a000001'), hex('0a000002'), 1, Buffer.alloc(8)), {
    instanceOf: RangeError,
    message: 'transportChecksum covers UDP (17), TCP (6) and ICMPv6 (58), got protocol 1',
  });
  t.throws(() => transportChecksum(hex('0a000001'), parseIpv6('::1'), 17, Buffer.alloc(8)), {
    instanceOf: RangeError,
    message: 'pseudo-header addresses must both be 4 or both 16 bytes, got 4 and 16',
  });
  t.throws(() => transportChecksum(hex('0a000001'), hex('0a000002'), 6, Buffer.alloc(10)), {
    instanceOf: RangeError,
    message: /a protocol 6 segment of 10 bytes is too short to hold its checksum/,
  });
});

import test from 'ava';
import {
  decrementTtl,
  diffFrames,
  ethernet,
  ipv4,
  ipv4HeaderChecksum,
  ipv6,
  parseFrame,
  setMacs,
  setTtl,
  swapMacs,
  udp,
} from '@netcube/sdk/packet';
import { hex, referenceChecksum } from './reference';

const A = '02:00:00:00:00:01';
const B = '02:00:00:00:00:02';

function frame(options: { ttl?: number; dport?: number; data?: string; vlan?: { id: number } } = {}): Buffer {
  return ethernet({
    src: A,
    dst: B,
    vlan: options.vlan,
    payload: ipv4({
      src: '10.0.0.1',
      dst: '10.0.0.2',
      ttl: options.ttl,
      payload: udp({ sport: 1234, dport: options.dport ?? 80, payload: Buffer.from(options.data ?? 'hello') }),
    }),
  });
}

test('setTtl and decrementTtl keep the IPv4 header checksum right without touching the input', (t) => {
  const input = frame({ ttl: 64 });
  const before = Buffer.from(input);
  const lowered = decrementTtl(input);
  t.deepEqual(input, before);
  t.deepEqual(lowered, frame({ ttl: 63 }));
  t.deepEqual(setTtl(input, 1), frame({ ttl: 1 }));
  const header = Buffer.from(lowered.subarray(14, 34));
  const checksum = header.readUInt16BE(10);
  header.writeUInt16BE(0, 10);
  t.is(referenceChecksum(header), checksum);
});

test('decrementTtl all the way down, behind a VLAN tag', (t) => {
  let current = frame({ ttl: 255, vlan: { id: 7 } });
  for (let ttl = 254; ttl >= 0; ttl--) {
    current = decrementTtl(current);
    t.is(current[18 + 8], ttl);
    t.is(ipv4HeaderChecksum(current.subarray(18)), current.readUInt16BE(18 + 10));
  }
  t.throws(() => decrementTtl(current), { instanceOf: RangeError, message: 'decrementTtl: the TTL is already 0' });
});

test('IPv6 hop limit', (t) => {
  const v6 = ethernet({ src: A, dst: B, payload: ipv6({ src: 'fd00::1', dst: 'fd00::2', hopLimit: 2, payload: udp({ sport: 1, dport: 2 }) }) });
  t.is(parseFrame(decrementTtl(v6)).ipv6?.hopLimit, 1);
  t.is(parseFrame(setTtl(v6, 255)).ipv6?.hopLimit, 255);
  t.throws(() => decrementTtl(setTtl(v6, 0)), { instanceOf: RangeError, message: 'decrementTtl: the hop limit is already 0' });
});

test('TTL helpers refuse frames without an IP header', (t) => {
  const arpFrame = ethernet({ src: A, dst: B, ethertype: 0x0806, payload: Buffer.alloc(28) });
  t.throws(() => setTtl(arpFrame, 1), { instanceOf: RangeError, message: 'setTtl: the frame carries no whole IPv4 or IPv6 header (ethertype 0x0806)' });
  t.throws(() => decrementTtl(Buffer.alloc(6)), { instanceOf: RangeError, message: 'decrementTtl: a 6-byte frame has no Ethernet header' });
  t.throws(() => setTtl(frame(), 256), { instanceOf: RangeError, message: 'ttl must be an integer from 0 to 255, got 256' });
});

test('swapMacs and setMacs', (t) => {
  const input = frame();
  const swapped = swapMacs(input);
  t.deepEqual(swapped.subarray(0, 12), hex('020000000001 020000000002'));
  t.deepEqual(swapped.subarray(12), input.subarray(12));
  t.deepEqual(swapMacs(swapped), input);
  const rewritten = setMacs(input, { src: 'aa:aa:aa:aa:aa:aa' });
  t.deepEqual(rewritten.subarray(0, 12), hex('020000000002 aaaaaaaaaaaa'));
  t.deepEqual(setMacs(input, { dst: hex('bbbbbbbbbbbb') }).subarray(0, 6), hex('bbbbbbbbbbbb'));
  t.deepEqual(input.subarray(0, 12), hex('020000000002 020000000001'), 'the input is unchanged');
  t.throws(() => setMacs(input, { dst: 'x' }), { instanceOf: RangeError, message: /^setMacs\.dst: invalid MAC address 'x'/ });
});

test('diffFrames is undefined for equal frames', (t) => {
  t.is(diffFrames(frame(), frame()), undefined);
});

test('diffFrames names the first differing field, with a summary of both frames', (t) => {
  t.is(
    diffFrames(frame({ ttl: 64 }), frame({ ttl: 63 })),
    ['ipv4.ttl: 64, expected 63', '  actual:   10.0.0.1.1234 > 10.0.0.2.80: UDP, length 5', '  expected: 10.0.0.1.1234 > 10.0.0.2.80: UDP, length 5'].join('\n'),
  );
  t.regex(diffFrames(frame({ dport: 81 }), frame())!, /^udp\.dport: 81, expected 80\n/);
  t.regex(diffFrames(swapMacs(frame()), frame())!, /^eth\.dst: 02:00:00:00:00:01, expected 02:00:00:00:00:02\n/);
  t.regex(diffFrames(frame({ data: 'hellO' }), frame())!, /^udp\.checksum: 0x[0-9a-f]{4}, expected 0x[0-9a-f]{4}\n/);
  t.regex(diffFrames(frame({ vlan: { id: 5 } }), frame())!, /^eth\.vlan: \{\.\.\.\}, expected none\n/);
  t.regex(diffFrames(frame(), frame({ vlan: { id: 5 } }))!, /^eth\.vlan: missing, expected \{\.\.\.\}\n/);
});

test('diffFrames points into byte fields and at the padding', (t) => {
  // Same checksum on purpose: only the data differs.
  const corrupted = frame({ data: 'hello' });
  corrupted[14 + 20 + 8 + 1] ^= 0xff;
  t.regex(diffFrames(corrupted, frame())!, /^udp\.checksumOk: false, expected true\n/);
  const padded = Buffer.from(frame());
  padded[59] = 1;
  t.regex(diffFrames(padded, frame())!, /^padding: byte 12 is 0x01, expected 0x00\n/);
  const shorter = ethernet({ src: A, dst: B, minLength: 0, payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1234, dport: 80, payload: Buffer.from('hello') }) }) });
  t.regex(diffFrames(shorter, frame())!, /^padding: 0 bytes, expected 13\n/);
});

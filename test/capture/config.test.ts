// What a capture request means for a packetcapture cube's table, and the
// requests netcubed refuses, each with the field at fault (no kernel).

import test from 'ava';
import type { CaptureRequest__Output } from '@netcube/api/generated/netcube/v1/CaptureRequest';
import { captureConfigValue, captureSpec } from '../../node-daemon/src/capture/config';
import { InvalidArgumentError } from '../../node-daemon/src/runtime/errors';

const request = (over: Partial<CaptureRequest__Output> = {}): CaptureRequest__Output => ({
  cube: 'cap1',
  port: '',
  netdev: '',
  direction: 'DIRECTION_UNSPECIFIED',
  filter: null,
  snapLength: 0,
  rate: 0,
  burst: 0,
  count: '0',
  ...over,
});
const filter = (over: Partial<NonNullable<CaptureRequest__Output['filter']>>) => ({ addresses: [], ports: [], protocol: '', family: 0, ...over });

test('defaults: both directions, everything, whole packets, 50,000 a second in bursts of 5,000', t => {
  t.like(captureConfigValue(captureSpec(request()), 7, true, 1234n), {
    active: 1,
    lease_until_ns: 1234n,
    session: 7,
    snap_len: 1536,
    rate: 50_000,
    burst: 5_000,
    directions: 3,
    family: 0,
    match_proto: 0,
    addrs: [{ side: 0 }, { side: 0 }],
    ports: [{ side: 0 }, { side: 0 }],
  });
});

test('a filter: IPv4 prefixes as the data plane keeps them (::ffff:a.b.c.d, length + 96), ports, protocol by name', t => {
  const spec = captureSpec(
    request({
      direction: 'DIRECTION_INGRESS',
      filter: filter({ addresses: [{ prefix: '10.1.0.0/16', side: 'SIDE_SRC' }, { prefix: 'fd00::1', side: 'SIDE_UNSPECIFIED' }], ports: [{ port: 53, side: 'SIDE_DST' }], protocol: 'udp' }),
      snapLength: 96,
      rate: 10,
      count: '5',
    }),
  );
  t.is(spec.count, 5n);
  t.like(captureConfigValue(spec, 1, false, 1234n), {
    active: 0,
    lease_until_ns: 0n,
    snap_len: 96,
    rate: 10,
    burst: 10,
    directions: 1,
    match_proto: 1,
    proto: 17,
    addrs: [{ addr: '::ffff:10.1.0.0', prefix_len: 112, side: 1 }, { addr: 'fd00::1', prefix_len: 128, side: 3 }],
    ports: [{ port: 53, side: 2 }, { port: 0, side: 0 }],
  });
});

const refused: [string, Partial<CaptureRequest__Output>, string, RegExp][] = [
  ['no cube', { cube: '' }, 'cube', /name what to capture on: a packetcapture cube, a port of a cube/],
  ['a bad cube name', { cube: 'Cap!' }, 'cube', /cube name 'Cap!' is invalid/],
  ['a bad port name', { cube: 'fwd', port: 'a port' }, 'port', /port name 'a port' is invalid/],
  ['a netdev and a cube', { cube: 'fwd', netdev: 'eth0' }, 'netdev', /a netdev or on a cube, not both/],
  ['a bad netdev name', { cube: '', netdev: 'eth0/1' }, 'netdev', /./],
  ['a snap length past the record', { snapLength: 1537 }, 'snap_length', /1 to 1536 bytes, got 1537/],
  ['a rate past the limit', { rate: 1_000_001 }, 'rate', /at most 1000000 packets a second/],
  ['a burst past the rate', { rate: 100, burst: 101 }, 'burst', /at most the rate/],
  ['three addresses', { filter: filter({ addresses: [1, 2, 3].map(i => ({ prefix: `10.0.0.${i}`, side: 'SIDE_SRC' as const })) }) }, 'filter.addresses', /at most 2 addresses, got 3/],
  ['a bad prefix', { filter: filter({ addresses: [{ prefix: '10.0.0.0/33', side: 'SIDE_SRC' }] }) }, 'filter.addresses[0].prefix', /./],
  ['an IPv6 prefix with family 4', { filter: filter({ addresses: [{ prefix: 'fd00::/64', side: 'SIDE_SRC' }], family: 4 }) }, 'filter.addresses[0].prefix', /IPv6 prefix, and the filter asks for IPv4 only/],
  ['ports with ICMP', { filter: filter({ ports: [{ port: 7, side: 'SIDE_SRC' }], protocol: 'icmp' }) }, 'filter.ports', /TCP and UDP packets only/],
  ['an unknown protocol', { filter: filter({ protocol: 'tcpp' }) }, 'filter.protocol', /./],
  ['family 5', { filter: filter({ family: 5 }) }, 'filter.family', /4 or 6/],
];
for (const [what, over, field, message] of refused) {
  test(`refused: ${what}, naming ${field}`, t => {
    const err = t.throws(() => captureSpec(request(over)), { instanceOf: InvalidArgumentError, message });
    t.is(err?.field, field);
  });
}

import test from 'ava';
import * as path from 'node:path';
import * as bpf from '../../node-daemon/src/bpf';
import { root, testObject } from './testdata';

const u8: bpf.BtfType = { kind: 'int', name: '__u8', size: 1, signed: false };
const u16: bpf.BtfType = { kind: 'int', name: '__u16', size: 2, signed: false };
const s32: bpf.BtfType = { kind: 'int', name: 'int', size: 4, signed: true };
const u64: bpf.BtfType = { kind: 'int', name: '__u64', size: 8, signed: false };
const s64: bpf.BtfType = { kind: 'int', name: '__s64', size: 8, signed: true };
const char: bpf.BtfType = { kind: 'int', name: 'char', size: 1, signed: true, char: true };
const bool: bpf.BtfType = { kind: 'int', name: '_Bool', size: 1, signed: false, bool: true };
const verdict: bpf.BtfType = {
  kind: 'enum', name: 'verdict', size: 4, signed: false,
  values: [{ name: 'PASS', value: 0 }, { name: 'DROP', value: 1 }, { name: 'REDIRECT', value: 4 }],
};
const port: bpf.BtfType = {
  kind: 'struct', name: 'port', size: 40,
  members: [
    { name: 'id', offset: 0, type: u16 },
    { name: 'name', offset: 2, type: { kind: 'array', elem: char, length: 10, size: 10 } },
    { name: 'verdict', offset: 12, type: verdict },
    { name: 'bytes', offset: 16, type: u64 },
    { name: 'delta', offset: 24, type: s64 },
    { name: 'mac', offset: 32, type: { kind: 'array', elem: u8, length: 6, size: 6 } },
    { name: 'up', offset: 38, type: bool },
    // Bitfields sharing the last byte: 3 bits of level, 5 bits of weight.
    { name: 'level', offset: 39, bitOffset: 0, bitSize: 3, type: u8 },
    { name: 'weight', offset: 39, bitOffset: 3, bitSize: 5, type: u8 },
  ],
};
const table: bpf.BtfType = { kind: 'array', elem: port, length: 2, size: 80 };

const sample = {
  id: 7,
  name: 'uplink',
  verdict: 'REDIRECT',
  bytes: '18446744073709551615',
  delta: -42,
  mac: [2, 0, 0, 0, 0, 1],
  up: true,
  level: 5,
  weight: 31,
};

test('structs, arrays, enums, chars, bools, bitfields and 64-bit values round-trip', (t) => {
  const bytes = bpf.encode(port, sample);
  t.is(bytes.length, 40);
  t.is(bytes.readUInt16LE(0), 7);
  t.is(bytes.toString('utf8', 2, 8), 'uplink');
  t.is(bytes.readUInt32LE(12), 4);
  t.is(bytes.readBigUInt64LE(16), 0xffffffffffffffffn);
  t.is(bytes.readBigInt64LE(24), -42n);
  t.is(bytes[39], 5 | (31 << 3));
  t.deepEqual(bpf.decode(port, bytes), sample);

  const rows = bpf.encode(table, [sample, { id: 8, verdict: 1 }]);
  t.deepEqual(bpf.decode(table, rows), [
    sample,
    { id: 8, name: '', verdict: 'DROP', bytes: 0, delta: 0, mac: [0, 0, 0, 0, 0, 0], up: false, level: 0, weight: 0 },
  ]);
  // A bigint, a number and a decimal string are the same integer.
  t.deepEqual(bpf.encode(u64, 5n), bpf.encode(u64, 5));
  t.deepEqual(bpf.encode(u64, '5'), bpf.encode(u64, 5));
  t.is(bpf.decode(u64, bpf.encode(u64, 1n << 53n)), '9007199254740992');
  t.is(bpf.decode(s32, bpf.encode(s32, -1)), -1);
  t.is(bpf.decode(verdict, bpf.encode(verdict, 9)), 9);
  t.deepEqual(bpf.encode(port, bpf.encode(port, sample)), bpf.encode(port, sample));
});

test('unions take one member and decode all; anonymous members are flattened', (t) => {
  const addr: bpf.BtfType = {
    kind: 'union', name: 'addr', size: 4,
    members: [{ name: 'v4', offset: 0, type: { kind: 'int', name: '__u32', size: 4, signed: false } },
              { name: 'bytes', offset: 0, type: { kind: 'array', elem: u8, length: 4, size: 4 } }],
  };
  t.deepEqual(bpf.decode(addr, bpf.encode(addr, { bytes: [10, 0, 0, 1] })), { v4: 0x0100000a, bytes: [10, 0, 0, 1] });
  t.throws(() => bpf.encode(addr, { v4: 1, bytes: [1] }), {
    instanceOf: RangeError, message: 'value: a union addr holds one member, got v4, bytes',
  });
  const wrapper: bpf.BtfType = {
    kind: 'struct', name: 'wrapper', size: 8,
    members: [{ name: 'kind', offset: 0, type: u16 }, { name: '', offset: 4, type: addr }],
  };
  t.deepEqual(bpf.decode(wrapper, bpf.encode(wrapper, { kind: 1, v4: 2 })), { kind: 1, v4: 2, bytes: [2, 0, 0, 0] });
});

test('bad input is rejected with the member path', (t) => {
  const cases: [unknown, ErrorConstructor, string][] = [
    [{ id: 70000 }, RangeError, 'value.id: 70000 does not fit in __u16 (0..65535)'],
    [{ id: 1.5 }, TypeError, 'value.id: expected an integer for __u16, got 1.5'],
    [{ name: 'a name far too long' }, RangeError, 'value.name: 19 bytes do not fit in char[10]'],
    [{ verdict: 'MAYBE' }, RangeError, "value.verdict: 'MAYBE' is not a value of enum verdict (PASS, DROP, REDIRECT)"],
    [{ mac: [1, 2, 'x'] }, TypeError, 'value.mac[2]: expected an integer for __u8, got "x"'],
    [{ mac: [1, 2, 3, 4, 5, 6, 7] }, RangeError, 'value.mac: 7 elements do not fit in __u8[6]'],
    [{ mac: 'aa:bb' }, TypeError, 'value.mac: expected an array for __u8[6]'],
    [{ level: 8 }, RangeError, 'value.level: 8 does not fit in __u8 (0..7)'],
    [{ delta: 1n << 63n }, RangeError, /^value\.delta: 9223372036854775808 does not fit in __s64/ as unknown as string],
    [{ up: 'yes' }, TypeError, 'value.up: expected an integer for _Bool, got "yes"'],
    [{ colour: 'red' }, TypeError, "value: struct port has no member 'colour'"],
    [[1, 2], TypeError, 'value: expected an object for struct port'],
    [null, TypeError, 'value: expected an object for struct port'],
    [Buffer.alloc(39), RangeError, 'value: 39 bytes given for struct port of 40 bytes'],
  ];
  for (const [value, instanceOf, message] of cases) t.throws(() => bpf.encode(port, value), { instanceOf, message });
  t.throws(() => bpf.encode(table, [sample, { id: -1 }]), { instanceOf: RangeError, message: /^value\[1\]\.id: -1 does not fit/ });
  t.throws(() => bpf.decode(port, Buffer.alloc(39)), { instanceOf: RangeError, message: 'bytes are 39 long, expected 40 for struct port' });
  t.throws(() => bpf.decode(port, 'bytes' as unknown as Buffer), { instanceOf: TypeError });
});

test('types described from a real object encode what the program reads', (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('counter'));
  t.teardown(() => spec.close());
  const value = spec.maps.get('flows')!.valueType!;
  t.deepEqual(value, {
    kind: 'struct', name: 'tst_flow_stats', size: 32,
    members: [
      { name: 'packets', offset: 0, type: { kind: 'int', name: '__u64', size: 8, signed: false } },
      { name: 'bytes', offset: 8, type: { kind: 'int', name: '__u64', size: 8, signed: false } },
      { name: 'tag', offset: 16, type: { kind: 'array', elem: { kind: 'int', name: 'char', size: 1, signed: true, char: true }, length: 8, size: 8 } },
      { name: 'verdict', offset: 24, type: { kind: 'enum', name: 'tst_verdict', size: 4, signed: false,
                                              values: [{ name: 'TST_PASS', value: 0 }, { name: 'TST_DROP', value: 1 }] } },
    ],
  });
  const stats = { packets: 3, bytes: '12345678901234567890', tag: 'tcp', verdict: 'TST_PASS' };
  t.deepEqual(bpf.decode(value, bpf.encode(value, stats)), stats);
});

// The framework's typed fields (bpf/include/netcube/fields.h): network-order bytes
// shown and taken as addresses and port numbers.
const ipv4: bpf.BtfType = { kind: 'int', name: 'nc_ipv4_t', size: 4, signed: false };
const ipv6: bpf.BtfType = { kind: 'struct', name: 'nc_ipv6_t', size: 16, members: [] };
const mac: bpf.BtfType = { kind: 'array', name: 'nc_mac_t', elem: u8, length: 6, size: 6 };
const l4port: bpf.BtfType = { kind: 'int', name: 'nc_port_t', size: 2, signed: false };

test('typed fields read and write as addresses and ports, in network byte order', (t) => {
  t.deepEqual(bpf.encode(ipv4, '10.0.1.0'), Buffer.from([10, 0, 1, 0]));
  t.is(bpf.decode(ipv4, Buffer.from([10, 0, 1, 0])), '10.0.1.0');
  t.deepEqual(bpf.encode(l4port, 8080), Buffer.from([0x1f, 0x90]));
  t.is(bpf.decode(l4port, Buffer.from([0x1f, 0x90])), 8080);
  t.deepEqual(bpf.encode(mac, 'AA:bb:cc:00:00:01'), Buffer.from([0xaa, 0xbb, 0xcc, 0, 0, 1]));
  t.is(bpf.decode(mac, Buffer.from([0xaa, 0xbb, 0xcc, 0, 0, 1])), 'aa:bb:cc:00:00:01');
  // RFC 5952 text: the longest zero run compressed (the first of equals), mapped IPv4 dotted.
  const v6 = (text: string) => bpf.decode(ipv6, bpf.encode(ipv6, text));
  t.is(v6('fe80:0:0:0:0:0:0:1'), 'fe80::1');
  t.is(v6('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  t.is(v6('2001:DB8::0:1'), '2001:db8::1');
  t.is(v6('1:0:2:3:4:5:6:7'), '1:0:2:3:4:5:6:7');
  t.is(v6('::'), '::');
  t.is(v6('::1'), '::1');
  t.is(v6('::ffff:10.0.0.1'), '::ffff:10.0.0.1');
  t.is(v6('64:ff9b::192.0.2.33'), '64:ff9b::c000:221');
  t.deepEqual(bpf.encode(ipv6, 'fd00::1:2'), Buffer.from('fd000000000000000000000000010002', 'hex'));
  // Raw bytes still go in as they are.
  t.deepEqual(bpf.encode(ipv4, Buffer.from([1, 2, 3, 4])), Buffer.from([1, 2, 3, 4]));
  // A type of another size keeps its plain meaning, whatever its name.
  t.is(bpf.decode({ ...ipv4, size: 2 }, Buffer.from([1, 2])), 0x0201);
});

test('a typed field refuses what is not its kind of address, naming the member', (t) => {
  const key: bpf.BtfType = {
    kind: 'struct', name: 'flow', size: 30,
    members: [
      { name: 'src', offset: 0, type: ipv4 },
      { name: 'dst', offset: 4, type: ipv6 },
      { name: 'mac', offset: 20, type: mac },
      { name: 'port', offset: 26, type: l4port },
    ],
  };
  const cases: [unknown, string][] = [
    [{ src: 167772161 }, "key.src: expected an IPv4 address like '10.0.0.1', got 167772161"],
    [{ src: '10.0.0.256' }, `key.src: expected an IPv4 address like '10.0.0.1', got "10.0.0.256"`],
    [{ src: '010.0.0.1' }, `key.src: expected an IPv4 address like '10.0.0.1', got "010.0.0.1"`],
    [{ dst: '10.0.0.1' }, `key.dst: expected an IPv6 address like 'fe80::1', got "10.0.0.1"`],
    [{ dst: 'fe80::1%eth0' }, `key.dst: expected an IPv6 address like 'fe80::1', got "fe80::1%eth0"`],
    [{ mac: [2, 0, 0, 0, 0, 1] }, "key.mac: expected a MAC address like '02:00:00:00:00:01', got 2,0,0,0,0,1"],
    [{ port: 65536 }, 'key.port: expected a port number from 0 to 65535, got 65536'],
    [{ port: 'http' }, 'key.port: expected a port number from 0 to 65535, got "http"'],
  ];
  for (const [value, message] of cases) t.throws(() => bpf.encode(key, value, 'key'), { instanceOf: TypeError, message });
});

test('cube objects name their typed fields in BTF: the router\'s tables read as addresses', (t) => {
  const spec = bpf.CollectionSpec.fromFile(path.join(root, 'build/bpf/cubes/router.xdp.o'));
  t.teardown(() => spec.close());
  const port = spec.maps.get('router_ports')!.valueType!;
  const value = { addr: '10.1.0.1', prefixlen: 24, mac: '02:00:00:00:01:01', pad: 0 };
  const bytes = bpf.encode(port, value);
  t.deepEqual(bytes.subarray(0, 4), Buffer.from([10, 1, 0, 1]));
  t.deepEqual(bytes.subarray(8, 14), Buffer.from([2, 0, 0, 0, 1, 1]));
  t.deepEqual(bpf.decode(port, bytes), value);
  t.is(bpf.decode(spec.maps.get('neighbours')!.keyType!, Buffer.from([10, 1, 0, 5])), '10.1.0.5');
  t.deepEqual(bpf.decode(spec.maps.get('routes')!.keyType!, Buffer.from([16, 0, 0, 0, 10, 9, 0, 0])), { prefixlen: 16, addr: '10.9.0.0' });
});

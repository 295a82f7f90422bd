import test from 'ava';
import {
  cidrContains,
  formatCidr,
  formatIp,
  formatIpv4,
  formatIpv6,
  formatMac,
  ipv4FromNumber,
  ipv4ToNumber,
  ipv6MulticastMac,
  parseCidr,
  parseIp,
  parseIpv4,
  parseIpv6,
  parseMac,
  solicitedNodeAddress,
} from '@netcube/sdk/packet';
import { hex } from './reference';

test('MAC text and bytes convert both ways, upper case read, lower case written', (t) => {
  t.deepEqual(parseMac('aa:bb:cc:dd:ee:ff'), hex('aabbccddeeff'));
  t.deepEqual(parseMac('02:00:5E:10:0A:FF'), hex('02005e100aff'));
  t.is(formatMac(hex('02005e100aff')), '02:00:5e:10:0a:ff');
  t.is(formatMac(parseMac('00:00:00:00:00:00')), '00:00:00:00:00:00');
});

test('bad MAC text names the value and shows the expected form', (t) => {
  for (const bad of ['aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', 'aa-bb-cc-dd-ee-ff', 'a:b:c:d:e:f', 'gg:bb:cc:dd:ee:ff', '']) {
    const error = t.throws(() => parseMac(bad), { instanceOf: RangeError });
    t.true(error!.message.includes(`'${bad}'`), error!.message);
    t.true(error!.message.includes("like 'aa:bb:cc:dd:ee:ff'"), error!.message);
  }
  t.throws(() => parseMac('zz', 'router.mac'), { instanceOf: RangeError, message: /^router\.mac: invalid MAC address 'zz'/ });
  t.throws(() => parseMac(42 as unknown as string), { instanceOf: TypeError, message: 'MAC address must be a string, got number 42' });
  t.throws(() => formatMac(Buffer.alloc(5)), { instanceOf: RangeError, message: 'a MAC address is 6 bytes, got 5' });
});

test('IPv4 text, bytes and numbers convert both ways', (t) => {
  t.deepEqual(parseIpv4('10.0.0.1'), hex('0a000001'));
  t.deepEqual(parseIpv4('255.255.255.255'), hex('ffffffff'));
  t.is(formatIpv4(hex('c0a80001')), '192.168.0.1');
  t.is(ipv4ToNumber('10.0.0.1'), 0x0a000001);
  t.is(ipv4ToNumber('255.255.255.255'), 0xffffffff);
  t.is(ipv4ToNumber(hex('c0a80001')), 0xc0a80001);
  t.is(ipv4FromNumber(0xc0a80001), '192.168.0.1');
  t.is(ipv4FromNumber(0), '0.0.0.0');
});

test('bad IPv4 text says which part is wrong', (t) => {
  const cases: Array<[string, string]> = [
    ['10.0.0', "invalid IPv4 address '10.0.0': expected 4 decimal numbers separated by '.', like '10.0.0.1'"],
    ['10.0.0.256', "invalid IPv4 address '10.0.0.256': part 4 (256) is greater than 255"],
    ['10.0.010.1', "invalid IPv4 address '10.0.010.1': part 3 ('010') has a leading zero"],
    ['10.0.x.1', "invalid IPv4 address '10.0.x.1': part 3 ('x') is not a decimal number from 0 to 255"],
    ['10.0..1', "invalid IPv4 address '10.0..1': part 3 ('') is not a decimal number from 0 to 255"],
    [' 10.0.0.1', "invalid IPv4 address ' 10.0.0.1': part 1 (' 10') is not a decimal number from 0 to 255"],
  ];
  for (const [text, message] of cases) t.throws(() => parseIpv4(text), { instanceOf: RangeError, message });
  t.throws(() => ipv4FromNumber(2 ** 32), { instanceOf: RangeError, message: /4294967296/ });
  t.throws(() => ipv4FromNumber(-1), { instanceOf: RangeError });
});

test('IPv6 text in every RFC 4291 form reads to the same bytes', (t) => {
  const cases: Array<[string, string]> = [
    ['2001:db8:0:0:8:800:200c:417a', '20010db80000000000080800200c417a'],
    ['2001:DB8::8:800:200C:417A', '20010db80000000000080800200c417a'],
    ['ff01::101', 'ff010000000000000000000000000101'],
    ['::1', '00000000000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['fe80::', 'fe800000000000000000000000000000'],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
    ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
    ['0:0:0:0:0:0:13.1.68.3', '0000000000000000000000000d014403'],
    ['::ffff:129.144.52.38', '00000000000000000000ffff81903426'],
    ['fd00:0000:0000:0000:0000:0000:0000:0001', 'fd000000000000000000000000000001'],
  ];
  for (const [text, bytes] of cases) t.deepEqual(parseIpv6(text), hex(bytes), text);
});

test('IPv6 is written in RFC 5952 canonical form', (t) => {
  const cases: Array<[string, string]> = [
    ['20010db80000000000080800200c417a', '2001:db8::8:800:200c:417a'],
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['20010db8000000010000000000000001', '2001:db8:0:1::1'], // the longer run
    ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'], // one zero group stays
    ['00000000000000000000000000000000', '::'],
    ['00000000000000000000000000000001', '::1'],
    ['fe800000000000000000000000000000', 'fe80::'],
    ['00000000000000000000ffff0a000001', '::ffff:10.0.0.1'],
    ['ff0200000000000000000001ff000002', 'ff02::1:ff00:2'],
  ];
  for (const [bytes, text] of cases) t.is(formatIpv6(hex(bytes)), text);
});

test('bad IPv6 text says what is wrong', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['1::2::3', /'::' may appear only once/],
    ['1:2:3:4:5:6:7', /expected 8 groups of hex digits, got 7 \(use '::' for a run of zeros\)/],
    ['1:2:3:4:5:6:7:8:9', /expected 8 groups of hex digits, got 9/],
    ['1:2:3:4::5:6:7:8', /too many groups for '::' to stand for any zeros/],
    ['12345::', /group '12345' is not 1 to 4 hex digits/],
    ['g::1', /group 'g' is not 1 to 4 hex digits/],
    [':1:2:3:4:5:6:7', /empty group/],
    ['fe80::1%eth0', /zone indexes/],
    ['::ffff:10.0.0.256', /embedded IPv4 address '10.0.0.256': part 4 \(256\) is greater than 255/],
    ['::10.0.0.1:1', /group '10.0.0.1' is not 1 to 4 hex digits/],
  ];
  for (const [text, message] of cases) {
    const error = t.throws(() => parseIpv6(text), { instanceOf: RangeError, message });
    t.true(error!.message.startsWith(`invalid IPv6 address '${text}': `), error!.message);
  }
});

test('IPv6 neighbor discovery addresses', (t) => {
  t.is(formatIpv6(solicitedNodeAddress('fd00::1:2:3')), 'ff02::1:ff02:3');
  t.is(formatIpv6(solicitedNodeAddress('fe80::aabb:ccdd:eeff')), 'ff02::1:ffdd:eeff');
  t.is(formatMac(ipv6MulticastMac('ff02::1:ff00:2')), '33:33:ff:00:00:02');
  t.is(formatMac(ipv6MulticastMac('ff02::1')), '33:33:00:00:00:01');
});

test('parseIp and formatIp pick the family', (t) => {
  t.is(parseIp('10.1.2.3').length, 4);
  t.is(parseIp('fd00::1').length, 16);
  t.is(formatIp(parseIp('fd00::1')), 'fd00::1');
  t.throws(() => formatIp(Buffer.alloc(8)), { instanceOf: RangeError, message: 'an IP address is 4 or 16 bytes, got 8' });
});

test('CIDR prefixes keep the address as written and match by network', (t) => {
  const lan = parseCidr('10.0.0.1/24');
  t.is(lan.family, 4);
  t.is(lan.prefixLength, 24);
  t.is(formatIpv4(lan.address), '10.0.0.1');
  t.is(formatIpv4(lan.network), '10.0.0.0');
  t.is(formatCidr(lan), '10.0.0.1/24');
  t.true(cidrContains(lan, '10.0.0.255'));
  t.false(cidrContains(lan, '10.0.1.0'));
  t.true(cidrContains('10.0.0.0/23', '10.0.1.7'));
  t.false(cidrContains('10.0.0.0/23', '10.0.2.7'));
  t.true(cidrContains('172.16.0.0/12', '172.31.255.255'));
  t.false(cidrContains('172.16.0.0/12', '172.32.0.0'));
  t.true(cidrContains('0.0.0.0/0', '203.0.113.9'));
  t.true(cidrContains('10.0.0.7/32', '10.0.0.7'));
  t.false(cidrContains('10.0.0.7/32', '10.0.0.6'));
  t.true(cidrContains('10.0.0.0/8', parseIpv4('10.200.0.1')));
});

test('IPv6 prefixes, including ones not on a byte boundary', (t) => {
  t.is(parseCidr('fd00::1/64').family, 6);
  t.is(formatIpv6(parseCidr('2001:db8:abcd:ef12::1/52').network), '2001:db8:abcd:e000::');
  t.true(cidrContains('2001:db8::/32', '2001:db8:ffff::1'));
  t.false(cidrContains('2001:db8::/32', '2001:db9::1'));
  t.true(cidrContains('2001:db8:abcd:e000::/52', '2001:db8:abcd:efff::1'));
  t.false(cidrContains('2001:db8:abcd:e000::/52', '2001:db8:abcd:f000::1'));
  t.true(cidrContains('::/0', 'fe80::1'));
  t.true(cidrContains('fe80::1/128', 'fe80::1'));
  t.false(cidrContains('fe80::1/128', 'fe80::2'));
});

test('an address of the other family is never in a prefix', (t) => {
  t.false(cidrContains('0.0.0.0/0', '::'));
  t.false(cidrContains('::/0', '0.0.0.0'));
  t.false(cidrContains('::ffff:0:0/96', '10.0.0.1'));
});

test('bad CIDR text names the value and the rule', (t) => {
  t.throws(() => parseCidr('10.0.0.0'), {
    instanceOf: RangeError,
    message: "invalid CIDR prefix '10.0.0.0': expected address/prefix-length, like '10.0.0.0/24' or 'fd00::/64'",
  });
  t.throws(() => parseCidr('10.0.0.0/33'), {
    instanceOf: RangeError,
    message: "invalid CIDR prefix '10.0.0.0/33': prefix length '33' is not a number from 0 to 32",
  });
  t.throws(() => parseCidr('fd00::/129'), { instanceOf: RangeError, message: /prefix length '129' is not a number from 0 to 128/ });
  t.throws(() => parseCidr('10.0.0.0/-1'), { instanceOf: RangeError, message: /prefix length '-1'/ });
  t.throws(() => parseCidr('10.0.0.0/'), { instanceOf: RangeError, message: /prefix length ''/ });
  t.throws(() => parseCidr('10.0.0/8', 'routes[2].prefix'), {
    instanceOf: RangeError,
    message: /^routes\[2\]\.prefix: invalid IPv4 address '10.0.0'/,
  });
  t.throws(() => cidrContains('10.0.0.0/8', Buffer.alloc(5)), { instanceOf: TypeError, message: /a 5-byte Buffer/ });
});

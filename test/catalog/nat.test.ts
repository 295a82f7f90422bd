// The NAT translator (remote-services/nat/tables.ts), without a kernel: rules as
// the tables hold them, masquerade, errors that name the field, and the NAT table
// read back as translations.
import test from 'ava';
import { FieldError } from '@netcube/catalog/fields';
import { compileNat, DEFAULT_PORTS, translations } from '@netcube/nat/tables';

test('SNAT rules: LPM keys over the IPv6 form, the address and the port range', (t) => {
  const tables = compileNat({
    snat: [
      { from: '10.0.0.0/24', to: '203.0.113.1', ports: '20000-29999' },
      { from: '10.1.0.0/16', masquerade: true },
      { from: 'fd00::/64', masquerade: true },
    ],
  }, { masqueradeAddress: { ipv4: '198.51.100.1', ipv6: '2001:db8::1' } });
  t.deepEqual(tables.nat_snat_rules, [
    { key: { prefixlen: 120, addr: '::ffff:10.0.0.0' }, value: { to_addr: '::ffff:203.0.113.1', port_min: 20000, port_max: 29999 } },
    { key: { prefixlen: 112, addr: '::ffff:10.1.0.0' }, value: { to_addr: '::ffff:198.51.100.1', port_min: DEFAULT_PORTS.first, port_max: DEFAULT_PORTS.last } },
    { key: { prefixlen: 64, addr: 'fd00::' }, value: { to_addr: '2001:db8::1', port_min: 1024, port_max: 65535 } },
  ]);
  t.deepEqual(tables.nat_dnat_rules, []);
});

test('DNAT rules: a port, a range of ports, a whole address', (t) => {
  const tables = compileNat({
    dnat: [
      { address: '203.0.113.1', protocol: 'tcp', port: 8080, to: '10.0.0.5', toPort: 80 },
      { address: '203.0.113.1', protocol: 'udp', port: '5000-5002', to: '10.0.0.6' },
      { address: '203.0.113.2', to: '10.0.0.7' },
    ],
  });
  const key = (addr: string, proto: number, port: number) => ({ addr: `::ffff:${addr}`, port, proto, pad: 0 });
  const value = (to: string, toPort = 0) => ({ to_addr: `::ffff:${to}`, to_port: toPort, pad: 0 });
  t.deepEqual(tables.nat_dnat_rules, [
    { key: key('203.0.113.1', 6, 8080), value: value('10.0.0.5', 80) },
    { key: key('203.0.113.1', 17, 5000), value: value('10.0.0.6') },
    { key: key('203.0.113.1', 17, 5001), value: value('10.0.0.6') },
    { key: key('203.0.113.1', 17, 5002), value: value('10.0.0.6') },
    { key: key('203.0.113.2', 0, 0), value: value('10.0.0.7') },
  ]);
});

test('config errors name the field', (t) => {
  const cases: [unknown, string, object?][] = [
    [{ snat: [{ from: '10.0.0.0/24' }] }, 'snat[0]: give either to (an address) or masquerade: true'],
    [{ snat: [{ from: '10.0.0.0/24', to: '1.2.3.4', masquerade: true }] }, 'snat[0]: give either to (an address) or masquerade: true'],
    [{ snat: [{ from: '10.0.0.0/24', masquerade: true }] }, 'snat[0].masquerade: the outside port has no IPv4 address to masquerade as'],
    [{ snat: [{ from: 'fd00::/64', masquerade: true }] }, 'snat[0].masquerade: the outside port has no IPv6 address to masquerade as', { masqueradeAddress: '1.2.3.4' }],
    [{ snat: [{ from: '10.0.0.0/24', to: 'fd00::1' }] }, 'snat[0].to: fd00::1 is IPv6 but from 10.0.0.0/24 is IPv4'],
    [{ snat: [{ from: '10.0.0.0/24', to: '1.2.3.4', ports: '0-100' }] }, 'snat[0].ports: port 0 is not a port to give a flow: start at 1 or more'],
    [{ snat: [{ from: '10.0.0.0/24', to: '1.2.3.4' }, { from: '10.0.0.0/24', to: '1.2.3.5' }] }, 'snat[1].from: snat[0] has the same prefix'],
    [{ dnat: [{ address: '1.2.3.4', protocol: 'tcp', to: '10.0.0.1' }] }, 'dnat[0].port: forwarding tcp needs its port; leave protocol out to forward the whole address'],
    [{ dnat: [{ address: '1.2.3.4', port: 80, to: '10.0.0.1' }] }, 'dnat[0].port: a port needs protocol tcp, udp or sctp'],
    [{ dnat: [{ address: '1.2.3.4', protocol: 'udp', port: '1-2', to: '10.0.0.1', toPort: 53 }] }, 'dnat[0].toPort: toPort goes with a single port'],
    [{ dnat: [{ address: '1.2.3.4', to: '10.0.0.1' }, { address: '1.2.3.4', to: '10.0.0.2' }] }, 'dnat[1]: dnat[0] forwards 1.2.3.4 already'],
    [{ dnat: [{ address: '1.2.3.4', to: '::1' }] }, 'dnat[0].to: ::1 is IPv6 but address 1.2.3.4 is IPv4'],
    [{ snat: [{ from: '10.0.0.0/24', to: '1.2.3.4', port: 5 }] }, 'snat[0].port: unknown field; the fields here are from, to, masquerade, ports'],
  ];
  for (const [config, message, opts] of cases) {
    const err = t.throws(() => compileNat(config, opts), { instanceOf: FieldError });
    t.is(err?.message, message);
  }
});

test('the NAT table reads back as one translation per flow', (t) => {
  const sessions = [
    // A UDP flow out: its egress session, and the session of its answers.
    { key: { saddr: '::ffff:10.0.0.10', daddr: '::ffff:198.51.100.7', sport: 5353, dport: 53, proto: 17, dir: 1, pad: 0 }, value: { addr: '::ffff:203.0.113.1', port: 20017, rewrite: 0, pad: 0 } },
    { key: { saddr: '::ffff:198.51.100.7', daddr: '::ffff:203.0.113.1', sport: 53, dport: 20017, proto: 17, dir: 0, pad: 0 }, value: { addr: '::ffff:10.0.0.10', port: 5353, rewrite: 1, pad: 0 } },
    // An echo out, IPv6.
    { key: { saddr: 'fd00::10', daddr: '2001:db8:ffff::7', sport: 9, dport: 9, proto: 58, dir: 1, pad: 0 }, value: { addr: '2001:db8::1', port: 30001, rewrite: 0, pad: 0 } },
  ];
  t.deepEqual(translations(sessions), [
    { protocol: 'udp', inside: '10.0.0.10:5353', outside: '203.0.113.1:20017', peer: '198.51.100.7:53' },
    { protocol: 'icmpv6', inside: 'fd00::10 id 9', outside: '2001:db8::1 id 30001', peer: '2001:db8:ffff::7' },
  ]);
});

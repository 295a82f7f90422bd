// firewall: a transparent cube that accepts or drops IP packets by rules per
// direction (prefixes, protocol, port ranges, TCP flags, ct state), counting each
// rule's packets and bytes, with a default action per direction. Its tables come
// from the rule compiler (remote-services/firewall/tables.ts), written as the
// control plane writes them: a bank packets do not use, then one switch.
//
// Fixture: netdev n0 linked to port a of probe cube q (which marks what it
// receives), firewall g stacked on n0 in both directions: going in, g sends on to
// q:a (verdict mark); going out, to n0 (redirect).
import type { ExecutionContext } from 'ava';
import { DIR_EGRESS, DIR_INGRESS, Metadata } from '../../node-daemon/src/runtime/abi';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { DEFAULT_SLOT, type FirewallConfig, type FirewallTables } from '@netcube/firewall/tables';
import { arp, ArpOp, ethernet } from '@netcube/sdk/packet';
import { activate, firewallCounter, loadFirewall, stackedCube, writeFirewall, type FirewallState, type StackedFixture } from '../helpers/catalog';
import { entering, errors, runProgram } from '../helpers/dataplane';
import { echoRequest, icmpErrorAbout, MAC_A, MAC_B, TcpFlags, tcpFrame, udpFrame } from '../helpers/flows';
import { fixtureLimit } from '../helpers/limit';
import { table, type Row } from '../helpers/rows';
import { adminRules, PROBE } from '../helpers/rulesets';

interface Fixture extends StackedFixture {
  state?: FirewallState;
  compiled?: FirewallTables;
}

/** Fixtures alive at once: see helpers/limit. */
const place = fixtureLimit(6);

async function fixture(t: ExecutionContext, mode: Mode): Promise<Fixture> {
  await place(t);
  return stackedCube(t, mode, 'firewall');
}

/** Compiles and activates `config`. */
const rules = (config: FirewallConfig) => (f: Fixture) => {
  const { compiled, state } = loadFirewall(f.g, config, f.state);
  f.compiled = compiled;
  f.state = state;
};

const going = (dir: number) => (f: Fixture): Metadata => entering(dir, f.g.id, f.gen);
const IN = going(DIR_INGRESS);
const OUT = going(DIR_EGRESS);

/** Sends `frames` through the firewall first, each in its direction. */
const sent = (...frames: [Buffer, typeof IN][]) => async (f: Fixture, mode: Mode) => {
  for (const [frame, md] of frames) await runProgram(f.g.program(), mode, frame, md(f));
};

/** The counters of rule `index` of `dir` (or of the default action): `packets` packets of `bytes` bytes each. */
const counted = (dir: 'ingress' | 'egress', index: number | 'default', packets: number, bytes: number) => (t: ExecutionContext, f: Fixture) => {
  const slot = index === 'default' ? DEFAULT_SLOT : f.compiled!.rules[dir][index].slot;
  t.deepEqual(firewallCounter(f.g, dir, slot), { packets, bytes: packets * bytes }, `${dir} ${index === 'default' ? 'default action' : `rule ${index} (${f.compiled!.rules[dir][index].text})`}`);
};
const both = (...checks: NonNullable<Row<Fixture>['check']>[]) => async (t: ExecutionContext, f: Fixture, res: Parameters<NonNullable<Row<Fixture>['check']>>[2], mode: Mode) => {
  for (const c of checks) await c(t, f, res, mode);
};

const in4 = { src: '10.1.0.5', dst: '192.168.0.10' };
const in6 = { src: '2001:db8:1::5', dst: '2001:db8:ffff::10' };
const out4 = { src: '192.168.0.10', dst: '10.1.0.5', macs: { src: MAC_B, dst: MAC_A } };
const web = tcpFrame(in4, 40000, 443, TcpFlags.SYN);
const web6 = tcpFrame(in6, 40000, 443, TcpFlags.SYN);
const dns = udpFrame(in4, 5353, 53);
const arpFrame = ethernet({ src: MAC_A, dst: 'ff:ff:ff:ff:ff:ff', payload: arp({ op: ArpOp.REQUEST, senderMac: MAC_A, senderIp: in4.src, targetIp: in4.dst }) });
const dropAllIn: FirewallConfig = { ingress: { defaultAction: 'drop' } };

const rows: Row<Fixture>[] = [
  // ------------------------------------------------------------- before and around rules
  {
    description: 'never programmed: everything goes through',
    input: web,
    md: IN,
    verdict: 'mark',
  },
  {
    description: 'no rules, default drop: IP is dropped and counted on the default action',
    setup: rules(dropAllIn),
    input: web,
    md: IN,
    verdict: 'drop',
    check: both(counted('ingress', 'default', 1, web.length), (t, f) => t.like(f.rt.portStats('g', 'ingress'), { rxPackets: 1n, drops: 1n })),
  },
  {
    description: 'ARP is not the firewall\'s business: it goes through a default drop',
    setup: rules(dropAllIn),
    input: arpFrame,
    md: IN,
    verdict: 'mark',
    check: counted('ingress', 'default', 0, 0),
  },
  {
    description: 'each direction has its own rules: a default drop going in lets packets out',
    setup: rules(dropAllIn),
    input: udpFrame(out4, 53, 5353),
    md: OUT,
    verdict: 'redirect',
    check: counted('egress', 'default', 1, udpFrame(out4, 53, 5353).length),
  },

  // ------------------------------------------------------------- matching
  {
    description: 'a source prefix accepts; its rule counts packets and bytes',
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'accept', src: '10.1.0.0/16' }] } }),
    input: web,
    md: IN,
    verdict: 'mark',
    check: both(counted('ingress', 0, 1, web.length), counted('ingress', 'default', 0, 0), (t, f) => t.deepEqual(errors(f.rt), {})),
  },
  {
    description: 'a source outside the prefix falls to the default',
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'accept', src: '10.2.0.0/16' }] } }),
    input: web,
    md: IN,
    verdict: 'drop',
    check: both(counted('ingress', 0, 0, 0), counted('ingress', 'default', 1, web.length)),
  },
  {
    description: 'a destination prefix, IPv6',
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'accept', dst: '2001:db8:ffff::/64' }] } }),
    input: web6,
    md: IN,
    verdict: 'mark',
    check: counted('ingress', 0, 1, web6.length),
  },
  {
    description: 'an IPv4 rule does not match IPv6, nor an IPv6 rule IPv4',
    setup: rules({ ingress: { defaultAction: 'accept', rules: [{ action: 'drop', src: '0.0.0.0/0' }, { action: 'accept', src: '::/0' }] } }),
    input: web6,
    md: IN,
    verdict: 'mark',
    check: both(counted('ingress', 0, 0, 0), counted('ingress', 1, 1, web6.length)),
  },
  {
    description: 'a rule without addresses matches both families',
    setup: rules({ ingress: { defaultAction: 'accept', rules: [{ action: 'drop', protocol: 'tcp', dport: 443 }] } }),
    input: web6,
    md: IN,
    verdict: 'drop',
    check: counted('ingress', 0, 1, web6.length),
  },
  {
    description: 'protocol and destination port: UDP 53 accepted, TCP 443 to the default',
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'accept', protocol: 'udp', dport: 53 }] } }),
    input: dns,
    md: IN,
    verdict: 'mark',
    check: counted('ingress', 0, 1, dns.length),
  },
  ...[8000, 8099].map((port): Row<Fixture> => ({
    description: `a port range takes its ends (8000-8099: ${port})`,
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'accept', protocol: 'tcp', dport: '8000-8099' }] } }),
    input: tcpFrame(in4, 40000, port, TcpFlags.SYN),
    md: IN,
    verdict: 'mark',
  })),
  ...[7999, 8100].map((port): Row<Fixture> => ({
    description: `a port range stops at its ends (8000-8099: ${port})`,
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'accept', protocol: 'tcp', dport: '8000-8099' }] } }),
    input: tcpFrame(in4, 40000, port, TcpFlags.SYN),
    md: IN,
    verdict: 'drop',
  })),
  {
    description: 'a source port range',
    setup: rules({ ingress: { defaultAction: 'accept', rules: [{ action: 'drop', protocol: 'udp', sport: '5000-5999' }] } }),
    input: dns,
    md: IN,
    verdict: 'drop',
  },
  {
    description: 'ICMP by protocol',
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'accept', protocol: 'icmp', src: '10.0.0.0/8' }] } }),
    input: echoRequest(in4, 1),
    md: IN,
    verdict: 'mark',
  },
  {
    description: 'the first rule that matches decides (accept before drop)',
    setup: rules({ ingress: { rules: [{ action: 'accept', src: '10.1.0.5' }, { action: 'drop', src: '10.0.0.0/8' }] } }),
    input: web,
    md: IN,
    verdict: 'mark',
    check: both(counted('ingress', 0, 1, web.length), counted('ingress', 1, 0, 0)),
  },
  {
    description: 'the first rule that matches decides (drop before accept), across trees: a rule without addresses before one with',
    setup: rules({ ingress: { rules: [{ action: 'drop', protocol: 'tcp' }, { action: 'accept', src: '10.1.0.5', dst: '192.168.0.10' }] } }),
    input: web,
    md: IN,
    verdict: 'drop',
    check: both(counted('ingress', 0, 1, web.length), counted('ingress', 1, 0, 0)),
  },
  {
    description: 'TCP flags: a SYN without ACK is dropped ...',
    setup: rules({ ingress: { rules: [{ action: 'drop', protocol: 'tcp', tcpFlags: { set: ['syn'], clear: ['ack'] } }] } }),
    input: web,
    md: IN,
    verdict: 'drop',
  },
  {
    description: '... while a SYN-ACK is not',
    setup: rules({ ingress: { rules: [{ action: 'drop', protocol: 'tcp', tcpFlags: { set: ['syn'], clear: ['ack'] } }] } }),
    input: tcpFrame(in4, 40000, 443, TcpFlags.SYN | TcpFlags.ACK),
    md: IN,
    verdict: 'mark',
  },
  {
    description: 'a later IPv4 fragment has no ports: a port rule does not match it, a protocol rule does',
    setup: rules({ ingress: { defaultAction: 'drop', rules: [{ action: 'drop', protocol: 'udp', dport: 53 }, { action: 'accept', protocol: 'udp' }] } }),
    input: (() => {
      const frag = Buffer.from(dns);
      frag.writeUInt16BE(1, 14 + 6); // offset 8 bytes
      return frag;
    })(),
    md: IN,
    verdict: 'mark',
  },

  // ------------------------------------------------------------- connection tracking
  {
    description: 'ct: accept established going in; a connection opened going out is answered',
    setup: async (f, mode) => {
      rules({ ingress: { defaultAction: 'drop', acceptEstablished: true } })(f);
      await sent([tcpFrame(out4, 443, 40000, TcpFlags.SYN), OUT])(f, mode);
    },
    input: tcpFrame(in4, 40000, 443, TcpFlags.SYN | TcpFlags.ACK),
    md: IN,
    verdict: 'mark',
    check: counted('ingress', 0, 1, tcpFrame(in4, 40000, 443, TcpFlags.SYN | TcpFlags.ACK).length),
  },
  {
    description: 'ct: ... while a connection opened from outside is new, and dropped',
    setup: rules({ ingress: { defaultAction: 'drop', acceptEstablished: true } }),
    input: web,
    md: IN,
    verdict: 'drop',
  },
  {
    description: 'ct: a flow the egress rules dropped was not recorded: its answer is not established',
    setup: async (f, mode) => {
      rules({ ingress: { defaultAction: 'drop', acceptEstablished: true }, egress: { defaultAction: 'drop' } })(f);
      await sent([udpFrame(out4, 53, 5353), OUT])(f, mode);
    },
    input: dns,
    md: IN,
    verdict: 'drop',
  },
  {
    description: 'ct: state invalid can be dropped (a TCP ACK of no connection)',
    setup: rules({ ingress: { defaultAction: 'accept', rules: [{ action: 'drop', ctState: ['invalid'] }] } }),
    input: tcpFrame(in4, 40000, 443, TcpFlags.ACK),
    md: IN,
    verdict: 'drop',
  },
  {
    description: 'ct: related ICMP errors are accepted with the established',
    setup: async (f, mode) => {
      rules({ ingress: { defaultAction: 'drop', acceptEstablished: true } })(f);
      await sent([udpFrame(out4, 53, 5353), OUT])(f, mode);
    },
    input: icmpErrorAbout(in4, udpFrame(out4, 53, 5353)),
    md: IN,
    verdict: 'mark',
  },

  // ------------------------------------------------------------- changes
  {
    description: 'a rule set written but not activated changes nothing ...',
    setup: (f) => {
      rules({ ingress: { defaultAction: 'accept' } })(f);
      writeFirewall(f.g, dropAllIn, f.state);
    },
    input: web,
    md: IN,
    verdict: 'mark',
  },
  {
    description: '... until the switch: then every packet meets the new one',
    setup: (f) => {
      rules({ ingress: { defaultAction: 'accept' } })(f);
      f.state = activate(f.g, writeFirewall(f.g, dropAllIn, f.state));
    },
    input: web,
    md: IN,
    verdict: 'drop',
  },
  {
    description: 'a rule keeps its counters across a change of the rules around it',
    setup: async (f, mode) => {
      rules({ ingress: { rules: [{ id: 'web', action: 'accept', protocol: 'tcp', dport: 443 }] } })(f);
      await sent([web, IN])(f, mode);
      rules({ ingress: { rules: [{ action: 'drop', src: '10.9.0.0/16' }, { id: 'web', action: 'accept', protocol: 'tcp', dport: 443 }] } })(f);
    },
    input: web,
    md: IN,
    verdict: 'mark',
    check: both(counted('ingress', 1, 2, web.length), counted('ingress', 0, 0, 0)),
  },

  // ------------------------------------------------------------- many rules
  {
    description: '10,000 rules: the probe meets the one near the end that accepts it',
    setup: rules({ ingress: { defaultAction: 'drop', rules: adminRules(10_000) } }),
    input: udpFrame({ src: PROBE.src, dst: PROBE.dst }, PROBE.sport, PROBE.dport),
    md: IN,
    verdict: 'mark',
    check: counted('ingress', 9_990, 1, udpFrame({ src: PROBE.src, dst: PROBE.dst }, PROBE.sport, PROBE.dport).length),
  },
  {
    description: '10,000 rules: a packet none of them accepts meets the default',
    setup: rules({ ingress: { defaultAction: 'drop', rules: adminRules(10_000) } }),
    input: udpFrame({ src: PROBE.src, dst: PROBE.dst }, PROBE.sport, PROBE.dport + 1),
    md: IN,
    verdict: 'drop',
    check: counted('ingress', 'default', 1, udpFrame({ src: PROBE.src, dst: PROBE.dst }, PROBE.sport, PROBE.dport + 1).length),
  },
];

table(rows, fixture, (f) => f.g.program());

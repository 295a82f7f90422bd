// One-line summaries of frames in the style of `tcpdump -n`, for logs, the CLI's
// capture view and test failure messages.

import { ArpOp, type ParsedArp } from './arp';
import { IcmpTimeExceededCode, IcmpType, IcmpUnreachableCode, type ParsedIcmp } from './icmp';
import { Icmpv6Type, type ParsedIcmpv6 } from './icmpv6';
import { EtherType, IpProtocol } from './layer';
import { parseFrame, type ParsedFrame, type ParsedPacket } from './parse';
import type { ParsedTcp } from './tcp';

/** e.g. "10.0.0.1.1234 > 10.0.0.2.80: UDP, length 18" or "ARP, Request who-has 10.0.0.2 tell 10.0.0.1". */
export function describe(frame: Buffer): string {
  const parsed = parseFrame(frame);
  const vlan = parsed.eth?.vlan ? `vlan ${parsed.eth.vlan.id}: ` : '';
  const problems =
    (parsed.truncated !== undefined ? ` [|${parsed.truncated}]` : '') + (parsed.malformed !== undefined ? ` [malformed: ${parsed.malformed}]` : '');
  return vlan + describeLayers(parsed, frame.length) + problems;
}

const PROTOCOL_NAMES: Record<number, string> = {
  [IpProtocol.ICMP]: 'ICMP',
  [IpProtocol.TCP]: 'TCP',
  [IpProtocol.UDP]: 'UDP',
  [IpProtocol.ICMPV6]: 'ICMP6',
};

const ETHERTYPE_NAMES: Record<number, string> = {
  [EtherType.IPV4]: 'IP',
  [EtherType.ARP]: 'ARP',
  [EtherType.IPV6]: 'IP6',
};

function describeLayers(p: ParsedFrame, frameLength: number): string {
  if (p.eth === undefined) return `${frameLength} bytes`;
  if (p.arp) return describeArp(p.arp);
  const ip = p.ipv4 ?? p.ipv6;
  if (ip === undefined) {
    // A network header that is cut short or malformed, or an EtherType not decoded.
    const name = ETHERTYPE_NAMES[p.eth.ethertype];
    return name ?? `${p.eth.src} > ${p.eth.dst}, ethertype 0x${p.eth.ethertype.toString(16).padStart(4, '0')}, length ${frameLength}`;
  }
  // Lengths as the headers declare them, like tcpdump, so a cut-short packet still shows what it was.
  const upperLength = 'totalLength' in ip ? ip.totalLength - ip.headerLength : ip.payloadLength + 40 - ip.headerLength;
  if (p.udp) return `${ip.src}.${p.udp.sport} > ${ip.dst}.${p.udp.dport}: UDP, length ${p.udp.length - 8}`;
  if (p.tcp) return `${ip.src}.${p.tcp.sport} > ${ip.dst}.${p.tcp.dport}: ${describeTcp(p.tcp, upperLength - p.tcp.headerLength)}`;
  const addresses = `${ip.src} > ${ip.dst}`;
  if (p.icmp) return `${addresses}: ICMP ${describeIcmp(p.icmp)}, length ${upperLength}`;
  if (p.icmpv6) return `${addresses}: ICMP6, ${describeIcmpv6(p.icmpv6)}, length ${upperLength}`;
  const fragment = p.ipv4 && p.ipv4.fragmentOffset !== 0 ? { id: p.ipv4.id, offset: p.ipv4.fragmentOffset } : p.ipv6?.fragment;
  if (fragment && fragment.offset !== 0) {
    return `${addresses}: fragment, id ${fragment.id}, offset ${fragment.offset}, length ${upperLength}`;
  }
  return `${addresses}: ${PROTOCOL_NAMES[ip.protocol] ?? `ip-proto-${ip.protocol}`}, length ${upperLength}`;
}

function describeArp(arp: ParsedArp): string {
  if (arp.op === ArpOp.REQUEST) {
    const known = arp.targetMac !== '00:00:00:00:00:00' && arp.targetMac !== 'ff:ff:ff:ff:ff:ff';
    return `ARP, Request who-has ${arp.targetIp}${known ? ` (${arp.targetMac})` : ''} tell ${arp.senderIp}`;
  }
  if (arp.op === ArpOp.REPLY) return `ARP, Reply ${arp.senderIp} is-at ${arp.senderMac}`;
  return `ARP, op ${arp.op}, sender ${arp.senderIp} (${arp.senderMac}), target ${arp.targetIp} (${arp.targetMac})`;
}

const TCP_FLAG_LETTERS = ['F', 'S', 'R', 'P', '.', 'U', 'E', 'W'];

function describeTcp(tcp: ParsedTcp, dataLength: number): string {
  const flags = TCP_FLAG_LETTERS.filter((_, bit) => tcp.flags & (1 << bit)).join('') || 'none';
  const seq = dataLength > 0 ? `${tcp.seq}:${(tcp.seq + dataLength) % 2 ** 32}` : `${tcp.seq}`;
  const ack = tcp.flags & 0x10 ? `, ack ${tcp.ack}` : '';
  return `Flags [${flags}], seq ${seq}${ack}, win ${tcp.window}, length ${dataLength}`;
}

function describeIcmp(icmp: ParsedIcmp): string {
  switch (icmp.type) {
    case IcmpType.ECHO_REQUEST:
    case IcmpType.ECHO_REPLY:
      return `echo ${icmp.type === IcmpType.ECHO_REQUEST ? 'request' : 'reply'}, id ${icmp.echo!.id}, seq ${icmp.echo!.seq}`;
    case IcmpType.TIME_EXCEEDED:
      return icmp.code === IcmpTimeExceededCode.TTL ? 'time exceeded in-transit' : 'ip reassembly time exceeded';
    case IcmpType.DESTINATION_UNREACHABLE:
      return describeUnreachable(icmp);
    default:
      return `type ${icmp.type}, code ${icmp.code}`;
  }
}

function describeUnreachable(icmp: ParsedIcmp): string {
  const quoted = icmp.quoted;
  const dst = quoted?.ipv4?.dst ?? '?';
  switch (icmp.code) {
    case IcmpUnreachableCode.NET:
      return `net ${dst} unreachable`;
    case IcmpUnreachableCode.HOST:
      return `host ${dst} unreachable`;
    case IcmpUnreachableCode.PROTOCOL:
      return `${dst} protocol ${quoted?.ipv4?.protocol ?? '?'} unreachable`;
    case IcmpUnreachableCode.PORT:
      return `${dst} ${quotedPort(quoted)} unreachable`;
    case IcmpUnreachableCode.FRAGMENTATION_NEEDED:
      return `${dst} unreachable - need to frag (mtu ${icmp.mtu})`;
    default:
      return `${dst} unreachable, code ${icmp.code}`;
  }
}

function quotedPort(quoted: ParsedPacket | undefined): string {
  if (quoted?.udp) return `udp port ${quoted.udp.dport}`;
  if (quoted?.tcp) return `tcp port ${quoted.tcp.dport}`;
  return 'port ?';
}

function describeIcmpv6(icmp: ParsedIcmpv6): string {
  switch (icmp.type) {
    case Icmpv6Type.ECHO_REQUEST:
    case Icmpv6Type.ECHO_REPLY:
      return `echo ${icmp.type === Icmpv6Type.ECHO_REQUEST ? 'request' : 'reply'}, id ${icmp.echo!.id}, seq ${icmp.echo!.seq}`;
    case Icmpv6Type.NEIGHBOR_SOLICITATION:
      return `neighbor solicitation, who has ${icmp.nd!.target}`;
    case Icmpv6Type.NEIGHBOR_ADVERTISEMENT:
      return `neighbor advertisement, tgt is ${icmp.nd!.target}`;
    case Icmpv6Type.TIME_EXCEEDED:
      return icmp.code === 0 ? 'time exceeded in-transit' : 'ip6 reassembly time exceeded';
    case Icmpv6Type.PACKET_TOO_BIG:
      return `packet too big, mtu ${icmp.mtu}`;
    case Icmpv6Type.DESTINATION_UNREACHABLE:
      // RFC 4443 code 4: port unreachable.
      return icmp.code === 4
        ? `destination unreachable, unreachable port, ${icmp.quoted?.ipv6?.dst ?? '?'} ${quotedPort(icmp.quoted)}`
        : `destination unreachable, code ${icmp.code}`;
    default:
      return `type ${icmp.type}, code ${icmp.code}`;
  }
}

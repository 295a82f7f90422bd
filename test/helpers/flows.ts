// Frames of L4 flows for the tests of connection tracking and the services built
// on it (firewall, nat, lbrp): one call per packet of a flow, either family,
// told by the address given.
import {
  ethernet,
  icmp,
  icmpEchoReply,
  icmpEchoRequest,
  icmpUnreachable,
  icmpv6,
  icmpv6EchoReply,
  icmpv6EchoRequest,
  IcmpUnreachableCode,
  Icmpv6Type,
  ipv4,
  ipv6,
  parseFrame,
  tcp,
  TcpFlags,
  udp,
  type IpPayload,
} from '@netcube/sdk/packet';

export { TcpFlags };

export const MAC_A = '02:00:00:00:00:0a';
export const MAC_B = '02:00:00:00:00:0b';

export interface Ends {
  src: string;
  dst: string;
  /** Default MAC_A to MAC_B. */
  macs?: { src: string; dst: string };
  ttl?: number;
  /** The frame's least length, padded up to; default Ethernet's 60 (0: no padding). */
  minLength?: number;
}

/** An IP packet in an Ethernet frame; IPv6 when the source is an IPv6 address. */
export function ipFrame(ends: Ends, payload: IpPayload | Buffer, protocol?: number): Buffer {
  const macs = ends.macs ?? { src: MAC_A, dst: MAC_B };
  const ip = ends.src.includes(':')
    ? ipv6({ src: ends.src, dst: ends.dst, payload, nextHeader: protocol, hopLimit: ends.ttl })
    : ipv4({ src: ends.src, dst: ends.dst, payload, protocol, ttl: ends.ttl });
  return ethernet({ ...macs, payload: ip, ...(ends.minLength !== undefined ? { minLength: ends.minLength } : {}) });
}

export function tcpFrame(ends: Ends, sport: number, dport: number, flags: number, payload?: Buffer): Buffer {
  return ipFrame(ends, tcp({ sport, dport, flags, seq: 1000, ack: flags & TcpFlags.ACK ? 2000 : 0, payload }));
}

export function udpFrame(ends: Ends, sport: number, dport: number, payload = Buffer.from('flow')): Buffer {
  return ipFrame(ends, udp({ sport, dport, payload }));
}

export function echoRequest(ends: Ends, id: number, seq = 1): Buffer {
  return ipFrame(ends, ends.src.includes(':') ? icmpv6EchoRequest({ id, seq }) : icmpEchoRequest({ id, seq }));
}

export function echoReply(ends: Ends, id: number, seq = 1): Buffer {
  return ipFrame(ends, ends.src.includes(':') ? icmpv6EchoReply({ id, seq }) : icmpEchoReply({ id, seq }));
}

/**
 * An ICMP error from `ends.src` to `ends.dst` about `original` (a frame), quoting
 * its IP header and the 8 bytes after it (IPv4), or as much as fits (IPv6):
 * destination unreachable, port (IPv4) or packet too big (IPv6).
 */
export function icmpErrorAbout(ends: Ends, original: Buffer): Buffer {
  const f = parseFrame(original);
  if (f.ipv4) {
    const quoted = original.subarray(f.ipv4.offset, f.ipv4.offset + f.ipv4.totalLength);
    return ipFrame(ends, icmpUnreachable({ code: IcmpUnreachableCode.PORT, original: quoted }));
  }
  if (!f.ipv6) throw new TypeError('icmpErrorAbout: the original is not an IP packet');
  const quoted = original.subarray(f.ipv6.offset);
  return ipFrame(ends, icmpv6({ type: Icmpv6Type.PACKET_TOO_BIG, rest: 1280, body: quoted }));
}

/** Any protocol's packet with raw payload bytes (GRE is 47). */
export function rawFrame(ends: Ends, protocol: number, payload = Buffer.alloc(8)): Buffer {
  return ipFrame(ends, payload, protocol);
}

/** An ICMP (IPv4) message of any type, for what is neither echo nor error. */
export function icmpFrame(ends: Ends, type: number, code = 0): Buffer {
  return ipFrame(ends, icmp({ type, code }));
}

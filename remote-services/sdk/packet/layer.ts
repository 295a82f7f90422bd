// How layers nest: the numbers an outer header uses to name what it carries, the
// shapes builders hand to the layer around them, and the shape decoders hand back.

import { checkUint, show } from './check';

/** EtherTypes this library builds or decodes (IEEE registry). */
export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPV6: 0x86dd,
} as const;

/** IP protocol numbers (IPv4 protocol, IPv6 next header) this library builds or decodes (IANA registry). */
export const IpProtocol = {
  HOP_BY_HOP: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ROUTING: 43,
  FRAGMENT: 44,
  ICMPV6: 58,
  NO_NEXT_HEADER: 59,
  DESTINATION_OPTIONS: 60,
} as const;

/** What an Ethernet frame carries: a finished packet and the EtherType that announces it (ipv4(), ipv6(), arp()). */
export interface EthernetPayload {
  readonly ethertype: number;
  readonly bytes: Buffer;
}

/**
 * What an IP packet carries (udp(), tcp(), icmp...()). It is encoded only once the IP layer
 * knows its addresses, because UDP, TCP and ICMPv6 checksums cover them.
 */
export interface IpPayload {
  readonly protocol: number;
  encode(src: Buffer, dst: Buffer): Buffer;
}

/** The bytes and protocol number of what an IP packet carries, for ipv4() and ipv6(). */
export function encodeIpPayload(
  payload: IpPayload | Buffer,
  protocol: number | undefined,
  src: Buffer,
  dst: Buffer,
  layer: 'ipv4' | 'ipv6',
): { payload: Buffer; protocol: number } {
  const field = layer === 'ipv4' ? 'protocol' : 'nextHeader';
  if (Buffer.isBuffer(payload)) {
    if (protocol === undefined) throw new TypeError(`${layer}.${field} is required when the payload is a Buffer`);
    return { payload, protocol: checkUint(protocol, 8, `${layer}.${field}`) };
  }
  if (typeof payload === 'object' && payload !== null && typeof payload.encode === 'function') {
    return { payload: payload.encode(src, dst), protocol: checkUint(protocol ?? payload.protocol, 8, `${layer}.${field}`) };
  }
  throw new TypeError(`${layer}.payload must be udp(), tcp(), an ICMP builder's result or a Buffer, got ${show(payload)}`);
}

/** The names of the layers a parsed frame may hold; `truncated` uses them. */
export type LayerName = 'eth' | 'arp' | 'ipv4' | 'ipv6' | 'icmp' | 'icmpv6' | 'udp' | 'tcp';

/** What a layer's decoder found in the bytes given to it. */
export interface Decoded<T> {
  /** Absent when the header does not fit in the bytes or makes no sense. */
  readonly header?: T;
  /** The bytes after the header, cut to the length the header declares when it declares one. */
  readonly payload: Buffer;
  /** The header, or the length it declares, runs past the end of the bytes. */
  readonly truncated: boolean;
  /** Bytes past the end the header declares, such as Ethernet padding. */
  readonly trailer?: Buffer;
  /** Why the header could not be decoded though its bytes are there. */
  readonly malformed?: string;
}

/** The result of a decoder that ran out of bytes before the end of the header. */
export function truncatedHeader(bytes: Buffer): Decoded<never> {
  return { payload: bytes, truncated: true };
}

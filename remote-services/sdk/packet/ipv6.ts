// IPv6 packets (RFC 8200). The decoder steps over hop-by-hop, routing, destination
// options and fragment headers to reach the upper-layer protocol.

import { checkUint } from './check';
import { formatIpv6, ipv6Bytes, type Ipv6Address } from './addresses';
import { EtherType, IpProtocol, encodeIpPayload, truncatedHeader, type Decoded, type EthernetPayload, type IpPayload } from './layer';

export interface Ipv6Options {
  readonly src: Ipv6Address;
  readonly dst: Ipv6Address;
  /** udp(), tcp(), icmpv6...(), or raw bytes with `nextHeader`. */
  readonly payload: IpPayload | Buffer;
  /** Defaults to the payload layer's; required for raw bytes. */
  readonly nextHeader?: number;
  /** Default 64; neighbor discovery needs 255. */
  readonly hopLimit?: number;
  readonly trafficClass?: number;
  readonly flowLabel?: number;
}

export function ipv6(options: Ipv6Options): EthernetPayload {
  const src = ipv6Bytes(options.src, 'ipv6.src');
  const dst = ipv6Bytes(options.dst, 'ipv6.dst');
  const { payload, protocol } = encodeIpPayload(options.payload, options.nextHeader, src, dst, 'ipv6');
  if (payload.length > 0xffff) throw new RangeError(`ipv6 payload is ${payload.length} bytes, more than 65535 (jumbograms are not supported)`);
  const trafficClass = checkUint(options.trafficClass ?? 0, 8, 'ipv6.trafficClass');
  const flowLabel = checkUint(options.flowLabel ?? 0, 20, 'ipv6.flowLabel');
  const packet = Buffer.alloc(40 + payload.length);
  packet.writeUInt32BE(((6 << 28) | (trafficClass << 20) | flowLabel) >>> 0, 0);
  packet.writeUInt16BE(payload.length, 4);
  packet[6] = protocol;
  packet[7] = checkUint(options.hopLimit ?? 64, 8, 'ipv6.hopLimit');
  src.copy(packet, 8);
  dst.copy(packet, 24);
  payload.copy(packet, 40);
  return { ethertype: EtherType.IPV6, bytes: packet };
}

export interface Ipv6Fragment {
  readonly id: number;
  /** In bytes. */
  readonly offset: number;
  readonly mf: boolean;
}

export interface ParsedIpv6 {
  /** Where the header starts in the frame. */
  readonly offset: number;
  readonly trafficClass: number;
  readonly flowLabel: number;
  readonly payloadLength: number;
  /** The next header field of the fixed header. */
  readonly nextHeader: number;
  readonly hopLimit: number;
  readonly src: string;
  readonly dst: string;
  /** The fixed header and the extension headers stepped over. */
  readonly headerLength: number;
  /** The upper-layer protocol after the extension headers (IpProtocol.FRAGMENT for a later fragment). */
  readonly protocol: number;
  readonly fragment?: Ipv6Fragment;
}

const STEPPED_OVER: ReadonlySet<number> = new Set([IpProtocol.HOP_BY_HOP, IpProtocol.ROUTING, IpProtocol.DESTINATION_OPTIONS]);

export function decodeIpv6(bytes: Buffer, offset: number): Decoded<ParsedIpv6> {
  if (bytes.length < 40) return truncatedHeader(bytes);
  const first = bytes.readUInt32BE(0);
  const version = first >>> 28;
  if (version !== 6) return { payload: bytes, truncated: false, malformed: `ipv6: version is ${version}` };
  const payloadLength = bytes.readUInt16BE(4);
  const end = Math.min(40 + payloadLength, bytes.length);
  const packet = bytes.subarray(0, end);

  let protocol = bytes[6];
  let headerLength = 40;
  let fragment: Ipv6Fragment | undefined;
  // An extension header cut short leaves `protocol` naming it, so nothing past it is decoded.
  let extensionCut = false;
  while (STEPPED_OVER.has(protocol) || (protocol === IpProtocol.FRAGMENT && fragment === undefined)) {
    // Every extension header is at least 8 bytes; all but the fragment header give their length in 8-byte units past the first.
    const length = protocol === IpProtocol.FRAGMENT || packet.length < headerLength + 2 ? 8 : (packet[headerLength + 1] + 1) * 8;
    if (packet.length < headerLength + length) {
      extensionCut = true;
      break;
    }
    const next = packet[headerLength];
    if (protocol === IpProtocol.FRAGMENT) {
      const field = packet.readUInt16BE(headerLength + 2);
      fragment = { id: packet.readUInt32BE(headerLength + 4), offset: field & 0xfff8, mf: (field & 1) !== 0 };
    }
    headerLength += length;
    if (fragment !== undefined && fragment.offset !== 0) break; // a later fragment: what follows is not a header
    protocol = next;
  }

  const header: ParsedIpv6 = {
    offset,
    trafficClass: (first >>> 20) & 0xff,
    flowLabel: first & 0xfffff,
    payloadLength,
    nextHeader: bytes[6],
    hopLimit: bytes[7],
    src: formatIpv6(bytes.subarray(8, 24)),
    dst: formatIpv6(bytes.subarray(24, 40)),
    headerLength,
    protocol,
    ...(fragment && { fragment }),
  };
  return {
    header,
    payload: packet.subarray(headerLength),
    truncated: extensionCut || 40 + payloadLength > bytes.length,
    trailer: bytes.subarray(end),
  };
}

// ICMPv6 (RFC 4443) echo and neighbor discovery (RFC 4861), checksummed over the
// IPv6 pseudo-header. Neighbor discovery messages must be sent with hop limit 255.

import { checkBoolean, checkUint } from './check';
import { formatIpv6, formatMac, ipv6Bytes, macBytes, type Ipv6Address, type MacAddress } from './addresses';
import { checksumValid, pseudoHeaderSum, transportChecksum, type PseudoHeader } from './checksum';
import { echoRest, icmpMessage, type EchoFields, type EchoOptions, type IcmpOptions } from './icmp';
import { IpProtocol, truncatedHeader, type Decoded, type IpPayload } from './layer';
import type { ParsedPacket } from './parse';

export const Icmpv6Type = {
  DESTINATION_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
  ROUTER_SOLICITATION: 133,
  ROUTER_ADVERTISEMENT: 134,
  NEIGHBOR_SOLICITATION: 135,
  NEIGHBOR_ADVERTISEMENT: 136,
} as const;

/** Neighbor discovery option types carrying a link-layer address. */
const OPTION_SOURCE_MAC = 1;
const OPTION_TARGET_MAC = 2;

const ADVERT_ROUTER = 0x80000000;
const ADVERT_SOLICITED = 0x40000000;
const ADVERT_OVERRIDE = 0x20000000;

/** Any ICMPv6 message; the functions below fill in the common ones. */
export function icmpv6(options: IcmpOptions): IpPayload {
  const message = icmpMessage(options, 'icmpv6');
  const checksum = options.checksum === undefined ? undefined : checkUint(options.checksum, 16, 'icmpv6.checksum');
  return {
    protocol: IpProtocol.ICMPV6,
    encode(src, dst) {
      const bytes = Buffer.from(message);
      bytes.writeUInt16BE(checksum ?? transportChecksum(src, dst, IpProtocol.ICMPV6, bytes), 2);
      return bytes;
    },
  };
}

export function icmpv6EchoRequest(options: EchoOptions = {}): IpPayload {
  return icmpv6({ type: Icmpv6Type.ECHO_REQUEST, rest: echoRest(options, 'icmpv6EchoRequest'), body: options.payload });
}

export function icmpv6EchoReply(options: EchoOptions = {}): IpPayload {
  return icmpv6({ type: Icmpv6Type.ECHO_REPLY, rest: echoRest(options, 'icmpv6EchoReply'), body: options.payload });
}

export interface NeighborSolicitationOptions {
  /** The address whose link-layer address is asked for. */
  readonly target: Ipv6Address;
  /** The asker's MAC, sent as a source link-layer address option; leave out for duplicate address detection. */
  readonly sourceMac?: MacAddress;
}

/** Send to solicitedNodeAddress(target), at Ethernet address ipv6MulticastMac() of it. */
export function neighborSolicitation(options: NeighborSolicitationOptions): IpPayload {
  const target = ipv6Bytes(options.target, 'neighborSolicitation.target');
  const option = options.sourceMac === undefined ? [] : [macOption(OPTION_SOURCE_MAC, macBytes(options.sourceMac, 'neighborSolicitation.sourceMac'))];
  return icmpv6({ type: Icmpv6Type.NEIGHBOR_SOLICITATION, body: Buffer.concat([target, ...option]) });
}

export interface NeighborAdvertisementOptions {
  readonly target: Ipv6Address;
  /** Sent as a target link-layer address option. */
  readonly targetMac?: MacAddress;
  readonly router?: boolean;
  readonly solicited?: boolean;
  readonly override?: boolean;
}

export function neighborAdvertisement(options: NeighborAdvertisementOptions): IpPayload {
  const target = ipv6Bytes(options.target, 'neighborAdvertisement.target');
  const option = options.targetMac === undefined ? [] : [macOption(OPTION_TARGET_MAC, macBytes(options.targetMac, 'neighborAdvertisement.targetMac'))];
  const flags =
    (checkBoolean(options.router ?? false, 'neighborAdvertisement.router') ? ADVERT_ROUTER : 0) |
    (checkBoolean(options.solicited ?? false, 'neighborAdvertisement.solicited') ? ADVERT_SOLICITED : 0) |
    (checkBoolean(options.override ?? false, 'neighborAdvertisement.override') ? ADVERT_OVERRIDE : 0);
  return icmpv6({ type: Icmpv6Type.NEIGHBOR_ADVERTISEMENT, rest: flags >>> 0, body: Buffer.concat([target, ...option]) });
}

function macOption(type: number, mac: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type, 1]), mac]); // length 1 = 8 bytes
}

export interface NeighborDiscovery {
  readonly target: string;
  /** Advertisement flags; false in a solicitation. */
  readonly router: boolean;
  readonly solicited: boolean;
  readonly override: boolean;
  readonly sourceMac?: string;
  readonly targetMac?: string;
}

export interface ParsedIcmpv6 {
  /** Where the message starts in the frame. */
  readonly offset: number;
  readonly type: number;
  readonly code: number;
  readonly checksum: number;
  /** Undefined when it cannot be checked (message cut short, or a fragment). */
  readonly checksumOk?: boolean;
  readonly echo?: EchoFields;
  /** Neighbor solicitation and advertisement fields. */
  readonly nd?: NeighborDiscovery;
  /** The MTU of a "packet too big" message. */
  readonly mtu?: number;
  /** The packet an error message quotes, decoded. */
  readonly quoted?: ParsedPacket;
  /** The second 32-bit word as it is. */
  readonly rest: number;
}

/** RFC 4443 2.1: types below 128 are errors, which quote the offending packet. */
export function isIcmpv6Error(type: number): boolean {
  return type < 128;
}

export function decodeIcmpv6(bytes: Buffer, offset: number, pseudo: PseudoHeader | undefined): Decoded<Omit<ParsedIcmpv6, 'quoted'>> {
  if (bytes.length < 8) return truncatedHeader(bytes);
  const type = bytes[0];
  const rest = bytes.readUInt32BE(4);
  const isEcho = type === Icmpv6Type.ECHO_REQUEST || type === Icmpv6Type.ECHO_REPLY;
  const isNd = type === Icmpv6Type.NEIGHBOR_SOLICITATION || type === Icmpv6Type.NEIGHBOR_ADVERTISEMENT;
  let nd: NeighborDiscovery | undefined;
  let optionsCut = false;
  if (isNd) {
    if (bytes.length < 24) return truncatedHeader(bytes);
    const options = decodeNdOptions(bytes.subarray(24));
    if (typeof options === 'string') return { payload: bytes, truncated: false, malformed: `icmpv6: ${options}` };
    const { cut, ...macs } = options;
    optionsCut = cut;
    nd = {
      target: formatIpv6(bytes.subarray(8, 24)),
      router: (rest & ADVERT_ROUTER) !== 0,
      solicited: (rest & ADVERT_SOLICITED) !== 0,
      override: (rest & ADVERT_OVERRIDE) !== 0,
      ...macs,
    };
  }
  const header = {
    offset,
    type,
    code: bytes[1],
    checksum: bytes.readUInt16BE(2),
    checksumOk: pseudo === undefined ? undefined : checksumValid(bytes, pseudoHeaderSum(pseudo.src, pseudo.dst, IpProtocol.ICMPV6, bytes.length)),
    ...(isEcho && { echo: { id: rest >>> 16, seq: rest & 0xffff } }),
    ...(nd && { nd }),
    ...(type === Icmpv6Type.PACKET_TOO_BIG && { mtu: rest }),
    rest,
  };
  // Neighbor discovery messages are all header and options: nothing is left as payload.
  return { header, payload: bytes.subarray(isNd ? bytes.length : 8), truncated: optionsCut };
}

interface NdOptions {
  sourceMac?: string;
  targetMac?: string;
  /** The last option runs past the end of the bytes. */
  cut: boolean;
}

/** The link-layer address options; other options are stepped over. A string says why they make no sense. */
function decodeNdOptions(bytes: Buffer): NdOptions | string {
  const found: NdOptions = { cut: false };
  for (let at = 0; at < bytes.length; ) {
    const length = bytes.length - at < 2 ? undefined : bytes[at + 1] * 8;
    if (length === undefined || at + length > bytes.length) return { ...found, cut: true };
    if (length === 0) return `neighbor discovery option ${bytes[at]} has length 0`; // RFC 4861 4.6: discard the packet
    if (length === 8 && bytes[at] === OPTION_SOURCE_MAC) found.sourceMac = formatMac(bytes.subarray(at + 2, at + 8));
    if (length === 8 && bytes[at] === OPTION_TARGET_MAC) found.targetMac = formatMac(bytes.subarray(at + 2, at + 8));
    at += length;
  }
  return found;
}

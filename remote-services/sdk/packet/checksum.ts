// The Internet checksum (RFC 1071) and the checksums built on it: the IPv4 header,
// UDP/TCP/ICMPv6 over an IPv4 or IPv6 pseudo-header, ICMP, and the incremental
// update of RFC 1624 a router uses when it changes one field.
//
// The "...Checksum" functions return the value the checksum field should hold,
// treating the field itself as zero, so one call both fills and verifies:
// `ipv4HeaderChecksum(h) === h.readUInt16BE(10)`.

import { IpProtocol } from './layer';

/** The ones'-complement sum of big-endian 16-bit words, folded to 16 bits; an odd last byte is padded with zero. */
export function onesComplementSum(data: Buffer, initial = 0): number {
  let sum = initial;
  const even = data.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (data.length & 1) sum += data[even] << 8;
  // Plain addition then folding equals end-around-carry addition; a double holds 64 KiB of words exactly.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** RFC 1071: the complement of the ones'-complement sum of `data` (and of an `initial` partial sum). */
export function internetChecksum(data: Buffer, initial = 0): number {
  return ~onesComplementSum(data, initial) & 0xffff;
}

/** The checksum of `data` with the 16-bit field at `fieldOffset` taken as zero. */
function checksumSkipping(data: Buffer, fieldOffset: number, initial = 0): number {
  const after = onesComplementSum(data.subarray(fieldOffset + 2), initial);
  return internetChecksum(data.subarray(0, fieldOffset), after);
}

/** The IPv4 header checksum of the header at the start of `packet` (its length from the IHL field). */
export function ipv4HeaderChecksum(packet: Buffer): number {
  const headerLength = (packet[0] & 0x0f) * 4;
  if (packet.length < 20 || headerLength < 20 || packet.length < headerLength) {
    throw new RangeError(`ipv4HeaderChecksum needs a whole IPv4 header, got ${packet.length} bytes with header length ${headerLength}`);
  }
  return checksumSkipping(packet.subarray(0, headerLength), 10);
}

/** The ICMP (v4) checksum of a whole ICMP message: no pseudo-header. */
export function icmpChecksum(message: Buffer): number {
  return checksumSkipping(message, 2);
}

/** The addresses of the packet around a UDP, TCP or ICMPv6 segment, which its checksum covers. */
export interface PseudoHeader {
  readonly src: Buffer;
  readonly dst: Buffer;
}

/**
 * The sum of the pseudo-header UDP, TCP and ICMPv6 checksums cover: RFC 768/793 for
 * 4-byte addresses, RFC 8200 section 8.1 for 16-byte ones. `length` is the upper-layer length.
 */
export function pseudoHeaderSum(src: Buffer, dst: Buffer, protocol: number, length: number): number {
  if (src.length !== dst.length || (src.length !== 4 && src.length !== 16)) {
    throw new RangeError(`pseudo-header addresses must both be 4 or both 16 bytes, got ${src.length} and ${dst.length}`);
  }
  // IPv4: src, dst, zero, protocol, 16-bit length. IPv6: src, dst, 32-bit length, 3 zeros, next header.
  const lengthWords = src.length === 4 ? length & 0xffff : (length >>> 16) + (length & 0xffff);
  return onesComplementSum(dst, onesComplementSum(src, protocol + lengthWords));
}

const CHECKSUM_OFFSET: Record<number, number> = {
  [IpProtocol.UDP]: 6,
  [IpProtocol.TCP]: 16,
  [IpProtocol.ICMPV6]: 2,
};

/**
 * The checksum of a UDP, TCP or ICMPv6 segment (header and data) sent from `src` to `dst`.
 * A UDP checksum that computes to 0 is returned as 0xffff, since 0 means "none" (RFC 768).
 */
export function transportChecksum(src: Buffer, dst: Buffer, protocol: number, segment: Buffer): number {
  const fieldOffset = CHECKSUM_OFFSET[protocol];
  if (fieldOffset === undefined) {
    throw new RangeError(`transportChecksum covers UDP (17), TCP (6) and ICMPv6 (58), got protocol ${protocol}`);
  }
  if (segment.length < fieldOffset + 2) {
    throw new RangeError(`a protocol ${protocol} segment of ${segment.length} bytes is too short to hold its checksum`);
  }
  const sum = checksumSkipping(segment, fieldOffset, pseudoHeaderSum(src, dst, protocol, segment.length));
  return protocol === IpProtocol.UDP && sum === 0 ? 0xffff : sum;
}

/**
 * Whether data that includes its checksum field verifies: its ones'-complement sum
 * (with `initial`, e.g. a pseudo-header sum) is all ones. This is how a receiver checks,
 * and it accepts either form of zero a sender may have written.
 */
export function checksumValid(data: Buffer, initial = 0): boolean {
  return onesComplementSum(data, initial) === 0xffff;
}

/** RFC 1624 eqn. 3: the checksum after one 16-bit word covered by it changes from `oldWord` to `newWord`. */
export function updateChecksum(checksum: number, oldWord: number, newWord: number): number {
  let sum = (~checksum & 0xffff) + (~oldWord & 0xffff) + newWord;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

// IPv4 packets (RFC 791).

import { checkBoolean, checkBuffer, checkUint } from './check';
import { formatIpv4, ipv4Bytes, type Ipv4Address } from './addresses';
import { checksumValid, ipv4HeaderChecksum } from './checksum';
import { EtherType, encodeIpPayload, truncatedHeader, type Decoded, type EthernetPayload, type IpPayload } from './layer';

export interface Ipv4Options {
  readonly src: Ipv4Address;
  readonly dst: Ipv4Address;
  /** udp(), tcp(), icmp...(), or raw bytes with `protocol`. */
  readonly payload: IpPayload | Buffer;
  /** Defaults to the payload layer's; required for raw bytes. */
  readonly protocol?: number;
  /** Default 64. */
  readonly ttl?: number;
  /** Identification; default 0. */
  readonly id?: number;
  /** Don't fragment; default false. */
  readonly df?: boolean;
  /** More fragments; default false. */
  readonly mf?: boolean;
  /** In bytes, a multiple of 8; default 0. */
  readonly fragmentOffset?: number;
  readonly dscp?: number;
  readonly ecn?: number;
  /** Raw option bytes, a multiple of 4 up to 40. */
  readonly options?: Buffer;
  /** Written instead of the computed header checksum, to build a broken packet on purpose. */
  readonly checksum?: number;
}

export function ipv4(options: Ipv4Options): EthernetPayload {
  const src = ipv4Bytes(options.src, 'ipv4.src');
  const dst = ipv4Bytes(options.dst, 'ipv4.dst');
  const { payload, protocol } = encodeIpPayload(options.payload, options.protocol, src, dst, 'ipv4');
  const ipOptions = options.options === undefined ? Buffer.alloc(0) : checkBuffer(options.options, 'ipv4.options');
  if (ipOptions.length % 4 !== 0 || ipOptions.length > 40) {
    throw new RangeError(`ipv4.options must be a multiple of 4 bytes, at most 40, got ${ipOptions.length}`);
  }
  const fragmentOffset = checkUint(options.fragmentOffset ?? 0, 16, 'ipv4.fragmentOffset');
  if (fragmentOffset % 8 !== 0 || fragmentOffset > 0x1fff * 8) {
    throw new RangeError(`ipv4.fragmentOffset is in bytes, a multiple of 8 up to ${0x1fff * 8}, got ${fragmentOffset}`);
  }
  const headerLength = 20 + ipOptions.length;
  const totalLength = headerLength + payload.length;
  if (totalLength > 0xffff) throw new RangeError(`ipv4 packet would be ${totalLength} bytes, more than 65535`);

  const packet = Buffer.alloc(totalLength);
  packet[0] = 0x40 | (headerLength / 4);
  packet[1] = (checkUint(options.dscp ?? 0, 6, 'ipv4.dscp') << 2) | checkUint(options.ecn ?? 0, 2, 'ipv4.ecn');
  packet.writeUInt16BE(totalLength, 2);
  packet.writeUInt16BE(checkUint(options.id ?? 0, 16, 'ipv4.id'), 4);
  const df = checkBoolean(options.df ?? false, 'ipv4.df');
  const mf = checkBoolean(options.mf ?? false, 'ipv4.mf');
  packet.writeUInt16BE((df ? 0x4000 : 0) | (mf ? 0x2000 : 0) | (fragmentOffset / 8), 6);
  packet[8] = checkUint(options.ttl ?? 64, 8, 'ipv4.ttl');
  packet[9] = protocol;
  src.copy(packet, 12);
  dst.copy(packet, 16);
  ipOptions.copy(packet, 20);
  payload.copy(packet, headerLength);
  const checksum = options.checksum ?? ipv4HeaderChecksum(packet);
  packet.writeUInt16BE(checkUint(checksum, 16, 'ipv4.checksum'), 10);
  return { ethertype: EtherType.IPV4, bytes: packet };
}

export interface ParsedIpv4 {
  /** Where the header starts in the frame. */
  readonly offset: number;
  readonly headerLength: number;
  readonly dscp: number;
  readonly ecn: number;
  readonly totalLength: number;
  readonly id: number;
  readonly df: boolean;
  readonly mf: boolean;
  /** In bytes. */
  readonly fragmentOffset: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly checksum: number;
  readonly checksumOk: boolean;
  readonly src: string;
  readonly dst: string;
  readonly options: Buffer;
}

export function decodeIpv4(bytes: Buffer, offset: number): Decoded<ParsedIpv4> {
  if (bytes.length < 20) return truncatedHeader(bytes);
  const version = bytes[0] >> 4;
  const headerLength = (bytes[0] & 0x0f) * 4;
  const totalLength = bytes.readUInt16BE(2);
  if (version !== 4) return { payload: bytes, truncated: false, malformed: `ipv4: version is ${version}` };
  if (headerLength < 20) return { payload: bytes, truncated: false, malformed: `ipv4: header length ${headerLength} is less than 20` };
  if (bytes.length < headerLength) return truncatedHeader(bytes);
  if (totalLength < headerLength) {
    return { payload: bytes, truncated: false, malformed: `ipv4: total length ${totalLength} is less than the header length ${headerLength}` };
  }
  const flags = bytes.readUInt16BE(6);
  const header: ParsedIpv4 = {
    offset,
    headerLength,
    dscp: bytes[1] >> 2,
    ecn: bytes[1] & 3,
    totalLength,
    id: bytes.readUInt16BE(4),
    df: (flags & 0x4000) !== 0,
    mf: (flags & 0x2000) !== 0,
    fragmentOffset: (flags & 0x1fff) * 8,
    ttl: bytes[8],
    protocol: bytes[9],
    checksum: bytes.readUInt16BE(10),
    checksumOk: checksumValid(bytes.subarray(0, headerLength)),
    src: formatIpv4(bytes.subarray(12, 16)),
    dst: formatIpv4(bytes.subarray(16, 20)),
    options: bytes.subarray(20, headerLength),
  };
  return {
    header,
    payload: bytes.subarray(headerLength, Math.min(totalLength, bytes.length)),
    truncated: totalLength > bytes.length,
    trailer: bytes.subarray(Math.min(totalLength, bytes.length)),
  };
}

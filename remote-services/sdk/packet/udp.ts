// UDP datagrams (RFC 768), checksummed over the IPv4 or IPv6 pseudo-header.

import { checkBuffer, checkUint } from './check';
import { checksumValid, pseudoHeaderSum, transportChecksum, type PseudoHeader } from './checksum';
import { IpProtocol, truncatedHeader, type Decoded, type IpPayload } from './layer';

export interface UdpOptions {
  readonly sport: number;
  readonly dport: number;
  readonly payload?: Buffer;
  /** Written instead of the computed checksum; 0 sends none (IPv4 only, RFC 768). */
  readonly checksum?: number;
}

export function udp(options: UdpOptions): IpPayload {
  const sport = checkUint(options.sport, 16, 'udp.sport');
  const dport = checkUint(options.dport, 16, 'udp.dport');
  const data = options.payload === undefined ? Buffer.alloc(0) : checkBuffer(options.payload, 'udp.payload');
  const checksum = options.checksum === undefined ? undefined : checkUint(options.checksum, 16, 'udp.checksum');
  if (8 + data.length > 0xffff) throw new RangeError(`udp datagram would be ${8 + data.length} bytes, more than 65535`);
  return {
    protocol: IpProtocol.UDP,
    encode(src, dst) {
      const segment = Buffer.alloc(8 + data.length);
      segment.writeUInt16BE(sport, 0);
      segment.writeUInt16BE(dport, 2);
      segment.writeUInt16BE(segment.length, 4);
      data.copy(segment, 8);
      segment.writeUInt16BE(checksum ?? transportChecksum(src, dst, IpProtocol.UDP, segment), 6);
      return segment;
    },
  };
}

export interface ParsedUdp {
  /** Where the header starts in the frame. */
  readonly offset: number;
  readonly sport: number;
  readonly dport: number;
  readonly length: number;
  readonly checksum: number;
  /**
   * Whether the checksum verifies; true for a zero ("none") checksum over IPv4;
   * undefined when it cannot be checked (datagram cut short, or a fragment).
   */
  readonly checksumOk?: boolean;
}

export function decodeUdp(bytes: Buffer, offset: number, pseudo: PseudoHeader | undefined): Decoded<ParsedUdp> {
  if (bytes.length < 8) return truncatedHeader(bytes);
  const length = bytes.readUInt16BE(4);
  if (length < 8) return { payload: bytes, truncated: false, malformed: `udp: length ${length} is less than 8` };
  const truncated = length > bytes.length;
  const checksum = bytes.readUInt16BE(6);
  let checksumOk: boolean | undefined;
  if (pseudo !== undefined && !truncated) {
    const noChecksum = checksum === 0 && pseudo.src.length === 4;
    checksumOk = noChecksum || checksumValid(bytes.subarray(0, length), pseudoHeaderSum(pseudo.src, pseudo.dst, IpProtocol.UDP, length));
  }
  return {
    header: { offset, sport: bytes.readUInt16BE(0), dport: bytes.readUInt16BE(2), length, checksum, checksumOk },
    payload: bytes.subarray(8, Math.min(length, bytes.length)),
    truncated,
  };
}

// TCP segments (RFC 9293): the fixed header, checksummed over the pseudo-header.
// The builder writes no options; the decoder keeps whatever options it finds as bytes.

import { checkBuffer, checkUint } from './check';
import { checksumValid, pseudoHeaderSum, transportChecksum, type PseudoHeader } from './checksum';
import { IpProtocol, truncatedHeader, type Decoded, type IpPayload } from './layer';

export const TcpFlags = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

export interface TcpOptions {
  readonly sport: number;
  readonly dport: number;
  readonly seq?: number;
  readonly ack?: number;
  /** TcpFlags or-ed together, e.g. TcpFlags.SYN | TcpFlags.ACK; default none. */
  readonly flags?: number;
  /** Default 65535. */
  readonly window?: number;
  readonly urgent?: number;
  readonly payload?: Buffer;
  /** Written instead of the computed checksum, to build a broken segment on purpose. */
  readonly checksum?: number;
}

const HEADER_LENGTH = 20;

export function tcp(options: TcpOptions): IpPayload {
  const sport = checkUint(options.sport, 16, 'tcp.sport');
  const dport = checkUint(options.dport, 16, 'tcp.dport');
  const seq = checkUint(options.seq ?? 0, 32, 'tcp.seq');
  const ack = checkUint(options.ack ?? 0, 32, 'tcp.ack');
  const flags = checkUint(options.flags ?? 0, 8, 'tcp.flags');
  const window = checkUint(options.window ?? 65535, 16, 'tcp.window');
  const urgent = checkUint(options.urgent ?? 0, 16, 'tcp.urgent');
  const data = options.payload === undefined ? Buffer.alloc(0) : checkBuffer(options.payload, 'tcp.payload');
  const checksum = options.checksum === undefined ? undefined : checkUint(options.checksum, 16, 'tcp.checksum');
  return {
    protocol: IpProtocol.TCP,
    encode(src, dst) {
      const segment = Buffer.alloc(HEADER_LENGTH + data.length);
      segment.writeUInt16BE(sport, 0);
      segment.writeUInt16BE(dport, 2);
      segment.writeUInt32BE(seq, 4);
      segment.writeUInt32BE(ack, 8);
      segment[12] = (HEADER_LENGTH / 4) << 4;
      segment[13] = flags;
      segment.writeUInt16BE(window, 14);
      segment.writeUInt16BE(urgent, 18);
      data.copy(segment, HEADER_LENGTH);
      segment.writeUInt16BE(checksum ?? transportChecksum(src, dst, IpProtocol.TCP, segment), 16);
      return segment;
    },
  };
}

export interface ParsedTcp {
  /** Where the header starts in the frame. */
  readonly offset: number;
  readonly sport: number;
  readonly dport: number;
  readonly seq: number;
  readonly ack: number;
  readonly headerLength: number;
  /** TcpFlags bits (the low 8 bits of the flags field). */
  readonly flags: number;
  readonly window: number;
  readonly checksum: number;
  /** Undefined when it cannot be checked (segment cut short, or a fragment). */
  readonly checksumOk?: boolean;
  readonly urgent: number;
  readonly options: Buffer;
}

/** `bytes` is the IP payload; `pseudo` is given only when all of it is there. */
export function decodeTcp(bytes: Buffer, offset: number, pseudo: PseudoHeader | undefined): Decoded<ParsedTcp> {
  if (bytes.length < HEADER_LENGTH) return truncatedHeader(bytes);
  const headerLength = (bytes[12] >> 4) * 4;
  if (headerLength < HEADER_LENGTH) {
    return { payload: bytes, truncated: false, malformed: `tcp: data offset gives a header of ${headerLength} bytes, less than 20` };
  }
  if (bytes.length < headerLength) return truncatedHeader(bytes);
  const checksumOk =
    pseudo === undefined ? undefined : checksumValid(bytes, pseudoHeaderSum(pseudo.src, pseudo.dst, IpProtocol.TCP, bytes.length));
  const header: ParsedTcp = {
    offset,
    sport: bytes.readUInt16BE(0),
    dport: bytes.readUInt16BE(2),
    seq: bytes.readUInt32BE(4),
    ack: bytes.readUInt32BE(8),
    headerLength,
    flags: bytes[13],
    window: bytes.readUInt16BE(14),
    checksum: bytes.readUInt16BE(16),
    checksumOk,
    urgent: bytes.readUInt16BE(18),
    options: bytes.subarray(HEADER_LENGTH, headerLength),
  };
  return { header, payload: bytes.subarray(headerLength), truncated: false };
}

// ICMP for IPv4 (RFC 792): echo, and the error messages a router sends, which quote
// the offending packet's IP header and first 8 bytes of its payload.

import { checkBuffer, checkUint } from './check';
import { checksumValid, icmpChecksum } from './checksum';
import { IpProtocol, truncatedHeader, type Decoded, type IpPayload } from './layer';
import type { ParsedPacket } from './parse';

export const IcmpType = {
  ECHO_REPLY: 0,
  DESTINATION_UNREACHABLE: 3,
  SOURCE_QUENCH: 4,
  REDIRECT: 5,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
  PARAMETER_PROBLEM: 12,
} as const;

/** Codes of IcmpType.DESTINATION_UNREACHABLE (RFC 792, RFC 1812). */
export const IcmpUnreachableCode = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  FRAGMENTATION_NEEDED: 4,
  SOURCE_ROUTE_FAILED: 5,
  ADMIN_PROHIBITED: 13,
} as const;

/** Codes of IcmpType.TIME_EXCEEDED. */
export const IcmpTimeExceededCode = {
  TTL: 0,
  REASSEMBLY: 1,
} as const;

const ERROR_TYPES: ReadonlySet<number> = new Set([
  IcmpType.DESTINATION_UNREACHABLE,
  IcmpType.SOURCE_QUENCH,
  IcmpType.REDIRECT,
  IcmpType.TIME_EXCEEDED,
  IcmpType.PARAMETER_PROBLEM,
]);

export interface IcmpOptions {
  readonly type: number;
  readonly code?: number;
  /** The second 32-bit word, whose meaning depends on the type (echo id and sequence, next-hop MTU, ...). */
  readonly rest?: number;
  readonly body?: Buffer;
  /** Written instead of the computed checksum, to build a broken message on purpose. */
  readonly checksum?: number;
}

/** Any ICMP message; the functions below fill in the common ones. */
export function icmp(options: IcmpOptions): IpPayload {
  const message = icmpMessage(options, 'icmp');
  const checksum = options.checksum === undefined ? icmpChecksum(message) : checkUint(options.checksum, 16, 'icmp.checksum');
  message.writeUInt16BE(checksum, 2);
  return { protocol: IpProtocol.ICMP, encode: () => message };
}

/** Type, code, a zero checksum, rest of header and body: the layout ICMP and ICMPv6 share. */
export function icmpMessage(options: IcmpOptions, layer: 'icmp' | 'icmpv6'): Buffer {
  const body = options.body === undefined ? Buffer.alloc(0) : checkBuffer(options.body, `${layer}.body`);
  const message = Buffer.alloc(8 + body.length);
  message[0] = checkUint(options.type, 8, `${layer}.type`);
  message[1] = checkUint(options.code ?? 0, 8, `${layer}.code`);
  message.writeUInt32BE(checkUint(options.rest ?? 0, 32, `${layer}.rest`), 4);
  body.copy(message, 8);
  return message;
}

export interface EchoOptions {
  /** Identifier; default 0. */
  readonly id?: number;
  /** Sequence number; default 0. */
  readonly seq?: number;
  readonly payload?: Buffer;
}

/** The second word of an echo message; shared with ICMPv6. */
export function echoRest(options: EchoOptions, layer: string): number {
  const id = checkUint(options.id ?? 0, 16, `${layer}.id`);
  const seq = checkUint(options.seq ?? 0, 16, `${layer}.seq`);
  return (id * 0x10000 + seq) >>> 0;
}

export function icmpEchoRequest(options: EchoOptions = {}): IpPayload {
  return icmp({ type: IcmpType.ECHO_REQUEST, rest: echoRest(options, 'icmpEchoRequest'), body: options.payload });
}

export function icmpEchoReply(options: EchoOptions = {}): IpPayload {
  return icmp({ type: IcmpType.ECHO_REPLY, rest: echoRest(options, 'icmpEchoReply'), body: options.payload });
}

export interface IcmpErrorOptions {
  /** The IPv4 packet that caused the error, from its header on: its header and 8 more bytes are quoted. */
  readonly original: Buffer;
}

export function icmpTimeExceeded(options: IcmpErrorOptions & { readonly code?: number }): IpPayload {
  return icmp({
    type: IcmpType.TIME_EXCEEDED,
    code: options.code ?? IcmpTimeExceededCode.TTL,
    body: quoteOriginal(options.original, 'icmpTimeExceeded'),
  });
}

export function icmpUnreachable(options: IcmpErrorOptions & { readonly code: number; readonly mtu?: number }): IpPayload {
  // RFC 1191: "fragmentation needed" carries the next-hop MTU in the low 16 bits.
  const rest = options.mtu === undefined ? 0 : checkUint(options.mtu, 16, 'icmpUnreachable.mtu');
  return icmp({
    type: IcmpType.DESTINATION_UNREACHABLE,
    code: checkUint(options.code, 8, 'icmpUnreachable.code'),
    rest,
    body: quoteOriginal(options.original, 'icmpUnreachable'),
  });
}

/** RFC 792: "the internet header plus the first 64 bits of the original datagram's data". */
function quoteOriginal(original: Buffer, caller: string): Buffer {
  checkBuffer(original, `${caller}.original`);
  const version = original.length > 0 ? original[0] >> 4 : undefined;
  if (version !== 4 || original.length < 20) {
    throw new RangeError(
      `${caller}.original must be the IPv4 packet that caused the error, from its header on ` +
        `(got ${original.length} bytes, version ${version}); slice a frame at parseFrame(frame).ipv4.offset`,
    );
  }
  return original.subarray(0, (original[0] & 0x0f) * 4 + 8);
}

export interface EchoFields {
  readonly id: number;
  readonly seq: number;
}

export interface ParsedIcmp {
  /** Where the message starts in the frame. */
  readonly offset: number;
  readonly type: number;
  readonly code: number;
  readonly checksum: number;
  /** Undefined when it cannot be checked (message cut short, or a fragment). */
  readonly checksumOk?: boolean;
  readonly echo?: EchoFields;
  /** Next-hop MTU of a "fragmentation needed" message. */
  readonly mtu?: number;
  /** The packet an error message quotes, decoded (it is usually cut short: `quoted.truncated`). */
  readonly quoted?: ParsedPacket;
  /** The second 32-bit word as it is. */
  readonly rest: number;
}

export function isIcmpError(type: number): boolean {
  return ERROR_TYPES.has(type);
}

/** `complete` says the whole message is there, so its checksum can be verified. */
export function decodeIcmp(bytes: Buffer, offset: number, complete: boolean): Decoded<Omit<ParsedIcmp, 'quoted'>> {
  if (bytes.length < 8) return truncatedHeader(bytes);
  const type = bytes[0];
  const code = bytes[1];
  const rest = bytes.readUInt32BE(4);
  const isEcho = type === IcmpType.ECHO_REQUEST || type === IcmpType.ECHO_REPLY;
  const header = {
    offset,
    type,
    code,
    checksum: bytes.readUInt16BE(2),
    checksumOk: complete ? checksumValid(bytes) : undefined,
    ...(isEcho && { echo: { id: rest >>> 16, seq: rest & 0xffff } }),
    ...(type === IcmpType.DESTINATION_UNREACHABLE && code === IcmpUnreachableCode.FRAGMENTATION_NEEDED && { mtu: rest & 0xffff }),
    rest,
  };
  return { header, payload: bytes.subarray(8), truncated: false };
}

// Link and network addresses: text <-> bytes for MAC, IPv4 and IPv6, and CIDR prefixes.
// Text is parsed strictly (no octal IPv4 parts, no zone indexes) because a
// silently misread address in a config or a test table is worse than an error.
// The optional `name` argument labels errors with the field the text came from.

import { show } from './check';

/** A MAC address as text ('aa:bb:cc:dd:ee:ff') or as 6 bytes. */
export type MacAddress = string | Buffer;
/** An IPv4 address as dotted-decimal text or as 4 bytes. */
export type Ipv4Address = string | Buffer;
/** An IPv6 address as text (full or '::'-compressed) or as 16 bytes. */
export type Ipv6Address = string | Buffer;

function label(name: string | undefined): string {
  return name === undefined ? '' : `${name}: `;
}

function checkText(text: unknown, kind: string, name: string | undefined): string {
  if (typeof text !== 'string') {
    throw new TypeError(`${label(name)}${kind} must be a string, got ${show(text)}`);
  }
  return text;
}

// ---- MAC ---------------------------------------------------------------------------------

const MAC_TEXT = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function parseMac(text: string, name?: string): Buffer {
  checkText(text, 'MAC address', name);
  if (!MAC_TEXT.test(text)) {
    throw new RangeError(
      `${label(name)}invalid MAC address '${text}': expected six pairs of hex digits separated by ':', like 'aa:bb:cc:dd:ee:ff'`,
    );
  }
  return Buffer.from(text.replace(/:/g, ''), 'hex');
}

export function formatMac(bytes: Buffer): string {
  if (bytes.length !== 6) throw new RangeError(`a MAC address is 6 bytes, got ${bytes.length}`);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The 6 bytes of a MAC given as text or bytes. */
export function macBytes(value: MacAddress, name: string): Buffer {
  if (typeof value === 'string') return parseMac(value, name);
  if (Buffer.isBuffer(value) && value.length === 6) return value;
  throw new TypeError(`${name} must be a MAC address string or a 6-byte Buffer, got ${show(value)}`);
}

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

// ---- IPv4 --------------------------------------------------------------------------------

export function parseIpv4(text: string, name?: string): Buffer {
  checkText(text, 'IPv4 address', name);
  const bytes = parseDottedQuad(text);
  if (typeof bytes === 'string') {
    throw new RangeError(`${label(name)}invalid IPv4 address '${text}': ${bytes}`);
  }
  return bytes;
}

/** The bytes of a dotted quad, or why it is not one. */
function parseDottedQuad(text: string): Buffer | string {
  const parts = text.split('.');
  if (parts.length !== 4) return `expected 4 decimal numbers separated by '.', like '10.0.0.1'`;
  const bytes = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    if (!/^[0-9]{1,3}$/.test(part)) return `part ${i + 1} ('${part}') is not a decimal number from 0 to 255`;
    // inet_aton reads '010' as octal 8; refuse rather than guess.
    if (part.length > 1 && part[0] === '0') return `part ${i + 1} ('${part}') has a leading zero`;
    const value = Number(part);
    if (value > 255) return `part ${i + 1} (${value}) is greater than 255`;
    bytes[i] = value;
  }
  return bytes;
}

export function formatIpv4(bytes: Buffer): string {
  if (bytes.length !== 4) throw new RangeError(`an IPv4 address is 4 bytes, got ${bytes.length}`);
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** The 4 bytes of an IPv4 address given as text or bytes. */
export function ipv4Bytes(value: Ipv4Address, name: string): Buffer {
  if (typeof value === 'string') return parseIpv4(value, name);
  if (Buffer.isBuffer(value) && value.length === 4) return value;
  throw new TypeError(`${name} must be an IPv4 address string or a 4-byte Buffer, got ${show(value)}`);
}

/** The address as an unsigned 32-bit number in host order (10.0.0.1 -> 0x0a000001). */
export function ipv4ToNumber(value: Ipv4Address): number {
  return ipv4Bytes(value, 'address').readUInt32BE(0);
}

export function ipv4FromNumber(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`an IPv4 address as a number is an integer from 0 to 4294967295, got ${value}`);
  }
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return formatIpv4(bytes);
}

// ---- IPv6 --------------------------------------------------------------------------------

export function parseIpv6(text: string, name?: string): Buffer {
  checkText(text, 'IPv6 address', name);
  const bytes = parseIpv6Text(text);
  if (typeof bytes === 'string') {
    throw new RangeError(`${label(name)}invalid IPv6 address '${text}': ${bytes}`);
  }
  return bytes;
}

/** RFC 4291 section 2.2 text forms: eight groups, one '::', an optional trailing dotted quad. */
function parseIpv6Text(text: string): Buffer | string {
  if (text.includes('%')) return `zone indexes ('%...') are not supported`;
  const halves = text.split('::');
  if (halves.length > 2) return `'::' may appear only once`;
  const head = groupWords(halves[0], halves.length === 1);
  if (typeof head === 'string') return head;
  const tail = halves.length === 2 ? groupWords(halves[1], true) : [];
  if (typeof tail === 'string') return tail;
  if (halves.length === 1 && head.length !== 8) {
    return `expected 8 groups of hex digits, got ${head.length} (use '::' for a run of zeros)`;
  }
  if (head.length + tail.length > 7 && halves.length === 2) return `too many groups for '::' to stand for any zeros`;
  const bytes = Buffer.alloc(16);
  head.forEach((word, i) => bytes.writeUInt16BE(word, i * 2));
  tail.forEach((word, i) => bytes.writeUInt16BE(word, (8 - tail.length + i) * 2));
  return bytes;
}

/** The 16-bit words of colon-separated groups; a dotted quad may end them when `quadAllowed`. */
function groupWords(half: string, quadAllowed: boolean): number[] | string {
  if (half === '') return [];
  const groups = half.split(':');
  const words: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i];
    if (quadAllowed && i === groups.length - 1 && group.includes('.')) {
      const quad = parseDottedQuad(group);
      if (typeof quad === 'string') return `embedded IPv4 address '${group}': ${quad}`;
      words.push(quad.readUInt16BE(0), quad.readUInt16BE(2));
    } else if (/^[0-9a-f]{1,4}$/i.test(group)) {
      words.push(parseInt(group, 16));
    } else if (group === '') {
      return `empty group (a single ':' where '::' or a group was meant)`;
    } else {
      return `group '${group}' is not 1 to 4 hex digits`;
    }
  }
  return words;
}

/** RFC 5952 canonical text: lower case, no leading zeros, the longest run of zero groups as '::'. */
export function formatIpv6(bytes: Buffer): string {
  if (bytes.length !== 16) throw new RangeError(`an IPv6 address is 16 bytes, got ${bytes.length}`);
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  // IPv4-mapped addresses keep the dotted quad (RFC 5952 section 5).
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes.subarray(12))}`;
  }
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never shortened (RFC 5952 section 4.2.2)
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}

/** The 16 bytes of an IPv6 address given as text or bytes. */
export function ipv6Bytes(value: Ipv6Address, name: string): Buffer {
  if (typeof value === 'string') return parseIpv6(value, name);
  if (Buffer.isBuffer(value) && value.length === 16) return value;
  throw new TypeError(`${name} must be an IPv6 address string or a 16-byte Buffer, got ${show(value)}`);
}

/** The solicited-node multicast address a neighbor solicitation for `target` goes to (RFC 4291 2.7.1). */
export function solicitedNodeAddress(target: Ipv6Address): Buffer {
  const bytes = parseIpv6('ff02::1:ff00:0');
  ipv6Bytes(target, 'target').copy(bytes, 13, 13);
  return bytes;
}

/** The Ethernet address of an IPv6 multicast group: 33:33 and the group's last 32 bits (RFC 2464 7). */
export function ipv6MulticastMac(group: Ipv6Address): Buffer {
  const mac = Buffer.from([0x33, 0x33, 0, 0, 0, 0]);
  ipv6Bytes(group, 'group').copy(mac, 2, 12);
  return mac;
}

// ---- Either family -----------------------------------------------------------------------

/** 4 bytes for dotted-decimal text, 16 for IPv6 text. */
export function parseIp(text: string, name?: string): Buffer {
  checkText(text, 'IP address', name);
  return text.includes(':') ? parseIpv6(text, name) : parseIpv4(text, name);
}

export function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return formatIpv4(bytes);
  if (bytes.length === 16) return formatIpv6(bytes);
  throw new RangeError(`an IP address is 4 or 16 bytes, got ${bytes.length}`);
}

// ---- CIDR prefixes -----------------------------------------------------------------------

export interface Cidr {
  readonly family: 4 | 6;
  /** The address as written, host bits included ('10.0.0.1/24' keeps 10.0.0.1). */
  readonly address: Buffer;
  readonly prefixLength: number;
  /** The address with its host bits cleared. */
  readonly network: Buffer;
}

/** 'address/prefix-length', v4 or v6. Host bits may be set, as in an interface address. */
export function parseCidr(text: string, name?: string): Cidr {
  checkText(text, 'CIDR prefix', name);
  const slash = text.indexOf('/');
  if (slash < 0) {
    throw new RangeError(`${label(name)}invalid CIDR prefix '${text}': expected address/prefix-length, like '10.0.0.0/24' or 'fd00::/64'`);
  }
  const address = parseIp(text.slice(0, slash), name);
  const lengthText = text.slice(slash + 1);
  const max = address.length * 8;
  if (!/^[0-9]{1,3}$/.test(lengthText) || Number(lengthText) > max) {
    throw new RangeError(`${label(name)}invalid CIDR prefix '${text}': prefix length '${lengthText}' is not a number from 0 to ${max}`);
  }
  const prefixLength = Number(lengthText);
  return { family: address.length === 4 ? 4 : 6, address, prefixLength, network: maskAddress(address, prefixLength) };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.address)}/${cidr.prefixLength}`;
}

/** Whether `address` lies in the prefix. An address of the other family never does. */
export function cidrContains(cidr: Cidr | string, address: string | Buffer): boolean {
  const prefix = typeof cidr === 'string' ? parseCidr(cidr, 'cidr') : cidr;
  const bytes = typeof address === 'string' ? parseIp(address, 'address') : address;
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new TypeError(`address must be an IP address string or a 4- or 16-byte Buffer, got ${show(address)}`);
  }
  if (bytes.length !== prefix.network.length) return false;
  return maskAddress(bytes, prefix.prefixLength).equals(prefix.network);
}

function maskAddress(address: Buffer, prefixLength: number): Buffer {
  const masked = Buffer.from(address);
  for (let i = 0; i < masked.length; i++) {
    const bits = Math.min(8, Math.max(0, prefixLength - i * 8));
    masked[i] &= (0xff00 >> bits) & 0xff;
  }
  return masked;
}

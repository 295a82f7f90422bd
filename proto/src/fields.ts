// Typed fields: BTF type names the framework defines (bpf/include/netcube/fields.h)
// for what tables hold in network byte order. The codec (btf.ts) shows and takes
// them as text and numbers, as an operator writes them, instead of the integers
// their bytes would make on a little-endian host:
//
//   nc_ipv4_t  "10.0.1.0"            nc_mac_t   "02:00:00:00:00:01"
//   nc_ipv6_t  "fe80::1"             nc_port_t  8080
//
// An IPv4 address kept in an nc_ipv6_t (mapped, ::ffff:a.b.c.d, as conntrack keys
// hold both families) shows as "::ffff:10.0.0.1".

import { isIPv4, isIPv6 } from 'node:net';
import type { BtfType } from './btf';

export type FieldKind = 'ipv4' | 'ipv6' | 'mac' | 'port';

const FIELDS: Record<string, { kind: FieldKind; size: number }> = {
  nc_ipv4_t: { kind: 'ipv4', size: 4 },
  nc_ipv6_t: { kind: 'ipv6', size: 16 },
  nc_mac_t: { kind: 'mac', size: 6 },
  nc_port_t: { kind: 'port', size: 2 },
};

/** The typed field `type` is, when its name is one of the framework's and its size agrees. */
export function fieldKind(type: BtfType): FieldKind | undefined {
  const name = 'name' in type ? type.name : undefined;
  const field = name === undefined ? undefined : FIELDS[name];
  return field !== undefined && field.size === type.size ? field.kind : undefined;
}

const EXAMPLE: Record<FieldKind, string> = {
  ipv4: "an IPv4 address like '10.0.0.1'",
  ipv6: "an IPv6 address like 'fe80::1'",
  mac: "a MAC address like '02:00:00:00:00:01'",
  port: 'a port number from 0 to 65535',
};

const MAC_TEXT = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Writes `value` (text, or a number for a port) as the field's bytes at `at`; errors name `path`. */
export function encodeField(kind: FieldKind, value: unknown, out: Buffer, at: number, path: string): void {
  const bad = (): never => {
    throw new TypeError(`${path}: expected ${EXAMPLE[kind]}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  };
  switch (kind) {
    case 'port': {
      const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffff) bad();
      out.writeUInt16BE(n as number, at);
      return;
    }
    case 'mac':
      if (typeof value !== 'string' || !MAC_TEXT.test(value)) bad();
      Buffer.from((value as string).replace(/:/g, ''), 'hex').copy(out, at);
      return;
    case 'ipv4':
      if (typeof value !== 'string' || !isIPv4(value)) bad();
      ipv4Bytes(value as string).copy(out, at);
      return;
    case 'ipv6':
      if (typeof value !== 'string' || !isIPv6(value) || value.includes('%')) bad();
      ipv6Bytes(value as string).copy(out, at);
      return;
  }
}

/** The field's text (a number for a port). */
export function decodeField(kind: FieldKind, buf: Buffer, at: number): string | number {
  switch (kind) {
    case 'port':
      return buf.readUInt16BE(at);
    case 'mac':
      return [...buf.subarray(at, at + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    case 'ipv4':
      return [...buf.subarray(at, at + 4)].join('.');
    case 'ipv6':
      return ipv6Text(buf.subarray(at, at + 16));
  }
}

/**
 * The bytes of an IPv4 (4) or IPv6 (16) address in text, strictly (no leading
 * zeros, no zone); undefined when `text` is neither.
 */
export function addressBytes(text: string): Buffer | undefined {
  if (isIPv4(text)) return ipv4Bytes(text);
  if (isIPv6(text) && !text.includes('%')) return ipv6Bytes(text);
  return undefined;
}

/** The text of a 4- or 16-byte address, as the codec shows it. */
export function addressText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) return ipv6Text(bytes);
  throw new RangeError(`an address is 4 or 16 bytes, got ${bytes.length}`);
}

function ipv4Bytes(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

/** The bytes of text that node:net already found to be an IPv6 address. */
function ipv6Bytes(text: string): Buffer {
  const groups = (part: string): number[] => {
    if (part === '') return [];
    const words = part.split(':');
    const last = words[words.length - 1];
    if (!last.includes('.')) return words.map((w) => parseInt(w, 16));
    const v4 = ipv4Bytes(last);
    return [...words.slice(0, -1).map((w) => parseInt(w, 16)), v4.readUInt16BE(0), v4.readUInt16BE(2)];
  };
  const [head, tail] = text.split('::');
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, 2 * i));
  return out;
}

/** RFC 5952: lower case, the longest run of two or more zero groups as '::', mapped IPv4 dotted. */
function ipv6Text(bytes: Buffer): string {
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i));
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  return best < 0 ? hex(words) : `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

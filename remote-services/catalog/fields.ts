// What the configs of the service catalog (firewall, nat, lbrp) share: address
// prefixes, port ranges and protocols as people and programs write them, checked
// strictly, with errors that name the field at fault ("ingress.rules[3].src").
// Pure: no SDK, no kernel, so the data-plane tests and the control planes use the
// same code.

import { addressBytes, addressText } from '@netcube/api/fields';

/** A config value that cannot be used; `field` is its path in the config. */
export class FieldError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(field ? `${field}: ${problem}` : problem);
    this.name = 'FieldError';
  }
}

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

export type Family = 4 | 6;

export interface Address {
  family: Family;
  bytes: Buffer;
}

export interface Prefix extends Address {
  /** Bits of the prefix, 0..32 or 0..128. */
  length: number;
}

/** An IPv4 or IPv6 address. */
export function parseAddress(value: unknown, field: string): Address {
  const bytes = typeof value === 'string' ? addressBytes(value) : undefined;
  if (!bytes) throw new FieldError(field, `expected an IPv4 or IPv6 address like '10.0.0.1' or 'fd00::1', got ${show(value)}`);
  return { family: bytes.length === 4 ? 4 : 6, bytes };
}

/** An address as the catalog's tables hold it (nc_ipv6_t): IPv6, or IPv4 mapped (::ffff:a.b.c.d). */
export function tableAddress(a: Address): string {
  return a.family === 4 ? `::ffff:${addressText(a.bytes)}` : addressText(a.bytes);
}

/** "10.0.0.0/8", "fd00::/64", or an address alone (the whole length). Host bits must be 0. */
export function parsePrefix(value: unknown, field: string): Prefix {
  if (typeof value !== 'string') throw new FieldError(field, `expected a prefix like '10.0.0.0/8' or 'fd00::/64', got ${show(value)}`);
  const slash = value.indexOf('/');
  const address = parseAddress(slash < 0 ? value : value.slice(0, slash), field);
  const max = address.family === 4 ? 32 : 128;
  const lengthText = slash < 0 ? String(max) : value.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > max) {
    throw new FieldError(field, `the prefix length of ${show(value)} must be a number from 0 to ${max}`);
  }
  const length = Number(lengthText);
  const masked = maskBytes(address.bytes, length);
  if (!masked.equals(address.bytes)) {
    throw new FieldError(field, `${show(value)} has bits set past its /${length}: write ${addressText(masked)}/${length}`);
  }
  return { ...address, length };
}

export function prefixText(p: Prefix): string {
  return `${addressText(p.bytes)}/${p.length}`;
}

/** `bytes` with every bit past the first `length` cleared. */
export function maskBytes(bytes: Buffer, length: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, length - 8 * i));
    out[i] &= (0xff00 >> keep) & 0xff;
  }
  return out;
}

export function prefixContains(p: Prefix, a: Address): boolean {
  return p.family === a.family && maskBytes(a.bytes, p.length).equals(p.bytes);
}

export interface PortRange {
  first: number;
  last: number;
}

/** 80, "80" or "8000-8100". */
export function parsePortRange(value: unknown, field: string): PortRange {
  const bad = (why: string): never => {
    throw new FieldError(field, `${why}: expected a port (0-65535) or a range like '8000-8100', got ${show(value)}`);
  };
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) bad('not a port');
    return { first: value, last: value };
  }
  if (typeof value !== 'string') return bad('not a port');
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(value);
  if (!m) return bad('not a port or range');
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (first > 0xffff || last > 0xffff) bad('beyond 65535');
  if (first > last) bad(`the range runs backwards`);
  return { first, last };
}

export function portRangeText(r: PortRange): string {
  return r.first === r.last ? String(r.first) : `${r.first}-${r.last}`;
}

/** IP protocol numbers by the names configs use. */
export const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };

/** A protocol by name ('tcp') or number (0-255, or its decimal text). */
export function parseProtocol(value: unknown, field: string): number {
  if (typeof value === 'string' && Object.hasOwn(PROTOCOLS, value)) return PROTOCOLS[value];
  const n = typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 255) return n;
  throw new FieldError(field, `expected a protocol (${Object.keys(PROTOCOLS).join(', ')}, or a number 0-255), got ${show(value)}`);
}

/** Protocols whose packets carry ports. */
export const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132]);

/** `value` when it is an array (or absent: []); else an error naming the field. */
export function arrayAt(value: unknown, field: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new FieldError(field, `expected a list, got ${show(value)}`);
  return value;
}

/** `value` when it is a plain object; else an error naming the field. */
export function objectAt(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FieldError(field, `expected an object, got ${show(value)}`);
  return value as Record<string, unknown>;
}

/** Refuses members of `obj` other than `known`: a misspelt option is an error, not a default. */
export function onlyKnown(obj: Record<string, unknown>, known: readonly string[], field: string): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) throw new FieldError(field ? `${field}.${key}` : key, `unknown field; the fields here are ${known.join(', ')}`);
  }
}

/** One of `choices`, or the default when absent. */
export function oneOf<T extends string>(value: unknown, choices: readonly T[], field: string, fallback?: T): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw new FieldError(field, `expected one of ${choices.join(', ')}, got ${show(value)}`);
}

/** An integer within [min, max], or the default when absent. */
export function integerAt(value: unknown, min: number, max: number, field: string, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new FieldError(field, `expected an integer from ${min} to ${max}, got ${show(value)}`);
  }
  return value;
}

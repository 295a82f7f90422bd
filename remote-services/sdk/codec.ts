// Addresses as tables hold them, in the JSON form of their BTF types: a MAC
// (__u8[6]) is a list of six numbers, an IPv4 address kept in network order
// (__be32) is the number its four bytes make when read as the host's (little-endian)
// integer. Metadata words (md->user) that carry an address do the same.

import { createHash } from 'node:crypto';
import { formatIpv4, formatMac, parseIpv4, parseMac } from './packet';

/** `02:00:00:00:00:01` -> [2, 0, 0, 0, 0, 1] */
export function macBytes(mac: string): number[] {
  return [...parseMac(mac)];
}

/** [2, 0, 0, 0, 0, 1] -> `02:00:00:00:00:01` */
export function macText(bytes: readonly number[]): string {
  return formatMac(Buffer.from(bytes));
}

/** `10.0.0.1` -> the __be32 as a number. */
export function be32(address: string): number {
  return parseIpv4(address).readUInt32LE(0);
}

/** The __be32 number (or a metadata word holding one) -> `10.0.0.1`. */
export function be32Text(value: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0, 0);
  return formatIpv4(b);
}

/** A stable, locally administered unicast MAC for `name` (e.g. `router1/lan`). */
export function derivedMac(name: string): string {
  const h = createHash('sha256').update(name).digest();
  return formatMac(Buffer.from([0x02, h[0], h[1], h[2], h[3], h[4]]));
}

// Test-only references: hex literals with comments, and an Internet checksum written
// independently of the library's (remainder modulo 0xffff instead of carry folding)
// over pseudo-headers laid out byte by byte as the RFCs draw them.

/** Bytes from hex text; whitespace and '#' comments to the end of a line are ignored. */
export function hex(text: string): Buffer {
  const digits = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(digits)) throw new Error(`bad hex literal: ${digits}`);
  return Buffer.from(digits, 'hex');
}

/** RFC 1071, the slow and obvious way: sum the words, reduce modulo 2^16 - 1, complement. */
export function referenceChecksum(...parts: Buffer[]): number {
  const data = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) sum += data[i] * 256 + (i + 1 < data.length ? data[i + 1] : 0);
  // In ones' complement arithmetic 0xffff is another zero; a non-zero sum that is a multiple of 0xffff is 0xffff.
  const folded = sum === 0 ? 0 : sum % 0xffff === 0 ? 0xffff : sum % 0xffff;
  return 0xffff - folded;
}

/** RFC 768 / RFC 793 pseudo-header: source, destination, zero, protocol, length. */
export function pseudoHeader4(src: string, dst: string, protocol: number, length: number): Buffer {
  return Buffer.concat([dotted(src), dotted(dst), Buffer.from([0, protocol, length >> 8, length & 0xff])]);
}

/** RFC 8200 section 8.1 pseudo-header: source, destination, 32-bit length, three zeros, next header. */
export function pseudoHeader6(src: Buffer, dst: Buffer, nextHeader: number, length: number): Buffer {
  const tail = Buffer.alloc(8);
  tail.writeUInt32BE(length, 0);
  tail[7] = nextHeader;
  return Buffer.concat([src, dst, tail]);
}

function dotted(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

// Says how two frames differ in terms of their fields, so a data-plane test that
// compares an output frame with the expected one fails with "ipv4.ttl: 64, expected 63"
// rather than with two hex dumps.

import { checkBuffer } from './check';
import { describe } from './describe';
import { parseFrame } from './parse';

/**
 * undefined when the frames are equal byte for byte; otherwise the first field, in wire
 * order, that differs, followed by a one-line summary of each frame:
 *
 *     ipv4.ttl: 64, expected 63
 *       actual:   10.0.0.1.1234 > 10.0.0.2.80: UDP, length 5
 *       expected: 10.0.0.1.1234 > 10.0.0.2.80: UDP, length 5
 */
export function diffFrames(actual: Buffer, expected: Buffer): string | undefined {
  checkBuffer(actual, 'actual');
  checkBuffer(expected, 'expected');
  if (actual.equals(expected)) return undefined;
  // Fields cover every byte the decoders understand; what they do not (e.g. bytes past a UDP length) falls to the raw comparison.
  const field = firstDifference(parseFrame(actual), parseFrame(expected), '') ?? bufferDifference(actual, expected, 'frame');
  return `${field}\n  actual:   ${describe(actual)}\n  expected: ${describe(expected)}`;
}

function firstDifference(actual: unknown, expected: unknown, path: string): string | undefined {
  if (Buffer.isBuffer(actual) && Buffer.isBuffer(expected)) return bufferDifference(actual, expected, path);
  if (isRecord(actual) && isRecord(expected)) {
    for (const key of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
      const found = firstDifference(actual[key], expected[key], path === '' ? key : `${path}.${key}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (actual === expected) return undefined;
  if (actual === undefined) return `${path}: missing, expected ${format(path, expected)}`;
  if (expected === undefined) return `${path}: ${format(path, actual)}, expected none`;
  return `${path}: ${format(path, actual)}, expected ${format(path, expected)}`;
}

function bufferDifference(actual: Buffer, expected: Buffer, path: string): string | undefined {
  if (actual.equals(expected)) return undefined;
  const length = Math.min(actual.length, expected.length);
  let at = 0;
  while (at < length && actual[at] === expected[at]) at++;
  const lengths = actual.length === expected.length ? '' : `${actual.length} bytes, expected ${expected.length}`;
  if (at === length) return `${path}: ${lengths}`;
  return `${path}: byte ${at} is ${hexByte(actual[at])}, expected ${hexByte(expected[at])}${lengths && ` (${lengths})`}`;
}

const HEX_FIELDS = /(^|\.)(checksum|ethertype|rest)$/;

function format(path: string, value: unknown): string {
  if (typeof value === 'number' && HEX_FIELDS.test(path)) return `0x${value.toString(16).padStart(4, '0')}`;
  if (isRecord(value)) return '{...}';
  if (Buffer.isBuffer(value)) return `${value.length} bytes`;
  return String(value);
}

function hexByte(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value);
}

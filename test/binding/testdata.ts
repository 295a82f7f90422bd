// Paths of the test programs (bpf/testdata, compiled by `make -C bpf`).
import * as path from 'node:path';

// build/js/test/binding -> the repository root
export const root = path.resolve(__dirname, '../../../..');

export function testObject(name: string): string {
  return path.join(root, 'build/bpf/testdata', `${name}.o`);
}

/** A 64-byte frame of zeros: enough input for the programs that ignore it. */
export const emptyFrame = Buffer.alloc(64);

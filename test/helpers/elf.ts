// ELF objects for fault tests: where a section lies in a 64-bit little-endian ELF
// file (what clang -target bpf writes), copies with one byte changed, and one
// such copy that crashes libbpf.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { inspectObjects } from '../../node-daemon/src/typecheck/inspect';
import { DEFAULT_TYPE_POLICY } from '../../node-daemon/src/typecheck/policy';

/** File offset and size of section `name`; throws when the object has none. */
export function elfSection(elf: Buffer, name: string): { offset: number; size: number } {
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const header = (i: number): number => shoff + i * shentsize;
  const names = Number(elf.readBigUInt64LE(header(shstrndx) + 0x18));
  for (let i = 0; i < shnum; i++) {
    const at = names + elf.readUInt32LE(header(i));
    if (elf.toString('latin1', at, elf.indexOf(0, at)) === name) {
      return { offset: Number(elf.readBigUInt64LE(header(i) + 0x18)), size: Number(elf.readBigUInt64LE(header(i) + 0x20)) };
    }
  }
  throw new Error(`the object has no section ${name}`);
}

/** A copy of `elf` with the byte at `offset` set to `value`. */
export function mutate(elf: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(elf);
  copy[offset] = value;
  return copy;
}

let crashing: Promise<Buffer> | undefined;

/**
 * A one-byte mutation of nop's xdp object that crashes libbpf 1.1 when it opens
 * it (about one in a hundred mutations of its BTF does), found once per process
 * by trying mutations in the object inspector, which survives them.
 */
export function crashingObject(): Promise<Buffer> {
  crashing ??= (async () => {
    const nop = fs.readFileSync(path.join(DEFAULT_OBJECTS_DIR, 'cubes', 'nop.xdp.o'));
    const btf = elfSection(nop, '.BTF');
    for (let start = 0; start < btf.size; start += 64) {
      const candidates = Array.from({ length: 64 }, (_, i) => mutate(nop, btf.offset + ((start + i * 37) % btf.size), (start + i * 101) % 256));
      const results = await inspectObjects(candidates.map((elf, i) => ({ label: `m${i}`, mode: 'xdp' as const, elf })), DEFAULT_TYPE_POLICY);
      const i = results.findIndex((r) => !r.ok && /crashed \(SIGSEGV\)/.test(r.error));
      if (i >= 0) return candidates[i];
    }
    throw new Error('no one-byte mutation of nop.xdp.o crashes libbpf any more');
  })();
  return crashing;
}

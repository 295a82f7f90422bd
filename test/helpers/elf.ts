// ELF objects for fault tests: where a section lies in a 64-bit little-endian ELF
// file (what clang -target bpf writes), and copies with one byte changed.

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

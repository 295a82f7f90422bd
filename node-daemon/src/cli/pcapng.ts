// pcapng (draft-ietf-opsawg-pcapng): a section header, one Ethernet interface
// with nanosecond timestamps, and an enhanced packet block per packet with its
// direction (epb_flags), which tcpdump and Wireshark read. Little-endian, as the
// byte-order magic says.

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const LINKTYPE_ETHERNET = 1;
const OPT_END = 0;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const EPB_FLAGS = 2;
/** epb_flags bits 0-1: the packet's direction. */
const INBOUND = 1;
const OUTBOUND = 2;

const pad4 = (n: number): number => (n + 3) & ~3;

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

/** A block: its type, `body`, and its total length before and after. */
function block(type: number, body: Buffer): Buffer {
  const length = 12 + body.length;
  const b = Buffer.alloc(length);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(length, 4);
  body.copy(b, 8);
  b.writeUInt32LE(length, length - 4);
  return b;
}

/** The section header and the one interface every packet refers to (id 0). */
export function pcapngHeader(interfaceName: string, snapLength: number): Buffer {
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeUInt16LE(0, 6);
  shb.writeBigInt64LE(-1n, 8); // section length not given
  const idb = Buffer.alloc(8);
  idb.writeUInt16LE(LINKTYPE_ETHERNET, 0);
  idb.writeUInt32LE(snapLength, 4);
  const options = Buffer.concat([option(IF_NAME, Buffer.from(interfaceName, 'utf8')), option(IF_TSRESOL, Buffer.from([9])), option(OPT_END, Buffer.alloc(0))]);
  return Buffer.concat([block(SHB, shb), block(IDB, Buffer.concat([idb, options]))]);
}

export interface PcapngPacket {
  data: Buffer;
  wireLength: number;
  /** Nanoseconds since the Unix epoch. */
  timestampNs: bigint;
  direction: 'ingress' | 'egress';
}

/** An enhanced packet block of interface 0. */
export function pcapngPacket(p: PcapngPacket): Buffer {
  const head = Buffer.alloc(20);
  head.writeUInt32LE(0, 0);
  head.writeUInt32LE(Number(p.timestampNs >> 32n), 4);
  head.writeUInt32LE(Number(p.timestampNs & 0xffffffffn), 8);
  head.writeUInt32LE(p.data.length, 12);
  head.writeUInt32LE(p.wireLength, 16);
  const data = Buffer.alloc(pad4(p.data.length));
  p.data.copy(data);
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(p.direction === 'ingress' ? INBOUND : OUTBOUND, 0);
  return block(EPB, Buffer.concat([head, data, option(EPB_FLAGS, flags), option(OPT_END, Buffer.alloc(0))]));
}

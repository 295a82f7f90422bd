// The data-plane ABI as the runtime sees it: the constants, encodings and record
// layouts of bpf/include/netcube/abi.h. test/dataplane/abi.test.ts checks every
// number here against the BTF of the compiled objects, so the two cannot drift.

export const MAX_PORTS = 32;
export const MAX_MICROCUBES = 8;
export const MAX_CUBES = 4096;
export const PROG_SLOTS = MAX_CUBES * MAX_MICROCUBES;
export const GENERATIONS = 2;
export const PKT_MAX = 1536;
export const LOG_FMT_LEN = 64;
export const LOG_ARGS = 4;
/** The kernel's limit on tail calls per packet (MAX_TAIL_CALL_CNT). */
export const MAX_TAIL_CALLS = 33;

export const enum PeerKind {
  None = 0,
  Netdev = 1,
  Cube = 2,
  Stack = 3,
}

/** Flags of a peer word, bits 47..40 (enum nc_peer_flag). */
export const PEER_F_REDIRECT_PEER = 0x1;
export const PEER_F_FUSED = 0x2;

export const DIR_INGRESS = 0;
export const DIR_EGRESS = 1;

export const KIND_STANDARD = 1;
export const KIND_TRANSPARENT = 2;

export const SCOPE = { private: 1, cube: 2, host: 3 } as const;
export type TableScope = keyof typeof SCOPE;

export const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const ERRORS = ['tail_call', 'no_metadata', 'log_full', 'pkt_full', 'pkt_rate', 'pkt_held'] as const;
export const ERR_MAX = 8;

export const MD_F_GEN = 0x1;
export const MD_F_PACKET_OUT = 0x2;
/** The user words follow (the framework's own flag: not part of what a cube sees). */
export const MD_F_USER = 0x4;
export const INJECT_MAGIC = 0x6e63696a;

export const HOOK_ID = { xdp: 1, tc: 2 } as const;

/**
 * A peer as the data plane reads it: one 64-bit word (see enum nc_peer_kind).
 * `redirectPeer`: under TC, deliver straight into the receive path of the other
 * end of the netdev (a veth whose peer is in another namespace); see enum
 * nc_peer_flag. `fused`: in a netdev entry's word, the program attached to the
 * netdev is this cube's fused entry (see netdev.ts). Present only when set.
 */
export type Peer =
  | { kind: 'none' }
  | { kind: 'netdev'; ifindex: number; redirectPeer?: true }
  | { kind: 'cube'; slot: number; port: number; fused?: true }
  | { kind: 'stack' };

export function encodePeer(p: Peer): bigint {
  switch (p.kind) {
    case 'none':
      return 0n;
    case 'stack':
      return BigInt(PeerKind.Stack) << 56n;
    case 'netdev':
      return (BigInt(PeerKind.Netdev) << 56n) | (p.redirectPeer ? BigInt(PEER_F_REDIRECT_PEER) << 40n : 0n) | BigInt(p.ifindex >>> 0);
    case 'cube':
      return (BigInt(PeerKind.Cube) << 56n) | (BigInt(p.port & 0xff) << 48n) | (p.fused ? BigInt(PEER_F_FUSED) << 40n : 0n) | BigInt(p.slot >>> 0);
  }
}

export function decodePeer(word: bigint): Peer {
  const kind = Number(word >> 56n);
  const target = Number(word & 0xffffffffn);
  switch (kind) {
    case PeerKind.Netdev:
      return Number((word >> 40n) & 0xffn) & PEER_F_REDIRECT_PEER ? { kind: 'netdev', ifindex: target, redirectPeer: true } : { kind: 'netdev', ifindex: target };
    case PeerKind.Cube:
      return Number((word >> 40n) & 0xffn) & PEER_F_FUSED
        ? { kind: 'cube', slot: target, port: Number((word >> 48n) & 0xffn), fused: true }
        : { kind: 'cube', slot: target, port: Number((word >> 48n) & 0xffn) };
    case PeerKind.Stack:
      return { kind: 'stack' };
    default:
      return { kind: 'none' };
  }
}

/** A cube's slot in the host's nc_progs (packet-out), as a peer word names the cube. */
export function slotOf(cubeId: number): number {
  return cubeId * MAX_MICROCUBES;
}

/** A peer word with its fused flag set or cleared (see enum nc_peer_flag). */
export function withFused(word: bigint, fused: boolean): bigint {
  const flag = BigInt(PEER_F_FUSED) << 40n;
  return fused ? word | flag : word & ~flag;
}

/** Index of a port's word of one generation in a cube's nc_ports map, and of its slot in nc_peer_progs. */
export function portWord(gen: number, port: number): number {
  return gen * MAX_PORTS + port;
}

export interface PortStats {
  rxPackets: bigint;
  rxBytes: bigint;
  txPackets: bigint;
  txBytes: bigint;
  drops: bigint;
  toController: bigint;
}
const PORT_STATS_FIELDS = ['rxPackets', 'rxBytes', 'txPackets', 'txBytes', 'drops', 'toController'] as const;
export const PORT_STATS_SIZE = PORT_STATS_FIELDS.length * 8;

/** The value of a cube's nc_stats (struct nc_cube_stats): every port's counters. */
export const CUBE_STATS_SIZE = MAX_PORTS * PORT_STATS_SIZE;

/** Sums the per-CPU copies of port `port`'s counters in a struct nc_cube_stats value. */
export function sumPortStats(perCpu: Buffer, cpus: number, port: number): PortStats {
  const out = { rxPackets: 0n, rxBytes: 0n, txPackets: 0n, txBytes: 0n, drops: 0n, toController: 0n };
  for (let cpu = 0; cpu < cpus; cpu++) {
    PORT_STATS_FIELDS.forEach((field, i) => {
      out[field] += perCpu.readBigUInt64LE(cpu * CUBE_STATS_SIZE + port * PORT_STATS_SIZE + i * 8);
    });
  }
  return out;
}

/** struct nc_cube_cfg */
export interface CubeConfig {
  logLevel: LogLevel;
  pktRate: number;
  pktBurst: number;
  /** Its controller has no room: the data plane drops its slow-path packets (pkt_held). */
  pktHeld?: boolean;
}
export const CUBE_CFG_SIZE = 16;

export function encodeCubeConfig(cfg: CubeConfig): Buffer {
  const b = Buffer.alloc(CUBE_CFG_SIZE);
  b.writeUInt32LE(LOG_LEVELS.indexOf(cfg.logLevel), 0);
  b.writeUInt32LE(cfg.pktRate, 4);
  b.writeUInt32LE(cfg.pktBurst, 8);
  b.writeUInt32LE(cfg.pktHeld ? 1 : 0, 12);
  return b;
}

/** struct nc_log_rec */
export interface LogRecord {
  tsNs: bigint;
  cubeId: number;
  level: LogLevel;
  args: bigint[];
  fmt: string;
}
export const LOG_REC_SIZE = 16 + LOG_ARGS * 8 + LOG_FMT_LEN;

export function decodeLogRecord(b: Buffer): LogRecord {
  const nargs = Math.min(b.readUInt8(11), LOG_ARGS);
  const args: bigint[] = [];
  for (let i = 0; i < nargs; i++) args.push(b.readBigUInt64LE(16 + i * 8));
  const fmtBytes = b.subarray(16 + LOG_ARGS * 8, LOG_REC_SIZE);
  const nul = fmtBytes.indexOf(0);
  return {
    tsNs: b.readBigUInt64LE(0),
    cubeId: b.readUInt16LE(8),
    level: LOG_LEVELS[b.readUInt8(10)] ?? 'trace',
    args,
    fmt: fmtBytes.subarray(0, nul < 0 ? fmtBytes.length : nul).toString('utf8'),
  };
}

/** struct nc_pkt_rec: a slow-path packet with its metadata. */
export interface PacketRecord {
  cubeId: number;
  inPort: number;
  reason: number;
  hook: 'xdp' | 'tc';
  user: [number, number, number];
  wireLen: number;
  /** The data plane's clock (bpf_ktime_get_ns, CLOCK_MONOTONIC) when it handed the packet over. */
  tsNs: bigint;
  /** A view into the record (which the ring reader copied out of the ring). */
  packet: Buffer;
}
export const PKT_REC_HDR = 40;

export function decodePacketRecord(b: Buffer): PacketRecord {
  const cap = Math.min(b.readUInt32LE(0), PKT_MAX, b.length - PKT_REC_HDR);
  return {
    wireLen: b.readUInt32LE(4),
    cubeId: b.readUInt16LE(8),
    inPort: b.readUInt16LE(10),
    reason: b.readUInt16LE(12),
    hook: b.readUInt16LE(14) === HOOK_ID.tc ? 'tc' : 'xdp',
    user: [b.readUInt32LE(16), b.readUInt32LE(20), b.readUInt32LE(24)],
    tsNs: b.readBigUInt64LE(32),
    packet: b.subarray(PKT_REC_HDR, PKT_REC_HDR + Math.max(cap, 0)),
  };
}

/** struct nc_inject_trailer, appended to a packet-out frame. */
export const INJECT_TRAILER_SIZE = 32;

export function encodeInjectTrailer(peer: bigint, gen: number, hook: 'xdp' | 'tc', user: readonly number[] = [0, 0, 0]): Buffer {
  const b = Buffer.alloc(INJECT_TRAILER_SIZE);
  writeInjectTrailer(b, 0, peer, gen, hook, user);
  return b;
}

/** Writes a struct nc_inject_trailer into `b` at `offset` (right behind a frame). */
export function writeInjectTrailer(b: Buffer, offset: number, peer: bigint, gen: number, hook: 'xdp' | 'tc', user: readonly number[] = [0, 0, 0]): void {
  b.writeBigUInt64LE(peer, offset);
  for (let i = 0; i < 3; i++) b.writeUInt32LE((user[i] ?? 0) >>> 0, offset + 8 + i * 4);
  b.writeUInt32LE(gen, offset + 20);
  b.writeUInt32LE(INJECT_MAGIC, offset + 24);
  b.writeUInt32LE(HOOK_ID[hook], offset + 28);
}

/** struct nc_md: 20 bytes, in the XDP metadata area or skb->cb. */
export interface Metadata {
  inPort: number;
  cubeId: number;
  reason: number;
  flags: number;
  user: [number, number, number];
}
export const MD_SIZE = 20;

/** The metadata as a cube sees it; the user words only count with MD_F_USER. */
export function decodeMetadata(b: Buffer): Metadata {
  const flags = b.readUInt16LE(6);
  return {
    inPort: b.readUInt16LE(0),
    cubeId: b.readUInt16LE(2),
    reason: b.readUInt16LE(4),
    flags: flags & ~MD_F_USER,
    user: flags & MD_F_USER ? [b.readUInt32LE(8), b.readUInt32LE(12), b.readUInt32LE(16)] : [0, 0, 0],
  };
}

export function encodeMetadata(md: Metadata): Buffer {
  const b = Buffer.alloc(MD_SIZE);
  const user = md.user.some((w) => w !== 0);
  b.writeUInt16LE(md.inPort, 0);
  b.writeUInt16LE(md.cubeId, 2);
  b.writeUInt16LE(md.reason, 4);
  b.writeUInt16LE(user ? md.flags | MD_F_USER : md.flags & ~MD_F_USER, 6);
  md.user.forEach((w, i) => b.writeUInt32LE(w >>> 0, 8 + i * 4));
  return b;
}

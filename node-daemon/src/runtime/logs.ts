// Data-plane logs (nc_log): the data plane writes a format string and integer
// arguments into the host's log ring; here they are read and formatted, so that
// printing an address costs the fast path nothing.

import { BpfMap, RingBufReader } from '../bpf';
import { LogLevel, LogRecord, decodeLogRecord } from './abi';

export interface LogLine {
  cubeId: number;
  /** The cube's name, when the cube still exists. */
  cube?: string;
  level: LogLevel;
  message: string;
  tsNs: bigint;
}

const ipv4 = (v: bigint): string => [24n, 16n, 8n, 0n].map((s) => String(Number((v >> s) & 0xffn))).reverse().join('.');
const mac = (v: bigint): string =>
  [40n, 32n, 24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn).toString(16).padStart(2, '0')).join(':');
const port = (v: bigint): number => Number(((v & 0xffn) << 8n) | ((v >> 8n) & 0xffn));
const signed = (v: bigint): bigint => BigInt.asIntN(64, v);

/**
 * Formats a record as printf would, with netcube's conversions: %I an IPv4 address
 * in network order, %M a MAC (nc_mac_arg), %P a port in network order. Integers are
 * 64-bit; length modifiers (l, ll, h) are accepted and ignored.
 */
export function formatLogRecord(rec: Pick<LogRecord, 'fmt' | 'args'>): string {
  let next = 0;
  return rec.fmt.replace(/%(%|[lh]*([diuxXIMP]))/g, (_all, what: string, conv: string | undefined) => {
    if (what === '%') return '%';
    const v = rec.args[next++];
    if (v === undefined) return '<missing>';
    switch (conv) {
      case 'd':
      case 'i':
        return signed(v).toString();
      case 'u':
        return v.toString();
      case 'x':
        return v.toString(16);
      case 'X':
        return v.toString(16).toUpperCase();
      case 'I':
        return ipv4(v);
      case 'M':
        return mac(v);
      case 'P':
        return String(port(v));
    }
    return '';
  });
}

/** Reads the host's log ring while someone listens, and hands each subscriber the formatted lines. */
export class DataPlaneLogs {
  private reader?: RingBufReader;
  private readonly listeners = new Set<(line: LogLine) => void>();

  constructor(
    private readonly ring: BpfMap,
    private readonly cubeName: (id: number) => string | undefined,
  ) {}

  /** Calls `listener` for every line from now on; returns the function that stops it. */
  subscribe(listener: (line: LogLine) => void): () => void {
    this.listeners.add(listener);
    // The ring is read only while someone listens: records wait in it otherwise.
    if (!this.reader) {
      this.reader = new RingBufReader(this.ring);
      this.reader.on('record', (buf: Buffer) => {
        const rec = decodeLogRecord(buf);
        const line = { cubeId: rec.cubeId, cube: this.cubeName(rec.cubeId), level: rec.level, message: formatLogRecord(rec), tsNs: rec.tsNs };
        for (const l of this.listeners) l(line);
      });
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.close();
    };
  }

  close(): void {
    this.listeners.clear();
    this.reader?.close();
    this.reader = undefined;
  }
}

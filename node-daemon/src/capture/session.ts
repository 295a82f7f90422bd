// A capture session on one packetcapture cube: switches its copying on, reads the
// cube's ring, and hands the packets out in batches, until closed.
//
// Memory is bounded by MAX_QUEUED packets: while that many wait for the client,
// the reader pauses, the data plane's ring fills, and what does not fit is
// dropped there and counted (ring_full). Records a previous session left in the
// ring carry another session number and are skipped. Copying holds a lease the
// session renews, so a daemon that dies mid-capture does not leave it on.

import { FailedPreconditionError } from '../runtime/errors';
import { RingBufReader } from '../bpf/ringbuf';
import { decodePacketRecord, DIR_INGRESS } from '../runtime/abi';
import type { Cube } from '../runtime/cube';
import { CAPTURE_TYPE, CaptureSpec, captureConfigValue } from './config';

/** Packets held in the daemon for one session at most. */
export const MAX_QUEUED = 1024;
/** How long copying goes on without a renewal, and how often a live session renews it. */
export const LEASE_NS = 5_000_000_000n;
const RENEW_EVERY_MS = 1000;

export interface CapturedPacket {
  data: Buffer;
  wireLength: number;
  /** Nanoseconds since the Unix epoch. */
  timestampUnixNs: bigint;
  direction: 'ingress' | 'egress';
}

export interface CaptureCounters {
  captured: bigint;
  overRate: bigint;
  ringFull: bigint;
}

/** Cubes with a session now: one session per cube. */
const busy = new Set<Cube>();
let lastSession = Math.floor(Math.random() * 0xffff);

export class CaptureSession {
  readonly session = (lastSession = (lastSession + 1) >>> 0 || 1);
  private readonly reader: RingBufReader;
  private readonly queue: CapturedPacket[] = [];
  private readonly start: CaptureCounters;
  /** The data plane's clock (CLOCK_MONOTONIC, as process.hrtime) on the wall clock. */
  private readonly clockOffsetNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private closed = false;
  private renewal: NodeJS.Timeout | undefined;

  constructor(
    readonly cube: Cube,
    private readonly spec: CaptureSpec,
  ) {
    if (cube.type.name !== CAPTURE_TYPE) {
      const ports = [...cube.ports.keys()];
      const where = ports.length ? `name one of its ports (${ports.map((p) => `${cube.name}:${p}`).join(', ')})` : 'name the port or netdev it is stacked on';
      throw new FailedPreconditionError(`cube ${cube.name} is a ${cube.type.name}, not a ${CAPTURE_TYPE}: ${where} to capture there`);
    }
    if (busy.has(cube)) throw new FailedPreconditionError(`cube ${cube.name} is captured by another session already: one at a time`);
    this.start = this.counters();
    this.reader = new RingBufReader(cube.table('capture_ring').map);
    this.reader.on('record', (buf: Buffer) => this.take(buf));
    this.reader.on('error', (err: Error) => this.fail(err));
    try {
      this.renew();
    } catch (err) {
      this.reader.close();
      throw err;
    }
    busy.add(cube);
    this.renewal = setInterval(() => {
      try {
        this.renew();
      } catch (err) {
        this.fail(err as Error);
      }
    }, RENEW_EVERY_MS);
  }

  /** Copying on, until a lease from now: a daemon that dies leaves it on for LEASE_NS at most. */
  private renew(): void {
    this.cube.table('capture_config').put(0, captureConfigValue(this.spec, this.session, true, process.hrtime.bigint() + LEASE_NS));
  }

  private take(buf: Buffer): void {
    const r = decodePacketRecord(buf);
    if (r.user[0] !== this.session) return;
    this.queue.push({
      data: Buffer.from(r.packet),
      wireLength: r.wireLen,
      timestampUnixNs: r.tsNs + this.clockOffsetNs,
      direction: r.inPort === DIR_INGRESS ? 'ingress' : 'egress',
    });
    if (this.queue.length >= MAX_QUEUED) this.reader.pause();
    this.wake?.();
  }

  private fail(err: Error): void {
    this.failure = new FailedPreconditionError(`capture of cube ${this.cube.name} stopped: ${err.message}`);
    this.wake?.();
  }

  /** What the data plane counted since the session started. */
  stats(): CaptureCounters {
    const now = this.counters();
    return { captured: now.captured - this.start.captured, overRate: now.overRate - this.start.overRate, ringFull: now.ringFull - this.start.ringFull };
  }

  private counters(): CaptureCounters {
    const perCpu = this.cube.table('capture_counters').get(0) as Record<string, number | string>[];
    const sum: CaptureCounters = { captured: 0n, overRate: 0n, ringFull: 0n };
    for (const cpu of perCpu) {
      sum.captured += BigInt(cpu.captured);
      sum.overRate += BigInt(cpu.over_rate);
      sum.ringFull += BigInt(cpu.ring_full);
    }
    return sum;
  }

  /**
   * The packets waiting, at most `max`; when none wait, resolves with none after
   * `idleMs` or when `signal` aborts. Throws when the ring cannot be read any more.
   */
  async next(max: number, idleMs: number, signal: AbortSignal): Promise<CapturedPacket[]> {
    if (this.queue.length === 0 && !this.failure && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, idleMs);
        signal.addEventListener('abort', done, { once: true });
        this.wake = done;
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
      });
      this.wake = undefined;
    }
    if (this.failure) throw this.failure;
    const batch = this.queue.splice(0, max);
    if (this.reader.paused && this.queue.length < MAX_QUEUED / 2) this.reader.resume();
    return batch;
  }

  /**
   * Switches copying off and stops reading; idempotent. `cubeGone`: the cube was
   * removed meanwhile (a transient one whose target went), with nothing left to switch off.
   */
  close(cubeGone = false): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renewal);
    busy.delete(this.cube);
    try {
      if (!cubeGone) this.cube.table('capture_config').put(0, captureConfigValue(this.spec, this.session, false, 0n));
    } finally {
      this.reader.close();
    }
  }
}

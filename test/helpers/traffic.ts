// Real traffic between test namespaces, counted exactly at both ends.
//
// The generator is the kernel's own: XDP live-frames test runs of
// bpf/testdata/xdp_tx in the sending namespace, each frame XDP-transmitted out of
// a veth there, so it knows exactly how many frames it sent. The sink is
// bpf/testdata/xdp_sink on the receiving veth: it counts the stream's frames
// (IPv4 UDP to port 9), in total and by source, and drops them. Losses that are
// not netcube's show in the veths' own counters (linkCounters).
//
// A frame XDP-transmitted or redirected into a veth only arrives if the veth's
// peer has NAPI: an XDP program attached (the sink has one; a netdev with
// netcube's XDP entry has one; give others attachXdpPass), or GRO.
//
// A test run sets up and tears down a page pool, which costs tens of ms here, so
// a run sends thousands of frames; inside it the kernel sends them in batches of
// 64 and, at the end of each, lets the softirqs run that carry them on through
// every veth and program to the sink - those of the run's CPU, where each veth's
// NAPI was scheduled when the frames entered it. A generator therefore runs on
// one CPU of its own (generators take the CPUs in turn): a run that moved to
// another CPU would fill the rings of veths whose NAPI waits on the first, and
// the veths would drop. So no veth ring (256 places) ever holds more than a
// batch or two. Between runs a stream also waits for what it sent to arrive
// (`delivered`): a frame that never arrives stalls it for `stallMs` and is then
// given up, so a lossy path slows down, it does not hang.
//
// The kernel recycles a run's pages without undoing an XDP metadata area that a
// program further on made in them (netcube makes one when a frame goes from one
// of its programs to the next): after their first trip, frames arrive carrying
// that metadata, as frames another XDP program redirected would. Netcube takes them as they are; a program that assumes no
// metadata on arrival does not.

import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { ethernet, ipv4, parseIpv4, udp } from '@netcube/sdk/packet';
import * as bpf from '../../node-daemon/src/bpf';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { allowedCpus } from './cpus';
import type { Netns } from './netns';
import { waitFor } from './wait';

export const STREAM_PORT = 9;

/** test/services/tcp-transfer.ts, run with node inside the pods' namespaces. */
export const TRANSFER = path.resolve(__dirname, '../services/tcp-transfer.js');

export interface TransferEnd {
  bytes: number;
  sha256: string;
}

/**
 * Sends `bytes` over TCP from namespace `from` to `to` (at `address`, port `port`),
 * the sender started once the server listens; `during` runs while the transfer is
 * under way. Resolves with what each end counted and hashed (received: null when
 * the server got no connection).
 */
export async function tcpTransfer(
  from: Netns,
  to: Netns,
  address: string,
  bytes: number,
  opts: { port?: number; chunk?: number; everyMs?: number; during?: () => Promise<void> } = {},
): Promise<{ sent: TransferEnd; received: TransferEnd | null }> {
  const port = String(opts.port ?? 5001);
  const server = spawn('ip', ['netns', 'exec', to.name, process.execPath, TRANSFER, 'serve', '0.0.0.0', port], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let errors = '';
  server.stdout.on('data', (d) => (out += d));
  server.stderr.on('data', (d) => (errors += d));
  const ended = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  try {
    await waitFor('the TCP server to listen', () => out.includes('listening') || (server.exitCode !== null && Promise.reject(new Error(errors))), 10_000, 20);
    const args = [TRANSFER, 'send', address, port, String(bytes), String(opts.chunk ?? 65536), String(opts.everyMs ?? 0)];
    const sending = from.exec(process.execPath, args, { timeoutMs: 90_000 });
    await opts.during?.();
    const sent = JSON.parse((await sending).stdout) as TransferEnd;
    const late = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await ended;
    clearTimeout(late);
    const received = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? 'null') as TransferEnd | null;
    return { sent, received };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

const testObject = (name: string): string => path.join(DEFAULT_OBJECTS_DIR, 'testdata', `${name}.o`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface StreamFrameOptions {
  src?: string;
  dst?: string;
  srcMac?: string;
  dstMac?: string;
  /** Bytes of UDP payload; default 18 (a 64-byte frame with FCS). */
  payload?: number;
}

/** A frame of a test stream: IPv4 UDP to port 9, which the sink counts. */
export function streamFrame(opts: StreamFrameOptions = {}): Buffer {
  return ethernet({
    src: opts.srcMac ?? '02:00:00:00:00:01',
    dst: opts.dstMac ?? '02:00:00:00:00:02',
    payload: ipv4({
      src: opts.src ?? '10.99.0.1',
      dst: opts.dst ?? '10.99.0.2',
      payload: udp({ sport: 4000, dport: STREAM_PORT, payload: Buffer.alloc(opts.payload ?? 18, 0x5a) }),
    }),
  });
}

export interface LinkCounters {
  rxPackets: number;
  txPackets: number;
  /** Bytes: a transfer over veths moves 64 KB segments, few packets. */
  rxBytes: number;
  rxDropped: number;
  txDropped: number;
  rxErrors: number;
  txErrors: number;
}

/** A netdev's counters, as `ip -s link` shows them. */
export async function linkCounters(netns: Netns, ifname: string): Promise<LinkCounters> {
  const { stdout } = await netns.exec('ip', ['-s', '-j', 'link', 'show', 'dev', ifname]);
  const [link] = JSON.parse(stdout) as { stats64: { rx: Record<string, number>; tx: Record<string, number> } }[];
  const { rx, tx } = link.stats64;
  return {
    rxPackets: rx.packets,
    txPackets: tx.packets,
    rxBytes: rx.bytes,
    rxDropped: rx.dropped,
    txDropped: tx.dropped,
    rxErrors: rx.errors,
    txErrors: tx.errors,
  };
}

/**
 * The drops and errors the given netdevs counted, by `netns/ifname`; only those
 * with any. A veth counts a frame it could not put into its peer's ring as a
 * receive drop of the peer, and a failed XDP_TX as its own transmit drop.
 */
export async function linkDrops(links: readonly { netns: Netns; ifname: string }[]): Promise<Record<string, Partial<LinkCounters>>> {
  const out: Record<string, Partial<LinkCounters>> = {};
  for (const { netns, ifname } of links) {
    const c = await linkCounters(netns, ifname);
    const bad = Object.fromEntries(
      (['rxDropped', 'txDropped', 'rxErrors', 'txErrors'] as const).filter((k) => c[k] !== 0).map((k) => [k, c[k]]),
    );
    if (Object.keys(bad).length > 0) out[`${netns.name}/${ifname}`] = bad;
  }
  return out;
}

/** An XDP program that passes everything, attached only to give a veth NAPI. */
export async function attachXdpPass(netns: Netns, ifname: string): Promise<{ close(): void }> {
  const coll = await bpf.CollectionSpec.fromFile(testObject('xdp_pass')).load();
  try {
    const link = await bpf.attachXdp({ program: coll.program('xdp_pass'), ifname, netns: netns.name });
    return {
      close: () => {
        link.close();
        coll.close();
      },
    };
  } catch (err) {
    coll.close();
    throw err;
  }
}

/** The counting end of a stream: bpf/testdata/xdp_sink on a veth. */
export class Sink {
  private readonly zero = Buffer.alloc(4);
  private readonly one = Buffer.from([1, 0, 0, 0]);

  private constructor(
    readonly netns: Netns,
    readonly ifname: string,
    private readonly coll: bpf.Collection,
    private readonly link: bpf.XdpLink,
  ) {}

  static async attach(netns: Netns, ifname: string): Promise<Sink> {
    const coll = await bpf.CollectionSpec.fromFile(testObject('xdp_sink')).load();
    try {
      const link = await bpf.attachXdp({ program: coll.program('xdp_sink'), ifname, netns: netns.name });
      return new Sink(netns, ifname, coll, link);
    } catch (err) {
      coll.close();
      throw err;
    }
  }

  /** Stream frames received so far. */
  get frames(): number {
    return Number(this.coll.map('sink_frames').lookup(this.zero)!.readBigUInt64LE(0));
  }

  /** Frames received that were not of a stream. */
  get other(): number {
    return Number(this.coll.map('sink_frames').lookup(this.one)!.readBigUInt64LE(0));
  }

  /** Stream frames received from IPv4 source `src`. */
  from(src: string): number {
    const v = this.coll.map('sink_sources').lookup(parseIpv4(src));
    return v ? Number(v.readBigUInt64LE(0)) : 0;
  }

  /**
   * Waits until `expected` frames have arrived or the count stops moving for
   * `quietMs`, and returns the count: frames still in a ring are counted, a
   * lost frame does not make the caller wait for ever.
   */
  async settle(expected: number, quietMs = 300): Promise<number> {
    let last = this.frames;
    let since = Date.now();
    while (last < expected && Date.now() - since < quietMs) {
      await sleep(5);
      const now = this.frames;
      if (now !== last) {
        last = now;
        since = Date.now();
      }
    }
    return last;
  }

  close(): void {
    this.link.close();
    this.coll.close();
  }
}

export interface PaceOptions {
  /** Frames per live-frames test run; default 4096. */
  perRun?: number;
  /** How many of the frames sent have arrived (or were meant to go): a run waits for the ones before. */
  delivered?: () => number;
  /** Frames sent but not delivered that a run may start with; default 0 (every ring empty). */
  lag?: number;
  /** How long a paced stream waits for a frame that does not arrive; default 50 ms. */
  stallMs?: number;
}

/** A stream running until stop(). */
export interface Stream {
  /** Frames sent so far. */
  readonly sent: number;
  /** Test runs completed so far. */
  readonly runs: number;
  /** Whether a test run (frames on the wire) is in progress. */
  readonly busy: boolean;
  /**
   * Resolves once a test run is in progress (at once when one is); rejects when
   * the stream ended first (stopped, or a run failed).
   */
  sending(): Promise<void>;
  /** Stops after the run in progress and resolves to the frames sent in all. */
  stop(): Promise<number>;
}

const CPUS = allowedCpus();
/** Where among CPUS the next generator runs. */
let nextCpu = process.pid;

/** The sending end: XDP live-frames test runs of xdp_tx on a veth, all on one CPU. */
export class Generator {
  /** Frames sent so far, of each template. */
  readonly sentOf: number[];
  /** The CPU all its test runs run on. */
  readonly cpu = CPUS[nextCpu++ % CPUS.length];
  private readonly ctx: Buffer;
  private next = 0;

  private constructor(
    readonly netns: Netns,
    readonly ifname: string,
    private readonly frames: readonly Buffer[],
    ifindex: number,
    private readonly coll: bpf.Collection,
  ) {
    this.sentOf = frames.map(() => 0);
    this.ctx = Buffer.alloc(24);
    this.ctx.writeUInt32LE(ifindex, 12); // ingress_ifindex; data and data_end are set per frame
  }

  /** A generator that sends `frames` in turn, one template per batch. */
  static async open(netns: Netns, ifname: string, frames: readonly Buffer[]): Promise<Generator> {
    if (frames.length === 0) throw new RangeError('frames: give at least one frame');
    const ifindex = await bpf.ifindex(ifname, netns.name);
    const coll = await bpf.CollectionSpec.fromFile(testObject('xdp_tx')).load();
    return new Generator(netns, ifname, frames, ifindex, coll);
  }

  /** Frames sent so far, in all. */
  get sent(): number {
    return this.sentOf.reduce((a, b) => a + b, 0);
  }

  /** Sends `count` frames of the next template in one test run. */
  private async run(count: number): Promise<void> {
    const i = this.next;
    this.next = (this.next + 1) % this.frames.length;
    const frame = this.frames[i];
    this.ctx.writeUInt32LE(frame.length, 4);
    await this.coll.program('xdp_tx').testRun({
      data: frame,
      ctx: this.ctx,
      liveFrames: true,
      repeat: count,
      batchSize: 64,
      netns: this.netns.name,
      cpu: this.cpu,
    });
    this.sentOf[i] += count;
  }

  private async pace(opts: PaceOptions): Promise<void> {
    if (!opts.delivered) return;
    const lag = opts.lag ?? 0;
    const stallMs = opts.stallMs ?? 50;
    let seen = opts.delivered();
    let since = Date.now();
    while (this.sent - seen > lag) {
      await sleep(1);
      const now = opts.delivered();
      if (now !== seen) {
        seen = now;
        since = Date.now();
      } else if (Date.now() - since > stallMs) {
        return;
      }
    }
  }

  /** Sends exactly `count` frames. */
  async send(count: number, opts: PaceOptions = {}): Promise<void> {
    const perRun = opts.perRun ?? 4096;
    for (let left = count; left > 0; ) {
      const n = Math.min(perRun, left);
      await this.pace(opts);
      await this.run(n);
      left -= n;
    }
  }

  /** Sends until stopped. */
  stream(opts: PaceOptions = {}): Stream {
    const perRun = opts.perRun ?? 4096;
    const generator = this;
    let running = true;
    let busy = false;
    let runs = 0;
    let waiting: { resolve(): void; reject(err: unknown): void }[] = [];
    const loop = (async () => {
      while (running) {
        await this.pace(opts);
        busy = true;
        for (const w of waiting) w.resolve();
        waiting = [];
        try {
          await this.run(perRun);
        } finally {
          busy = false;
        }
        runs++;
      }
    })();
    let ended: unknown;
    // A failed run ends the loop early; stop() rethrows it, sending() rejects with it.
    loop.then(
      () => (ended = new Error('the stream was stopped')),
      (err: unknown) => (ended = err),
    ).finally(() => {
      for (const w of waiting) w.reject(ended);
      waiting = [];
    });
    return {
      get sent() {
        return generator.sent;
      },
      get runs() {
        return runs;
      },
      get busy() {
        return busy;
      },
      sending() {
        if (busy) return Promise.resolve();
        if (ended !== undefined) return Promise.reject(ended);
        return new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
      },
      async stop() {
        running = false;
        await loop;
        return generator.sent;
      },
    };
  }

  close(): void {
    this.coll.close();
  }
}

/** A sink on `ifname` in `netns`, closed in the test's teardown. */
export async function createSink(t: ExecutionContext, netns: Netns, ifname: string): Promise<Sink> {
  const sink = await Sink.attach(netns, ifname);
  t.teardown(() => sink.close());
  return sink;
}

/** A generator sending `frames` out of `ifname` in `netns`, closed in the test's teardown. */
export async function createGenerator(t: ExecutionContext, netns: Netns, ifname: string, frames: readonly Buffer[]): Promise<Generator> {
  const gen = await Generator.open(netns, ifname, frames);
  t.teardown(() => gen.close());
  return gen;
}

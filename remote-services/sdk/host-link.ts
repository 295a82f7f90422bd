// The leader's connection to one host: a client of its netcubed and one slow-path
// stream, kept up for as long as the host has cubes of the service's type.
//
// Every time the stream is (re)established — the first time, after the daemon
// restarted, after a network cut — the link says `ready`, and the controller
// resyncs the host's cubes. A connection that has gone quiet (a cut, which no TCP
// reset announces) is found by a health check every few seconds and dropped; the
// link then reconnects with backoff, to whatever endpoint the host registered last.
//
// Packet-outs go in batches: those issued in one turn of the event loop (typically
// the answers to one batch of packet-ins) leave together in one message at the end
// of the turn. While the stream is full they wait here, at most MAX_PENDING; past
// that, and on a connection that went down, they are dropped and counted.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClientOptions, NetcubeClient, SlowPathStream } from '@netcube/api/grpc/client';
import type { PacketOut } from '@netcube/api/generated/netcube/v1/PacketOut';
import type { PacketIn__Output } from '@netcube/api/generated/netcube/v1/PacketIn';
import type { Logger } from '@netcube/api/log';
import { Backoff } from '@netcube/api/store/retry';
import { HostClock } from './clock';

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
  /** The name the daemons' certificates are checked against, instead of their address. */
  serverName?: string;
}

export interface HostLinkOptions {
  host: string;
  /** Hello.controller: `<type>@<replica>`. */
  controller: string;
  type: string;
  /** Given: daemons are reached over TCP with TLS even when their unix socket is at hand. */
  tls?: TlsFiles;
  log: Logger;
  onPacketIn(host: string, p: PacketIn__Output): void;
}

export interface HostLinkEvents {
  /** Connected, with the slow-path stream open: the host's cubes need a resync. */
  ready: [];
  /** Lost the connection; reconnecting. */
  down: [reason: string];
}

const HEALTH_EVERY_MS = 3_000;
const HEALTH_TIMEOUT_MS = 3_000;
/** Packet-outs waiting for a full stream, at most (about 12 MB of full-size frames). */
export const MAX_PENDING = 8192;
/** Packet-outs in one message, at most. */
export const MAX_BATCH = 256;

export class HostLink extends EventEmitter<HostLinkEvents> {
  private endpoints: string[] = [];
  private current?: { client: NetcubeClient; stream?: SlowPathStream; endpoint: string; abort: AbortController };
  private readonly closing = new AbortController();
  private endpointsChanged = new AbortController();
  private running?: Promise<void>;
  private packetOutId = 0;
  /** Packet-outs of this turn of the event loop, or waiting for the stream to drain. */
  private pending: PacketOut[] = [];
  private flushing: 'idle' | 'scheduled' | 'draining' = 'idle';
  /** The host's data-plane clock, as of the current connection. */
  clock: HostClock = HostClock.lowerBound();
  connected = false;
  readonly stats = {
    connects: 0,
    resyncs: 0,
    packetsIn: 0,
    /** Packet-outs handed to the stream. */
    packetsOut: 0,
    /** Messages of packet-outs that found the stream full (and waited for it). */
    packetOutsBuffered: 0,
    /** Packet-outs dropped: too many waiting for a full stream, or the connection went down under them. */
    packetOutsDropped: 0,
    packetOutErrors: 0,
    lastError: '',
  };

  constructor(private readonly opts: HostLinkOptions) {
    super();
  }

  get host(): string {
    return this.opts.host;
  }

  /** The endpoint in use (or last tried). */
  get endpoint(): string {
    return this.current?.endpoint ?? this.choose() ?? '';
  }

  /** The daemon's client while connected. */
  get client(): NetcubeClient {
    if (!this.current || !this.connected) throw new Error(`host ${this.host} is not connected`);
    return this.current.client;
  }

  /** The endpoints the host registered; a change of the one in use reconnects. */
  setEndpoints(endpoints: readonly string[]): void {
    const before = this.choose();
    this.endpoints = [...endpoints];
    const after = this.choose();
    this.endpointsChanged.abort();
    this.endpointsChanged = new AbortController();
    if (this.current && after && after !== before) this.current.abort.abort(new Error(`host ${this.host} registered a new endpoint, ${after}`));
  }

  start(): void {
    this.running ??= this.loop();
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.current?.abort.abort(new Error('closing'));
    await this.running;
  }

  /**
   * Queues a packet-out for the host's stream; it leaves with the others of this
   * turn of the event loop, in order. Throws when the host is not connected.
   */
  packetOut(cube: string, port: string, direction: PacketOut['direction'], packet: Buffer, user?: readonly number[]): void {
    if (!this.current?.stream || !this.connected) throw new Error(`host ${this.host} is not connected`);
    if (this.pending.length >= MAX_PENDING) {
      this.stats.packetOutsDropped++;
      return;
    }
    this.pending.push({ cube, port, direction, packet, user: user as number[] | undefined, id: ++this.packetOutId });
    if (this.flushing === 'idle') {
      this.flushing = 'scheduled';
      setImmediate(this.flush);
    }
  }

  /** Writes what is pending, in batches, until the stream is full. */
  private readonly flush = (): void => {
    this.flushing = 'idle';
    const stream = this.current?.stream;
    if (!stream || !this.connected) {
      this.stats.packetOutsDropped += this.pending.length;
      this.pending = [];
      return;
    }
    while (this.pending.length > 0) {
      const batch = this.pending.length > MAX_BATCH ? this.pending.splice(0, MAX_BATCH) : this.pending;
      if (batch === this.pending) this.pending = [];
      this.stats.packetsOut += batch.length;
      if (!stream.packetOuts(batch)) {
        this.stats.packetOutsBuffered++;
        this.flushing = 'draining';
        void stream.drained().then(() => {
          if (this.current?.stream === stream) this.flush();
        });
        return;
      }
    }
  };

  private choose(): string | undefined {
    return chooseEndpoint(this.endpoints, this.opts.tls);
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff({ initialDelayMs: 200, maxDelayMs: 5_000 });
    while (!this.closing.signal.aborted) {
      const endpoint = this.choose();
      if (!endpoint) {
        // Not registered (yet, or its lease ran out): wait for a registration.
        await aborted(AbortSignal.any([this.closing.signal, this.endpointsChanged.signal]));
        continue;
      }
      const reason = await this.session(endpoint, backoff);
      if (this.closing.signal.aborted) break;
      this.stats.lastError = reason;
      this.opts.log.warn('daemon connection lost; reconnecting', { host: this.host, endpoint, reason });
      await sleep(backoff.next(), undefined, { signal: this.closing.signal }).catch(() => undefined);
    }
  }

  /** One connection, until it fails; returns why. */
  private async session(endpoint: string, backoff: Backoff): Promise<string> {
    const abort = new AbortController();
    let client: NetcubeClient;
    try {
      client = NetcubeClient.connect(clientOptions(endpoint, this.opts.tls));
    } catch (err) {
      return `cannot make a client for ${endpoint}: ${(err as Error).message}`;
    }
    this.current = { client, endpoint, abort };
    let health: NodeJS.Timeout | undefined;
    try {
      const clock = await hostClock(client, endpoint);
      // A lower bound keeps what it learnt across reconnections: the host's clock did not go back.
      if (clock.exact || this.clock.exact) this.clock = clock;
      const stream = client.openSlowPath({ controller: this.opts.controller, types: [this.opts.type] }, { signal: abort.signal });
      this.current.stream = stream;
      abort.signal.addEventListener('abort', () => stream.close(), { once: true });
      let misses = 0;
      health = setInterval(() => {
        client.checkHealth('', { timeoutMs: HEALTH_TIMEOUT_MS }).then(
          () => (misses = 0),
          (err: Error) => {
            if (++misses >= 2) abort.abort(new Error(`health checks failed: ${err.message}`));
          },
        );
      }, HEALTH_EVERY_MS);
      for await (const msg of stream) {
        if (abort.signal.aborted) break;
        if (msg.kind === 'welcome') {
          this.connected = true;
          this.stats.connects++;
          backoff.reset();
          this.opts.log.info('connected to daemon', { host: this.host, endpoint, cubes: msg.welcome?.cubes ?? [], clock: this.clock.source });
          this.emit('ready');
        } else if (msg.kind === 'packetIns' && msg.packetIns) {
          const packets = msg.packetIns.packets;
          this.stats.packetsIn += packets.length;
          for (const p of packets) this.opts.onPacketIn(this.host, p);
        } else if (msg.kind === 'packetOutError') {
          this.stats.packetOutErrors++;
          this.opts.log.warn('packet-out refused', { host: this.host, id: msg.packetOutError?.id, error: msg.packetOutError?.message });
        }
      }
      return abort.signal.aborted ? String((abort.signal.reason as Error)?.message ?? abort.signal.reason) : 'the daemon ended the slow-path stream';
    } catch (err) {
      if (abort.signal.aborted) return String((abort.signal.reason as Error)?.message ?? abort.signal.reason);
      return (err as Error).message;
    } finally {
      clearInterval(health);
      const was = this.connected;
      this.connected = false;
      this.stats.packetOutsDropped += this.pending.length;
      this.pending = [];
      this.flushing = 'idle';
      this.current.stream?.close();
      client.close();
      if (was) this.emit('down', 'disconnected');
    }
  }
}

/** Of a host's endpoints: TCP (always TLS) when TLS is configured; else its unix socket when it is on this machine. */
export function chooseEndpoint(endpoints: readonly string[], tls: TlsFiles | undefined): string | undefined {
  const unix = endpoints.find((e) => e.startsWith('unix:'));
  const tcp = endpoints.find((e) => !e.startsWith('unix:'));
  if (tls && tcp) return tcp;
  if (unix && fs.existsSync(unix.slice('unix:'.length))) return unix;
  return tcp ?? unix;
}

/** A client's options for `endpoint`. */
export function clientOptions(endpoint: string, tls: TlsFiles | undefined): ClientOptions {
  if (endpoint.startsWith('unix:')) return { target: endpoint, timeoutMs: 10_000 };
  return { target: endpoint, timeoutMs: 10_000, tls: { ca: tls?.ca, cert: tls?.cert, key: tls?.key, serverName: tls?.serverName } };
}

/** How to read this host's data-plane clock (see clock.ts). */
async function hostClock(client: NetcubeClient, endpoint: string): Promise<HostClock> {
  const sent = process.hrtime.bigint();
  const host = await client.getHost({ timeoutMs: 5_000 });
  const rtt = process.hrtime.bigint() - sent;
  // Daemons before monotonic_ns leave it 0.
  if (host.monotonicNs && BigInt(host.monotonicNs) > 0n) return HostClock.fromDaemon(BigInt(host.monotonicNs), rtt);
  if (endpoint.startsWith('unix:')) return HostClock.sameMachine();
  return HostClock.lowerBound();
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}

// A lease kept alive: how a process holds something in etcd for as long as it lives
// and hears etcd (a host's registration, store/hosts.ts; a service's leadership,
// @netcube/sdk's election.ts). The keys put under it go by themselves when the process
// dies or loses etcd for a TTL.
//
// One keepalive round trip every third of the TTL, on one stream. The lease counts as
// lost (event `lost`) as soon as etcd may have let it expire: no keepalive acknowledged
// for `lostAfterMs` (a leader steps down a margin before the TTL, so two never act at
// once), or etcd saying it expired. When etcd hears it again it is put back (`attach`
// again, event `recovered`); when it expired, a new one is granted when `renew` says so.

import { EventEmitter } from 'node:events';
import { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { Etcd } from './etcd';
import { StoreError, StoreUnavailableError } from './errors';
import { Backoff, pause } from './retry';

export type LeaseState = 'alive' | 'lost' | 'closed';

export interface LeaseEvents {
  /** What lives under the lease may be gone: etcd let it expire, or could not be told in time. */
  lost: [StoreError];
  /** Kept again; `newLease` when the old lease had expired and a new one was granted. */
  recovered: [{ leaseId: string; newLease: boolean }];
  closed: [];
}

export interface LeaseOptions {
  /** What holds the lease, for messages: `host h1`, `leader of bridge`. */
  what: string;
  /** An integer >= 2: etcd rounds shorter leases up to its own minimum (1.5 election timeouts). */
  ttlSeconds: number;
  /** How long without an acknowledged keepalive before the lease counts as lost; default the TTL. */
  lostAfterMs?: number;
  /** Puts what lives under the lease: with each lease granted, and again when etcd hears a lost lease. */
  attach?: (leaseId: string, client: Etcd3) => Promise<unknown>;
  /** When etcd let the lease expire, grant a new one (and attach) instead of staying lost until close(). */
  renew?: boolean;
}

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> & EventEmitter;

export class Lease extends EventEmitter<LeaseEvents> {
  private currentState: LeaseState = 'alive';
  private lease = '';
  private lastAck = 0;
  private watchdog?: NodeJS.Timeout;
  private readonly closing = new AbortController();
  private stream?: KeepAliveStream;
  private answer?: { resolve: (ttl: number) => void; reject: (err: unknown) => void };

  /** @internal use Store.keepLease (or Hosts.register) */
  constructor(
    private readonly etcd: Etcd,
    readonly options: LeaseOptions,
  ) {
    super();
    const { ttlSeconds, lostAfterMs } = options;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2) throw new RangeError(`ttlSeconds must be an integer >= 2, got ${ttlSeconds}`);
    if (lostAfterMs !== undefined && !(lostAfterMs > 0 && lostAfterMs <= ttlSeconds * 1000)) {
      throw new RangeError(`lostAfterMs must be within the TTL (0 to ${ttlSeconds * 1000} ms), got ${lostAfterMs}`);
    }
  }

  get state(): LeaseState {
    return this.currentState;
  }

  get leaseId(): string {
    return this.lease;
  }

  get ttlSeconds(): number {
    return this.options.ttlSeconds;
  }

  /** @internal The first grant (and attach), retried by the store's policy; then keeps the lease alive. */
  async start(): Promise<void> {
    await this.etcd.call(`lease of ${this.options.what}`, () => this.grantAndAttach());
    this.etcd.own(this);
    this.armWatchdog();
    void this.keepAliveLoop();
  }

  /** Stops the keepalive and revokes the lease: what lives under it disappears at once. */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return;
    this.currentState = 'closed';
    this.closing.abort();
    clearTimeout(this.watchdog);
    this.dropStream(new StoreError(`lease of ${this.options.what} closed`));
    this.etcd.disown(this);
    try {
      // Short: if etcd is away the lease expires by itself within its TTL anyway.
      await this.etcd.once(`revoke lease of ${this.options.what}`, client =>
        client.leaseClient.leaseRevoke({ ID: this.lease }, { deadline: Date.now() + 2_000 }),
      );
    } catch {
      // Unreachable etcd: the TTL takes care of it.
    }
    this.emit('closed');
  }

  private get intervalMs(): number {
    // Three tries per TTL: one lost keepalive does not lose the lease.
    return (this.options.ttlSeconds * 1000) / 3;
  }

  private get lostAfterMs(): number {
    return this.options.lostAfterMs ?? this.options.ttlSeconds * 1000;
  }

  private acknowledged(): void {
    this.lastAck = Date.now();
    this.armWatchdog();
  }

  /** Marks the lease lost when no keepalive is acknowledged in time, even while a round trip hangs. */
  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    if (this.closing.signal.aborted) return;
    this.watchdog = setTimeout(
      () => this.markLost(new StoreUnavailableError(`the lease of ${this.options.what} may have expired: etcd acknowledged no keepalive for ${this.lostAfterMs} ms`)),
      this.lostAfterMs,
    );
  }

  private async keepAliveLoop(): Promise<void> {
    const backoff = new Backoff(this.etcd.options.retry);
    while (!this.closing.signal.aborted) {
      try {
        const ttl = await this.keepAliveOnce();
        if (ttl > 0) {
          backoff.reset();
          this.acknowledged();
          // The lease outlived the outage (etcd restarts keep leases): put back what
          // lives under it in case it was deleted, and say so.
          if (this.currentState === 'lost') await this.recover(false);
        } else {
          this.markLost(new StoreUnavailableError(`the lease of ${this.options.what} expired: etcd deleted what it held`));
          if (!this.options.renew) {
            clearTimeout(this.watchdog);
            return;
          }
          await this.recover(true);
        }
        await pause(this.intervalMs, this.closing.signal, 'keepalive');
      } catch (err) {
        if (this.closing.signal.aborted) return;
        const error = this.etcd.toError(err, `keepalive of ${this.options.what}`);
        this.dropStream(error);
        if (Date.now() - this.lastAck >= this.lostAfterMs) this.markLost(error);
        try {
          await pause(Math.min(backoff.next(), this.intervalMs), this.closing.signal, 'keepalive');
        } catch {
          return;
        }
      }
    }
  }

  private markLost(error: StoreError): void {
    if (this.currentState !== 'alive') return;
    this.currentState = 'lost';
    this.emit('lost', error);
  }

  private async recover(newLease: boolean): Promise<void> {
    const attach = this.options.attach;
    if (newLease) await this.etcd.once(`lease of ${this.options.what}`, () => this.grantAndAttach());
    else if (attach) await this.etcd.once(`lease of ${this.options.what}`, client => attach(this.lease, client));
    if (this.closing.signal.aborted) return;
    this.acknowledged();
    this.currentState = 'alive';
    this.emit('recovered', { leaseId: this.lease, newLease });
  }

  private async grantAndAttach(): Promise<void> {
    const { ID } = await this.etcd.client.leaseClient.leaseGrant({ TTL: this.options.ttlSeconds });
    this.lease = ID;
    this.lastAck = Date.now();
    await this.options.attach?.(ID, this.etcd.client);
  }

  /** One keepalive round trip; resolves with the TTL etcd grants (0: the lease is gone). */
  private async keepAliveOnce(): Promise<number> {
    const stream = this.stream ?? (await this.openStream());
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(
        () => reject(new StoreUnavailableError(`keepalive of ${this.options.what}: etcd did not answer within ${Math.round(this.intervalMs)} ms`)),
        this.intervalMs,
      );
      this.answer = {
        resolve: ttl => (clearTimeout(timeout), resolve(ttl)),
        reject: err => (clearTimeout(timeout), reject(err)),
      };
      stream.write({ ID: this.lease });
    });
  }

  private async openStream(): Promise<KeepAliveStream> {
    const stream = (await this.etcd.once('keepalive', client => client.leaseClient.leaseKeepAlive())) as KeepAliveStream;
    stream.on('data', (res: ILeaseKeepAliveResponse) => {
      const answer = this.answer;
      this.answer = undefined;
      answer?.resolve(Number(res.TTL));
    });
    const fail = (err: unknown) => {
      if (this.stream === stream) this.dropStream(err);
    };
    stream.on('error', fail);
    stream.on('end', () => fail(new StoreUnavailableError('etcd ended the keepalive stream')));
    this.stream = stream;
    return stream;
  }

  private dropStream(reason: unknown): void {
    const { stream, answer } = this;
    this.stream = undefined;
    this.answer = undefined;
    answer?.reject(reason);
    if (stream) {
      stream.removeAllListeners();
      stream.on('error', () => undefined); // the CANCELLED that cancel() provokes
      stream.cancel();
    }
  }
}

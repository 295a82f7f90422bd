// One leader among the replicas of a service, elected in etcd.
//
// The leader holds one key, /netcube/v1/services/<type>/leader, created under a
// lease it keeps alive: the key goes when the leader dies or loses etcd, and the
// first replica to create it again leads. A replica that is not the leader
// watches the key (from the revision it read it at, so a deletion in between is
// not missed) and campaigns again when it goes.
//
// The leader steps down by itself as soon as its lease may have run out: when etcd
// has not acknowledged a keepalive for nearly a TTL, another replica may already
// lead, so this one stops acting before that can overlap. The lease is the store's
// (@netcube/api's store/lease.ts, as a host's registration), on the store's one
// connection.

import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@netcube/api/log';
import type { Store } from '@netcube/api/store';
import { Backoff } from '@netcube/api/store/retry';

/** What the leader key holds. */
export interface LeaderInfo {
  replica: string;
  /** Where the leader serves the config API (host:port), if it does. */
  endpoint?: string;
  since: string;
}

export interface ElectionEvents {
  /** This replica leads from now on. */
  elected: [];
  /** This replica stopped leading (lease lost, etcd unreachable, closed). */
  demoted: [reason: string];
  /** The leader as this replica last saw it (undefined: none). */
  leader: [LeaderInfo | undefined];
}

export class LeaderElection extends EventEmitter<ElectionEvents> {
  private leading = false;
  private current?: LeaderInfo;
  private readonly closing = new AbortController();
  private running?: Promise<void>;

  constructor(
    private readonly store: Store,
    readonly key: string,
    private readonly me: LeaderInfo,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    super();
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2) throw new RangeError(`ttlSeconds must be an integer >= 2, got ${ttlSeconds}`);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The leader as last seen: this replica's own info while it leads. */
  get leader(): LeaderInfo | undefined {
    return this.current;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops campaigning; a leader gives up its key at once, so another replica can take over. */
  async close(): Promise<void> {
    this.closing.abort();
    await this.running;
  }

  private get closed(): boolean {
    return this.closing.signal.aborted;
  }

  private setLeader(info: LeaderInfo | undefined): void {
    if (JSON.stringify(info) === JSON.stringify(this.current)) return;
    this.current = info;
    this.emit('leader', info);
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff({ initialDelayMs: 200, maxDelayMs: 2_000 });
    while (!this.closed) {
      try {
        await this.round();
        backoff.reset();
      } catch (err) {
        if (this.closed) break;
        this.log.warn('leader election: etcd call failed; campaigning again', { key: this.key, error: (err as Error).message });
        await sleep(backoff.next(), undefined, { signal: this.closing.signal }).catch(() => undefined);
      }
    }
  }

  /** One lease: campaign under it until it is lost or the replica closes. */
  private async round(): Promise<void> {
    const lease = await this.store.keepLease({
      what: `leader of ${this.key}`,
      ttlSeconds: this.ttlSeconds,
      // Step down with a margin before the lease can have expired in etcd.
      lostAfterMs: this.ttlSeconds * 1000 - Math.min(1_000, (this.ttlSeconds * 1000) / 3),
    });
    let lost: string | undefined;
    const wake = new AbortController();
    lease.on('lost', (err) => {
      lost ??= `lease lost: ${err.message}`;
      wake.abort();
    });
    const stop = () => wake.abort();
    this.closing.signal.addEventListener('abort', stop);
    const etcd = this.store.etcdClient;
    try {
      while (!this.closed && !lost) {
        const value = JSON.stringify(this.me);
        const res = await etcd.if(this.key, 'Create', '==', 0).then(etcd.put(this.key).value(value).lease(lease.leaseId)).else(etcd.get(this.key)).commit();
        if (res.succeeded) {
          this.leading = true;
          this.setLeader(this.me);
          this.log.info('elected leader', { key: this.key });
          this.emit('elected');
          await abortable(wake.signal);
          this.leading = false;
          const reason = this.closed ? 'closing' : (lost ?? 'lease lost');
          this.log.warn('no longer the leader', { reason });
          this.emit('demoted', reason);
          return;
        }
        const kv = res.responses[0]?.response_range?.kvs[0];
        this.setLeader(kv ? parseLeader(kv.value.toString()) : undefined);
        await this.waitForVacancy(Number(res.header.revision), wake.signal);
      }
    } finally {
      this.closing.signal.removeEventListener('abort', stop);
      // Revoking deletes the key at once (when etcd can be told), so the next leader
      // need not wait for the TTL; the lease expires by itself otherwise.
      await lease.close();
    }
  }

  /** Resolves when the leader key is deleted after `revision`, or `signal` aborts. */
  private async waitForVacancy(revision: number, signal: AbortSignal): Promise<void> {
    const watcher = await this.store.etcdClient.watch().key(this.key).startRevision(String(revision + 1)).create();
    try {
      await new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        watcher.on('delete', () => resolve());
        watcher.on('put', (kv) => this.setLeader(parseLeader(kv.value.toString())));
        watcher.on('disconnected', () => resolve());
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      await watcher.cancel().catch(() => undefined);
    }
  }
}

function abortable(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}

function parseLeader(text: string): LeaderInfo | undefined {
  try {
    const v = JSON.parse(text) as LeaderInfo;
    return typeof v?.replica === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

// A watch of every key under a prefix that outlives etcd restarts and network cuts:
// list, then follow the changes; after a disconnection resume exactly after the last
// revision delivered; when etcd has compacted that history away, list again and emit
// only the difference. Each change is delivered once, in revision order.
//
// Built on the raw watch stream rather than etcd3's Watcher, which moves its resume
// point to the revision in the watch-created header: a stream lost before the backlog
// behind that header arrived would resume past it and drop those events.

import { EventEmitter } from 'node:events';
import { IDuplexStream, IWatchRequest, IWatchResponse, Range } from 'etcd3';
import { Etcd, KeyValue, prefixOp, revisionOf, toKeyValue } from './etcd';
import { StoreError, StoreUnavailableError } from './errors';
import { Backoff, pause } from './retry';

export interface WatchPut<T> {
  /** The key below the prefix: a chain or host name, `host/cube` for status. */
  name: string;
  value: T;
  /** etcd revision of the change. */
  revision: number;
  /** The value this one replaces, if the watch had seen it. */
  previous?: T;
}

export interface WatchDelete<T> {
  name: string;
  revision: number;
  previous?: T;
}

export type WatchState = 'listing' | 'connecting' | 'watching' | 'reconnecting' | 'closed';

export interface PrefixWatchEvents<T> {
  put: [WatchPut<T>];
  delete: [WatchDelete<T>];
  /** Every change up to `revision` has been emitted: after the first list, and after each re-list. */
  synced: [{ revision: number }];
  /** Following changes again after a list or a reconnection. */
  connected: [{ revision: number }];
  /** Lost etcd; the watch reconnects by itself and loses nothing. */
  disconnected: [StoreError];
  /** A value under the prefix that cannot be read; it is skipped. */
  invalid: [{ name: string; revision: number; error: StoreError }];
  /** Unrecoverable (e.g. permission denied); the watch is closed. */
  error: [StoreError];
}

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse> & EventEmitter;

export class PrefixWatch<T> extends EventEmitter<PrefixWatchEvents<T>> {
  private currentState: WatchState = 'listing';
  private delivered = 0;
  /** What the watch has emitted, by name, so a re-list emits only the difference. */
  private readonly known = new Map<string, { revision: number; value?: T }>();
  private needsList = true;
  private readonly closing = new AbortController();
  private stopFollowing?: () => void;
  private readonly firstSync: Promise<void>;

  constructor(
    private readonly etcd: Etcd,
    private readonly prefix: string,
    private readonly decode: (kv: KeyValue) => T,
    /** For messages: `chains`, `hosts`, `status`. */
    private readonly what: string,
  ) {
    super();
    this.firstSync = new Promise((resolve, reject) => {
      const onError = (err: StoreError) => reject(err);
      this.once('synced', () => {
        this.off('error', onError);
        resolve();
      });
      this.once('error', onError);
    });
    // A rejection nobody awaits must not crash the process; whenSynced() callers still see it.
    this.firstSync.catch(() => undefined);
    etcd.own(this);
    void this.run();
  }

  get state(): WatchState {
    return this.currentState;
  }

  /** Every change up to this revision has been emitted. */
  get revision(): number {
    return this.delivered;
  }

  /** Resolves once the initial list has been emitted. */
  whenSynced(): Promise<void> {
    return this.firstSync;
  }

  close(): void {
    if (this.currentState === 'closed') return;
    this.currentState = 'closed';
    this.closing.abort();
    this.stopFollowing?.();
    this.etcd.disown(this);
  }

  private get closed(): boolean {
    return this.closing.signal.aborted;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.etcd.options.retry);
    while (!this.closed) {
      try {
        if (this.needsList) await this.list();
        await this.follow(backoff);
      } catch (err) {
        if (this.closed) return;
        const error = this.etcd.toError(err, `watch ${this.what}`);
        if (!error.recoverable) {
          this.close();
          this.emit('error', error);
          return;
        }
        this.currentState = 'reconnecting';
        this.emit('disconnected', error);
        try {
          await pause(backoff.next(), this.closing.signal, `watch ${this.what}`);
        } catch {
          return;
        }
      }
    }
  }

  private async list(): Promise<void> {
    this.currentState = 'listing';
    const op = prefixOp(this.prefix).request_range!;
    const res = await this.etcd.once(`list ${this.what}`, client => client.kv.range(op));
    if (this.closed) return;
    const revision = revisionOf(res.header);
    const present = new Set<string>();
    for (const kv of res.kvs.map(toKeyValue)) {
      const name = kv.key.slice(this.prefix.length);
      present.add(name);
      if (this.known.get(name)?.revision !== kv.modRevision) this.put(name, kv);
    }
    // Deleted while the watch could not follow; the exact revision is gone with the history.
    for (const [name, { value }] of this.known) {
      if (!present.has(name)) {
        this.known.delete(name);
        this.emit('delete', { name, revision, previous: value });
      }
    }
    this.delivered = revision;
    this.needsList = false;
    this.emit('synced', { revision });
  }

  /** Follows changes after `delivered`; returns when closed or when a re-list is needed. */
  private async follow(backoff: Backoff): Promise<void> {
    const operation = `watch ${this.what}`;
    this.currentState = 'connecting';
    const stream = (await this.etcd.once(operation, client => client.watchClient.watch())) as WatchStream;
    const range = Range.prefix(this.prefix);
    let confirm: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        if (this.closed) return resolve();
        this.stopFollowing = resolve;
        // Behind a partition the create request may go unanswered; do not wait forever.
        confirm = setTimeout(
          () => reject(new StoreUnavailableError(`${operation}: etcd did not confirm the watch within ${this.etcd.options.callTimeoutMs} ms`)),
          this.etcd.options.callTimeoutMs,
        );
        stream.on('data', (res: IWatchResponse) => {
          try {
            if (res.created) {
              clearTimeout(confirm);
              backoff.reset();
              this.currentState = 'watching';
              this.emit('connected', { revision: this.delivered });
            }
            if (res.canceled) {
              if (Number(res.compact_revision) > 0) {
                // The history after `delivered` is compacted: only a fresh list can catch up.
                this.needsList = true;
                return resolve();
              }
              return reject(new StoreError(`${operation}: etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`));
            }
            if (!res.created) this.deliver(res);
          } catch (err) {
            reject(err);
          }
        });
        stream.on('error', reject);
        stream.on('end', () => reject(new StoreUnavailableError(`${operation}: etcd ended the watch stream`)));
        stream.write({
          create_request: {
            key: range.start,
            range_end: range.end,
            start_revision: this.delivered + 1,
            progress_notify: true,
          },
        });
      });
    } finally {
      clearTimeout(confirm);
      this.stopFollowing = undefined;
      stream.removeAllListeners();
      // Cancelling makes the stream emit a CANCELLED error nobody needs to hear.
      stream.on('error', () => undefined);
      stream.cancel();
    }
  }

  private deliver(res: IWatchResponse): void {
    if (this.closed) return;
    if (res.events.length === 0) {
      // A progress notification: nothing under the prefix changed up to this revision.
      this.delivered = Math.max(this.delivered, revisionOf(res.header));
      return;
    }
    let last = this.delivered;
    for (const event of res.events) {
      const kv = toKeyValue(event.kv);
      // etcd never splits one revision across responses, so a whole revision is either delivered or not.
      if (kv.modRevision <= this.delivered) continue;
      const name = kv.key.slice(this.prefix.length);
      if (event.type === 'Put') {
        this.put(name, kv);
      } else {
        const previous = this.known.get(name)?.value;
        this.known.delete(name);
        this.emit('delete', { name, revision: kv.modRevision, previous });
      }
      last = Math.max(last, kv.modRevision);
    }
    this.delivered = last;
  }

  private put(name: string, kv: KeyValue): void {
    const previous = this.known.get(name)?.value;
    let value: T;
    try {
      value = this.decode(kv);
    } catch (err) {
      this.known.set(name, { revision: kv.modRevision });
      const error = err instanceof StoreError ? err : new StoreError(String(err));
      this.emit('invalid', { name, revision: kv.modRevision, error });
      return;
    }
    this.known.set(name, { revision: kv.modRevision, value });
    this.emit('put', { name, value, revision: kv.modRevision, previous });
  }
}

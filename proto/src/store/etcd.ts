// The store's one connection to etcd: the etcd3 client configured for failure (call
// deadlines, fast reconnects) and for who this process is (TLS, its etcd user),
// every call mapped to StoreErrors and retried by the `recoverable` marker, and the
// few key-value shapes the concept modules share.

import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import {
  castGrpcError,
  CompareResult,
  CompareTarget,
  Etcd3,
  GRPCResourceExhastedError,
  ICompare,
  IOptions,
  isRecoverableError,
  IKeyValue,
  IRequestOp,
  IResponseHeader,
  Range,
  SortOrder,
  SortTarget,
} from 'etcd3';
import { CorruptValueError, StoreClosedError, StoreError, toStoreError } from './errors';
import { retry, RetryListener, RetryPolicy } from './retry';
import { cite } from '../cite';
import { MAX_ETCD_REPLY_BYTES } from '../grpc/limits';

export interface EtcdOptions {
  endpoints: string[];
  callTimeoutMs: number;
  retry: RetryPolicy;
  onRetry?: RetryListener;
  /** For endpoints over TLS: PEM files (paths) or their contents. */
  tls?: EtcdTls;
  /** etcd user/password authentication, instead of the client certificate's CN. */
  auth?: { username: string; password: string };
}

export interface EtcdTls {
  /** The CA of etcd's certificate; without it, the system's roots. */
  ca?: string | Buffer;
  /** This process's certificate and key; with client certificate auth, the CN is its etcd user. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

/**
 * etcd endpoints as the etcd3 client takes them, and whether they are over TLS:
 * `HOST:PORT`, `http://HOST:PORT`, `unix:/PATH` in the clear; `https://HOST:PORT`,
 * `unixs:/PATH` over TLS. One cluster is one or the other.
 */
export function etcdEndpoints(endpoints: readonly string[]): { hosts: string[]; secure: boolean } {
  const parsed = endpoints.map(e => {
    if (e.startsWith('https://')) return { host: e, secure: true };
    if (e.startsWith('unixs:')) return { host: `unix:${e.slice('unixs:'.length)}`, secure: true };
    return { host: e, secure: false };
  });
  const secure = parsed.some(p => p.secure);
  if (secure && parsed.some(p => !p.secure)) {
    throw new TypeError(`etcd endpoints ${endpoints.join(', ')}: some are over TLS (https://, unixs:) and some not; a cluster is one or the other`);
  }
  return { hosts: parsed.map(p => p.host), secure };
}

const pem = (v: string | Buffer | undefined, what: string): Buffer | undefined => {
  if (v === undefined || Buffer.isBuffer(v)) return v;
  try {
    return fs.readFileSync(v);
  } catch (err) {
    throw new TypeError(`cannot read the ${what} for etcd, ${v}: ${(err as Error).message}`);
  }
};

export interface KeyValue {
  key: string;
  value: Buffer;
  createRevision: number;
  modRevision: number;
}

/** Something long-lived on the connection (a watch, a host lease) that closes with it. */
export interface Closable {
  close(): void | Promise<void>;
}

export class Etcd {
  readonly client: Etcd3;
  private readonly closing = new AbortController();
  private readonly resources = new Set<Closable>();
  /** This process's etcd user, when known: for messages. */
  readonly user?: string;

  constructor(readonly options: EtcdOptions) {
    const { hosts, secure } = etcdEndpoints(options.endpoints);
    // Read only for TLS: in the clear the files are some other connection's (a daemon's).
    const [ca, cert, key] = secure ? [pem(options.tls?.ca, 'CA'), pem(options.tls?.cert, 'certificate'), pem(options.tls?.key, 'key')] : [];
    this.user = options.auth?.username ?? (secure && cert ? commonName(cert) : undefined);
    const breakers = new Set<MemberBreaker>();
    this.client = new Etcd3({
      hosts,
      // The client's own check for https:// does not see unixs:, so TLS is always said.
      ...(secure ? { credentials: { rootCertificate: ca as Buffer, certChain: cert, privateKey: key } } : {}),
      ...(options.auth ? { auth: { ...options.auth } } : {}),
      faultHandling: { host: () => new MemberBreaker(breakers) as unknown as MemberPolicy },
      // A deadline on every unary call: behind a partition a call fails (and is retried)
      // instead of hanging. Streams (watches, lease keepalives) have none; keepalive
      // pings tell when their connection is dead.
      defaultCallOptions: context => (context.isStream ? {} : { deadline: Date.now() + options.callTimeoutMs }),
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000, // etcd refuses pings more often than every 5 s
        'grpc.keepalive_timeout_ms': 5_000,
        // grpc's default reconnect backoff grows to 2 minutes; etcd restarts take seconds.
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2_000,
        // etcd3 replaces the channel of a host that failed; a shared subchannel pool
        // would hand the new channel the same dead connection.
        'grpc.use_local_subchannel_pool': 1,
        'grpc.max_receive_message_length': MAX_ETCD_REPLY_BYTES,
      },
    });
  }

  /** Aborts when the store closes: pending waits and retries end with StoreClosedError. */
  get signal(): AbortSignal {
    return this.closing.signal;
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  /** One attempt of `fn`, with whatever it throws mapped to a StoreError. */
  async once<T>(operation: string, fn: (client: Etcd3) => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreClosedError(`${operation}: the store is closed`);
    try {
      return await fn(this.client);
    } catch (err) {
      if (this.closed) throw new StoreClosedError(`${operation}: the store is closed`, { cause: err });
      throw this.toError(err, operation);
    }
  }

  /** What `err` of `operation` is as a StoreError. */
  toError(err: unknown, operation: string): StoreError {
    return toStoreError(err, operation, this.options.endpoints, this.user);
  }

  /** `fn` retried while it fails with recoverable errors, within the retry policy. */
  call<T>(operation: string, fn: (client: Etcd3) => Promise<T>): Promise<T> {
    return retry(operation, () => this.once(operation, fn), this.options.retry, this.signal, this.options.onRetry);
  }

  /** Several ranges read atomically, at one revision. */
  async read(operation: string, ops: IRequestOp[]): Promise<{ ranges: KeyValue[][]; revision: number }> {
    const res = await this.call(operation, client => client.kv.txn({ compare: [], success: ops, failure: [] }));
    return {
      ranges: res.responses.map(r => (r.response_range?.kvs ?? []).map(toKeyValue)),
      revision: revisionOf(res.header),
    };
  }

  /** A guarded write; `succeeded` is false when a compare failed. */
  async write(
    operation: string,
    compare: ICompare[],
    success: IRequestOp[],
  ): Promise<{ succeeded: boolean; revision: number }> {
    const res = await this.call(operation, client => client.kv.txn({ compare, success, failure: [] }));
    return { succeeded: res.succeeded, revision: revisionOf(res.header) };
  }

  own(resource: Closable): void {
    this.resources.add(resource);
  }

  disown(resource: Closable): void {
    this.resources.delete(resource);
  }

  /** Closes watches and leases first (a lease revokes itself while etcd can still hear it). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.resources].map(resource => resource.close()));
    this.closing.abort();
    this.client.close();
  }
}

type MemberPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** Consecutive failures of a member that make the client try the others first, and for how long. */
const MEMBER_FAILURES = 3;
const MEMBER_PAUSE_MS = 5_000;

/**
 * A member not tried for now: the client tries another (it knows the mark of an open
 * circuit); toStoreError makes it unavailable when none answers.
 */
class MemberPausedError extends Error {
  readonly isBrokenCircuitError = true;
}

/**
 * The etcd3 client's circuit breaker per member, but for what says the member is
 * away. Its own counts every error it calls recoverable, a request refused as too
 * large (RESOURCE_EXHAUSTED) among them: one oversized request, tried three times,
 * cut the process off from a healthy etcd until the circuit half-opened. A member
 * is passed over only while another one is not: with one member (or all of them
 * failing) every call is tried, so a slow etcd on a busy machine costs a call its
 * timeout, not five seconds of nothing, which a lease of that TTL would not survive.
 */
class MemberBreaker {
  private failures = 0;
  private pausedUntil = 0;

  constructor(private readonly all: Set<MemberBreaker>) {
    all.add(this);
  }

  private get paused(): boolean {
    return Date.now() < this.pausedUntil;
  }

  async execute<T>(fn: (context: { signal: AbortSignal }) => T | Promise<T>): Promise<T> {
    if (this.paused && [...this.all].some((b) => !b.paused)) {
      throw new MemberPausedError(`this etcd member failed ${MEMBER_FAILURES} times in a row: not tried for ${MEMBER_PAUSE_MS} ms`);
    }
    try {
      const result = await fn({ signal: new AbortController().signal });
      this.failures = 0;
      return result;
    } catch (err) {
      const cause = castGrpcError(err instanceof Error ? err : new Error(String(err)));
      // A failure after the pause reopens it at once (failures stays past the threshold until a success).
      if (isRecoverableError(cause) && !(cause instanceof GRPCResourceExhastedError) && ++this.failures >= MEMBER_FAILURES) {
        this.pausedUntil = Date.now() + MEMBER_PAUSE_MS;
      }
      throw err;
    }
  }
}

export function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value,
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
  };
}

export function revisionOf(header: IResponseHeader): number {
  return Number(header.revision);
}

export function getOp(key: string): IRequestOp {
  return { request_range: { key: Buffer.from(key) } };
}

export function prefixOp(prefix: string, options: { last?: boolean; keysOnly?: boolean } = {}): IRequestOp {
  const range = Range.prefix(prefix);
  return {
    request_range: {
      key: range.start,
      range_end: range.end,
      // Keys are ordered; the last one of a history prefix is its newest version.
      ...(options.last ? { sort_order: SortOrder.Descend, sort_target: SortTarget.Key, limit: 1 } : {}),
      ...(options.keysOnly ? { keys_only: true } : {}),
    },
  };
}

export function putOp(key: string, value: unknown, lease?: string): IRequestOp {
  return { request_put: { key: Buffer.from(key), value: encode(value), ...(lease ? { lease } : {}) } };
}

export function deleteOp(key: string): IRequestOp {
  return { request_delete_range: { key: Buffer.from(key) } };
}

/** The key does not exist (now). */
export function absent(key: string): ICompare {
  return { key: Buffer.from(key), target: CompareTarget.Version, result: CompareResult.Equal, version: 0 };
}

/** The key was last written at `revision` (0: it does not exist). */
export function unchangedSince(key: string, revision: number): ICompare {
  return { key: Buffer.from(key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: revision };
}

/** No key under `prefix` was written after `revision` (deletions are not seen). */
export function prefixUnchangedSince(prefix: string, revision: number): ICompare {
  const range = Range.prefix(prefix);
  return {
    key: range.start,
    range_end: range.end,
    target: CompareTarget.Mod,
    result: CompareResult.Less,
    mod_revision: revision + 1,
  };
}

export function encode(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Values are written by netcube only; one that does not parse was written by something else. */
export function decode<T>(kv: KeyValue): T {
  try {
    return JSON.parse(kv.value.toString()) as T;
  } catch (err) {
    throw new CorruptValueError(`value at ${cite(kv.key)} is not JSON: it was not written by netcube; delete or repair it with etcdctl`, kv.key, {}, {
      cause: err,
    });
  }
}

function commonName(cert: Buffer): string | undefined {
  try {
    return /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(cert).subject)?.[1];
  } catch {
    return undefined;
  }
}

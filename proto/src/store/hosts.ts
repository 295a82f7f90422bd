// Live hosts: each netcubed registers under a lease it keeps alive, so its registration
// disappears by itself when the daemon or its link to etcd dies, and comes back when
// etcd can hear it again.

import { EventEmitter } from 'node:events';
import { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { cite } from '../cite';
import { Etcd, prefixOp, putOp } from './etcd';
import { StoreError, StoreUnavailableError, ValidationError } from './errors';
import { hostKey, HOSTS_PREFIX } from './keys';
import { Decoded, decodeEach, decodeHost, HostRegistration, RegisteredHost, registrationProblems } from './records';
import { Backoff, pause } from './retry';
import { PrefixWatch } from './watch';

export type HostWatch = PrefixWatch<RegisteredHost>;

export class Hosts {
  constructor(private readonly etcd: Etcd) {}

  /**
   * Registers the host under a lease of `ttlSeconds` and keeps it alive until close().
   * A restarted daemon takes over its host's registration.
   */
  async register(info: HostRegistration, ttlSeconds: number): Promise<HostLease> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2) {
      // etcd rounds shorter leases up to its own minimum (1.5 election timeouts).
      throw new RangeError(`ttlSeconds must be an integer >= 2, got ${ttlSeconds}`);
    }
    checkRegistration(info);
    const lease = new HostLease(this.etcd, { ...info }, ttlSeconds);
    await lease.start();
    return lease;
  }

  /** The registered hosts; a registration that cannot be read is left out (listHostsWithBroken has it). */
  async listHosts(): Promise<RegisteredHost[]> {
    return (await this.listHostsWithBroken()).values;
  }

  /** The registered hosts, and apart the registrations that cannot be read, with why. */
  async listHostsWithBroken(): Promise<Decoded<RegisteredHost>> {
    const { ranges } = await this.etcd.read('list hosts', [prefixOp(HOSTS_PREFIX)]);
    return decodeEach(ranges[0], HOSTS_PREFIX, decodeHost);
  }

  /** Hosts as put (registered, re-registered) and delete (lease expired or revoked) events. */
  watchHosts(): HostWatch {
    return new PrefixWatch(this.etcd, HOSTS_PREFIX, decodeHost, 'hosts');
  }
}

function checkRegistration(info: HostRegistration): void {
  const problems = registrationProblems(info);
  if (problems.length > 0) {
    throw new ValidationError(`host registration of ${cite(JSON.stringify(info.name) ?? 'nothing')} is invalid: ${problems.join('; ')}`);
  }
}

export type HostLeaseState = 'alive' | 'lost' | 'closed';

export interface HostLeaseEvents {
  /** The registration may be gone: etcd let the lease expire, or could not be told in time. */
  lost: [StoreError];
  /** Registered again; `newLease` when the old lease had expired and a new one was granted. */
  recovered: [{ leaseId: string; newLease: boolean }];
  closed: [];
}

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> & EventEmitter;

export class HostLease extends EventEmitter<HostLeaseEvents> {
  private currentState: HostLeaseState = 'alive';
  private lease = '';
  private lastAck = 0;
  private readonly closing = new AbortController();
  private stream?: KeepAliveStream;
  private answer?: { resolve: (ttl: number) => void; reject: (err: unknown) => void };

  /** @internal use Hosts.register */
  constructor(
    private readonly etcd: Etcd,
    readonly registration: HostRegistration,
    readonly ttlSeconds: number,
  ) {
    super();
  }

  get state(): HostLeaseState {
    return this.currentState;
  }

  get leaseId(): string {
    return this.lease;
  }

  /** @internal The first registration, retried by the store's policy; then keeps it alive. */
  async start(): Promise<void> {
    await this.etcd.call(`register host ${this.registration.name}`, () => this.grantAndRegister());
    this.etcd.own(this);
    void this.keepAliveLoop();
  }

  /** Stops the keepalive and revokes the lease: the registration disappears at once. */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return;
    this.currentState = 'closed';
    this.closing.abort();
    this.dropStream(new StoreError('host lease closed'));
    this.etcd.disown(this);
    try {
      // Short: if etcd is away the lease expires by itself within its TTL anyway.
      await this.etcd.once(`revoke lease of host ${this.registration.name}`, client =>
        client.leaseClient.leaseRevoke({ ID: this.lease }, { deadline: Date.now() + 2_000 }),
      );
    } catch {
      // Unreachable etcd: the TTL takes care of it.
    }
    this.emit('closed');
  }

  private get intervalMs(): number {
    // Three tries per TTL: one lost keepalive does not lose the lease.
    return (this.ttlSeconds * 1000) / 3;
  }

  private async keepAliveLoop(): Promise<void> {
    const backoff = new Backoff(this.etcd.options.retry);
    while (!this.closing.signal.aborted) {
      try {
        const ttl = await this.keepAliveOnce();
        if (ttl > 0) {
          backoff.reset();
          this.lastAck = Date.now();
          // The lease outlived the outage (etcd restarts keep leases): put the
          // registration back in case it was deleted, and say so.
          if (this.currentState === 'lost') await this.recover(false);
        } else {
          this.markLost(new StoreUnavailableError(`the lease of host ${this.registration.name} expired: etcd deleted its registration`));
          await this.recover(true);
        }
        await pause(this.intervalMs, this.closing.signal, 'keepalive');
      } catch (err) {
        if (this.closing.signal.aborted) return;
        const error = this.etcd.toError(err, `keepalive of host ${this.registration.name}`);
        this.dropStream(error);
        if (Date.now() - this.lastAck >= this.ttlSeconds * 1000) this.markLost(error);
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
    if (newLease) {
      await this.etcd.once(`register host ${this.registration.name}`, () => this.grantAndRegister());
    } else {
      await this.etcd.once(`register host ${this.registration.name}`, client =>
        client.kv.put(putOp(hostKey(this.registration.name), this.registration, this.lease).request_put!),
      );
    }
    if (this.closing.signal.aborted) return;
    this.lastAck = Date.now();
    this.currentState = 'alive';
    this.emit('recovered', { leaseId: this.lease, newLease });
  }

  private async grantAndRegister(): Promise<void> {
    const { ID } = await this.etcd.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds });
    this.lease = ID;
    this.lastAck = Date.now();
    await this.etcd.client.kv.put(putOp(hostKey(this.registration.name), this.registration, ID).request_put!);
  }

  /** One keepalive round trip; resolves with the TTL etcd grants (0: the lease is gone). */
  private async keepAliveOnce(): Promise<number> {
    const stream = this.stream ?? (await this.openStream());
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(
        () => reject(new StoreUnavailableError(`keepalive of host ${this.registration.name}: etcd did not answer within ${Math.round(this.intervalMs)} ms`)),
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

// Live hosts: each netcubed registers under a lease it keeps alive (lease.ts), so its
// registration disappears by itself when the daemon or its link to etcd dies, and
// comes back when etcd can hear it again.

import { cite } from '../cite';
import { Etcd, prefixOp, putOp } from './etcd';
import { ValidationError } from './errors';
import { hostKey, HOSTS_PREFIX } from './keys';
import { Decoded, decodeEach, decodeHost, HostRegistration, RegisteredHost, registrationProblems } from './records';
import { Lease, LeaseEvents, LeaseState } from './lease';
import { PrefixWatch } from './watch';

export type HostWatch = PrefixWatch<RegisteredHost>;

export class Hosts {
  constructor(private readonly etcd: Etcd) {}

  /**
   * Registers the host under a lease of `ttlSeconds` and keeps it alive until close().
   * A restarted daemon takes over its host's registration.
   */
  async register(info: HostRegistration, ttlSeconds: number): Promise<HostLease> {
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

export type HostLeaseState = LeaseState;
export type HostLeaseEvents = LeaseEvents;

/** A host's registration under a lease (lease.ts): put again when etcd hears the lease after losing it, under a new one when it expired. */
export class HostLease extends Lease {
  /** @internal use Hosts.register */
  constructor(
    etcd: Etcd,
    readonly registration: HostRegistration,
    ttlSeconds: number,
  ) {
    super(etcd, {
      what: `host ${registration.name}`,
      ttlSeconds,
      renew: true,
      attach: (lease, client) => client.kv.put(putOp(hostKey(registration.name), registration, lease).request_put!),
    });
  }
}

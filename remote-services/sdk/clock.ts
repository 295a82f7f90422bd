// A host's data-plane clock, as a control plane elsewhere can know it.
//
// Timestamps in tables (a bridge's FDB, a router's neighbours) are the host's
// CLOCK_MONOTONIC (bpf_ktime_get_ns). To age entries a service needs "now" on that
// clock. There are three honest ways to get it, best first:
//   - the daemon says: GetHost carries the host's monotonic time (monotonicNs), and
//     the round trip bounds the error; used when the daemon offers it;
//   - same machine: a daemon reached over its unix socket runs on this kernel, whose
//     CLOCK_MONOTONIC is this process's (process.hrtime);
//   - otherwise a lower bound: the newest timestamp the service has seen in the
//     host's tables (observe()) plus the time elapsed here since it was seen. Ages
//     computed from it are never too large, so nothing is aged out early; an entry
//     may live somewhat longer than its timeout.

export type ClockSource = 'daemon' | 'same-machine' | 'lower-bound';

const localNs = (): bigint => process.hrtime.bigint();

export class HostClock {
  private offset = 0n;
  /** Lower-bound mode: the newest host time seen, and when (here). */
  private anchor?: { hostNs: bigint; localNs: bigint };
  private readonly started = localNs();

  private constructor(readonly source: ClockSource) {}

  /** A daemon reached over its unix socket: the same kernel clock. */
  static sameMachine(): HostClock {
    return new HostClock('same-machine');
  }

  /** A daemon that told its time `hostNs` in a reply that took `rttNs` to come back (received now). */
  static fromDaemon(hostNs: bigint, rttNs: bigint): HostClock {
    const clock = new HostClock('daemon');
    clock.offset = hostNs + rttNs / 2n - localNs();
    return clock;
  }

  /** A daemon elsewhere that does not tell its time: a lower bound from observed timestamps. */
  static lowerBound(): HostClock {
    return new HostClock('lower-bound');
  }

  /** Whether now() is the host's time (give or take a round trip) rather than a lower bound of it. */
  get exact(): boolean {
    return this.source !== 'lower-bound';
  }

  /** The host's CLOCK_MONOTONIC now, in ns (a lower bound of it when not exact). */
  now(): bigint {
    const here = localNs();
    if (this.exact) return here + this.offset;
    if (!this.anchor) return here - this.started;
    return this.anchor.hostNs + (here - this.anchor.localNs);
  }

  /** A timestamp the host's data plane wrote (so its clock was at least there when it was read). */
  observe(hostNs: bigint | number | string): void {
    if (this.exact) return;
    const ns = BigInt(hostNs);
    if (ns > this.now()) this.anchor = { hostNs: ns, localNs: localNs() };
  }

  /** Seconds since `hostNs` on this clock (0 for a time ahead of it). */
  ageSeconds(hostNs: bigint | number | string): number {
    const ns = BigInt(hostNs);
    this.observe(ns);
    const age = this.now() - ns;
    return age > 0n ? Number(age) / 1e9 : 0;
  }
}

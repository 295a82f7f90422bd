// Prometheus metrics of netcubed, in the text exposition format: reconcile latency
// and outcomes, gRPC calls, and — read from the data plane at scrape time — the
// counters of every cube port and the framework's error counters; and how the
// daemon's own event loop fares (its delays and garbage-collection pauses hold up
// every gRPC call, the lease's keep-alive and the slow path alike).

import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';
import { ERRORS } from '../runtime/abi';
import { Runtime } from '../runtime/runtime';
import { SlowPath } from '../slowpath/dispatcher';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string>): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${label(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

export class Metrics {
  private readonly reconcileBuckets = BUCKETS.map(() => 0);
  private reconcileCount = 0;
  private reconcileSum = 0;
  private readonly reconciles = { ok: 0, error: 0 };
  private readonly rpcs = new Map<string, number>();
  private readonly denials = new Map<string, number>();
  private loopDelay?: IntervalHistogram;
  private gcObserver?: PerformanceObserver;
  private readonly gc = { count: 0, seconds: 0, maxSeconds: 0 };

  /** Starts watching the event loop and the garbage collector; stop() ends it. */
  start(): void {
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();
    this.gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        this.gc.count++;
        this.gc.seconds += e.duration / 1000;
        this.gc.maxSeconds = Math.max(this.gc.maxSeconds, e.duration / 1000);
      }
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    this.loopDelay?.disable();
    this.gcObserver?.disconnect();
  }

  observeReconcile(seconds: number, ok: boolean): void {
    this.reconcileCount++;
    this.reconcileSum += seconds;
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.reconcileBuckets[i]++;
    });
    this.reconciles[ok ? 'ok' : 'error']++;
  }

  countRpc(method: string, code: string): void {
    const key = `${method}\0${code}`;
    this.rpcs.set(key, (this.rpcs.get(key) ?? 0) + 1);
  }

  /** A call refused (api/authz.ts); `identity` is a role (`service/bridge`), or `none`. */
  countDenied(method: string, identity: string): void {
    const key = `${method}\0${identity}`;
    this.denials.set(key, (this.denials.get(key) ?? 0) + 1);
  }

  /** The exposition text; data-plane counters are read now. */
  render(runtime: Runtime, state: { storeConnected: boolean; slowPath: SlowPath }): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };

    family('netcube_reconcile_seconds', 'histogram', 'Time of one reconcile pass: desired state to data plane.');
    BUCKETS.forEach((b, i) => out.push(`netcube_reconcile_seconds_bucket{le="${b}"} ${this.reconcileBuckets[i]}`));
    out.push(`netcube_reconcile_seconds_bucket{le="+Inf"} ${this.reconcileCount}`);
    out.push(`netcube_reconcile_seconds_sum ${this.reconcileSum}`, `netcube_reconcile_seconds_count ${this.reconcileCount}`);

    family('netcube_reconciles_total', 'counter', 'Reconcile passes, by outcome (error: some chain could not be applied).');
    for (const [result, n] of Object.entries(this.reconciles)) out.push(`netcube_reconciles_total${labels({ result })} ${n}`);

    family('netcube_grpc_requests_total', 'counter', 'gRPC calls served, by method and status code.');
    for (const [key, n] of this.rpcs) {
      const [method, code] = key.split('\0');
      out.push(`netcube_grpc_requests_total${labels({ method, code })} ${n}`);
    }

    family('netcube_authz_denied_total', 'counter', 'gRPC calls refused (PERMISSION_DENIED), by method and identity (a role, or none).');
    for (const [key, n] of this.denials) {
      const [method, identity] = key.split('\0');
      out.push(`netcube_authz_denied_total${labels({ method, identity })} ${n}`);
    }

    family('netcube_store_connected', 'gauge', 'Whether etcd is reachable (1) or the daemon runs from pinned state (0).');
    out.push(`netcube_store_connected ${state.storeConnected ? 1 : 0}`);

    const cubes = runtime.cubeNames();
    family('netcube_cubes', 'gauge', 'Cubes on this host.');
    out.push(`netcube_cubes ${cubes.length}`);

    const counters = [
      ['netcube_port_rx_packets_total', 'rxPackets', 'Packets that entered a cube through a port.'],
      ['netcube_port_rx_bytes_total', 'rxBytes', 'Bytes that entered a cube through a port.'],
      ['netcube_port_tx_packets_total', 'txPackets', 'Packets a cube sent out of a port.'],
      ['netcube_port_tx_bytes_total', 'txBytes', 'Bytes a cube sent out of a port.'],
      ['netcube_port_drops_total', 'drops', 'Packets a cube dropped, by the port they came in.'],
      ['netcube_port_to_controller_total', 'toController', 'Packets a cube handed to its control plane, by in-port.'],
    ] as const;
    const stats = cubes.flatMap((cube) => [...runtime.cube(cube).ports.keys()].map((port) => ({ cube, port, s: runtime.portStats(cube, port) })));
    for (const [name, field, help] of counters) {
      family(name, 'counter', help);
      for (const { cube, port, s } of stats) out.push(`${name}${labels({ cube, port })} ${s[field]}`);
    }

    family('netcube_slowpath_packets_total', 'counter', 'Packets cubes handed to their control plane, by what became of them.');
    for (const [cube, counts] of state.slowPath.counts)
      for (const [outcome, n] of Object.entries(counts)) out.push(`netcube_slowpath_packets_total${labels({ cube, outcome })} ${n}`);
    family('netcube_packet_outs_total', 'counter', 'Packets control planes sent into the data plane, by outcome.');
    for (const [outcome, n] of Object.entries(state.slowPath.packetOuts)) out.push(`netcube_packet_outs_total${labels({ outcome })} ${n}`);

    family('netcube_dataplane_errors_total', 'counter', 'Framework errors in the data plane, by cause.');
    const errors = runtime.host.errorCounts();
    errors.forEach((n, i) => {
      if (ERRORS[i]) out.push(`netcube_dataplane_errors_total${labels({ cause: ERRORS[i] })} ${n}`);
    });

    // The slow path's drops in one family, each cause once: from the data plane's
    // counters (before the ring) and the dispatcher's (after it).
    family(
      'netcube_slowpath_drops_total',
      'counter',
      'Slow-path packets dropped, by cause: cube_rate (past its cube\'s rate, in the data plane), held (in the data plane, while the cube\'s controller has no room), ring_full (no room in the ring: the host read slower than cubes wrote), no_controller, queue_full (a controller read slower than its queue holds), unknown_cube.',
    );
    const dispatched = { no_controller: 0, queue_full: 0, unknown_cube: 0 };
    for (const counts of state.slowPath.counts) for (const cause of Object.keys(dispatched) as (keyof typeof dispatched)[]) dispatched[cause] += counts[1][cause];
    const drops = { cube_rate: errors[ERRORS.indexOf('pkt_rate')] ?? 0, held: errors[ERRORS.indexOf('pkt_held')] ?? 0, ring_full: errors[ERRORS.indexOf('pkt_full')] ?? 0, ...dispatched };
    for (const [cause, n] of Object.entries(drops)) out.push(`netcube_slowpath_drops_total${labels({ cause })} ${n}`);
    const ring = state.slowPath.ringStats;
    family('netcube_slowpath_ring_records_total', 'counter', 'Records the daemon read from the host\'s slow-path ring.');
    out.push(`netcube_slowpath_ring_records_total ${ring.records}`);
    family('netcube_slowpath_held_packets', 'gauge', 'Packet-ins controller sessions hold, waiting to be sent (at most 16384 on a host).');
    out.push(`netcube_slowpath_held_packets ${state.slowPath.heldPackets}`);
    family('netcube_slowpath_held_cubes', 'gauge', 'Cubes whose slow path the data plane holds now: their controller has no room (drops counted as held).');
    out.push(`netcube_slowpath_held_cubes ${state.slowPath.heldCubeNames.length}`);
    family('netcube_slowpath_rate_waits_total', 'counter', 'Times the daemon stopped reading the slow-path ring for a moment, having read its rate (--slowpath-host-rate).');
    out.push(`netcube_slowpath_rate_waits_total ${ring.rateWaits}`);

    if (this.loopDelay) {
      // Since the last scrape: the histogram starts again after each.
      const d = this.loopDelay;
      family('netcube_event_loop_delay_seconds', 'gauge', 'How late the daemon\'s event loop ran a timer since the last scrape (10 ms resolution), by quantile; max is the longest stall.');
      for (const [q, v] of [['0.5', d.percentile(50)], ['0.99', d.percentile(99)], ['max', d.max]] as const) out.push(`netcube_event_loop_delay_seconds${labels({ quantile: q })} ${d.count ? v / 1e9 : 0}`);
      d.reset();
    }
    family('netcube_gc_pauses_total', 'counter', 'Garbage-collection pauses of the daemon.');
    out.push(`netcube_gc_pauses_total ${this.gc.count}`);
    family('netcube_gc_pause_seconds_total', 'counter', 'Time the daemon spent paused for garbage collection.');
    out.push(`netcube_gc_pause_seconds_total ${this.gc.seconds}`);
    family('netcube_gc_pause_max_seconds', 'gauge', 'The longest garbage-collection pause since the last scrape.');
    out.push(`netcube_gc_pause_max_seconds ${this.gc.maxSeconds}`);
    this.gc.maxSeconds = 0;
    return `${out.join('\n')}\n`;
  }
}

// A host whose one cube hands packets to the slow path, for tests of the slow path
// through a real netcubed: the probe test cube (bpf/testdata/cubes/probe.bpf.c),
// registered at run time, on a netdev `in0` that a generator in another namespace
// (`sender`, on `gen0`) sends frames into. The daemon runs in the test's namespace,
// so its metrics and /proc are at hand, and keeps its netdevs in a namespace of
// their own (--netns). Plus the daemon's metrics and memory as the tests read them.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import type { NetcubeClient } from '@netcube/api/grpc/client';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import type { Store } from '@netcube/api/store';
import { applyChain } from '../services/helpers';
import { waitFor } from './wait';
import { startDaemon, type NetcubedProcess } from './daemon';
import { freePorts, startEtcd } from './etcd';
import { createNetns, createVethPair, type Netns } from './netns';
import { createGenerator, streamFrame } from './traffic';

export interface ProbeHost {
  daemon: NetcubedProcess;
  client: NetcubeClient;
  store: Store;
  etcd: string[];
  /** The daemon's metrics endpoint, HOST:PORT. */
  metrics: string;
  /** Where the generator sends from, on gen0; the daemon's cube `pr` is on in0, its port `a`. */
  sender: Netns;
}

/** A daemon with the probe cube `pr` in `mode`, port `a` on netdev in0; `args` go to netcubed. */
export async function openProbeHost(t: ExecutionContext, mode: 'xdp' | 'tc', args: string[] = []): Promise<ProbeHost> {
  const etcd = await startEtcd(t);
  const host = await createNetns(t);
  const sender = await createNetns(t);
  for (const ns of [host, sender]) await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  await createVethPair(sender, host, ['gen0', 'in0'], null);
  const [port] = await freePorts(1);
  const metrics = `127.0.0.1:${port}`;
  const daemon = await startDaemon(t, { etcd: etcd.endpoints, args: ['--netns', host.path, '--metrics', metrics, ...args] });
  await daemon.waitConnected();
  const client = daemon.client();
  t.teardown(() => client.close());
  const dir = path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes');
  await client.registerType({ name: 'probe', xdpObject: fs.readFileSync(path.join(dir, 'probe.xdp.o')), tcObject: fs.readFileSync(path.join(dir, 'probe.tc.o')) });
  const { Store } = await import('@netcube/api/store');
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  await applyChain(
    store,
    `apiVersion: netcube/v1
kind: Chain
metadata: { name: slow }
spec:
  cubes:
    - { name: pr, host: ${daemon.name}, type: probe, mode: ${mode}, ports: [a, b] }
  links:
    - { from: pr:a, to: netdev:in0 }
`,
  );
  await waitFor('the cube on its host', () => client.getCube({ name: 'pr' }));
  return { daemon, client, store, etcd: etcd.endpoints, metrics, sender };
}

/** Makes port `a` of the probe cube hand every packet to the controller with `reason`. */
export async function probeToController(env: ProbeHost, reason: number): Promise<void> {
  const a = (await env.client.getCube({ name: 'pr' })).ports.find((p) => p.name === 'a')!;
  await env.client.putEntry({ table: { cube: 'pr', table: 'probe_actions' }, entry: { keyJson: JSON.stringify(a.index), valueJson: JSON.stringify({ op: 'PROBE_CONTROLLER', arg: reason }) } });
}

/** The daemon's metrics, by series (name with labels). */
export async function scrape(address: string): Promise<Map<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get(`http://${address}/metrics`, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  return new Map(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]),
  );
}

function status(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Resident memory of process `pid` now, in kB. */
export function rssKb(pid: number): number {
  return status(pid, 'VmRSS');
}

/**
 * The peak of a process's resident memory from now on: the kernel's high-water
 * mark (VmHWM), reset here (clear_refs 5), so no peak between two samples is missed.
 */
export function trackPeakRss(pid: number): { peakKb(): number } {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  return { peakKb: () => status(pid, 'VmHWM') };
}

/** What a flood at the probe cube did, counted by the daemon and measured by the kernel. */
export interface FloodResult {
  /** Frames the generator sent. */
  sent: number;
  /** Frames that reached the cube (the veths drop some under load, before it). */
  arrived: number;
  /** Frames the cube put in the ring. */
  toController: number;
  /** Records the daemon read from the ring. */
  read: number;
  /** Slow-path drops by cause (netcube_slowpath_drops_total), and packets queued for a controller. */
  drops: Record<'cube_rate' | 'held' | 'ring_full' | 'queue_full' | 'no_controller', number>;
  delivered: number;
  /** The daemon's resident memory before, and its peak during the flood (VmHWM), in kB. */
  baselineKb: number;
  peakKb: number;
  /** The daemon's longest event-loop stall and garbage-collection pause during the flood, in ms. */
  loopStallMs: number;
  gcPauseMs: number;
}

/**
 * Floods port `a` of the probe cube with 1442-byte frames for `ms`, then waits
 * until the daemon has read the ring to its end, so every frame that reached the
 * cube is accounted for.
 */
export async function floodProbe(t: ExecutionContext, env: ProbeHost, ms: number): Promise<FloodResult> {
  const pid = env.daemon.pid!;
  const baselineKb = rssKb(pid);
  const peak = trackPeakRss(pid);
  const before = await scrape(env.metrics);
  const generator = await createGenerator(t, env.sender, 'gen0', [streamFrame({ payload: 1400 })]);
  const flood = generator.stream({ perRun: 4_096 });
  const started = Date.now();
  const msLeft = (): number => started + ms - Date.now();
  await waitFor('the flood to last', () => msLeft() <= 0, ms + 10_000, 100);
  const sent = await flood.stop();
  const peakKb = peak.peakKb();
  const after = await scrape(env.metrics);
  const d = await waitFor('the ring read to its end', async () => {
    const m = await scrape(env.metrics);
    const d = (key: string): number => (m.get(key) ?? 0) - (before.get(key) ?? 0);
    const fates = ['delivered', 'queue_full', 'no_controller'].map((o) => d(`netcube_slowpath_packets_total{cube="pr",outcome="${o}"}`));
    return d('netcube_port_to_controller_total{cube="pr",port="a"}') === fates.reduce((a, b) => a + b) && d;
  });
  return {
    sent,
    arrived: d('netcube_port_rx_packets_total{cube="pr",port="a"}'),
    toController: d('netcube_port_to_controller_total{cube="pr",port="a"}'),
    read: d('netcube_slowpath_ring_records_total'),
    drops: { cube_rate: d('netcube_slowpath_drops_total{cause="cube_rate"}'), held: d('netcube_slowpath_drops_total{cause="held"}'), ring_full: d('netcube_slowpath_drops_total{cause="ring_full"}'), queue_full: d('netcube_slowpath_drops_total{cause="queue_full"}'), no_controller: d('netcube_slowpath_drops_total{cause="no_controller"}') },
    delivered: d('netcube_slowpath_packets_total{cube="pr",outcome="delivered"}'),
    baselineKb,
    peakKb,
    loopStallMs: (after.get('netcube_event_loop_delay_seconds{quantile="max"}') ?? NaN) * 1000,
    gcPauseMs: (after.get('netcube_gc_pause_max_seconds') ?? NaN) * 1000,
  };
}

export interface GetHostProbe {
  /** Latency of each GetHost answered, ms. */
  latencies: number[];
  /** Each call that failed: when (s since the start) and why. */
  failures: string[];
  /** The prober's own event loop's longest delay, ms. */
  loopDelayMaxMs: number;
}

/**
 * GetHost asked of `target` every `intervalMs`, each call with a deadline of
 * `deadlineMs`, from a process of its own (get-host-prober-main.ts) until
 * stop(): the test's process, busy with what it tests, does not decide when a
 * reply is read.
 */
export function startGetHostProber(t: ExecutionContext, target: string, deadlineMs: number, intervalMs: number): { stop(): Promise<GetHostProbe> } {
  const child = spawn(process.execPath, [path.join(__dirname, 'get-host-prober-main.js'), '--target', target, '--deadline-ms', String(deadlineMs), '--interval-ms', String(intervalMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`the GetHost prober exited with ${code}`);
      const probe: GetHostProbe = { latencies: [], failures: [], loopDelayMaxMs: NaN };
      for (const line of out.trim().split('\n')) {
        const r = JSON.parse(line) as { ms?: number; atMs?: number; error?: string; loopDelayMaxMs?: number };
        if (r.ms !== undefined) probe.latencies.push(r.ms);
        else if (r.error !== undefined) probe.failures.push(`${((r.atMs ?? 0) / 1000).toFixed(1)} s: ${r.error}`);
        else if (r.loopDelayMaxMs !== undefined) probe.loopDelayMaxMs = r.loopDelayMaxMs;
      }
      return probe;
    },
  };
}

// Remote services on a real netcubed with a real etcd:
//
//   p8  the slow path's round trip — packet-in -> controller -> packet-out — timed
//       from data plane to data plane: the generator's frame enters the probe cube
//       (port a), which hands it to a controller built with the SDK
//       (test/bench/controllers/echo.ts, a process of its own); the controller
//       copies the packet-in's data-plane timestamp into the frame and sends it out
//       of port b, where bpf/testdata/xdp_latency.bpf.c files bpf_ktime_get_ns()
//       minus that timestamp into a histogram. Latency at a moderate rate (frames
//       one at a time), then the sustained rate with a window of frames in flight.
//
//         sender            host (netcubed)                   receiver
//         gen0 ──── in0 ─ [probe a ⇢ controller ⇢ b] ─ out0 ──── sink0
//         Generator (xdp_tx)                                  xdp_latency
//
//   p4  iperf3 TCP between two pods through netcube's bridge (TC, so delivery to
//       the pods uses bpf_redirect_peer) against the same through a Linux bridge
//       (this kernel's defaults: bridge-nf-call-iptables on, as kube-proxy needs it,
//       no rules), through the cheapest TC forwarder there is
//       (bpf/baseline/vanilla_peer.bpf.c, hand-written, redirecting each pod's
//       frames into the other pod), and with no forwarder at all (the two pods on
//       the ends of one veth). Four pod pairs on one host, measured in alternation
//       in the same run, each iperf3 client on one CPU and its server on another;
//       ratios of the medians. The direct pair bounds what any bridge can carry
//       here, so what any can gain over the Linux bridge.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import type { NetcubeClient } from '@netcube/api/grpc/client';
import { parseChain } from '@netcube/api/chain';
import { Store } from '@netcube/api/store';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import * as bpf from '../../../node-daemon/src/bpf';
import { DEFAULT_OBJECTS_DIR } from '../../../node-daemon/src/runtime/runtime';
import { NetcubedProcess } from '../../helpers/daemon';
import { EtcdCluster } from '../../helpers/etcd';
import { createVethPair, newNetns, type Netns } from '../../helpers/netns';
import { Generator, STREAM_PORT } from '../../helpers/traffic';
import { ServiceProcess } from '../../services/helpers';
import { ECHO_MAGIC } from '../controllers/echo';
import { loadBaseline } from '../baseline';
import { closeAll, type Closer } from '../closers';
import { iperf, startIperfServers, type IperfRun } from '../iperf';
import type { Result, Suite, SuiteContext } from '../report';
import { waitFor } from '../../helpers/wait';

const execFileAsync = promisify(execFile);
const PACER = path.resolve(__dirname, '../pace-frames.js');

const TARGETS = { rttP99Ms: 2, pps: 50_000, iperfRatio: 1.15 };
const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
/** p8: the moderate rate of the latency run, frames/s, and how long it lasts. */
const LATENCY_RATE = env('NC_BENCH_P8_RATE', 2_000);
const LATENCY_SECONDS = env('NC_BENCH_P8_LATENCY_S', 10);
/** p8: unmeasured seconds at that rate first, for the JIT compilers of the daemon and the controller. */
const WARMUP_SECONDS = env('NC_BENCH_P8_WARMUP_S', 5);
/** p8: the slow-path packets a second the cube may hand over, above any rate measured here. */
const SLOWPATH_RATE = 1_000_000;
/** p8: the throughput run; frames per generator run and the most in flight (sent, not back). */
const PPS_SECONDS = env('NC_BENCH_P8_PPS_S', 10);
const PPS_PER_RUN = 2_048;
const PPS_WINDOW = 2_048;
/** p4: rounds of each bridge, and seconds per iperf3 run (after one second left out). */
const IPERF_ROUNDS = env('NC_BENCH_P4_ROUNDS', 7);
const IPERF_SECONDS = env('NC_BENCH_P4_SECONDS', 5);

const median = (xs: number[]): number => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

async function quietNetns(closers: Closer[]): Promise<Netns> {
  const ns = await newNetns();
  closers.push(() => ns.delete());
  await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  return ns;
}

async function applyAndWait(store: Store, yaml: string): Promise<void> {
  const chain = parseChain(yaml);
  const { version } = await store.chains.apply(chain);
  await store.status.waitApplied(chain.metadata.name, version, { timeoutMs: 60_000 });
}

/** CPU time of a process so far, in seconds (user + system, from /proc). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

// ---------------------------------------------------------------- p8

/** xdp_latency on a veth: the stamped frames it saw, and their latencies. */
class LatencySink {
  static readonly BUCKET_NS = 2_000;
  static readonly BUCKETS = 8_192;

  private constructor(
    private readonly coll: bpf.Collection,
    private readonly link: bpf.XdpLink,
  ) {}

  static async attach(netns: Netns, ifname: string): Promise<LatencySink> {
    const coll = await bpf.CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'xdp_latency.o')).load();
    try {
      return new LatencySink(coll, await bpf.attachXdp({ program: coll.program('xdp_latency'), ifname, netns: netns.name }));
    } catch (err) {
      coll.close();
      throw err;
    }
  }

  private counter(i: number): number {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(i);
    return Number(this.coll.map('lat_counters').lookup(key)!.readBigUInt64LE(0));
  }

  /** Stamped frames received so far. */
  get frames(): number {
    return this.counter(0);
  }

  get other(): number {
    return this.counter(1);
  }

  get maxNs(): number {
    return this.counter(3);
  }

  histogram(): number[] {
    const map = this.coll.map('lat_histogram');
    const key = Buffer.alloc(4);
    return Array.from({ length: LatencySink.BUCKETS }, (_, i) => {
      key.writeUInt32LE(i);
      return Number(map.lookup(key)!.readBigUInt64LE(0));
    });
  }

  close(): void {
    this.link.close();
    this.coll.close();
  }
}

/** The q-quantile of the frames counted in `hist` (bucket counts), in ms: the upper edge of its bucket. */
function histogramQuantile(hist: number[], q: number): number {
  const total = hist.reduce((a, b) => a + b, 0);
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= rank) return ((i + 1) * LatencySink.BUCKET_NS) / 1e6;
  }
  return Infinity;
}

async function p8(etcd: EtcdCluster, store: Store, ctx: SuiteContext): Promise<Result[]> {
  const closers: Closer[] = [];
  try {
    const sender = await quietNetns(closers);
    const host = await quietNetns(closers);
    const receiver = await quietNetns(closers);
    await createVethPair(sender, host, ['gen0', 'in0'], null);
    await createVethPair(host, receiver, ['out0', 'sink0'], null);
    const sink = await LatencySink.attach(receiver, 'sink0');
    closers.push(() => sink.close());
    // p8 measures what the slow path carries, not the admission limit that protects it:
    // past --slowpath-cube-rate (100,000/s by default) the cube drops, and every drop
    // stalls the window of frames in flight.
    const daemon = await NetcubedProcess.start({ netns: host, etcd: etcd.endpoints, args: ['--log-level', 'info', '--slowpath-cube-rate', String(SLOWPATH_RATE)] });
    closers.push(() => daemon.cleanup());
    await daemon.waitConnected();

    // The controller registers the probe type; the chain waits for it.
    const controller = await ServiceProcess.start({
      service: path.resolve(__dirname, '../controllers/echo.js'),
      etcd: etcd.endpoints,
      name: 'echo-1',
      args: ['--log-level', 'info'],
    });
    closers.push(() => controller.cleanup());
    const client: NetcubeClient = daemon.client();
    closers.push(() => client.close());
    // The service registers its type in etcd (a host checks it first); a host loads it
    // when a chain places it.
    await waitFor('the probe type registered', () => store.types.getType('probe'), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\nthe controller's log ends:\n${controller.logTail()}`);
    });
    await applyAndWait(
      store,
      `apiVersion: netcube/v1
kind: Chain
metadata: { name: slowpath }
spec:
  cubes:
    - { name: pr, host: ${daemon.name}, type: probe, mode: xdp, ports: [a, b] }
  links:
    - { from: pr:a, to: netdev:in0 }
    - { from: pr:b, to: netdev:out0 }
`,
    );
    const api = controller.client();
    closers.push(() => api.close());
    await waitFor('the controller to have cube pr ready', async () => (await api.listCubes()).every((c) => c.ready), 30_000);
    ctx.log(`p8: daemon ${daemon.name} (pid ${daemon.pid}), controller pid ${controller.pid}, cube pr ready`);

    const payload = Buffer.alloc(18);
    payload.writeUInt32LE(ECHO_MAGIC, 0);
    const frame = ethernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', payload: ipv4({ src: '10.99.0.1', dst: '10.99.0.2', payload: udp({ sport: 4000, dport: STREAM_PORT, payload }) }) });
    const generator = await Generator.open(sender, 'gen0', [frame]);
    closers.push(() => generator.close());

    // Warm up (JIT, first packet-out), and check the loop is closed.
    await generator.send(200, { perRun: 1 });
    const warm = await waitFor('the warm-up frames back', () => (sink.frames >= 190 ? sink.frames : undefined), 10_000, 10);
    ctx.log(`p8: warm-up: ${warm} of 200 frames came back`);

    // Latency: frames one at a time, LATENCY_RATE per second, paced by a process
    // of its own (this one's event loop has other things to do); the first two
    // seconds warm the daemon and the controller up at that rate, unmeasured.
    const pace = async (seconds: number): Promise<{ sent: number; refused: number; late: number }> => {
      const { stdout } = await execFileAsync(process.execPath, [PACER, sender.name, 'gen0', String(LATENCY_RATE), String(seconds), frame.toString('hex')], { timeout: (seconds + 30) * 1000 });
      return JSON.parse(stdout) as { sent: number; refused: number; late: number };
    };
    await pace(WARMUP_SECONDS);
    await sleep(200);
    const before = sink.histogram();
    const framesBefore = sink.frames;
    ctx.log(`p8: latency run: ${LATENCY_RATE} frames/s for ${LATENCY_SECONDS} s`);
    const started = Date.now();
    const { sent, late } = await pace(LATENCY_SECONDS);
    await waitFor('the latency run to settle', () => sink.frames - framesBefore >= sent || undefined, 2_000, 10).catch(() => undefined);
    const hist = sink.histogram().map((n, i) => n - before[i]);
    const back = hist.reduce((a, b) => a + b, 0);
    const seconds = (Date.now() - started) / 1000;
    if (late > sent / 100) ctx.log(`p8: the pacer sent ${late} of ${sent} frames more than 1 ms late`);
    const p50 = histogramQuantile(hist, 0.5);
    const p99 = histogramQuantile(hist, 0.99);
    const p999 = histogramQuantile(hist, 0.999);
    ctx.log(`p8: ${sent} frames at ${Math.round(sent / seconds)}/s, ${back} back: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, p99.9 ${p999.toFixed(3)} ms`);

    // Throughput: as fast as frames come back, at most PPS_WINDOW in flight.
    const daemonCpu0 = cpuSeconds(daemon.pid!);
    const controllerCpu0 = cpuSeconds(controller.pid!);
    const stream = generator.stream({ perRun: PPS_PER_RUN, lag: PPS_WINDOW, delivered: () => sink.frames, stallMs: 200 });
    let rates: number[] = [];
    let frames0 = 0;
    let t0 = 0n;
    try {
      await sleep(2_000);
      frames0 = sink.frames;
      t0 = process.hrtime.bigint();
      let last = frames0;
      let lastT = t0;
      rates = [];
      for (let s = 0; s < PPS_SECONDS; s++) {
        await sleep(1_000);
        const now = process.hrtime.bigint();
        const f = sink.frames;
        rates.push((f - last) / (Number(now - lastT) / 1e9));
        last = f;
        lastT = now;
        ctx.log(`p8: throughput run: ${Math.round(rates[rates.length - 1])} round trips/s`);
      }
    } finally {
      await stream.stop();
    }
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const daemonCpu = (cpuSeconds(daemon.pid!) - daemonCpu0) / (wall + 2);
    const controllerCpu = (cpuSeconds(controller.pid!) - controllerCpu0) / (wall + 2);
    await sleep(500);
    const pps = median(rates);
    const metrics = await client.getCube({ name: 'pr' });
    const portA = metrics.ports.find((p) => p.name === 'a')!.stats!;
    ctx.log(`p8: ${generator.sent} frames sent in all, ${sink.frames} back, ${sink.other} others at the sink; port a: ${portA.toController} to the controller`);
    const noteCpu = `daemon ${(daemonCpu * 100).toFixed(0)}% and controller ${(controllerCpu * 100).toFixed(0)}% of a core meanwhile`;
    return [
      { name: 'p8.rtt_p50_ms', value: p50, unit: 'ms', note: `${back} round trips at ${Math.round(sent / seconds)}/s, one frame at a time; ${LatencySink.BUCKET_NS / 1000} µs buckets (upper edges); max ${(sink.maxNs / 1e6).toFixed(2)} ms` },
      { name: 'p8.rtt_p99_ms', value: p99, unit: 'ms', target: TARGETS.rttP99Ms, better: 'lower', note: `data plane to data plane (bpf_ktime_get_ns of nc_to_controller to the sink's); p99.9 ${p999.toFixed(3)} ms` },
      { name: 'p8.pps', value: Math.round(pps), unit: 'round trips/s', target: TARGETS.pps, note: `median of ${rates.length} one-second samples (${rates.map((r) => Math.round(r / 1000)).join(', ')}k), at most ${PPS_WINDOW + PPS_PER_RUN} frames in flight; ${noteCpu}` },
    ];
  } finally {
    await closeAll(closers, ctx.log);
  }
}

// ---------------------------------------------------------------- p4

interface Pair {
  name: 'netcube' | 'vanilla' | 'linux' | 'direct';
  client: Netns;
  server: Netns;
  address: string;
}

/** vanilla_peer_tc on the ingress of both host ends of a pair, each redirecting into the other's pod. */
async function attachVanilla(host: Netns, devs: [string, string], closers: Closer[]): Promise<void> {
  const coll = await loadBaseline('vanilla_peer', host.name, [devs, [devs[1], devs[0]]]);
  closers.push(() => coll.close());
  for (const ifname of devs) {
    const filter = await bpf.attachTc({ program: coll.program('vanilla_peer_tc'), ifname, netns: host.name, direction: 'ingress' });
    closers.push(() => filter.detach());
  }
}

async function p4(etcd: EtcdCluster, store: Store, ctx: SuiteContext): Promise<Result[]> {
  const closers: Closer[] = [];
  try {
    const host = await quietNetns(closers);
    const pairs: Pair[] = [];
    for (const [name, subnet, devs] of [
      ['netcube', '10.60.0', ['nc1', 'nc2']],
      ['vanilla', '10.62.0', ['vp1', 'vp2']],
      ['linux', '10.61.0', ['lb1', 'lb2']],
    ] as const) {
      const pods: Netns[] = [];
      for (const [i, dev] of devs.entries()) {
        const pod = await quietNetns(closers);
        await createVethPair(pod, host, ['eth0', dev], [`${subnet}.${i + 1}`, '']);
        pods.push(pod);
      }
      pairs.push({ name, client: pods[0], server: pods[1], address: `${subnet}.2` });
    }
    const direct = [await quietNetns(closers), await quietNetns(closers)];
    await createVethPair(direct[0], direct[1], ['eth0', 'eth0'], ['10.63.0.1', '10.63.0.2']);
    pairs.push({ name: 'direct', client: direct[0], server: direct[1], address: '10.63.0.2' });
    await host.exec('ip', ['link', 'add', 'br0', 'type', 'bridge']);
    for (const dev of ['lb1', 'lb2']) await host.exec('ip', ['link', 'set', 'dev', dev, 'master', 'br0']);
    await host.exec('ip', ['link', 'set', 'dev', 'br0', 'up']);
    await attachVanilla(host, ['vp1', 'vp2'], closers);

    const daemon = await NetcubedProcess.start({ netns: host, etcd: etcd.endpoints, args: ['--log-level', 'info'] });
    closers.push(() => daemon.cleanup());
    await daemon.waitConnected();
    // No controller: under TC the bridge learns and floods to netdevs by itself.
    await applyAndWait(
      store,
      `apiVersion: netcube/v1
kind: Chain
metadata: { name: pods }
spec:
  cubes:
    - { name: br, host: ${daemon.name}, type: bridge, mode: tc, ports: [p1, p2] }
  links:
    - { from: br:p1, to: netdev:nc1 }
    - { from: br:p2, to: netdev:nc2 }
`,
    );
    for (const pair of pairs) await pair.client.ping(pair.address, 3);

    await startIperfServers(pairs, closers, 10_000);

    const runs: Record<Pair['name'], IperfRun[]> = { netcube: [], vanilla: [], linux: [], direct: [] };
    const show = (r: IperfRun): string => `${r.gbps.toFixed(2)} Gbit/s (CPU: sender ${r.senderCpu.toFixed(0)}%, receiver ${r.receiverCpu.toFixed(0)}%)`;
    for (let round = 0; round < IPERF_ROUNDS; round++) {
      // Each pair takes each place in the order in turn.
      const order = pairs.map((_, i) => pairs[(i + round) % pairs.length]);
      for (const pair of order) runs[pair.name].push(await iperf(pair.client, pair.address, IPERF_SECONDS));
      ctx.log(`p4: round ${round + 1}/${IPERF_ROUNDS}: ${pairs.map((p) => `${p.name} ${show(runs[p.name][round])}`).join(', ')}`);
    }
    const gbps = (name: Pair['name']): number[] => runs[name].map((r) => r.gbps);
    const med = { netcube: median(gbps('netcube')), vanilla: median(gbps('vanilla')), linux: median(gbps('linux')), direct: median(gbps('direct')) };
    const describe = (name: Pair['name']): string =>
      `${gbps(name).map((x) => x.toFixed(1)).join(', ')} Gbit/s, CPU sender ${median(runs[name].map((r) => r.senderCpu)).toFixed(0)}%, receiver ${median(runs[name].map((r) => r.receiverCpu)).toFixed(0)}%`;
    const how = `iperf3 TCP, one stream, ${IPERF_SECONDS} s a run, ${IPERF_ROUNDS} rounds alternating, client and server on CPUs of their own`;
    return [
      {
        name: 'p4.iperf.ratio',
        value: med.netcube / med.linux,
        unit: 'x',
        target: TARGETS.iperfRatio,
        note:
          `${how}; netcube bridge (TC, bpf_redirect_peer into the pods) ${describe('netcube')}; Linux bridge ${describe('linux')}; ` +
          `hand-written vanilla_peer_tc ${describe('vanilla')}; the pods on one veth, no forwarder ${describe('direct')}. ` +
          `The direct pair, which no bridge can beat but by chance, moved ${(med.direct / med.linux).toFixed(2)}x the Linux bridge: ` +
          "the pods' own TCP (copies, syscalls, wake-ups) takes most of the sender's CPU, forwarding 64 KB segments little",
      },
      { name: 'p4.iperf.netcube_gbps', value: med.netcube, unit: 'Gbit/s', baseline: med.linux },
      { name: 'p4.iperf.linux_gbps', value: med.linux, unit: 'Gbit/s' },
      { name: 'p4.iperf.vanilla_ratio', value: med.vanilla / med.linux, unit: 'x', note: `${how}; the hand-written TC forwarder (vanilla_peer_tc) against the Linux bridge` },
      { name: 'p4.iperf.direct_ratio', value: med.direct / med.linux, unit: 'x', note: `${how}; the pods on the ends of one veth against the Linux bridge: the most any bridge can gain here` },
      { name: 'p4.iperf.netcube_vs_vanilla', value: med.netcube / med.vanilla, unit: 'x' },
    ];
  } finally {
    await closeAll(closers, ctx.log);
  }
}

export const suite: Suite = {
  name: 'services',
  description: 'remote services: p8 slow-path round trip through an SDK controller (latency, rate), p4 pods through the netcube bridge vs a Linux bridge, a hand-written TC forwarder and a direct veth (iperf3)',
  async run(ctx) {
    const closers: Closer[] = [];
    try {
      const etcd = await EtcdCluster.start();
      closers.push(() => etcd.stop());
      const store = await Store.connect({ endpoints: etcd.endpoints });
      closers.push(() => store.close());
      const only = process.env.NC_BENCH_ONLY;
      return [...(only && only !== 'p8' ? [] : await p8(etcd, store, ctx)), ...(only && only !== 'p4' ? [] : await p4(etcd, store, ctx))];
    } finally {
      await closeAll(closers, ctx.log);
    }
  },
};

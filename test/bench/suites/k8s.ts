// netcube as a Kubernetes network provider (issue 15) against what a cluster gets
// from Debian's reference CNI plugins and kube-proxy, on one node, in one run. Two
// node namespaces side by side, each with the same pods made the same way (the
// plugin called as the CNI spec describes, test/helpers/cni.ts, host-local leasing
// each pod the address its Pod object gives it):
//
//   netcube   node n1 of test/helpers/kube-node.ts: a real netcubed, etcd, the
//             controller (netcube-k8s) following the scripted API server, the
//             router, lbrp, firewall and k8sdispatcher services in process; pods by
//             netcube-cni; its pod range the baseline's too.
//   baseline  a node namespace with Debian's `bridge` plugin (a Linux bridge cni0,
//             the node its gateway) and `host-local`; ClusterIPs by the nat rules
//             kube-proxy's iptables mode writes (test/bench/kube-proxy.ts), in
//             that node, with this kernel's bridge-nf-call-iptables on (as
//             kube-proxy needs it for pod → ClusterIP → pod on one bridge).
//
//   k8s.cni.add_ms_p99   ms from a CNI ADD to its result, which netcube-cni gives once
//                        the data plane forwards for the pod; PODS pods one after the
//                        other, the two sides in turn; p99, reported (and the bridge's)
//   k8s.pod.rr_ratio     request/response rate between two pods of the node: sockperf
//                        ping-pong over TCP (64-byte messages, one in flight), client
//                        and server on CPUs of their own; netcube / bridge (target 1.15).
//                        k8s.pod.rr_udp_ratio: the same over UDP, reported;
//                        k8s.pod.rr.direct_ratio: the two pods on one veth (no
//                        forwarder) / bridge, the bound of any data plane here
//   k8s.svc.conn_ratio_5000  new TCP connections/s from a pod to a ClusterIP with
//                        SERVICES Services defined in the API (three endpoints each;
//                        the measured one's are three pods of the node, halfway down
//                        KUBE-SERVICES on the baseline); test/bench/c/conn_rate.c at
//                        both ends; netcube / kube-proxy's rules (target 2). Beside it,
//                        the baseline with that one Service's rules only (the path
//                        without the rule walk), and the time from the Services'
//                        writes to the API to netcube forwarding to the measured one.
//
//   k8s.cross.tcp_ratio  iperf3 TCP from a pod of node n1 to a pod of node n2, over
//                        VXLAN (target 1.0): netcube's two nodes of test/helpers/kube-cluster.ts
//                        (client-1 and echo-2 of test/k8s/manifests/multinode.yaml)
//                        against two nodes as flannel's vxlan backend makes them:
//                        Debian's bridge + host-local for the pods, each node routing
//                        the other's pod range over a kernel VXLAN netdev with static
//                        neighbour and forwarding entries. Both sides' nodes on one
//                        segment (a Linux bridge), pods at MTU 1450.
//
// Sides alternate over rounds (each takes each place in turn); each ratio is taken
// within a round and the median reported.
// NC_BENCH_K8S_{ROUNDS,PODS,SERVICES,RR_SECONDS,CONN_SECONDS,IPERF_SECONDS} shrink a
// run (a smoke test); NC_BENCH_ONLY=pod.rr or svc.conn runs that part after the ADDs,
// NC_BENCH_ONLY=cross.tcp the nodes across alone.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { DEFAULT_SETTINGS, MAX_PODS_PER_NODE, nodeModel, Problems, type KubeNode as KubeNodeObject } from '@netcube/k8s/model';
import { DEFAULT_MTU } from '@netcube/k8s/cni';
import { attachment, cni, CNI_PATH } from '../../helpers/cni';
import { allowedCpus } from '../../helpers/cpus';
import { loadManifests, type KubeObject } from '../../helpers/kube-manifests';
import { cniConfig, kubeNode, NODE, NODE_POD_RANGE, startNodeServices, type KubeNode } from '../../helpers/kube-node';
import { kubeCluster, SETTINGS } from '../../helpers/kube-cluster';
import { createNetns, createSegment, createVethPair, type Netns } from '../../helpers/netns';
import { waitFor } from '../../helpers/wait';
import { connRateTool, type ConnRun } from '../conn-rate';
import { benchServices, kubeProxyNatRules, type ClusterIpService } from '../kube-proxy';
import { closeAll, type Closer } from '../closers';
import { iperf, startIperfServers } from '../iperf';
import type { Result, Suite, SuiteContext } from '../report';

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const ROUNDS = env('NC_BENCH_K8S_ROUNDS', 5);
/** Pods of each node, added one after the other (at most a node's MAX_PODS_PER_NODE). */
const PODS = Math.min(env('NC_BENCH_K8S_PODS', 20), MAX_PODS_PER_NODE);
const SERVICES = env('NC_BENCH_K8S_SERVICES', 5_000);
const RR_SECONDS = env('NC_BENCH_K8S_RR_SECONDS', 3);
const CONN_SECONDS = env('NC_BENCH_K8S_CONN_SECONDS', 2);
const CONN_PARALLEL = 64;
/** iperf3 seconds a run, after one second left out. */
const IPERF_SECONDS = env('NC_BENCH_K8S_IPERF_SECONDS', 5);
const TARGETS = { rr: 1.15, conn: 2, cross: 1 };

/** netcube-cni's default MTU (room for VXLAN); the bridge's pods get the same. */
const MTU = DEFAULT_MTU;
/** Pod 0 is the client; pods 1-3 the backends of the measured Service, pod 1 also the sockperf server. */
const CLIENT = 0;
const BACKENDS = [1, 2, 3];
const RR_PORTS = { tcp: 11111, udp: 11112 };
const BACKEND_PORT = 8080;

interface PodSpec {
  name: string;
  address: string;
  /** The container id the runtime passes (CNI_CONTAINERID). */
  id: string;
}

const pods: PodSpec[] = Array.from({ length: Math.max(PODS, BACKENDS.length + 1) }, (_, i) => ({
  name: `bench-${i}`,
  address: `10.244.1.${10 + i}`,
  id: `benc${i.toString(16).padStart(4, '0')}`,
}));

type Side = 'netcube' | 'bridge';
/** The other node's side of k8s.cross: flannel's vxlan backend. */
type CrossSide = 'netcube' | 'flannel';

const median = (xs: number[]): number => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/**
 * What test/helpers' fixtures ask of an ava test, for the suite: their teardowns go
 * into `closers` (run in reverse), their logs to the operator; `failed` tells them
 * to show what they keep for a failure (netcubed's and the controller's logs).
 */
function benchTest(closers: Closer[], ctx: SuiteContext, failed: () => boolean): ExecutionContext {
  const t = {
    teardown: (fn: Closer) => closers.push(fn),
    log: (...values: unknown[]) => ctx.log(values.map(String).join(' ')),
    get passed() {
      return !failed();
    },
  };
  return t as unknown as ExecutionContext;
}

// ---- the API's objects ------------------------------------------------------------------------

function podObject(pod: PodSpec): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod.name, namespace: 'default', labels: { app: 'bench' } },
    spec: { nodeName: NODE, containers: [{ name: 'bench', image: 'busybox', ports: [{ name: 'conn', containerPort: BACKEND_PORT }] }] },
    status: { phase: 'Running', podIP: pod.address },
  };
}

/** A Service and the EndpointSlice the endpointslice controller writes for it. */
function serviceObjects(s: ClusterIpService): KubeObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: s.name, namespace: s.namespace },
      spec: { type: 'ClusterIP', clusterIP: s.vip, clusterIPs: [s.vip], ports: [{ name: 'conn', protocol: 'TCP', port: s.port, targetPort: BACKEND_PORT }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${s.name}-b3nch`, namespace: s.namespace, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4',
      ports: [{ name: 'conn', protocol: 'TCP', port: BACKEND_PORT }],
      endpoints: s.endpoints.map((e) => ({ addresses: [e.address], conditions: { ready: true }, nodeName: NODE })),
    },
  ];
}

// ---- processes in pods ------------------------------------------------------------------------

const CPUS = allowedCpus();
/** The client on the first CPU this process may use, the server on the second (left to the scheduler they sometimes share one). */
const pin = (which: 0 | 1): string[] => (CPUS.length >= 2 ? ['taskset', '-c', String(CPUS[which])] : []);

/** A long-running process in a pod (killed with its parent), stopped by the suite. */
function spawnIn(ns: Netns, args: string[], closers: Closer[]): ChildProcess {
  const child = spawn('/usr/bin/setpriv', ['--pdeathsig=KILL', '--', 'ip', 'netns', 'exec', ns.name, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  closers.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return child;
}

interface RrRun {
  /** Round trips a second. */
  rate: number;
  p99Us: number;
}

/** sockperf ping-pong from `client` to `address` for RR_SECONDS. */
async function pingPong(client: Netns, address: string, protocol: 'tcp' | 'udp'): Promise<RrRun> {
  const args = [...pin(0), 'sockperf', 'ping-pong', ...(protocol === 'tcp' ? ['--tcp'] : []), '-i', address, '-p', String(RR_PORTS[protocol]), '-t', String(RR_SECONDS), '-m', '64'];
  const { stdout, stderr } = await client.exec(args[0], args.slice(1), { timeoutMs: (RR_SECONDS + 30) * 1000 });
  const out = stdout + stderr;
  const valid = /RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(out);
  const p99 = /percentile 99\.000 =\s*([\d.]+)/.exec(out);
  if (!valid || Number(valid[3]) === 0) throw new Error(`sockperf ${protocol} to ${address}: no round trip measured:\n${out.slice(-600)}`);
  return { rate: Number(valid[3]) / Number(valid[1]), p99Us: p99 ? Number(p99[1]) : NaN };
}

// ---- the two nodes ----------------------------------------------------------------------------

interface Node {
  side: Side;
  node: Netns;
  pods: Netns[];
  /** ms of each pod's ADD. */
  addMs: number[];
  /** Adds pod i (its namespace made here); the ms its ADD took. */
  add(i: number): Promise<number>;
}

/** Node n1 with netcube: everything of kube-node.ts, the pods' Pod objects in the API. */
async function netcubeNode(t: ExecutionContext, ctx: SuiteContext) {
  const cluster = loadManifests('cluster.yaml').filter((o) => (o.kind === 'Node' && o.metadata.name === NODE) || o.kind === 'Namespace');
  const bed = await kubeNode(t, [...cluster, ...pods.map(podObject)]);
  await startNodeServices(t, bed);
  const { conf } = cniConfig(t, bed);
  const node: Node & { bed: KubeNode } = {
    side: 'netcube',
    node: bed.node,
    pods: [],
    addMs: [],
    bed,
    async add(i) {
      const pod = pods[i];
      const netns = await createNetns(t);
      const env = attachment(netns, pod.id, pod.name);
      const start = process.hrtime.bigint();
      const result = await cni(bed.node, 'ADD', { ...conf, readyTimeoutSeconds: 120 }, { ...env, CNI_ARGS: `${env.CNI_ARGS};IP=${pod.address}` });
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (result.code !== 0) throw new Error(`netcube-cni ADD of ${pod.name}: ${JSON.stringify(result.out)}`);
      node.pods[i] = netns;
      return ms;
    },
  };
  ctx.log(`netcube: node ${NODE} (${bed.node.name}), netcubed pid ${bed.daemon.pid}, the controller and the node's services running`);
  return node;
}

/** Debian's bridge plugin with host-local, as a cluster's bridge config has it: the node the pods' gateway and default route. */
function bridgeConf(range: Record<string, string>, ipamDir: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'bridge-baseline',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: false,
    hairpinMode: true,
    mtu: MTU,
    ipam: { type: 'host-local', ranges: [[range]], dataDir: ipamDir },
  };
}

/** ADD of the pod `netns` (id, name, address) on `node` by Debian's bridge plugin. */
async function bridgeAdd(node: Netns, conf: Record<string, unknown>, netns: Netns, pod: PodSpec): Promise<void> {
  const env = attachment(netns, pod.id, pod.name);
  const result = await cni(node, 'ADD', conf, { ...env, CNI_ARGS: `${env.CNI_ARGS};IP=${pod.address}` }, [path.join(CNI_PATH, 'bridge')]);
  if (result.code !== 0) throw new Error(`bridge ADD of ${pod.name}: ${JSON.stringify(result.out)}`);
}

/** The baseline's node: Debian's bridge + host-local. */
async function bridgeNode(t: ExecutionContext, ctx: SuiteContext): Promise<Node> {
  const nodeNs = await createNetns(t);
  const dir = fs.mkdtempSync(path.join(tmpdir(), `nct-bridge-${process.pid}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const conf = bridgeConf(NODE_POD_RANGE, path.join(dir, 'ipam'));
  // As a kube-proxy node: routing between the pods and the ClusterIPs, bridged frames through iptables.
  await nodeNs.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
  const node: Node = {
    side: 'bridge',
    node: nodeNs,
    pods: [],
    addMs: [],
    async add(i) {
      const pod = pods[i];
      const netns = await createNetns(t);
      const start = process.hrtime.bigint();
      await bridgeAdd(nodeNs, conf, netns, pod);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      node.pods[i] = netns;
      return ms;
    },
  };
  ctx.log(`bridge: node ${nodeNs.name}, Debian's bridge and host-local (${CNI_PATH})`);
  return node;
}

// ---- the figures ------------------------------------------------------------------------------

const inTurn = (sides: Node[], round: number): Node[] => (round % 2 === 0 ? sides : [...sides].reverse());
const HOW = `${ROUNDS} rounds alternating, medians`;

/**
 * What netcubed's log says of its applies so far: how long each took, and the
 * problems of the last (a netdev whose cube could not be fused with its entry).
 */
function daemonApplies(logFile: string): { ms: number[]; unfused: number; why?: string } {
  const entries = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; ms?: number; problems?: string[] });
  const ms = entries.filter((e) => e.msg === 'reconciled' && e.ms !== undefined).map((e) => e.ms!);
  const problems = entries.filter((e) => e.msg === 'applied, with problems').pop()?.problems ?? [];
  const unfused = problems.filter((p) => p.includes('could not be fused'));
  const why = /\(([A-Z]+)\):\n?.*?\n?([^\n]*poke descriptor[^\n]*)/s.exec(unfused[0] ?? '');
  return { ms, unfused: unfused.length, why: why ? `${why[1]}, ${why[2]}` : unfused[0]?.slice(0, 200) };
}

/** k8s.cni.add_ms_p99: every pod, one after the other, the sides in turn. */
async function addFigures(ctx: SuiteContext, netcube: Node & { bed: KubeNode }, bridge: Node): Promise<Result[]> {
  const sides = [netcube, bridge];
  for (let i = 0; i < pods.length; i++) {
    for (const side of inTurn(sides, i)) side.addMs.push(await side.add(i));
  }
  ctx.log(`ADD, ms: ${sides.map((s) => `${s.side} ${s.addMs.map((ms) => ms.toFixed(0)).join(' ')}`).join('; ')}`);
  for (const side of sides) await side.pods[CLIENT].ping(pods[1].address, 3);
  const applies = daemonApplies(netcube.bed.daemon.logFile);
  const appliesText =
    `netcubed's applies took ${applies.ms.map((ms) => ms.toFixed(0)).join(', ')} ms` +
    (applies.unfused > 0 ? `; after the last, ${applies.unfused} pods' netdevs run the general entry, the pods' lbrp could not be fused with it (${applies.why}), and each apply tries again for every one of them` : '');
  ctx.log(appliesText);
  const p99 = { netcube: quantile(netcube.addMs, 0.99), bridge: quantile(bridge.addMs, 0.99) };
  const p50 = { netcube: median(netcube.addMs), bridge: median(bridge.addMs) };
  return [
    {
      name: 'k8s.cni.add_ms_p99',
      value: p99.netcube,
      unit: 'ms',
      baseline: p99.bridge,
      note:
        `${pods.length} pods one after the other, from the runtime's exec of the plugin to its result: netcube-cni p50 ${p50.netcube.toFixed(0)} ms, p99 ${p99.netcube.toFixed(0)} ms ` +
        `(its result waits until netcubed runs the pod's port and the pods' lbrp routes the pod's address: the controller's pass, a new chain version applied by netcubed, ` +
        `netcube-lbrp's tables; and a Node.js process starting); bridge p50 ${p50.bridge.toFixed(0)} ms, p99 ${p99.bridge.toFixed(0)} ms (a Go binary: the veth on cni0, no controller); ` +
        `each ADD in ms: netcube ${netcube.addMs.map((ms) => ms.toFixed(0)).join(', ')}; ${appliesText}`,
    },
    { name: 'k8s.cni.bridge_add_ms_p99', value: p99.bridge, unit: 'ms' },
  ];
}

/** What k8s.pod.rr runs between: a node's pods 0 and 1, or the direct pair. */
interface RrPair {
  side: Side | 'direct';
  pods: Netns[];
}

/**
 * The bound of k8s.pod.rr: pods 0 and 1 on the two ends of one veth (their
 * addresses, MTU 1450), no forwarder at all between them.
 */
async function directPair(t: ExecutionContext): Promise<RrPair> {
  const [client, server] = [await createNetns(t), await createNetns(t)];
  await createVethPair(client, server, ['eth0', 'eth0'], [pods[CLIENT].address, pods[1].address]);
  for (const ns of [client, server]) await ns.exec('ip', ['link', 'set', 'eth0', 'mtu', String(MTU)]);
  return { side: 'direct', pods: [client, server] };
}

/** k8s.pod.rr_ratio (TCP) and k8s.pod.rr_udp_ratio: sockperf servers in pod 1 of each side, the client in pod 0; the direct pair beside them. */
async function rrFigures(ctx: SuiteContext, closers: Closer[], sides: RrPair[]): Promise<Result[]> {
  const server = pods[1].address;
  for (const side of sides) {
    for (const protocol of ['tcp', 'udp'] as const) {
      const args = [...pin(1), 'sockperf', 'server', ...(protocol === 'tcp' ? ['--tcp'] : []), '-i', server, '-p', String(RR_PORTS[protocol])];
      spawnIn(side.pods[1], args, closers).stdout!.resume();
    }
    await waitFor(`the ${side.side} sockperf server`, async () => {
      await side.pods[CLIENT].exec('bash', ['-c', `exec 3<>/dev/tcp/${server}/${RR_PORTS.tcp}`]);
      return true;
    }, 10_000);
  }
  const rr = Object.fromEntries(sides.map((s) => [s.side, { tcp: [] as RrRun[], udp: [] as RrRun[] }])) as Record<RrPair['side'], Record<'tcp' | 'udp', RrRun[]>>;
  for (let round = 0; round < ROUNDS; round++) {
    // Each side in each place over the rounds.
    const order = sides.map((_, i) => sides[(i + round) % sides.length]);
    for (const side of order) {
      for (const protocol of ['tcp', 'udp'] as const) rr[side.side][protocol].push(await pingPong(side.pods[CLIENT], server, protocol));
    }
    ctx.log(`rr round ${round + 1}/${ROUNDS}: ${sides.map((s) => `${s.side} tcp ${rr[s.side].tcp[round].rate.toFixed(0)}/s, udp ${rr[s.side].udp[round].rate.toFixed(0)}/s`).join('; ')}`);
  }
  const rate = (side: RrPair['side'], p: 'tcp' | 'udp'): number => median(rr[side][p].map((r) => r.rate));
  const ratios = (p: 'tcp' | 'udp', of: RrPair['side'] = 'netcube'): number[] => rr[of][p].map((r, i) => r.rate / rr.bridge[p][i].rate);
  const p99 = (side: RrPair['side'], p: 'tcp' | 'udp'): number => median(rr[side][p].map((r) => r.p99Us));
  const note = (p: 'tcp' | 'udp'): string =>
    `sockperf ping-pong over ${p.toUpperCase()}, 64-byte messages, ${RR_SECONDS} s a run, pod ${pods[CLIENT].address} → pod ${server} on one node, ` +
    `client and server on CPUs of their own: netcube ${rate('netcube', p).toFixed(0)} round trips/s (p99 ${p99('netcube', p).toFixed(1)} µs one way), ` +
    `bridge ${rate('bridge', p).toFixed(0)} (p99 ${p99('bridge', p).toFixed(1)} µs); per-round ratios ${ratios(p).map((r) => r.toFixed(2)).join(', ')}. ` +
    `The bound: the two pods on one veth, no forwarder, ${rate('direct', p).toFixed(0)} round trips/s, ${median(ratios(p, 'direct')).toFixed(2)}x the bridge ` +
    `(per round ${ratios(p, 'direct').map((r) => r.toFixed(2)).join(', ')}): what any data plane could gain over it here; ${HOW}`;
  return [
    { name: 'k8s.pod.rr_ratio', value: median(ratios('tcp')), unit: 'x', baseline: rate('bridge', 'tcp'), target: TARGETS.rr, note: note('tcp') },
    { name: 'k8s.pod.rr.netcube', value: rate('netcube', 'tcp'), unit: 'round trips/s' },
    { name: 'k8s.pod.rr.bridge', value: rate('bridge', 'tcp'), unit: 'round trips/s' },
    { name: 'k8s.pod.rr.direct_ratio', value: median(ratios('tcp', 'direct')), unit: 'x', baseline: rate('bridge', 'tcp'), note: 'the two pods on one veth (no forwarder) against the bridge: the bound of k8s.pod.rr_ratio' },
    { name: 'k8s.pod.rr_udp_ratio', value: median(ratios('udp')), unit: 'x', baseline: rate('bridge', 'udp'), note: note('udp') },
  ];
}

/**
 * k8s.svc.conn_ratio_<SERVICES>: conn_rate servers in the backend pods, the Services
 * written to netcube's API server (as the cluster's controllers would) and as
 * kube-proxy's rules into the bridge node.
 */
async function connFigures(ctx: SuiteContext, closers: Closer[], netcube: Node & { bed: KubeNode }, bridge: Node): Promise<Result[]> {
  const sides = [netcube, bridge];
  const tool = connRateTool(ctx);
  for (const side of sides) {
    for (const b of BACKENDS) {
      const server = spawnIn(side.pods[b], [tool, 'serve', String(BACKEND_PORT)], closers);
      await new Promise<void>((resolve, reject) => {
        server.stdout!.once('data', () => {
          server.stdout!.resume();
          resolve();
        });
        server.once('exit', (code) => reject(new Error(`conn_rate serve in ${side.side} pod ${b} exited (${code})`)));
      });
    }
  }
  const probe = SERVICES >> 1;
  const services = benchServices(SERVICES, 'default', BACKEND_PORT, probe, BACKENDS.map((b) => pods[b].address));
  const vip = services[probe].vip;
  const connect = async (side: Node, seconds = CONN_SECONDS): Promise<ConnRun> => {
    const { stdout } = await side.pods[CLIENT].exec(tool, ['connect', vip, '80', String(seconds), String(CONN_PARALLEL)], { timeoutMs: 60_000 });
    return JSON.parse(stdout) as ConnRun;
  };
  const rate = async (side: Node, what: string): Promise<number> => {
    await connect(side, 0.3); // warming up
    const r = await connect(side);
    if (r.connections === 0) throw new Error(`${what}: no connection to ${vip}:80 got through`);
    if (r.failed > 0) ctx.log(`${what}: ${r.failed} connects failed`);
    return r.connections / r.seconds;
  };

  // netcube: the Services in the API, then the time until the ClusterIP forwards, or the error that stops it.
  const lines = netcube.bed.lines.length;
  let start = Date.now();
  for (const s of services) for (const o of serviceObjects(s)) netcube.bed.api.apply(o);
  /** The first error the controller or the node's services logged since the Services were written: what failed, and why. */
  const failure = (): string | undefined => {
    const line = netcube.bed.lines.slice(lines).find((l) => l.includes('"level":"error"'));
    if (line === undefined) return undefined;
    const { msg, error } = JSON.parse(line) as { msg: string; error?: string };
    return `${msg}${error ? `: ${error.replace(/\s*\n\s*/g, ' ')}` : ''}`;
  };
  let programmedS: number | undefined;
  let netcubeProblem: string | undefined;
  try {
    // Ends at the first error too (a check that throws would only count as "not yet").
    const outcome = await waitFor(`netcube forwarding to ${vip} with ${SERVICES} Services`, async () => {
      const why = failure();
      if (why) return { failed: why };
      return (await connect(netcube, 0.2)).connections > 0 && { failed: undefined };
    }, 600_000, 500);
    if (outcome.failed) throw new Error(`the provider logged "${outcome.failed}"`);
    programmedS = (Date.now() - start) / 1000;
    ctx.log(`netcube: ${SERVICES} Services (${2 * SERVICES} objects) in the API to the ClusterIP forwarding: ${programmedS.toFixed(1)} s`);
  } catch (err) {
    netcubeProblem = (err as Error).message;
    ctx.log(`netcube: ${netcubeProblem}`);
  }

  // bridge: kube-proxy's rules, first the measured Service's alone (the path without the rule walk).
  const rulesFile = path.join(ctx.buildDir, `k8s-kube-proxy-${process.pid}.rules`);
  fs.mkdirSync(ctx.buildDir, { recursive: true });
  const restore = async (list: ClusterIpService[]): Promise<void> => {
    fs.writeFileSync(rulesFile, kubeProxyNatRules(list, DEFAULT_SETTINGS.clusterCidr));
    try {
      await bridge.node.exec('iptables-restore', [rulesFile], { timeoutMs: 600_000 });
    } finally {
      fs.rmSync(rulesFile, { force: true });
    }
  };
  await restore([services[probe]]);
  const iptables1 = await rate(bridge, 'kube-proxy rules, 1 Service');
  start = Date.now();
  await restore(services);
  ctx.log(`bridge: ${SERVICES} Services' rules loaded by iptables-restore in ${Date.now() - start} ms; with 1 Service ${iptables1.toFixed(0)} connections/s`);

  const conns: Record<Side, number[]> = { netcube: [], bridge: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const side of inTurn(sides, round)) {
      if (side.side === 'netcube' && netcubeProblem) continue;
      conns[side.side].push(await rate(side, `${side.side} with ${SERVICES} Services`));
    }
    ctx.log(`conn round ${round + 1}/${ROUNDS}: ${sides.map((s) => `${s.side} ${conns[s.side][round]?.toFixed(0) ?? '-'}`).join(', ')} connections/s`);
  }

  const how =
    `new TCP connections/s from pod ${pods[CLIENT].address} to ClusterIP ${vip}:80 (three backend pods of the node) with ${SERVICES} Services of three endpoints defined, ` +
    `${CONN_PARALLEL} connects in flight, each reset once established, ${CONN_SECONDS} s a run`;
  const bridgeConn = median(conns.bridge);
  const baselines: Result[] = [
    { name: 'k8s.svc.conn.iptables', value: bridgeConn, unit: 'connections/s' },
    { name: 'k8s.svc.conn.iptables_1', value: iptables1, unit: 'connections/s' },
  ];
  const name = `k8s.svc.conn_ratio_${SERVICES}`;
  if (netcubeProblem) {
    return [
      {
        name,
        value: 0,
        unit: 'x',
        baseline: bridgeConn,
        target: TARGETS.conn,
        note: `netcube could not be measured: ${netcubeProblem}. ${how}: kube-proxy's iptables rules ${bridgeConn.toFixed(0)}, with only the measured Service's rules ${iptables1.toFixed(0)}`,
      },
      ...baselines,
    ];
  }
  const netcubeConn = median(conns.netcube);
  const ratios = conns.netcube.map((n, i) => n / conns.bridge[i]);
  return [
    {
      name,
      value: median(ratios),
      unit: 'x',
      baseline: bridgeConn,
      target: TARGETS.conn,
      note:
        `${how}: netcube ${netcubeConn.toFixed(0)} (the pods' lbrp, TC), kube-proxy's iptables rules on the bridge node ${bridgeConn.toFixed(0)} (the Service halfway down KUBE-SERVICES), ` +
        `the bridge with only that Service's rules ${iptables1.toFixed(0)}: the rule walk makes it ${(iptables1 / bridgeConn).toFixed(2)}x slower; ` +
        `per-round ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}; ${HOW}`,
    },
    { name: 'k8s.svc.conn.netcube', value: netcubeConn, unit: 'connections/s' },
    ...baselines,
    { name: 'k8s.svc.program_s', value: programmedS!, unit: 's', note: `${SERVICES} Services and their EndpointSlices written to the API, to netcube forwarding to the measured one (the controller, etcd, netcube-lbrp)` },
  ];
}

// ---- across nodes -----------------------------------------------------------------------------

/** The pods k8s.cross measures, of test/k8s/manifests/multinode.yaml: client-1 on n1, echo-2 on n2. */
const CROSS_PODS = { client: 'client-1', server: 'echo-2' };

interface CrossPair {
  side: CrossSide;
  client: Netns;
  server: Netns;
  /** The client's address, and the server's. */
  from: string;
  address: string;
}

/** The two nodes n1 and n2 of multinode.yaml, as the multi-node tests run them, and the two pods. */
async function netcubeCross(t: ExecutionContext, ctx: SuiteContext, objects: readonly KubeObject[]): Promise<CrossPair> {
  const bed = await kubeCluster(t, objects, ['n1', 'n2']);
  const [client, server] = await Promise.all([bed.addPod(CROSS_PODS.client), bed.addPod(CROSS_PODS.server)]);
  ctx.log(`netcube: nodes n1 and n2 (VXLAN ${SETTINGS.vxlanNetdev} by the node agent), ${client.name} ${client.address} → ${server.name} ${server.address}`);
  return { side: 'netcube', client: client.netns, server: server.netns, from: client.address, address: server.address };
}

/**
 * The same two nodes (addresses, pod ranges, pods) as flannel's vxlan backend makes
 * them: pods on Debian's bridge + host-local; on each node a VXLAN netdev flannel.1
 * holding the first address of its pod range, and for the other node a route to its
 * range via its flannel.1 address, that address's neighbour entry (its MAC) and the
 * MAC's forwarding entry (the node's address): no learning, no flooding.
 */
async function flannelCross(t: ExecutionContext, ctx: SuiteContext, objects: readonly KubeObject[]): Promise<CrossPair> {
  const problems = new Problems();
  const models = ['n1', 'n2'].map((name) => nodeModel(objects.find((o) => o.kind === 'Node' && o.metadata.name === name) as KubeNodeObject, SETTINGS, problems)!);
  const segment = await createSegment(t);
  const dir = fs.mkdtempSync(path.join(tmpdir(), `nct-flannel-${process.pid}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const vtep = (i: number) => ({ address: models[i].podCidrText.split('/')[0], mac: `0e:00:00:00:00:0${i + 1}` });
  const nodes: Netns[] = [];
  for (const [i, model] of models.entries()) {
    const node = await createNetns(t);
    await segment.attach(node, 'eth0', model.address);
    await node.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
    const own = vtep(i);
    await node.exec('ip', ['link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', model.address, 'dev', 'eth0', 'dstport', '4789', 'nolearning']);
    await node.exec('ip', ['link', 'set', 'flannel.1', 'address', own.mac, 'mtu', String(MTU), 'up']);
    await node.exec('ip', ['addr', 'add', `${own.address}/32`, 'dev', 'flannel.1']);
    const o = 1 - i;
    const other = vtep(o);
    await node.exec('ip', ['route', 'add', models[o].podCidrText, 'via', other.address, 'dev', 'flannel.1', 'onlink']);
    await node.exec('ip', ['neigh', 'add', other.address, 'lladdr', other.mac, 'dev', 'flannel.1', 'nud', 'permanent']);
    await node.exec('bridge', ['fdb', 'append', other.mac, 'dev', 'flannel.1', 'dst', models[o].address, 'self', 'permanent']);
    nodes.push(node);
  }
  const pod = async (name: string, id: string): Promise<PodSpec & { netns: Netns }> => {
    const manifest = objects.find((o) => o.kind === 'Pod' && o.metadata.name === name) as KubeObject & { spec: { nodeName: string }; status: { podIP: string } };
    const i = models.findIndex((m) => m.name === manifest.spec.nodeName);
    // The node's range as netcube's nodes lease it (cni-config's).
    const m = models[i];
    const range = { subnet: m.podCidrText, rangeStart: m.podRange.start, rangeEnd: m.podRange.end, gateway: m.gateway };
    const netns = await createNetns(t);
    const spec = { name, id, address: manifest.status.podIP };
    await bridgeAdd(nodes[i], bridgeConf(range, path.join(dir, `ipam-${i}`)), netns, spec);
    return { ...spec, netns };
  };
  const [client, server] = [await pod(CROSS_PODS.client, 'flan0001'), await pod(CROSS_PODS.server, 'flan0002')];
  ctx.log(`flannel: two nodes, Debian's bridge and host-local, flannel.1 VXLAN with static entries, ${client.name} ${client.address} → ${server.name} ${server.address}`);
  return { side: 'flannel', client: client.netns, server: server.netns, from: client.address, address: server.address };
}

/** k8s.cross.tcp_ratio: an iperf3 server in echo-2 of each side, the client in client-1. */
async function crossFigures(t: ExecutionContext, ctx: SuiteContext, closers: Closer[]): Promise<Result[]> {
  const objects = loadManifests('multinode.yaml').filter((o) => o.kind !== 'Node' || o.metadata.name !== 'n3');
  const pairs = [await netcubeCross(t, ctx, objects), await flannelCross(t, ctx, objects)];
  await startIperfServers(pairs, closers, 60_000);
  const gbps: Record<CrossSide, number[]> = { netcube: [], flannel: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const pair of round % 2 === 0 ? pairs : [...pairs].reverse()) gbps[pair.side].push((await iperf(pair.client, pair.address, IPERF_SECONDS)).gbps);
    ctx.log(`cross round ${round + 1}/${ROUNDS}: ${pairs.map((p) => `${p.side} ${gbps[p.side][round].toFixed(2)} Gbit/s`).join(', ')}`);
  }
  const ratios = gbps.netcube.map((g, i) => g / gbps.flannel[i]);
  const [netcube, flannel] = [median(gbps.netcube), median(gbps.flannel)];
  return [
    {
      name: 'k8s.cross.tcp_ratio',
      value: median(ratios),
      unit: 'x',
      baseline: flannel,
      target: TARGETS.cross,
      note:
        `iperf3 TCP, one stream, ${IPERF_SECONDS} s a run after 1 s left out, pod ${pairs[0].from} of n1 → pod ${pairs[0].address} of n2 over VXLAN, ` +
        `client and server on CPUs of their own (the sender's CPU also carries its node's forwarding and encapsulation, in softirq): ` +
        `netcube ${netcube.toFixed(2)} Gbit/s (pods' lbrp, router, the kernel's VXLAN netdev, and back up on n2), flannel's vxlan backend ${flannel.toFixed(2)} Gbit/s ` +
        `(bridge, routing, flannel.1); per-round ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}; ${HOW}`,
    },
    { name: 'k8s.cross.tcp.netcube', value: netcube, unit: 'Gbit/s' },
    { name: 'k8s.cross.tcp.flannel', value: flannel, unit: 'Gbit/s' },
  ];
}

// ---- the suite --------------------------------------------------------------------------------

async function measure(ctx: SuiteContext, closers: Closer[], failed: () => boolean): Promise<Result[]> {
  const t = benchTest(closers, ctx, failed);
  const only = process.env.NC_BENCH_ONLY;
  const part = (name: string): boolean => !only || only === name;
  const results: Result[] = [];
  if (only !== 'cross.tcp') {
    const netcube = await netcubeNode(t, ctx);
    const bridge = await bridgeNode(t, ctx);
    results.push(...(await addFigures(ctx, netcube, bridge)));
    if (part('pod.rr')) results.push(...(await rrFigures(ctx, closers, [netcube, bridge, await directPair(t)])));
    if (part('svc.conn')) results.push(...(await connFigures(ctx, closers, netcube, bridge)));
  }
  if (part('cross.tcp')) results.push(...(await crossFigures(t, ctx, closers)));
  return results;
}

export const suite: Suite = {
  name: 'k8s',
  description: 'netcube as a Kubernetes provider on one node vs Debian\'s bridge + host-local CNI plugins and kube-proxy\'s iptables rules: CNI ADD to ready, pod-to-pod request/response, new connections to a ClusterIP among 5,000 Services; TCP across two nodes vs flannel\'s vxlan backend',
  async run(ctx) {
    const closers: Closer[] = [];
    let failed = false;
    try {
      return await measure(ctx, closers, () => failed);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      await closeAll(closers, ctx.log);
    }
  },
};

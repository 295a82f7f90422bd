// netcubed as one object: opens the runtime (adopting what is pinned), serves the
// API at once — reads work even while etcd is away — and keeps trying to reach
// etcd; once there it reconciles and registers the host under a lease.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { identityOfCertificate } from '@netcube/api/grpc/identity';
import { etcdEndpoints, HostLease, RegisteredCubeType, Store, StoreUnavailableError } from '@netcube/api/store';
import { Logger } from '@netcube/api/log';
import { sameTableFacts, tableFacts } from '@netcube/api/chain';
import { startApi } from '../api/server';
import { ApiContext, ApiServer } from '../api/context';
import { HeavyCalls } from '../api/heavy';
import { DataPlaneLogs } from '../runtime/logs';
import { DEFAULT_SLOW_PATH_BUDGET, SlowPath } from '../slowpath/dispatcher';
import { Runtime } from '../runtime/runtime';
import { CubeType } from '../runtime/types';
import { DaemonConfig, isLoopback } from './config';
import { Metrics } from './metrics';
import { NetdevWatch } from './netdev-watch';
import { Reconciler } from './reconciler';
import { hostCheck } from '../chain';

export const VERSION: string = (require('../../../../../package.json') as { version: string }).version;

export class Daemon {
  private store?: Store;
  private lease?: HostLease;
  private api?: ApiServer;
  private metricsServer?: http.Server;
  private readonly stopping = new AbortController();
  private connecting?: Promise<void>;
  private netdevs?: NetdevWatch;
  private readonly heavy = new HeavyCalls();

  private constructor(
    readonly config: DaemonConfig,
    readonly log: Logger,
    readonly runtime: Runtime,
    readonly reconciler: Reconciler,
    readonly metrics: Metrics,
    readonly logs: DataPlaneLogs,
    readonly slowPath: SlowPath,
  ) {}

  static async start(config: DaemonConfig, log: Logger): Promise<Daemon> {
    // root's alone, but for the viewer group passing through to the socket.
    fs.mkdirSync(config.root, { recursive: true });
    fs.chownSync(config.root, 0, config.viewerGid ?? 0);
    fs.chmodSync(config.root, config.viewerGid === undefined ? 0o700 : 0o710);
    const { hostRate, cubeRate } = config.slowPath;
    const runtime = await Runtime.open({
      root: config.root,
      netns: config.netns,
      xdpMode: config.xdpMode,
      slowPath: { rate: cubeRate, burst: Math.max(1, Math.round(cubeRate / 10)) },
      typePolicy: config.typePolicy,
    });
    const a = runtime.adoption;
    log.info('runtime opened', {
      root: config.root,
      adopted: { cubes: a.adoptedCubes.length, netdevs: a.adoptedNetdevs.length },
      orphansRemoved: a.orphansRemoved,
      missing: a.missing,
      healed: a.healed,
      transientRemoved: a.transientRemoved,
    });
    // A type whose objects are refused stays out; every other type and chain goes on.
    for (const t of a.brokenTypes) log.error('cube type refused: its objects are kept but not used', { type: t.name, error: t.error });
    const metrics = new Metrics();
    metrics.start();
    const reconciler = new Reconciler(config.name, runtime, log.with({ part: 'reconciler' }), metrics);
    const logs = new DataPlaneLogs(runtime.host.logRing, (id) => runtime.cubeNameById(id));
    const slowPath = new SlowPath(runtime, { ...DEFAULT_SLOW_PATH_BUDGET, hostRate });
    slowPath.start();
    // The inject veth takes 150-250 ms to set up: done now, in the background,
    // rather than under the first packet-out (an ARP reply someone waits for).
    runtime.preparePacketOut().then(
      () => log.debug('packet-out ready'),
      (err: Error) => log.warn('could not set packet-out up; the first packet-out tries again', { error: err.message }),
    );
    const daemon = new Daemon(config, log, runtime, reconciler, metrics, logs, slowPath);
    // A chain that failed for want of a netdev goes through once it appears.
    daemon.netdevs = new NetdevWatch(config.netns, log.with({ part: 'netdevs' }));
    daemon.netdevs.on('changed', ({ added }) => reconciler.retryFailed(added.length ? `netdevs appeared: ${added.join(', ')}` : 'netdevs changed'));
    try {
      const { cert, key, ca } = config.tls ?? {};
      const api = await startApi(daemon.context(), {
        socket: config.socket,
        viewerGid: config.viewerGid,
        listen: config.listen,
        tls: cert && key && ca ? { cert, key, ca } : undefined,
      });
      daemon.api = api;
      log.info('serving gRPC', { endpoints: api.endpoints });
      if (config.metrics) daemon.metricsServer = await daemon.serveMetrics(config.metrics);
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    if (!etcdEndpoints(config.etcd).secure && !config.etcd.every((e) => e.startsWith('unix:') || isLoopback(e.replace(/^http:\/\//, '').replace(/:\d+$/, ''))))
      log.warn('etcd is reached without TLS: whoever reaches it can change what this host runs; use https:// endpoints and --tls-*', { etcd: config.etcd });
    daemon.connecting = daemon.connect().catch((err) => log.error('connecting to etcd failed; serving from pinned state', { error: (err as Error).message }));
    return daemon;
  }

  private context(): ApiContext {
    return {
      host: this.config.name,
      netns: this.config.netns,
      version: VERSION,
      runtime: this.runtime,
      reconciler: this.reconciler,
      logs: this.logs,
      slowPath: this.slowPath,
      metrics: this.metrics,
      log: this.log.with({ part: 'api' }),
      heavy: this.heavy,
      store: () => {
        if (!this.store) throw new StoreUnavailableError(`etcd (${this.config.etcd.join(', ')}) has not been reached yet: nothing was changed`);
        return this.store;
      },
      storeConnected: () => this.store !== undefined && this.lease?.state === 'alive',
    };
  }

  /** Reaches etcd (retrying with backoff, for ever), starts reconciling, registers the host. */
  private async connect(): Promise<void> {
    let delay = 250;
    for (let attempt = 1; !this.stopping.signal.aborted; attempt++) {
      try {
        this.store = await Store.connect({
          endpoints: this.config.etcd,
          tls: this.config.tls,
          auth: this.config.etcdAuth,
          hostCheck,
          retry: { timeoutMs: 5_000 },
          onRetry: (e) => this.log.debug('etcd call retried', { operation: e.operation, attempt: e.attempt, error: e.error.message }),
        });
        break;
      } catch (err) {
        this.log.warn('etcd unreachable; serving from pinned state meanwhile', { etcd: this.config.etcd, attempt, retryInMs: delay, error: (err as Error).message });
        await this.pause(delay);
        delay = Math.min(delay * 2, 10_000);
      }
    }
    const store = this.store;
    if (!store || this.stopping.signal.aborted) return;
    // The data plane first: the reconciler follows the chains at once (a restarted
    // host catches up without waiting for the rest). Then the built-in types, and
    // only then the registration: a host that is registered is one whose types the
    // cluster knows, so a chain applied as soon as it appears validates against them.
    await this.reconciler.follow(store, this.config.reconcileIntervalMs);
    await this.publishBuiltinTypes(store);
    const lease = await this.register(store);
    if (!lease) return;
    this.lease = lease;
    this.lease.on('lost', (err) => this.log.warn('host registration lost', { error: err.message }));
    this.lease.on('recovered', ({ newLease }) => this.log.info('host registered again', { newLease }));
    this.log.info('connected to etcd', { etcd: this.config.etcd });
  }

  /** Registers the host under a lease, retrying with backoff while etcd is away; undefined once stopping. */
  private async register(store: Store): Promise<HostLease | undefined> {
    let delay = 250;
    while (!this.stopping.signal.aborted) {
      try {
        return await store.hosts.register(
          {
            name: this.config.name,
            endpoints: this.api!.endpoints.map((e) => (e.startsWith('unix:') || !this.config.advertise ? e : this.config.advertise)),
            startedAt: new Date().toISOString(),
            kernel: os.release(),
            features: ['xdp', 'tc', 'ringbuf', 'xdp-live-frames', 'btf'],
          },
          this.config.leaseTtl,
        );
      } catch (err) {
        if (this.stopping.signal.aborted) break;
        this.log.warn('could not register the host in etcd; retrying', { retryInMs: delay, error: (err as Error).message });
        await this.pause(delay);
        delay = Math.min(delay * 2, 10_000);
      }
    }
    return undefined;
  }

  /** Waits `ms`, or less when the daemon stops. */
  private pause(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  /**
   * Makes the built-in cube types known cluster-wide, so chains validate against
   * them. Every daemon does so at every start: one read, and a write only for a
   * type etcd does not have as this build has it.
   */
  private async publishBuiltinTypes(store: Store): Promise<void> {
    let registered: Map<string, RegisteredCubeType>;
    try {
      registered = new Map((await store.types.listTypes()).map((t) => [t.name, t]));
    } catch (err) {
      registered = new Map();
      this.log.warn('could not read the registered cube types', { error: (err as Error).message });
    }
    const same = (have: RegisteredCubeType | undefined, t: CubeType): boolean =>
      !!have &&
      have.transparent === t.transparent &&
      have.microcubes === t.microcubes &&
      (have.decrementsTtl === true) === t.decrementsTtl &&
      have.modes.join() === t.modes.join() &&
      sameTableFacts(have.tables, t.tables.map(tableFacts)) &&
      t.modes.every((m) => !!have.objects[m]?.equals(t.objects[m]!));
    for (const t of this.runtime.types.list().filter((t) => t.builtin)) {
      if (same(registered.get(t.name), t)) continue;
      try {
        await store.types.putType({ name: t.name, transparent: t.transparent, microcubes: t.microcubes, modes: t.modes, decrementsTtl: t.decrementsTtl, tables: t.tables.map(tableFacts), objects: { ...t.objects } });
      } catch (err) {
        this.log.warn('could not publish a built-in cube type', { type: t.name, error: (err as Error).message });
      }
    }
  }

  /**
   * /metrics: plain HTTP on loopback; on any other address HTTPS only, to clients
   * whose certificate (the cluster's CA) names the admin or a viewer.
   */
  private serveMetrics(address: string): Promise<http.Server> {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (req.socket instanceof Object && 'getPeerCertificate' in req.socket) {
        const identity = identityOfCertificate((req.socket as TLSSocket).getPeerCertificate());
        if (identity.role !== 'admin' && identity.role !== 'viewer') {
          res.writeHead(403).end(`${identity.name} may not read the metrics: the admin and viewers may\n`);
          return;
        }
      }
      if (req.url !== '/metrics') {
        res.writeHead(404).end('metrics are at /metrics\n');
        return;
      }
      try {
        const body = this.metrics.render(this.runtime, { storeConnected: this.context().storeConnected(), slowPath: this.slowPath });
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
      } catch (err) {
        res.writeHead(500).end(`${(err as Error).message}\n`);
      }
    };
    const tls = this.config.tls;
    const server = isLoopback(host)
      ? http.createServer(handler)
      : https.createServer(
          { cert: fs.readFileSync(tls!.cert!), key: fs.readFileSync(tls!.key!), ca: fs.readFileSync(tls!.ca!), requestCert: true, rejectUnauthorized: true },
          handler,
        );
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }

  /** Stops serving and lets go of etcd; the data plane stays as it is, pinned. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.netdevs?.close();
    await this.api?.close();
    await new Promise<void>((r) => (this.metricsServer ? this.metricsServer.close(() => r()) : r()));
    await this.connecting?.catch(() => undefined);
    await this.reconciler.close();
    await this.lease?.close().catch(() => undefined);
    await this.store?.close().catch(() => undefined);
    this.logs.close();
    this.slowPath.close();
    this.metrics.stop();
    // The API's close ended every capture session; their transient cubes go before the handles do.
    await this.runtime.idle();
    this.runtime.close();
  }
}

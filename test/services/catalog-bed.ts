// The testbed of the service catalog's tests (firewall, nat, lbrp): one host (a
// namespace with its netcubed), namespaces around it for pods, servers and the
// outside, a real etcd, and the services as processes of their own in the test's
// namespace, reaching the daemon over its unix socket. Traffic is real sockets
// (sockets.ts) run inside the namespaces. Everything goes in close(), also after a
// failure.

import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { ExecutionContext } from 'ava';
import type { JsonObject } from '@netcube/api/chain';
import { Store } from '@netcube/api/store';
import type { ServiceClient } from '@netcube/sdk';
import { NetcubedProcess } from '../helpers/daemon';
import { EtcdCluster } from '../helpers/etcd';
import { Netns, newNetns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';
import { applyChain, ServiceProcess } from './helpers';

const SOCKETS = path.resolve(__dirname, 'sockets.js');

export interface Pod {
  ns: Netns;
  address: string;
  mac: string;
}

export class CatalogBed {
  readonly namespaces: Netns[] = [];
  private readonly closers: (() => unknown)[] = [];
  etcd!: EtcdCluster;
  store!: Store;
  host!: Netns;
  daemon!: NetcubedProcess;
  readonly services = new Map<string, { process: ServiceProcess; api: ServiceClient }>();

  private constructor() {}

  static async open(): Promise<CatalogBed> {
    const bed = new CatalogBed();
    try {
      bed.etcd = await EtcdCluster.start();
      bed.closers.push(() => bed.etcd.stop());
      bed.store = await Store.connect({ endpoints: bed.etcd.endpoints });
      bed.closers.push(() => bed.store.close());
      bed.host = await bed.ns();
      bed.daemon = await NetcubedProcess.start({ netns: bed.host, etcd: bed.etcd.endpoints });
      bed.closers.push(() => bed.daemon.cleanup());
      await bed.daemon.waitConnected();
    } catch (err) {
      await bed.close();
      throw err;
    }
    return bed;
  }

  /** The host's name in chains. */
  get hostName(): string {
    return this.daemon.name;
  }

  /** A namespace without IPv6 (no router solicitations or DAD through the cubes). */
  async ns(): Promise<Netns> {
    const ns = await newNetns();
    this.namespaces.push(ns);
    await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    return ns;
  }

  /**
   * A namespace linked to the host: its eth0 (with `address`, a.b.c.d/len, and a
   * default route through `gateway` when given) to the host's netdev `hostIf`.
   */
  async pod(hostIf: string, address: string, gateway?: string): Promise<Pod> {
    const ns = await this.ns();
    await ns.exec('ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', hostIf, 'netns', this.host.name]);
    await ns.exec('ip', ['addr', 'add', address, 'dev', 'eth0']);
    await ns.exec('ip', ['link', 'set', 'dev', 'eth0', 'up']);
    await this.host.exec('ip', ['link', 'set', 'dev', hostIf, 'up']);
    if (gateway) await ns.exec('ip', ['route', 'add', 'default', 'via', gateway]);
    const [link] = JSON.parse((await ns.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as { address: string }[];
    return { ns, address: address.split('/')[0], mac: link.address };
  }

  /** Starts (a replica of) a service; its config API client comes with it. */
  async service(type: string, replica = `${type}-1`): Promise<{ process: ServiceProcess; api: ServiceClient }> {
    const process = await ServiceProcess.start({ service: type, etcd: this.etcd.endpoints, name: replica, leaseTtl: 5, resyncSeconds: 30 });
    const api = process.client();
    const s = { process, api };
    this.services.set(replica, s);
    this.closers.push(() => api.close(), () => process.cleanup());
    return s;
  }

  apply(yaml: string): Promise<number> {
    return applyChain(this.store, yaml);
  }

  /** Waits until `api`'s service leads and has `cubes` cubes, every one ready. */
  async ready(api: ServiceClient, cubes: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `${cubes} cubes ready`,
      async () => {
        const list = await api.listCubes();
        return list.length === cubes && list.every((c) => c.ready);
      },
      timeoutMs,
    );
  }

  /** Runs sockets.js in `ns` to its end; its last line, parsed. */
  sockets<T = JsonObject>(ns: Netns, args: (string | number)[], timeoutMs = 60_000): Promise<T> {
    return runSockets<T>(ns, args, timeoutMs);
  }

  /** Starts sockets.js in `ns`, for commands that run on (serve, hold); stopped in close(). */
  async background(ns: Netns, args: (string | number)[]): Promise<SocketsProcess> {
    const p = new SocketsProcess(ns, args.map(String));
    this.closers.push(() => p.stop());
    return p;
  }

  /** Logs of the daemon and every service, for a test that failed. */
  logs(t: ExecutionContext): void {
    t.log(`netcubed log:\n${this.daemon.logTail(40)}`);
    for (const [name, s] of this.services) t.log(`service ${name} log:\n${s.process.logTail(60)}`);
  }

  async close(): Promise<void> {
    for (const c of this.closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
    for (const ns of this.namespaces.reverse()) await ns.delete().catch(() => undefined);
  }
}

/** Runs sockets.js in `ns` to its end; its last line, parsed. */
export async function runSockets<T = JsonObject>(ns: Netns, args: (string | number)[], timeoutMs = 60_000): Promise<T> {
  const { stdout } = await ns.exec(process.execPath, [SOCKETS, ...args.map(String)], { timeoutMs });
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** A sockets.js process that runs on: its JSON lines as they come, and a stdin to talk to. */
export class SocketsProcess {
  readonly lines: JsonObject[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private stderr = '';

  constructor(ns: Netns, args: string[]) {
    this.child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, SOCKETS, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as JsonObject);
      } catch {
        this.stderr += `${line}\n`;
      }
    });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first line from `from` on that `match` accepts. */
  async line(what: string, match: (l: JsonObject) => boolean, from = 0, timeoutMs = 20_000): Promise<JsonObject> {
    return waitFor(
      what,
      () => {
        if (!this.running && this.lines.slice(from).every((l) => !match(l))) throw new Error(`sockets.js exited: ${this.stderr}`);
        return this.lines.slice(from).find(match);
      },
      timeoutMs,
      20,
    );
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  async stop(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** In afterEach: the logs of the bed's daemon and services, when the test failed. */
export function logOnFailure(t: ExecutionContext<{ bed?: CatalogBed }>): void {
  if (!t.passed && t.context.bed) t.context.bed.logs(t);
}

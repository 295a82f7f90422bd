// What the service tests share: remote-service processes (in a namespace of their
// own, or the test's), chains written in YAML, certificates for daemons reached
// over a management network.
//
// A service process runs with a parent-death signal, so a worker that dies takes
// it along; stop()/kill() go by its pid, and cleanup happens in the test's teardown.

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { parseChain } from '@netcube/api/chain';
import type { Store } from '@netcube/api/store';
import { ServiceClient } from '@netcube/sdk';
import { CertFiles, Pki } from '../helpers/certs';
import { EtcdBridge } from '../helpers/etcd-bridge';
import { withoutAddon } from '../helpers/native';
import { waitFor } from '../helpers/wait';
import type { Netns } from '../helpers/netns';

const live = new Set<ServiceProcess>();
process.once('exit', () => {
  for (const s of live) s.killNow();
});

export interface ServiceProcessOptions {
  /** bridge, router, or a path to a main.js. */
  service: string;
  etcd: string[];
  name: string;
  /** Runs inside this namespace (etcd bridged into it, unless `etcdBridged`). */
  netns?: Netns;
  /** etcd is already bridged into `netns` (one bridge per namespace: it listens on etcd's ports). */
  etcdBridged?: boolean;
  tls?: { ca?: string; cert?: string; key?: string; serverName?: string };
  /**
   * Seconds of the leader key's lease; the service's own default (5) unless given.
   * Only a test that measures a failover should shorten it: a replica gives up a
   * 2 s lease when a keepalive goes unacknowledged for 1.3 s, which a loaded
   * machine does, and a replica that lost its lease starts over (counters too).
   */
  leaseTtl?: number;
  resyncSeconds?: number;
  args?: string[];
  /** The directory it runs in (where a definition's relative `objects` paths start). */
  cwd?: string;
  /** As on a machine without the native addon (test/helpers/native.ts). */
  withoutAddon?: boolean;
}

/** A remote service replica as a process, serving its config API on a unix socket. */
/** A service's command, as its package's `bin` names it (what `npm run setup` puts on PATH). */
export function serviceCommand(pkg: string): string {
  const manifest = require.resolve(`${pkg}/package.json`);
  const { bin } = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { bin: Record<string, string> };
  return path.resolve(path.dirname(manifest), Object.values(bin)[0]);
}

export class ServiceProcess {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private bridge?: EtcdBridge;
  readonly dir: string;
  /** host:port of its config API, from its log. */
  endpoint?: string;

  private constructor(readonly opts: ServiceProcessOptions) {
    this.dir = fs.mkdtempSync('/run/nct-svc-');
  }

  static async start(opts: ServiceProcessOptions): Promise<ServiceProcess> {
    const s = new ServiceProcess(opts);
    live.add(s);
    try {
      if (opts.netns && !opts.etcdBridged) s.bridge = await EtcdBridge.open(opts.netns.path, opts.etcd, s.dir);
      await s.spawn();
    } catch (err) {
      await s.cleanup();
      throw err;
    }
    return s;
  }

  get logFile(): string {
    return path.join(this.dir, 'service.log');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async spawn(): Promise<void> {
    const o = this.opts;
    const main = o.service.endsWith('.js') ? o.service : serviceCommand(`@netcube/${o.service}`);
    // A unix socket: within the test's reach from any namespace, and without TLS to set up.
    const listen = `unix:${path.join(this.dir, 'api.sock')}`;
    const args = [main, '--etcd', o.etcd.join(','), '--name', o.name, '--listen', listen, '--log-level', 'debug', '--resync', String(o.resyncSeconds ?? 30)];
    if (o.leaseTtl !== undefined) args.push('--lease-ttl', String(o.leaseTtl));
    if (o.tls?.ca) args.push('--tls-ca', o.tls.ca);
    if (o.tls?.cert) args.push('--tls-cert', o.tls.cert, '--tls-key', o.tls.key!);
    if (o.tls?.serverName) args.push('--tls-server-name', o.tls.serverName);
    args.push(...(o.args ?? []));
    const node = o.withoutAddon ? withoutAddon([process.execPath, ...args]) : [process.execPath, ...args];
    const command = o.netns ? ['nsenter', `--net=${o.netns.path}`, '--', ...node] : node;
    fs.writeFileSync(this.logFile, '');
    const log = fs.openSync(this.logFile, 'a');
    const child = spawn('/usr/bin/setpriv', ['--pdeathsig=KILL', '--', ...command], { stdio: ['ignore', log, log], cwd: o.cwd });
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const start = fs.statSync(this.logFile).size;
    this.endpoint = await waitFor(
      `service ${o.name} to serve its config API`,
      () => {
        if (!this.running) throw new Error(`service ${o.name} exited; its log:\n${this.logTail()}`);
        const text = fs.readFileSync(this.logFile, 'utf8').slice(start);
        const line = text.split('\n').find((l) => l.includes('"serving the config API"'));
        return line ? (JSON.parse(line) as { endpoint: string }).endpoint : undefined;
      },
      20_000,
    );
  }

  /** A client of its config API, on its unix socket (the admin there). */
  client(): ServiceClient {
    return ServiceClient.connect({ target: this.endpoint! });
  }

  /** SIGKILL, as a crash. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const late = setTimeout(() => void this.kill(), 10_000);
    await this.exited;
    clearTimeout(late);
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  logTail(lines = 60): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** The JSON lines of its log that have `msg`. */
  logLines(msg: string): Record<string, unknown>[] {
    return fs
      .readFileSync(this.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes(`"msg":${JSON.stringify(msg)}`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async cleanup(): Promise<void> {
    await this.kill();
    this.bridge?.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** @internal at exit */
  killNow(): void {
    if (this.child?.pid && this.running) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.bridge?.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A service process for one test, cleaned up in its teardown (its log shown when the test failed). */
export async function startServiceProcess(t: ExecutionContext, opts: ServiceProcessOptions): Promise<ServiceProcess> {
  const s = await ServiceProcess.start(opts);
  t.teardown(async () => {
    if (!t.passed) t.log(`service ${opts.name} log:\n${s.logTail(80)}`);
    await s.cleanup();
  });
  return s;
}

/** A chain of one cube on `host` whose two ports are linked to two netdevs of the host. */
export function oneCubeChain(chain: string, cube: { name: string; type: string; host: string }, ports: [string, string], netdevs: [string, string]): string {
  return `apiVersion: netcube/v1
kind: Chain
metadata: { name: ${chain} }
spec:
  cubes:
    - { name: ${cube.name}, host: ${cube.host}, type: ${cube.type}, mode: tc, ports: [${ports.join(', ')}] }
  links:
    - { from: ${cube.name}:${ports[0]}, to: netdev:${netdevs[0]} }
    - { from: ${cube.name}:${ports[1]}, to: netdev:${netdevs[1]} }
`;
}

/** Applies a chain given as YAML; returns its new version. */
export async function applyChain(store: Store, yaml: string): Promise<number> {
  return (await store.chains.apply(parseChain(yaml))).version;
}

export interface ManagementCertificates {
  dir: string;
  ca: string;
  /** For every daemon: a host's, with the management addresses as SANs. */
  serverCert: string;
  serverKey: string;
  /** A service's (spiffe://netcube/service/TYPE): for the daemons, and its config API. */
  service(type: string): CertFiles;
  pki: Pki;
  remove(): void;
}

/** A PKI (deploy/certs.sh) with a daemons' certificate whose SANs are `addresses` (and 127.0.0.1); remove() when done. */
export function managementCertificates(addresses: string[]): ManagementCertificates {
  const pki = Pki.make();
  try {
    const server = pki.issue('host', 'daemon', ['IP:127.0.0.1', ...addresses.map((a) => `IP:${a}`)]);
    return { dir: pki.dir, ca: pki.ca, serverCert: server.cert, serverKey: server.key, service: (type) => pki.issue('service', type), pki, remove: () => pki.remove() };
  } catch (err) {
    pki.remove();
    throw err;
  }
}

/** Runs a node script (compiled, under build/js) inside a namespace; resolves with its stdout. */
export function nodeIn(netns: Netns, script: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return netns.exec(process.execPath, [script, ...args], { timeoutMs }).then((r) => r.stdout);
}

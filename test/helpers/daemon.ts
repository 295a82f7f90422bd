// Real netcubed processes for tests. A host is a network namespace: the daemon
// runs in it through `nsenter --net` (not `ip netns exec`, whose private mount
// namespace would take the daemon's bpffs with it), with its own --root under
// /run/nct-d-*, and talks to a test etcd. Started with a parent-death signal, so a
// worker that dies takes its daemons along; cleanup() (in the test's teardown, or
// at exit) kills by pid, removes the data plane, unmounts the bpffs and removes the
// root.

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { NetcubeClient } from '@netcube/api/grpc/client';
import { Runtime } from '../../node-daemon/src/runtime/runtime';
import { EtcdBridge } from './etcd-bridge';
import type { Netns } from './netns';
import { waitFor } from './wait';

const MAIN = path.resolve(__dirname, '../../node-daemon/src/daemon/main.js');
const READY_WITHIN_MS = 30_000;

export interface DaemonOptions {
  /** The host's namespace; without one the daemon runs in the test's own (for TCP on loopback). */
  netns?: Netns;
  /** Host name; default nct<pid>-<n>. */
  name?: string;
  etcd: string[];
  /** TCP with TLS: `127.0.0.1:0` picks a free port (see endpoint). */
  listen?: string;
  tls?: { cert: string; key: string; ca?: string };
  /** More netcubed arguments. */
  args?: string[];
}

const live = new Set<NetcubedProcess>();
process.once('exit', () => {
  for (const d of live) d.cleanupNow();
});

let started = 0;

export class NetcubedProcess {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private bridge?: EtcdBridge;
  /** TCP endpoint as the daemon reports it (the real port when listen said 0). */
  tcpEndpoint?: string;

  private constructor(
    readonly name: string,
    readonly root: string,
    readonly opts: DaemonOptions,
  ) {}

  get socket(): string {
    return path.join(this.root, 'netcubed.sock');
  }
  get target(): string {
    return `unix:${this.socket}`;
  }
  get logFile(): string {
    return path.join(this.root, 'netcubed.log');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts a daemon and waits until its socket answers health checks. */
  static async start(opts: DaemonOptions): Promise<NetcubedProcess> {
    const root = fs.mkdtempSync('/run/nct-d-');
    const d = new NetcubedProcess(opts.name ?? `nct${process.pid}-${++started}`, root, opts);
    live.add(d);
    try {
      // Inside its namespace the daemon reaches etcd through a bridge (etcd-bridge.ts).
      if (opts.netns) d.bridge = await EtcdBridge.open(opts.netns.path, opts.etcd, root);
      await d.spawn();
    } catch (err) {
      await d.cleanup();
      throw err;
    }
    return d;
  }

  private async spawn(): Promise<void> {
    const args = [MAIN, '--name', this.name, '--root', this.root, '--etcd', this.opts.etcd.join(','), '--log-level', 'debug', '--lease-ttl', '3'];
    if (this.opts.listen) args.push('--listen', this.opts.listen);
    if (this.opts.tls) args.push('--tls-cert', this.opts.tls.cert, '--tls-key', this.opts.tls.key, ...(this.opts.tls.ca ? ['--tls-ca', this.opts.tls.ca] : []));
    args.push(...(this.opts.args ?? []));
    const command = this.opts.netns ? ['nsenter', `--net=${this.opts.netns.path}`, '--', process.execPath, ...args] : [process.execPath, ...args];
    const log = fs.openSync(this.logFile, 'a');
    const child = spawn('/usr/bin/setpriv', ['--pdeathsig=KILL', '--', ...command], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + READY_WITHIN_MS;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`netcubed ${this.name} exited while starting; its log:\n${this.logTail()}`);
      if (fs.existsSync(this.socket)) {
        const client = NetcubeClient.connect({ target: this.target, timeoutMs: 2_000 });
        try {
          if ((await client.checkHealth()) === 'SERVING') {
            if (this.opts.listen) this.tcpEndpoint = (await client.getHost()).endpoints.find((e) => !e.startsWith('unix:'));
            return;
          }
        } catch {
          // not yet
        } finally {
          client.close();
        }
      }
      await sleep(100);
    }
    throw new Error(`netcubed ${this.name} did not answer within ${READY_WITHIN_MS} ms; its log:\n${this.logTail()}`);
  }

  /** A client on the unix socket; closed by the caller. */
  client(): NetcubeClient {
    return NetcubeClient.connect({ target: this.target });
  }

  /**
   * Resolves when the daemon has reached etcd and synced the desired state. The bound
   * only ends a hung test: the first reconcile and the built-in types' publication
   * run the verifier, and with both cores busy and other tests' daemons starting they
   * have taken more than 20 s.
   */
  async waitConnected(timeoutMs = 60_000): Promise<void> {
    const client = this.client();
    try {
      await waitFor(`netcubed ${this.name} to reach etcd (its log: ${this.logFile})`, async () => (await client.getHost()).storeConnected, timeoutMs, 100);
    } finally {
      client.close();
    }
  }

  /** SIGKILL, as a crash; the data plane stays pinned. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, and wait until it has stopped. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const late = setTimeout(() => void this.kill(), 10_000);
    await this.exited;
    clearTimeout(late);
  }

  /** kill -9 (when running) and start again on the same root; waits until it answers. */
  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  logTail(lines = 40): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Kills the daemon and removes everything it put on the host. */
  async cleanup(): Promise<void> {
    await this.kill();
    this.bridge?.close();
    try {
      // Opening the runtime adopts what the daemon pinned; destroy() detaches the
      // netdev entries, removes the pins, unmounts the bpffs and removes the root.
      const rt = await Runtime.open({ root: this.root, netns: this.opts.netns?.path });
      await rt.destroy();
    } catch {
      this.cleanupNow();
    }
    live.delete(this);
  }

  /** @internal synchronous last resort, at exit: kill, unmount, remove. */
  cleanupNow(): void {
    this.bridge?.close();
    if (this.child?.pid && this.running) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const bpffs = path.join(this.root, 'bpf');
    try {
      execFileSync('umount', [bpffs], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** A netcubed for one test, cleaned up in its teardown (also when it fails). */
export async function startDaemon(t: ExecutionContext, opts: DaemonOptions): Promise<NetcubedProcess> {
  const d = await NetcubedProcess.start(opts);
  t.teardown(async () => {
    if (!t.passed) t.log(`netcubed ${d.name} log:\n${d.logTail(60)}`);
    await d.cleanup();
  });
  return d;
}

// Real etcd servers for tests: one member or a cluster, on 127.0.0.1 with free ports,
// data in a temporary directory; locked down as a cluster runs it when given a PKI:
// TLS with client certificates for clients and peers, and etcd's access control on
// with netcube's users and roles (@netcube/api's store/access.ts). Every process is
// killed by pid and every directory removed in stop(), in the test's teardown, and
// at the latest when the worker exits.

import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { AccessControl } from '@netcube/api/store/access';
import type { CertFiles, Pki } from './certs';
import { orphans } from './orphans';

const ETCD = process.env.NETCUBE_TEST_ETCD ?? '/usr/bin/etcd';
// setpriv execs etcd (same pid) with a parent-death signal: a worker killed outright
// still takes its etcd servers with it.
const SETPRIV = '/usr/bin/setpriv';
const HEALTHY_WITHIN_MS = 20_000;

export interface EtcdMember {
  name: string;
  /** `127.0.0.1:<port>` (`https://127.0.0.1:<port>` when locked down), what clients connect to. */
  endpoint: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logFile: string;
  process?: ChildProcess;
  /** Its certificate (server, peer, and client of its own health endpoint) when locked down. */
  cert?: CertFiles;
}

export interface EtcdOptions {
  members?: number;
  /** Locked down: TLS and client certificates with this CA, access control on (users by the certificates' CN). */
  pki?: Pki;
}

// Safety net for workers that end without running teardowns (a crash, a timeout).
const live = new Set<EtcdCluster>();
process.once('exit', () => {
  for (const cluster of live) cluster.stopNow();
});

// A worker killed outright cannot clean up; its servers die with it (setpriv) but its
// directory stays: sweep the orphans.
const DIR_PREFIX = 'nct-etcd-';
for (const entry of orphans(readdirSync(tmpdir()), new RegExp(`^${DIR_PREFIX}(\\d+)-`))) {
  rmSync(join(tmpdir(), entry), { recursive: true, force: true });
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly members: EtcdMember[],
    private readonly token: string,
    readonly pki?: Pki,
  ) {}

  /** Starts `members` (1 or an odd number) and waits until every one is healthy; with a PKI, locked down. */
  static async start(options: EtcdOptions = {}): Promise<EtcdCluster> {
    const count = options.members ?? 1;
    const { pki } = options;
    const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    const ports = await freePorts(count * 2);
    const members = Array.from({ length: count }, (_, i) => ({
      name: `m${i}`,
      endpoint: `${pki ? 'https://' : ''}127.0.0.1:${ports[2 * i]}`,
      clientPort: ports[2 * i],
      peerPort: ports[2 * i + 1],
      dataDir: join(dir, `m${i}`),
      logFile: join(dir, `m${i}.log`),
      cert: pki?.issue('etcd', `etcd-${process.pid}-m${i}`),
    }));
    const cluster = new EtcdCluster(dir, members, `nct-${process.pid}-${Date.now()}`, pki);
    live.add(cluster);
    try {
      members.forEach((_, i) => cluster.spawnMember(i));
      await Promise.all(members.map((_, i) => cluster.waitHealthy(i)));
      if (pki) await cluster.access((a) => a.enable());
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Runs `fn` with netcube's access control on this cluster, as etcd's root (locked-down clusters only). */
  async access<T>(fn: (access: AccessControl) => Promise<T>): Promise<T> {
    if (!this.pki) throw new Error('this etcd is not locked down: start it with a PKI');
    const root = this.pki.issue('etcd-root');
    const client = new Etcd3({
      hosts: this.endpoints,
      credentials: { rootCertificate: readFileSync(this.pki.ca), certChain: readFileSync(root.cert), privateKey: readFileSync(root.key) },
    });
    try {
      return await fn(new AccessControl(client));
    } finally {
      client.close();
    }
  }

  get endpoints(): string[] {
    return this.members.map(m => m.endpoint);
  }

  /** SIGKILL, as a crash or power loss; resolves when the process is gone. */
  async kill(member: number): Promise<void> {
    const child = this.members[member].process;
    this.members[member].process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise(resolve => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts a killed member again on its data directory and ports; waits until healthy. */
  async restart(member: number): Promise<void> {
    await this.kill(member);
    this.spawnMember(member);
    await this.waitHealthy(member);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** @internal synchronous cleanup for process exit */
  stopNow(): void {
    for (const member of this.members) {
      if (member.process?.pid) {
        try {
          process.kill(member.process.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private spawnMember(i: number): void {
    const m = this.members[i];
    mkdirSync(m.dataDir, { recursive: true });
    const log = openSync(m.logFile, 'a');
    const scheme = this.pki ? 'https' : 'http';
    const peers = this.members.map(p => `${p.name}=${scheme}://127.0.0.1:${p.peerPort}`).join(',');
    const tls =
      this.pki && m.cert
        ? [
            `--cert-file=${m.cert.cert}`,
            `--key-file=${m.cert.key}`,
            `--trusted-ca-file=${this.pki.ca}`,
            '--client-cert-auth',
            `--peer-cert-file=${m.cert.cert}`,
            `--peer-key-file=${m.cert.key}`,
            `--peer-trusted-ca-file=${this.pki.ca}`,
            '--peer-client-cert-auth',
          ]
        : [];
    const child = spawn(
      SETPRIV,
      [
        '--pdeathsig=KILL',
        '--',
        ETCD,
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${scheme}://127.0.0.1:${m.clientPort}`,
        `--advertise-client-urls=${scheme}://127.0.0.1:${m.clientPort}`,
        `--listen-peer-urls=${scheme}://127.0.0.1:${m.peerPort}`,
        `--initial-advertise-peer-urls=${scheme}://127.0.0.1:${m.peerPort}`,
        ...tls,
        `--initial-cluster=${peers}`,
        '--initial-cluster-state=new', // ignored on restart: the data dir knows the cluster
        `--initial-cluster-token=${this.token}`,
        '--logger=zap',
        '--log-outputs=stderr',
        '--log-level=warn',
      ],
      // No ETCD_* from the environment: the flags alone decide.
      { stdio: ['ignore', log, log], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    closeSync(log);
    m.process = child;
  }

  private async waitHealthy(i: number): Promise<void> {
    const m = this.members[i];
    const deadline = Date.now() + HEALTHY_WITHIN_MS;
    while (Date.now() < deadline) {
      const child = m.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`etcd member ${m.name} exited while starting; its log:\n${tail(m.logFile)}`);
      }
      if (await healthy(m.clientPort, this.pki && m.cert ? { ca: this.pki.ca, ...m.cert } : undefined)) return;
      await sleep(100);
    }
    throw new Error(`etcd member ${m.name} was not healthy within ${HEALTHY_WITHIN_MS} ms; its log:\n${tail(m.logFile)}`);
  }
}

/** Starts etcd for one test; stopped in its teardown, also when the test fails. */
export async function startEtcd(t: ExecutionContext, options: EtcdOptions = {}): Promise<EtcdCluster> {
  const cluster = await EtcdCluster.start(options);
  t.teardown(() => cluster.stop());
  return cluster;
}

function healthy(port: number, tls?: CertFiles & { ca: string }): Promise<boolean> {
  return new Promise(resolve => {
    const options = { host: '127.0.0.1', port, path: '/health', timeout: 1000 };
    const answer = (res: IncomingMessage): void => {
      let body = '';
      res.on('data', chunk => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
    };
    const req = tls
      ? httpsGet({ ...options, ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, answer)
      : get(options, answer);
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Ports the kernel hands out, held together so that they differ from each other. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map(s => (s.address() as { port: number }).port);
  await Promise.all(servers.map(s => new Promise(resolve => s.close(resolve))));
  return ports;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

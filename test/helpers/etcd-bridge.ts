// Lets a daemon inside a test network namespace reach the test etcd on the root
// namespace's loopback, without any route between the namespaces: inside the
// namespace a forwarder process listens on 127.0.0.1 at each etcd member's port
// and hands every connection to a unix socket (the filesystem is shared), where
// the test process connects it on to the member. Killing a member (an outage)
// makes the bridged connections fail just as direct ones would.

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Joins two sockets both ways; either closing closes the other. */
export function pipe(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  const close = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close).on('close', close);
  b.on('error', close).on('close', close);
}

export class EtcdBridge {
  private constructor(
    private readonly servers: net.Server[],
    private readonly forwarder: ChildProcess,
    private readonly sockets: string[],
  ) {}

  /** Bridges `endpoints` (127.0.0.1:port) into the namespace at `netnsPath`; sockets go in `dir`. */
  static async open(netnsPath: string, endpoints: string[], dir: string): Promise<EtcdBridge> {
    const servers: net.Server[] = [];
    const sockets: string[] = [];
    const pairs: string[] = [];
    for (const [i, endpoint] of endpoints.entries()) {
      const [host, port] = endpoint.replace(/^https?:\/\//, '').split(':');
      const socket = path.join(dir, `etcd-${i}.sock`);
      fs.rmSync(socket, { force: true });
      const server = net.createServer((c) => pipe(c, net.connect(Number(port), host)));
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
      servers.push(server);
      sockets.push(socket);
      pairs.push(`${port}=${socket}`);
    }
    const forwarder = spawn('/usr/bin/setpriv', ['--pdeathsig=KILL', '--', 'nsenter', `--net=${netnsPath}`, '--', process.execPath, __filename, ...pairs], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const bridge = new EtcdBridge(servers, forwarder, sockets);
    // The forwarder says "ready" once it listens on every port.
    const giveUp = new AbortController();
    const ready = await Promise.race([
      new Promise<boolean>((resolve) => forwarder.stdout!.once('data', () => resolve(true))),
      new Promise<boolean>((resolve) => forwarder.once('exit', () => resolve(false))),
      sleep(10_000, false, { signal: giveUp.signal }).catch(() => false),
    ]);
    giveUp.abort();
    if (!ready) {
      bridge.close();
      throw new Error(`the etcd bridge into ${netnsPath} did not start`);
    }
    return bridge;
  }

  close(): void {
    if (this.forwarder.exitCode === null && this.forwarder.signalCode === null) this.forwarder.kill('SIGKILL');
    for (const s of this.servers) s.close();
    for (const s of this.sockets) fs.rmSync(s, { force: true });
  }
}

// The forwarder, run inside the namespace: node etcd-bridge.js PORT=SOCKET ...
if (require.main === module) {
  const pairs = process.argv.slice(2).map((a) => a.split('='));
  let listening = 0;
  for (const [port, socket] of pairs) {
    net
      .createServer((c) => pipe(c, net.connect(socket)))
      .listen(Number(port), '127.0.0.1', () => {
        if (++listening === pairs.length) process.stdout.write('ready\n');
      });
  }
}

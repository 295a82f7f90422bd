// Reaches a TCP port in a test namespace (on its loopback) from the test process, without
// any route between the namespaces (etcd-bridge.ts the other way round): the test
// listens on a free port of its own 127.0.0.1, and hands every connection to a unix
// socket (the filesystem is shared) where a forwarder inside the namespace connects
// it on to HOST:PORT there. What the server sees is a TCP peer in its namespace.

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { pipe } from './etcd-bridge';
import type { Netns } from './netns';

export class NetnsPort {
  private constructor(
    private readonly server: net.Server,
    private readonly forwarder: ChildProcess,
    private readonly socket: string,
  ) {}

  /** Forwards a free port of 127.0.0.1 here to `port` of `host` (default its loopback) in `netns`; the socket goes in `dir`. */
  static async open(netns: Netns, port: number, dir: string, host = '127.0.0.1'): Promise<NetnsPort> {
    const socket = path.join(dir, `port-${host}-${port}.sock`);
    fs.rmSync(socket, { force: true });
    const forwarder = spawn('/usr/bin/setpriv', ['--pdeathsig=KILL', '--', 'nsenter', `--net=${netns.path}`, '--', process.execPath, __filename, socket, host, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ready = await new Promise<boolean>((resolve) => {
      forwarder.stdout!.once('data', () => resolve(true));
      forwarder.once('exit', () => resolve(false));
    });
    const server = net.createServer((c) => pipe(c, net.connect(socket)));
    const bridge = new NetnsPort(server, forwarder, socket);
    if (!ready) {
      bridge.close();
      throw new Error(`the forwarder into ${netns.name} did not start`);
    }
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    return bridge;
  }

  /** `127.0.0.1:PORT` that reaches the namespace's port. */
  get endpoint(): string {
    return `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  close(): void {
    if (this.forwarder.exitCode === null && this.forwarder.signalCode === null) this.forwarder.kill('SIGKILL');
    this.server.close();
    fs.rmSync(this.socket, { force: true });
  }
}

/** A NetnsPort for one test, closed in its teardown. */
export async function netnsPort(t: ExecutionContext, netns: Netns, port: number, dir: string, host?: string): Promise<NetnsPort> {
  const p = await NetnsPort.open(netns, port, dir, host);
  t.teardown(() => p.close());
  return p;
}

// The forwarder, run inside the namespace: node netns-port.js SOCKET HOST PORT
if (require.main === module) {
  const [socket, host, port] = process.argv.slice(2);
  net.createServer((c) => pipe(c, net.connect(Number(port), host))).listen(socket, () => process.stdout.write('ready\n'));
}

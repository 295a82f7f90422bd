// A TCP proxy on 127.0.0.1 in front of one endpoint, that can cut the network between
// its clients and the endpoint and restore it, as a partition would: during a cut,
// bytes are lost in both directions and new connections are accepted but hear nothing
// (so clients see timeouts, not resets); on restore, the connections that lived through
// the cut are reset (their byte streams lost data) and new ones work again.

import { createServer, Server, Socket, connect } from 'node:net';
import type { ExecutionContext } from 'ava';

interface Pair {
  client: Socket;
  upstream?: Socket;
}

export class TcpProxy {
  private cutOff = false;
  private readonly flowing = new Set<Pair>();
  private readonly stranded = new Set<Pair>();

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {
    server.on('connection', client => this.accept(client));
  }

  /** A proxy to `target` (`host:port`) on a free port of 127.0.0.1. */
  static async start(target: string): Promise<TcpProxy> {
    const [host, port] = target.split(':');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new TcpProxy(server, { host, port: Number(port) });
  }

  get endpoint(): string {
    return `127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  get isCut(): boolean {
    return this.cutOff;
  }

  cut(): void {
    this.cutOff = true;
    for (const pair of this.flowing) this.strand(pair);
    this.flowing.clear();
  }

  restore(): void {
    this.cutOff = false;
    for (const pair of this.stranded) destroy(pair);
    this.stranded.clear();
  }

  async close(): Promise<void> {
    for (const pair of [...this.flowing, ...this.stranded]) destroy(pair);
    this.flowing.clear();
    this.stranded.clear();
    await new Promise(resolve => this.server.close(resolve));
  }

  private accept(client: Socket): void {
    const pair: Pair = { client };
    client.on('error', () => destroy(pair));
    client.on('close', () => {
      destroy(pair);
      this.flowing.delete(pair);
      this.stranded.delete(pair);
    });
    if (this.cutOff) {
      this.strand(pair);
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    upstream.on('error', () => destroy(pair));
    upstream.on('close', () => destroy(pair));
    client.pipe(upstream);
    upstream.pipe(client);
    this.flowing.add(pair);
  }

  /** Keeps the sockets open but drops everything either side sends. */
  private strand(pair: Pair): void {
    pair.client.unpipe();
    pair.upstream?.unpipe();
    pair.client.removeAllListeners('data');
    pair.upstream?.removeAllListeners('data');
    pair.client.on('data', () => undefined);
    pair.upstream?.on('data', () => undefined);
    this.stranded.add(pair);
  }
}

function destroy(pair: Pair): void {
  pair.client.destroy();
  pair.upstream?.destroy();
}

/** A proxy for one test, closed in its teardown. */
export async function startProxy(t: ExecutionContext, target: string): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(target);
  t.teardown(() => proxy.close());
  return proxy;
}

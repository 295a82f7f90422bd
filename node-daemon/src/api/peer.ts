// Who calls over the unix socket. netcubed listens on it itself rather than through
// grpc-js, reads each connection's SO_PEERCRED (the uid, gid and pid of the process
// that connected, from the kernel), and hands the connection to grpc-js through a
// connection injector. A call finds its connection's credentials again by
// getPeer(), which reports the socket's remoteAddress: an accepted unix socket has
// none, so each connection gets a token of its own there, which no TCP peer's
// address can equal.
//
// The rule (authz.ts): root is admin; a member of the viewer group (--viewer-group)
// is viewer; anyone else has no identity. The socket's mode (0660, group root or
// the viewer group) keeps everyone else from connecting at all.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { PeerCall } from '@netcube/api/grpc/identity';
import { native } from '../bpf/addon';

export interface UnixPeer {
  pid: number;
  uid: number;
  /** The primary gid, and the supplementary groups the process had when it connected. */
  gids: number[];
}

const TOKEN_PREFIX = 'netcubed-unix-peer-';

export class UnixListener {
  private readonly peers = new Map<string, UnixPeer>();
  private next = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly injector: grpc.ConnectionInjector,
  ) {}

  /** Listens on `socket` (which must not exist) and serves `grpcServer`'s services there. */
  static async listen(grpcServer: grpc.Server, socket: string): Promise<UnixListener> {
    const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const server = net.createServer();
    const listener = new UnixListener(server, injector);
    server.on('connection', (conn) => listener.accept(conn));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return listener;
  }

  private accept(conn: net.Socket): void {
    let peer: UnixPeer;
    try {
      const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no file descriptor');
      const cred = native.peerCredentials(fd);
      peer = { pid: cred.pid, uid: cred.uid, gids: [cred.gid, ...supplementaryGroups(cred.pid)] };
    } catch {
      // Nobody to answer to: a connection whose peer cannot be told is not served.
      conn.destroy();
      return;
    }
    const token = `${TOKEN_PREFIX}${++this.next}`;
    this.peers.set(token, peer);
    conn.once('close', () => this.peers.delete(token));
    Object.defineProperty(conn, 'remoteAddress', { value: token, configurable: true });
    this.injector.injectConnection(conn);
  }

  /** The credentials of the unix connection `call` came on; undefined for any other call. */
  peerOf(call: PeerCall): UnixPeer | undefined {
    const peer = call.getPeer();
    return peer.startsWith(TOKEN_PREFIX) ? this.peers.get(peer) : undefined;
  }

  /** Stops accepting; the injector's connections close with the gRPC server. */
  close(): Promise<void> {
    this.injector.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The supplementary groups of `pid` now; none when it is gone already. */
function supplementaryGroups(pid: number): number[] {
  try {
    const line = /^Groups:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
    return line.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

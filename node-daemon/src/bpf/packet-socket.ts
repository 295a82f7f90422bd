// A raw packet socket bound to one interface, for sending whole frames out of it
// (netcube's packet-out enters the data plane this way). Opened from a thread in
// the interface's namespace; sending needs no namespace change.
import { native, type SocketHandle } from './addon';
import { ClosedError } from './errors';
import { checkBuffer, checkIfname, netnsPath } from './validate';

export class PacketSocket {
  #handle: SocketHandle | undefined;
  readonly #fd: number;
  readonly #label: string;

  private constructor(handle: SocketHandle, readonly ifname: string, readonly ifindex: number) {
    this.#handle = handle;
    this.#fd = handle.fd;
    this.#label = `PacketSocket '${ifname}'`;
  }

  /** Opens a socket on `ifname`, in `netns` (a name under /run/netns, or a path) or in ours. */
  static async open(ifname: string, netns?: string): Promise<PacketSocket> {
    checkIfname(ifname, 'ifname');
    const { handle, ifindex } = await native.packetSocket(ifname, netnsPath(netns, 'netns'));
    return new PacketSocket(handle, ifname, ifindex);
  }

  /** Sends one frame; false when the interface's queue is full and it was not sent. */
  send(frame: Uint8Array): boolean {
    if (!this.#handle) throw new ClosedError(this.#label);
    checkBuffer(frame, 'frame');
    return native.packetSend(this.#fd, frame, this.#label);
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  close(): void {
    this.#handle?.close();
    this.#handle = undefined;
  }
}

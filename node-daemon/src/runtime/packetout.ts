// Packet-out: how a control plane's packet enters the data plane.
//
// The runtime keeps a veth pair of its own in the host's namespace, ncinj0 and
// ncinj1. The framework's inject program sits on ncinj1 twice — as its XDP program
// and as its TC ingress filter — and the daemon sends each frame into ncinj0 through
// a packet socket, followed by a trailer that names where it goes (an encoded peer)
// and its metadata. The program of the cube's hook trims the trailer off and
// delivers the frame: into a cube port (ingress) or to a port's peer (egress).
// Frame and metadata travel as one packet: they cannot be paired wrongly.

import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CollectionSpec,
  PacketSocket,
  Program,
  TcFilter,
  XdpLink,
  attachTc,
  attachXdp,
} from '../bpf';
import { INJECT_TRAILER_SIZE, PKT_MAX, writeInjectTrailer } from './abi';
import { HostLayout, HostMaps } from './host';
import { ip } from './netdev';
import { Mode } from './topology';
import { HOST_MAPS } from './types';

/** The host maps the inject program uses: every cube's, and the entries of every cube. */
export const INJECT_HOST_MAPS = [...HOST_MAPS, 'nc_progs'] as const;

export const INJECT_IFNAMES = ['ncinj0', 'ncinj1'] as const;
/** Room for a full frame and the trailer. */
const INJECT_MTU = 2048;
const TC_PRIORITY = 1;
const TC_HANDLE = 0x6e69;

export interface PacketOutContext {
  host: HostMaps;
  layout: HostLayout;
  objectsDir: string;
  netns?: string;
}

export class PacketOut {
  /** Where each frame is put together with its trailer (send() is synchronous). */
  private readonly scratch = Buffer.allocUnsafe(PKT_MAX + INJECT_TRAILER_SIZE);

  private constructor(
    private readonly socket: PacketSocket,
    private readonly programs: Program[],
    private readonly link: XdpLink,
    private readonly ctx: PacketOutContext,
  ) {}

  private static dir(ctx: PacketOutContext): string {
    return path.join(ctx.layout.bpffs, 'host', 'inject');
  }

  /**
   * Sets up the inject veth and its programs, or takes over the ones an earlier
   * daemon left (they are pinned and still attached).
   */
  static async open(ctx: PacketOutContext): Promise<PacketOut> {
    const dir = PacketOut.dir(ctx);
    const adopted = await PacketOut.adopt(ctx).catch(() => undefined);
    if (adopted) return adopted;
    await PacketOut.remove(ctx);
    await ip(ctx.netns, ['link', 'add', INJECT_IFNAMES[0], 'mtu', String(INJECT_MTU), 'type', 'veth', 'peer', 'name', INJECT_IFNAMES[1], 'mtu', String(INJECT_MTU)]);
    const programs: Program[] = [];
    try {
      for (const name of INJECT_IFNAMES) await ip(ctx.netns, ['link', 'set', name, 'up']);
      fs.mkdirSync(dir, { recursive: true });
      const load = async (mode: Mode): Promise<Program> => {
        const spec = CollectionSpec.fromFile(path.join(ctx.objectsDir, 'framework', `inject.${mode}.o`));
        for (const name of INJECT_HOST_MAPS) spec.maps.get(name)!.replaceWith(ctx.host.framework(name, mode));
        const coll = await spec.load();
        const prog = coll.program('nc_inject');
        for (const m of coll.maps.values()) m.close();
        prog.pin(path.join(dir, `${mode}_prog`));
        programs.push(prog);
        return prog;
      };
      const link = await attachXdp({ program: await load('xdp'), ifname: INJECT_IFNAMES[1], netns: ctx.netns, mode: 'native' });
      link.pin(path.join(dir, 'xdp_link'));
      await attachTc({ program: await load('tc'), ifname: INJECT_IFNAMES[1], netns: ctx.netns, direction: 'ingress', priority: TC_PRIORITY, handle: TC_HANDLE });
      const socket = await PacketSocket.open(INJECT_IFNAMES[0], ctx.netns);
      return new PacketOut(socket, programs, link, ctx);
    } catch (err) {
      for (const p of programs) p.close();
      await PacketOut.remove(ctx);
      throw err;
    }
  }

  private static async adopt(ctx: PacketOutContext): Promise<PacketOut | undefined> {
    const dir = PacketOut.dir(ctx);
    if (!fs.existsSync(path.join(dir, 'xdp_link'))) return undefined;
    const xdp = Program.openPinned(path.join(dir, 'xdp_prog'));
    const tc = Program.openPinned(path.join(dir, 'tc_prog'));
    const link = XdpLink.openPinned(path.join(dir, 'xdp_link'));
    const filter = await TcFilter.find({ ifname: INJECT_IFNAMES[1], netns: ctx.netns, direction: 'ingress', priority: TC_PRIORITY, handle: TC_HANDLE });
    if (link.programId !== xdp.id || link.ifindex === 0 || filter?.programId !== tc.id) {
      for (const h of [xdp, tc, link]) h.close();
      return undefined;
    }
    const socket = await PacketSocket.open(INJECT_IFNAMES[0], ctx.netns);
    return new PacketOut(socket, [xdp, tc], link, ctx);
  }

  /** Removes the veth (its programs go with it) and the pins, whoever made them. */
  static async remove(ctx: PacketOutContext): Promise<void> {
    fs.rmSync(PacketOut.dir(ctx), { recursive: true, force: true });
    await ip(ctx.netns, ['link', 'del', INJECT_IFNAMES[0]]).catch((err: Error) => {
      if (!/Cannot find device|does not exist/.test(err.message)) throw err;
    });
  }

  /**
   * Sends `frame` to `peer` (an encoded peer word of generation `gen`), for a cube
   * of `hook`, with metadata words `user`. False when the inject queue was full.
   */
  send(frame: Buffer, peer: bigint, gen: number, hook: Mode, user?: readonly number[]): boolean {
    if (frame.length > PKT_MAX) throw new RangeError(`frame: at most ${PKT_MAX} bytes, got ${frame.length}`);
    frame.copy(this.scratch, 0);
    writeInjectTrailer(this.scratch, frame.length, peer, gen, hook, user);
    return this.socket.send(this.scratch.subarray(0, frame.length + INJECT_TRAILER_SIZE));
  }

  close(): void {
    this.socket.close();
    this.link.close();
    for (const p of this.programs) p.close();
  }

  /** Takes the inject veth away entirely. */
  async destroy(): Promise<void> {
    this.close();
    await PacketOut.remove(this.ctx);
  }
}

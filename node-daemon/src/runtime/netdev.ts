// Where packets enter netcube: the framework's netdev entry program, attached to
// a netdev's ingress (an XDP link, or a TC clsact filter), with its own map of peer
// words (one per generation). It is attached once and never changed; rewiring the
// netdev writes its words.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfMap, CollectionSpec, Program, TcFilter, XdpLink, attachTc, attachXdp, ifindex as resolveIfindex } from '../bpf';
import { HostLayout, HostMaps } from './host';
import { NetdevRecord } from './state';
import { HOST_MAPS } from './types';
import { Mode } from './topology';

/** Our TC filter's place on clsact ingress: first priority, a handle of our own. */
export const TC_PRIORITY = 1;
export const TC_HANDLE = 0x6e63;

export type XdpMode = 'native' | 'generic';

export interface NetdevContext {
  host: HostMaps;
  layout: HostLayout;
  objectsDir: string;
  netns?: string;
  xdpMode: XdpMode;
}

export class NetdevEntry {
  private constructor(
    readonly ifname: string,
    readonly mode: Mode,
    readonly ifindex: number,
    private readonly peers: BpfMap,
    private readonly program: Program,
    private readonly link: XdpLink | undefined,
    private readonly ctx: NetdevContext,
  ) {}

  get key(): string {
    return `${this.ifname}.${this.mode}`;
  }

  get record(): NetdevRecord {
    return { ifname: this.ifname, mode: this.mode, ifindex: this.ifindex };
  }

  /** Loads an entry program for `ifname`, sets its words, then attaches it. */
  static async attach(ctx: NetdevContext, ifname: string, ifindex: number, mode: Mode, words: readonly bigint[]): Promise<NetdevEntry> {
    const dir = ctx.layout.netdev(ifname, mode);
    const spec = CollectionSpec.fromFile(path.join(ctx.objectsDir, 'framework', `netdev.${mode}.o`));
    let program: Program | undefined;
    let peers: BpfMap | undefined;
    let link: XdpLink | undefined;
    try {
      for (const name of HOST_MAPS) spec.maps.get(name)?.replaceWith(ctx.host.framework(name, mode));
      const coll = await spec.load();
      program = coll.programs.get('nc_netdev_ingress')!;
      peers = coll.maps.get('nc_netdev_peer')!;
      for (const [name, m] of coll.maps) if (name !== 'nc_netdev_peer') m.close();
      words.forEach((w, gen) => peers!.storeU64Atomic(gen, w));
      fs.mkdirSync(dir, { recursive: true });
      program.pin(path.join(dir, 'prog'));
      peers.pin(path.join(dir, 'peer'));
      if (mode === 'xdp') {
        link = await attachXdp({ program, ifname, netns: ctx.netns, mode: ctx.xdpMode });
        link.pin(path.join(dir, 'link'));
      } else {
        await attachTc({ program, ifname, netns: ctx.netns, direction: 'ingress', priority: TC_PRIORITY, handle: TC_HANDLE });
      }
      return new NetdevEntry(ifname, mode, ifindex, peers, program, link, ctx);
    } catch (err) {
      spec.close();
      link?.close();
      program?.close();
      peers?.close();
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // The error that matters is the one that brought us here.
      }
      throw err;
    }
  }

  /**
   * Opens an entry an earlier daemon attached and checks it is still live on the
   * same netdev. Returns undefined (after removing what is left) when it is not.
   */
  static async adopt(ctx: NetdevContext, record: NetdevRecord, problems: string[]): Promise<NetdevEntry | undefined> {
    const dir = ctx.layout.netdev(record.ifname, record.mode);
    let program: Program | undefined;
    let peers: BpfMap | undefined;
    let link: XdpLink | undefined;
    try {
      program = Program.openPinned(path.join(dir, 'prog'));
      peers = BpfMap.openPinned(path.join(dir, 'peer'));
      const now = await resolveIfindex(record.ifname, ctx.netns).catch(() => 0);
      if (now !== record.ifindex) throw new Error(`netdev ${record.ifname} is gone or was recreated (ifindex ${record.ifindex} -> ${now || 'none'})`);
      if (record.mode === 'xdp') {
        link = XdpLink.openPinned(path.join(dir, 'link'));
        if (link.ifindex !== record.ifindex || link.programId !== program.id) throw new Error(`the XDP link on ${record.ifname} no longer runs netcube's entry`);
      } else {
        const filter = await TcFilter.find({ ifname: record.ifname, netns: ctx.netns, direction: 'ingress', priority: TC_PRIORITY, handle: TC_HANDLE });
        if (!filter || filter.programId !== program.id) throw new Error(`the TC filter on ${record.ifname} no longer runs netcube's entry`);
      }
      return new NetdevEntry(record.ifname, record.mode, record.ifindex, peers, program, link, ctx);
    } catch (err) {
      problems.push(`netdev ${record.ifname} (${record.mode}): ${(err as Error).message}`);
      const programId = program?.id;
      link?.close();
      program?.close();
      peers?.close();
      await NetdevEntry.remove(ctx, record.ifname, record.mode, programId).catch(() => undefined);
      return undefined;
    }
  }

  /**
   * Removes an entry's pins and takes it off the netdev: the XDP link goes with its
   * last pin and fd; our TC filter is deleted if it still runs `programId`.
   */
  private static async remove(ctx: NetdevContext, ifname: string, mode: Mode, programId: number | undefined): Promise<void> {
    const dir = ctx.layout.netdev(ifname, mode);
    fs.rmSync(path.join(dir, 'link'), { force: true });
    if (mode === 'tc') {
      const filter = await TcFilter.find({ ifname, netns: ctx.netns, direction: 'ingress', priority: TC_PRIORITY, handle: TC_HANDLE }).catch(() => undefined);
      if (filter && (programId === undefined || filter.programId === programId)) await filter.detach();
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /** The entry program, as attached. */
  get entryProgram(): Program {
    return this.program;
  }

  word(gen: number): bigint {
    return this.peers.loadU64(gen);
  }

  setWord(gen: number, word: bigint): void {
    this.peers.storeU64Atomic(gen, word);
  }

  /** Takes the entry off the netdev and removes its pins. */
  async detach(): Promise<void> {
    const programId = this.program.id;
    this.close();
    await NetdevEntry.remove(this.ctx, this.ifname, this.mode, programId);
  }

  close(): void {
    this.link?.close();
    this.program.close();
    this.peers.close();
  }
}

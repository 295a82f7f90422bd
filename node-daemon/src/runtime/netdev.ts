// Where packets enter netcube: the framework's netdev entry program, attached to
// a netdev's ingress (an XDP link, or a TC clsact filter), with its own map of peer
// words (one per generation). It is attached once and never changed; rewiring the
// netdev writes its words. And what the runtime learns of netdevs from `ip`: which
// ones packets may be handed to with bpf_redirect_peer.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BpfMap, CollectionSpec, Program, TcFilter, XdpLink, attachTc, attachXdp, ifindex as resolveIfindex } from '../bpf';
import { HostLayout, HostMaps } from './host';
import { NetdevRecord } from './state';
import { HOST_MAPS } from './types';
import { Mode } from './topology';

/** Our TC filter's place on clsact ingress: first priority, a handle of our own. */
export const TC_PRIORITY = 1;
export const TC_HANDLE = 0x6e63;

export type XdpMode = 'native' | 'generic';

const execFileAsync = promisify(execFile);

/** Runs `ip` in a network namespace (a name under /run/netns, or a path; none: ours); resolves to its output. */
export async function ip(netns: string | undefined, args: string[]): Promise<string> {
  const cmd = netns ? ['nsenter', `--net=${netns.includes('/') ? netns : `/run/netns/${netns}`}`, 'ip', ...args] : ['ip', ...args];
  return (await execFileAsync(cmd[0], cmd.slice(1))).stdout;
}

export interface NetdevContext {
  host: HostMaps;
  layout: HostLayout;
  objectsDir: string;
  netns?: string;
  xdpMode: XdpMode;
}

/** Kinds of netdev that are one end of a pair, with bpf_redirect_peer support (ndo_get_peer_dev). */
const PAIRED_KINDS = new Set(['veth', 'netkit']);

/** A netdev as `ip -d link` shows it in the host's namespace. */
export interface NetdevInfo {
  ifindex: number;
  /** linkinfo.info_kind: veth, bridge ...; undefined for a physical device. */
  kind?: string;
  /** Its root qdisc: noqueue for a veth that nobody shapes. */
  qdisc?: string;
  /** For one end of a pair whose other end lives in another namespace: where that end is. */
  peer?: { netnsid: number; ifindex: number };
}

type IpLink = { ifindex: number; ifname: string; qdisc?: string; link_index?: number; link_netnsid?: number; linkinfo?: { info_kind?: string }; xdp?: unknown };

/** The netdevs of the host's namespace, by name. */
export async function describeNetdevs(netns: string | undefined): Promise<Map<string, NetdevInfo>> {
  const links = JSON.parse(await ip(netns, ['-j', '-d', 'link', 'show'])) as IpLink[];
  return new Map(
    links.map((l) => {
      const kind = l.linkinfo?.info_kind;
      const paired = kind !== undefined && PAIRED_KINDS.has(kind) && l.link_netnsid !== undefined && l.link_index !== undefined;
      return [l.ifname, { ifindex: l.ifindex, kind, qdisc: l.qdisc, peer: paired ? { netnsid: l.link_netnsid!, ifindex: l.link_index! } : undefined }];
    }),
  );
}

/**
 * Of `names`, the netdevs a TC program may deliver to with bpf_redirect_peer (see
 * enum nc_peer_flag): one end of a pair whose other end is in another namespace,
 * where the packet then arrives as if it had crossed the pair — but for what the
 * crossing would have run. So only where that is nothing: no qdisc on this end
 * (noqueue), and no XDP program on the other, which is looked at in its
 * namespace; a namespace `ip netns` cannot name (not under /run/netns) cannot be
 * looked at, and its pairs keep bpf_redirect. None when `ip` fails: packets then
 * simply go the ordinary way.
 */
export async function redirectPeerTargets(netns: string | undefined, names: ReadonlySet<string>): Promise<Set<string>> {
  if (names.size === 0) return new Set();
  try {
    const links = await describeNetdevs(netns);
    const candidates = [...names].filter((n) => links.get(n)?.peer && links.get(n)?.qdisc === 'noqueue');
    if (candidates.length === 0) return new Set();
    const ids = JSON.parse((await ip(netns, ['-j', 'netns', 'list-id'])) || '[]') as { nsid: number; name?: string }[];
    const nameOf = new Map(ids.filter((i) => i.name).map((i) => [i.nsid, i.name!]));
    // One look into each namespace that holds an other end.
    const inside = new Map<number, Promise<IpLink[]>>();
    for (const n of candidates) {
      const { netnsid } = links.get(n)!.peer!;
      const name = nameOf.get(netnsid);
      if (name && !inside.has(netnsid)) inside.set(netnsid, ip(name, ['-j', '-d', 'link', 'show']).then((out) => JSON.parse(out) as IpLink[]));
    }
    const out = new Set<string>();
    for (const n of candidates) {
      const peer = links.get(n)!.peer!;
      const there = await inside.get(peer.netnsid)?.catch(() => undefined);
      const end = there?.find((l) => l.ifindex === peer.ifindex);
      if (end && end.xdp === undefined) out.add(n);
    }
    return out;
  } catch {
    return new Set();
  }
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
      link?.detach();
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
      link?.detach();
      program?.close();
      peers?.close();
      await NetdevEntry.remove(ctx, record.ifname, record.mode, programId).catch(() => undefined);
      return undefined;
    }
  }

  /**
   * Removes an entry's pins and deletes our TC filter if it still runs
   * `programId`. An XDP link its caller holds is detached first: the pin's
   * reference alone would keep the netdev taken for an RCU grace period more.
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
    this.link?.detach();
    this.close();
    await NetdevEntry.remove(this.ctx, this.ifname, this.mode, programId);
  }

  close(): void {
    this.link?.close();
    this.program.close();
    this.peers.close();
  }
}

// Where packets enter netcube: a netdev entry, attached to a netdev's ingress (an
// XDP link, or a TC clsact filter), with its own maps: the netdev's peer word per
// generation, and the prog array of the entry programs those words lead to
// (netcube/netdev.h). And what the runtime learns of netdevs from `ip`: which ones
// packets may be handed to with bpf_redirect_peer.
//
// The program attached is the entry of the netdev's first cube, fused with the
// netdev entry and loaded for this netdev (Cube.loadNetdevEntry): packets run the
// cube without a tail call. It does so only where the netdev's word carries
// NC_PEER_F_FUSED, which this module sets only while that cube's fused program is
// attached; otherwise packets take the general way, a tail call to the cube the
// word names. Rewiring writes words and slots first, as everywhere: a netdev
// whose first cube changes keeps its program, unfused, until the flip is done;
// then the new first cube's fused program replaces it (fuse()), and once no
// packet runs the old one any more (an RCU grace period) the flag goes on again
// (markFused()). Where no fused program can be loaded, the framework's entry
// without a cube (framework/netdev.bpf.c) takes its place.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BpfMap, CollectionSpec, Program, TcFilter, XdpLink, attachTc, attachXdp, ifindex as resolveIfindex } from '../bpf';
import { GENERATIONS, withFused } from './abi';
import type { Cube, NetdevMaps } from './cube';
import { HostLayout, HostMaps } from './host';
import { NetdevRecord } from './state';
import { HOST_MAPS, NETDEV_PEER_MAP, NETDEV_PROGRAM, NETDEV_PROGS_MAP } from './types';
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

/** The cube and port a netdev's packets enter first, in one generation. */
export interface FirstHop {
  cube: Cube;
  port: number;
}

const sameHop = (a: FirstHop | undefined, b: FirstHop | undefined): boolean => a !== undefined && b !== undefined && a.cube === b.cube && a.port === b.port;

const BPF_F_MMAPABLE = 1 << 10;

export class NetdevEntry {
  /** The entry program in each generation's slot (ids, 0 for none). */
  private slots: number[] = new Array<number>(GENERATIONS).fill(0);

  private constructor(
    readonly ifname: string,
    readonly mode: Mode,
    readonly ifindex: number,
    private readonly maps: NetdevMaps,
    private program: Program,
    private readonly attachment: XdpLink | TcFilter,
    private readonly ctx: NetdevContext,
    /** The first hop whose fused entry is attached; undefined for the entry without a cube. */
    private fusedTo: FirstHop | undefined,
  ) {}

  get key(): string {
    return `${this.ifname}.${this.mode}`;
  }

  get record(): NetdevRecord {
    const record: NetdevRecord = { ifname: this.ifname, mode: this.mode, ifindex: this.ifindex };
    if (this.fusedTo) record.fused = { cube: this.fusedTo.cube.name, id: this.fusedTo.cube.id, port: this.fusedTo.port, program: this.program.id };
    return record;
  }

  /** The cube whose fused entry runs on the netdev, if any. */
  get fusedCube(): Cube | undefined {
    return this.fusedTo?.cube;
  }

  /** The cube and port whose fused entry runs on the netdev, if any. */
  get fusedHop(): FirstHop | undefined {
    return this.fusedTo;
  }

  /**
   * Creates the entry's maps with `words` and the entry programs they lead to
   * (`firsts`, per generation), loads the fused entry of `fuse` (or the entry
   * without a cube, when there is none or it fails to load: `problems` says why),
   * and attaches it.
   */
  static async attach(
    ctx: NetdevContext,
    ifname: string,
    ifindex: number,
    mode: Mode,
    words: readonly bigint[],
    firsts: readonly (FirstHop | undefined)[],
    fuse: FirstHop | undefined,
    problems: string[],
  ): Promise<NetdevEntry> {
    const dir = ctx.layout.netdev(ifname, mode);
    const created: BpfMap[] = [];
    let program: Program | undefined;
    let attachment: XdpLink | TcFilter | undefined;
    try {
      const maps: NetdevMaps = {
        // The section of the global nc_netdev_peer[NC_GENERATIONS]: one value of a word per generation.
        peer: BpfMap.create({ type: 'array', keySize: 4, valueSize: 8 * GENERATIONS, maxEntries: 1, flags: BPF_F_MMAPABLE, name: 'nc_netdev_peer' }),
        progs: BpfMap.create({ type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: GENERATIONS, name: 'nc_netdev_progs' }),
      };
      created.push(maps.peer, maps.progs);
      let fusedTo: FirstHop | undefined = fuse;
      program = await NetdevEntry.load(ctx, mode, maps, fuse, ifname, problems).catch(async (err: Error) => {
        if (!fuse) throw err;
        fusedTo = undefined;
        return NetdevEntry.load(ctx, mode, maps, undefined, ifname, problems);
      });
      // Words and slots before the program meets a packet: the current
      // generation's word is the kernel's stack, until the flip.
      words.forEach((w, gen) => {
        const entry = firsts[gen]?.cube.program(0);
        if (entry) maps.progs.setProgram(gen, entry);
        maps.peer.storeU64Atomic(gen, withFused(w, sameHop(firsts[gen], fusedTo)));
      });
      fs.mkdirSync(dir, { recursive: true });
      maps.peer.pin(path.join(dir, 'peer'));
      maps.progs.pin(path.join(dir, 'progs'));
      program.pin(path.join(dir, 'prog'));
      if (mode === 'xdp') {
        const link = await attachXdp({ program, ifname, netns: ctx.netns, mode: ctx.xdpMode });
        attachment = link;
        link.pin(path.join(dir, 'link'));
      } else {
        attachment = await attachTc({ program, ifname, netns: ctx.netns, direction: 'ingress', priority: TC_PRIORITY, handle: TC_HANDLE });
      }
      const entry = new NetdevEntry(ifname, mode, ifindex, maps, program, attachment, ctx, fusedTo);
      entry.slots = firsts.map((f) => f?.cube.program(0).id ?? 0);
      return entry;
    } catch (err) {
      if (attachment instanceof XdpLink) attachment.detach();
      else await attachment?.detach().catch(() => undefined);
      program?.close();
      created.forEach((m) => m.close());
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // The error that matters is the one that brought us here.
      }
      throw err;
    }
  }

  /** The fused entry of `first`, or the entry without a cube. */
  private static async load(ctx: NetdevContext, mode: Mode, maps: NetdevMaps, first: FirstHop | undefined, ifname: string, problems: string[]): Promise<Program> {
    if (first) {
      try {
        return await first.cube.loadNetdevEntry(maps);
      } catch (err) {
        problems.push(`netdev ${ifname}: cube ${first.cube.name} could not be fused with its entry, packets take one tail call more: ${(err as Error).message}`);
        throw err;
      }
    }
    const spec = CollectionSpec.fromFile(path.join(ctx.objectsDir, 'framework', `netdev.${mode}.o`));
    for (const name of HOST_MAPS) spec.maps.get(name)!.replaceWith(ctx.host.framework(name, mode));
    spec.maps.get(NETDEV_PEER_MAP)!.replaceWith(maps.peer);
    spec.maps.get(NETDEV_PROGS_MAP)!.replaceWith(maps.progs);
    const coll = await spec.load();
    for (const m of coll.maps.values()) m.close();
    return coll.program(NETDEV_PROGRAM);
  }

  /**
   * Opens an entry an earlier daemon attached and checks it is still live on the
   * same netdev. Returns undefined (after removing what is left) when it is not.
   * Its program is fused with the cube its record names (found with `cubeOf`)
   * when it is the program the record names; otherwise what it runs is not known,
   * and its words lose the fused flag (packets take the general way, to the same
   * peers) until fuse() and markFused() run again.
   */
  static async adopt(ctx: NetdevContext, record: NetdevRecord, problems: string[], cubeOf: (name: string, id: number) => Cube | undefined): Promise<NetdevEntry | undefined> {
    const dir = ctx.layout.netdev(record.ifname, record.mode);
    const opened: { close(): void }[] = [];
    try {
      const peer = BpfMap.openPinned(path.join(dir, 'peer'));
      opened.push(peer);
      const progs = BpfMap.openPinned(path.join(dir, 'progs'));
      opened.push(progs);
      const now = await resolveIfindex(record.ifname, ctx.netns).catch(() => 0);
      if (now !== record.ifindex) throw new Error(`netdev ${record.ifname} is gone or was recreated (ifindex ${record.ifindex} -> ${now || 'none'})`);
      let attachment: XdpLink | TcFilter | undefined;
      if (record.mode === 'xdp') {
        attachment = XdpLink.openPinned(path.join(dir, 'link'));
        opened.push(attachment);
        if (attachment.ifindex !== record.ifindex) throw new Error(`the XDP link on ${record.ifname} is on another netdev`);
      } else {
        attachment = await TcFilter.find({ ifname: record.ifname, netns: ctx.netns, direction: 'ingress', priority: TC_PRIORITY, handle: TC_HANDLE });
        if (!attachment) throw new Error(`the TC filter on ${record.ifname} is gone`);
      }
      // fuse() pins the program it attaches as prog_next, attaches it, then
      // renames it: a daemon killed in between left the attached one there.
      const program = NetdevEntry.pinnedProgram(dir, attachment.programId);
      if (!program) throw new Error(`the ${record.mode === 'xdp' ? 'XDP link' : 'TC filter'} on ${record.ifname} no longer runs netcube's entry`);
      opened.push(program);
      const fused = record.fused?.program === program.id ? record.fused : undefined;
      const cube = fused && cubeOf(fused.cube, fused.id);
      const entry = new NetdevEntry(record.ifname, record.mode, record.ifindex, { peer, progs }, program, attachment, ctx, cube ? { cube, port: fused.port } : undefined);
      for (let gen = 0; gen < GENERATIONS; gen++) entry.slots[gen] = progs.lookup(u32(gen))?.readUInt32LE(0) ?? 0;
      if (!cube) entry.unfuse();
      return entry;
    } catch (err) {
      problems.push(`netdev ${record.ifname} (${record.mode}): ${(err as Error).message}`);
      const programId = opened.find((h): h is Program => h instanceof Program)?.id;
      const link = opened.find((h): h is XdpLink => h instanceof XdpLink);
      link?.detach();
      opened.forEach((h) => h.close());
      await NetdevEntry.remove(ctx, record.ifname, record.mode, programId).catch(() => undefined);
      return undefined;
    }
  }

  /** The program pinned in `dir` (as prog, or as prog_next by an interrupted fuse()) that runs as `programId`. */
  private static pinnedProgram(dir: string, programId: number): Program | undefined {
    for (const name of ['prog', 'prog_next']) {
      const pin = path.join(dir, name);
      if (!fs.existsSync(pin)) continue;
      const program = Program.openPinned(pin);
      if (program.id !== programId) {
        program.close();
        continue;
      }
      if (name !== 'prog') fs.renameSync(pin, path.join(dir, 'prog'));
      return program;
    }
    return undefined;
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
    return this.maps.peer.loadU64(gen);
  }

  private setWord(gen: number, word: bigint): void {
    this.maps.peer.storeU64Atomic(gen, word);
  }

  /**
   * Sets the netdev's peer in generation `gen`: `word`, leading to `first` (for a
   * cube peer). The slot first, then the word, which carries the fused flag
   * when the program attached is `first`'s fused entry.
   */
  setPeer(gen: number, word: bigint, first: FirstHop | undefined): void {
    this.setSlot(gen, first?.cube.program(0));
    const w = withFused(word, sameHop(first, this.fusedTo));
    if (this.word(gen) !== w) this.setWord(gen, w);
  }

  private setSlot(gen: number, entry: Program | undefined): void {
    if (this.slots[gen] === (entry?.id ?? 0)) return;
    if (entry) this.maps.progs.setProgram(gen, entry);
    else this.maps.progs.clearProgram(gen);
    this.slots[gen] = entry?.id ?? 0;
  }

  /** Re-points slots that lead to program `from` (see Cube.repointPeers). */
  repointPeers(from: number, to: Program | undefined, gens: readonly number[] = [0, 1]): void {
    for (const gen of gens) if (this.slots[gen] === from) this.setSlot(gen, to);
  }

  /**
   * Attaches the fused entry of `first` (the netdev's first hop now), or the
   * entry without a cube when there is none or it cannot be loaded (a problem
   * added to `problems`). Does nothing when that is what runs already, unless
   * `reload` (the cube's entry was replaced). The words lose their fused flag
   * first; markFused() gives it back once no packet runs the old program.
   */
  async fuse(first: FirstHop | undefined, problems: string[], reload = false): Promise<void> {
    const same = first ? sameHop(first, this.fusedTo) : this.fusedTo === undefined;
    if (same && !reload) return;
    let next: Program;
    let fusedTo = first;
    try {
      next = await NetdevEntry.load(this.ctx, this.mode, this.maps, first, this.ifname, problems);
    } catch {
      fusedTo = undefined;
      try {
        next = await NetdevEntry.load(this.ctx, this.mode, this.maps, undefined, this.ifname, problems);
      } catch (err) {
        problems.push(`netdev ${this.ifname}: keeps the entry it has: ${(err as Error).message}`);
        this.unfuse();
        return;
      }
    }
    // The same cube's program again (its entry replaced) may run under the
    // flag at once; another cube's must wait for markFused().
    if (!same || fusedTo !== first) this.unfuse();
    const dir = this.ctx.layout.netdev(this.ifname, this.mode);
    try {
      fs.rmSync(path.join(dir, 'prog_next'), { force: true });
      next.pin(path.join(dir, 'prog_next'));
      if (this.attachment instanceof XdpLink) this.attachment.update(next);
      else await this.attachment.update(next);
      fs.renameSync(path.join(dir, 'prog_next'), path.join(dir, 'prog'));
    } catch (err) {
      next.close();
      fs.rmSync(path.join(dir, 'prog_next'), { force: true });
      throw err;
    }
    this.program.close();
    this.program = next;
    this.fusedTo = fusedTo;
  }

  /** Takes the fused flag off both words: packets take the general way. */
  private unfuse(): void {
    for (let gen = 0; gen < GENERATIONS; gen++) if (this.word(gen) !== withFused(this.word(gen), false)) this.setWord(gen, withFused(this.word(gen), false));
    this.fusedTo = undefined;
  }

  /**
   * Gives the word of generation `gen`, which leads to `first`, the fused flag if
   * the attached program is `first`'s. Only once no packet runs a program
   * attached before (after an RCU grace period since fuse()).
   */
  markFused(gen: number, first: FirstHop | undefined): void {
    if (sameHop(first, this.fusedTo)) this.setWord(gen, withFused(this.word(gen), true));
  }

  /** Takes the entry off the netdev and removes its pins. */
  async detach(): Promise<void> {
    const programId = this.program.id;
    if (this.attachment instanceof XdpLink) this.attachment.detach();
    this.close();
    await NetdevEntry.remove(this.ctx, this.ifname, this.mode, programId);
  }

  close(): void {
    if (this.attachment instanceof XdpLink) this.attachment.close();
    this.program.close();
    this.maps.peer.close();
    this.maps.progs.close();
  }
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

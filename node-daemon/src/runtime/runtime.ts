// The cube runtime of one host: it owns the host's data plane and changes it only
// by applying a whole topology.
//
// apply(next) checks `next` completely and plans what changes (apply-plan.ts,
// pure: which cubes stay, are made or go, and every peer word), then builds every
// new piece (cubes loaded and pinned with their replaced micro-cubes, the
// micro-cubes kept cubes change to loaded, entry programs attached but inert),
// swaps those micro-cubes in (one slot store each), writes the complete peer words
// of the spare generation with the prog-array slots they lead through, flips the
// host's generation with one store, waits for an RCU grace period so no packet
// still follows the old generation, and only then puts fused netdev entries in
// step with the new first cubes (netdev.ts) and removes what `next` no longer
// has. A packet therefore crosses the old topology or the new one, never a mix,
// and a failure before the flip leaves nothing changed.
//
// On top of what apply() is given, the runtime keeps transient layers
// (stackTransient: a capture session's packetcapture cube on a port or a netdev)
// for as long as their session and their target last. They are recorded as such in
// the state, so a daemon that dies during a session removes them when it opens.

import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { ifindex as resolveIfindex, synchronizeRcu, NotFoundError as BpfNotFound } from '../bpf';
import { CubeConfig, GENERATIONS, LogLevel, PKT_MAX, PortStats, encodePeer, slotOf, withFused } from './abi';
import { PlannedHop, planApply, tcOutNetdevs } from './apply-plan';
import { Cube, CubeDeps, HostTables, LoadedMicroCube } from './cube';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors';
import { DEFAULT_SIZES, HostLayout, HostMapSizes, HostMaps, mountBpffs, unmountBpffs } from './host';
import { FirstHop, NetdevContext, NetdevEntry, XdpMode, redirectPeerTargets } from './netdev';
import { PacketOut } from './packetout';
import { CubeRecord, RuntimeState, emptyState, loadState, migrateMicrocubesFile, saveState } from './state';
import {
  Direction,
  Endpoint,
  Topology,
  TransientLayer,
  Wiring,
  CubeSpec,
  Mode,
  emptyTopology,
  endpointMode,
  endpointName,
  transientProblem,
  wire,
  withTransient,
  withoutCubes,
} from './topology';
import type { TypePolicy } from '../typecheck/policy';
import { checkMicroCubeObject, CubeType, TypeRegistry } from './types';
import { checkTableSizes } from './table-sizes';
import { possibleCpus } from '../bpf/addon';
import { Table } from './tables';
import * as fs from 'node:fs';

/** build/bpf, next to build/js where this file runs from. */
export const DEFAULT_OBJECTS_DIR = path.resolve(__dirname, '../../../../bpf');

export interface RuntimeOptions {
  /** Directory for the state file, uploads and the bpffs mount (tmpfs, e.g. /run/netcube/<host>). */
  root: string;
  /** The network namespace (a path such as /run/netns/h1) whose netdevs this host uses; default: our own. */
  netns?: string;
  /** Where the compiled BPF objects are; default: this build's build/bpf. */
  objectsDir?: string;
  xdpMode?: XdpMode;
  sizes?: Partial<HostMapSizes>;
  /** Per-cube limit on packets to the slow path: a token bucket in the data plane. */
  slowPath?: { rate: number; burst: number };
  /** What an uploaded type's objects may hold, and the host's limit on its cubes' maps. */
  typePolicy?: TypePolicy;
}

/** Enough for a busy control plane, little enough that one cube cannot flood the daemon. */
export const DEFAULT_SLOW_PATH = { rate: 100_000, burst: 10_000 };

/** What opening found on the host: pinned state of an earlier daemon, and what had to be repaired. */
export interface AdoptionReport {
  adoptedCubes: string[];
  adoptedNetdevs: string[];
  /** Pinned objects no state referred to, now removed. */
  orphansRemoved: string[];
  /** Objects the state named that were gone from bpffs or the kernel. */
  missing: string[];
  /** Kernel state put back (an emptied slot). */
  healed: string[];
  /** Cube types whose objects were refused (built in, or uploads kept under the root), with why. */
  brokenTypes: { name: string; error: string }[];
  /** Transient cubes of sessions that died with the earlier daemon, now removed. */
  transientRemoved: string[];
}

/** A transient layer of a live session, and what to tell it when an apply cannot keep it. */
interface Transient {
  layer: TransientLayer;
  ended: (why: string) => void;
}

export interface ApplyReport {
  created: string[];
  deleted: string[];
  attached: string[];
  detached: string[];
  /** Whether peer words changed (and the generation flipped). */
  rewired: boolean;
  /** Kept cubes whose settings (log level) were rewritten. */
  reconfigured: string[];
  /** Micro-cubes put in place (a replacement, or the type's program back), as `<cube>/<index>`. */
  microcubes: string[];
  /** Cubes loaded anew because their table sizes changed (also in created): their tables start empty. */
  resized: string[];
  /** What works, but not as well as it should (a netdev whose first cube could not be fused with its entry). */
  problems: string[];
  durationMs: number;
}

export interface ApplyOptions {
  /**
   * The ELF object of a replaced micro-cube (CubeSpec.replacedMicrocubes) by its
   * sha256; asked only for micro-cubes to put in place. Kept for later applies
   * (transient layers) that recreate a cube.
   */
  objects?: (sha256: string) => Promise<Buffer>;
}


const normalise = (t: Topology): Topology => ({
  cubes: t.cubes.map((c) => ({
    name: c.name,
    type: c.type,
    mode: c.mode ?? 'xdp',
    ports: [...(c.ports ?? [])],
    logLevel: c.logLevel ?? 'info',
    ...(Object.keys(c.replacedMicrocubes ?? {}).length > 0 ? { replacedMicrocubes: { ...c.replacedMicrocubes } } : {}),
    ...(Object.keys(c.tableSizes ?? {}).length > 0 ? { tableSizes: { ...c.tableSizes } } : {}),
  })),
  links: t.links.map((l) => ({ a: { ...l.a }, b: { ...l.b } })),
  stacks: t.stacks.map((s) => ({ target: { ...s.target }, layers: s.layers.map((l) => ({ ...l })) })),
});

export class Runtime {
  private readonly cubes = new Map<string, Cube>();
  private readonly netdevs = new Map<string, NetdevEntry>();
  /** Cubes whose slow path is held (holdSlowPath). */
  private readonly slowPathHeld = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  /** The state file's text as last written by save(). */
  private savedState?: string;
  /** Packet-out, once set up (preparePacketOut). */
  private packetOut?: PacketOut;
  private packetOutSetup?: Promise<void>;
  /** Why the last setup failed. */
  private packetOutProblem?: string;
  private closed = false;
  /** The topology apply() was last given: the chains' alone, without the transient layers. */
  private desired: Topology = emptyTopology();
  /** Transient layers on top of `desired`, by cube name. */
  private readonly transient = new Map<string, Transient>();
  /** Where replaced micro-cubes' objects come from (ApplyOptions.objects), once apply() was given it. */
  private objects?: (sha256: string) => Promise<Buffer>;

  private constructor(
    readonly layout: HostLayout,
    readonly host: HostMaps,
    private readonly hostTables: HostTables,
    readonly types: TypeRegistry,
    private state: RuntimeState,
    private readonly netdevCtx: NetdevContext,
    readonly adoption: AdoptionReport,
    private readonly slowPath: { rate: number; burst: number },
  ) {}

  /**
   * Opens the runtime of a host: mounts its bpffs, opens or creates the host maps,
   * and adopts whatever an earlier daemon left pinned, checking it against the
   * kernel. Nothing is changed in the data plane beyond repairs and orphan removal.
   */
  static async open(opts: RuntimeOptions): Promise<Runtime> {
    const layout = new HostLayout(opts.root);
    const objectsDir = opts.objectsDir ?? DEFAULT_OBJECTS_DIR;
    const { mounted } = mountBpffs(layout.bpffs);
    let host: HostMaps | undefined;
    let rt: Runtime | undefined;
    try {
      host = HostMaps.open(layout, { ...DEFAULT_SIZES, ...opts.sizes });
      const types = new TypeRegistry(layout.uploads, opts.typePolicy);
      await types.load(path.join(objectsDir, 'cubes'));
      const hostTables = new HostTables(layout);
      const netdevCtx: NetdevContext = { host, layout, objectsDir, netns: opts.netns, xdpMode: opts.xdpMode ?? 'native' };
      const report: AdoptionReport = {
        adoptedCubes: [],
        adoptedNetdevs: [],
        orphansRemoved: [],
        missing: [],
        healed: [],
        brokenTypes: [...types.broken].map(([name, error]) => ({ name, error })),
        transientRemoved: [],
      };
      const saved = host.adopted ? loadState(layout.state) : undefined;
      rt = new Runtime(layout, host, hostTables, types, saved ?? emptyState(), netdevCtx, report, opts.slowPath ?? DEFAULT_SLOW_PATH);
      await rt.adopt(host.adopted && !saved);
      await rt.removeTransientLeft();
      return rt;
    } catch (err) {
      // Leave the host as we found it: our handles closed, and a bpffs we mounted
      // (so holding only what this call pinned) unmounted. An earlier daemon's
      // mount and pins stay for the next attempt.
      if (rt) rt.close();
      else host?.close();
      if (mounted) unmountBpffs(layout.bpffs);
      throw err;
    }
  }

  private cubeConfig(spec: { name: string; logLevel: LogLevel }): CubeConfig {
    return { logLevel: spec.logLevel, pktRate: this.slowPath.rate, pktBurst: this.slowPath.burst, pktHeld: this.slowPathHeld.has(spec.name) };
  }

  /**
   * Holds the slow path of cube `name`, or lets it go: while held, the data plane
   * drops what the cube sends its controller (counted as pkt_held) instead of
   * copying it for a daemon that has nowhere to put it. The slow path's dispatcher
   * holds a cube whose controller's queue is full, and lets go once it has room. A
   * cube that is not there (deleted meanwhile) is left alone.
   */
  holdSlowPath(name: string, held: boolean): void {
    if (held === this.slowPathHeld.has(name)) return;
    const spec = this.state.topology.cubes.find((c) => c.name === name);
    const cube = this.cubes.get(name);
    if (held && spec && cube) this.slowPathHeld.add(name);
    else this.slowPathHeld.delete(name);
    if (spec && cube) cube.configure(this.cubeConfig(spec));
  }

  /** Lets go of every cube's slow path, also of those a killed daemon left held (their settings are pinned). */
  releaseSlowPaths(): void {
    this.slowPathHeld.clear();
    for (const spec of this.state.topology.cubes) this.cubes.get(spec.name)?.configure(this.cubeConfig(spec));
  }

  private get deps(): CubeDeps {
    return { host: this.host, hostTables: this.hostTables, layout: this.layout, policy: this.types.policy };
  }

  /** `stateLost`: the host maps were pinned but the state file that describes them is gone. */
  private async adopt(stateLost: boolean): Promise<void> {
    const report = this.adoption;
    // A key name@id is a cube an interrupted apply was replacing: adopted so that
    // the next apply finishes the job.
    for (const [key, record] of Object.entries(this.state.cubes)) {
      const name = key.split('@')[0];
      const type = this.types.get(record.type);
      const cube = type && type.digest === record.digest ? Cube.adopt(this.deps, type, name, record, report.healed) : undefined;
      if (cube) {
        this.cubes.set(key, cube);
        report.adoptedCubes.push(key);
      } else {
        report.missing.push(`cube ${key}`);
        delete this.state.cubes[key];
      }
    }
    for (const [key, record] of Object.entries(this.state.netdevs)) {
      const entry = await NetdevEntry.adopt(this.netdevCtx, record, report.missing, (name, id) => {
        const cube = this.cubes.get(name);
        return cube?.id === id ? cube : undefined;
      });
      if (entry) {
        this.netdevs.set(key, entry);
        report.adoptedNetdevs.push(key);
      } else {
        delete this.state.netdevs[key];
      }
    }
    // Pins nobody accounts for: a daemon died between loading and saving its state.
    const cubeDirs = new Set([...this.cubes.values()].map((c) => path.basename(c.dir)));
    for (const [dir, known] of [
      [path.dirname(this.layout.cube('x', 0)), cubeDirs],
      [path.dirname(this.layout.netdev('x', 'xdp')), new Set([...this.netdevs.values()].map((e) => path.basename(this.layout.netdev(e.ifname, e.mode))))],
    ] as const) {
      for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
        if (known.has(name)) continue;
        fs.rmSync(path.join(dir, name), { recursive: true, force: true });
        report.orphansRemoved.push(path.relative(this.layout.bpffs, path.join(dir, name)));
      }
    }
    // Host slots holding programs of no known cube (theirs went with their pins
    // above). A cube fills its slot after pinning itself and empties it before
    // removing its pins, so when every recorded cube was adopted and no pin was an
    // orphan, every filled slot is an adopted cube's. Otherwise any slot can hold
    // a stray program: all are read.
    const clean = !stateLost && report.missing.length === 0 && report.orphansRemoved.length === 0;
    const u32 = Buffer.alloc(4);
    for (const mode of ['xdp', 'tc'] as const) {
      const progs = this.host.progs[mode];
      const owned = new Set([...this.cubes.values()].filter((c) => c.mode === mode).map((c) => slotOf(c.id)));
      if (clean) continue;
      for (let slot = 0; slot < progs.maxEntries; slot++) {
        if (owned.has(slot)) continue;
        u32.writeUInt32LE(slot);
        if (!progs.lookup(u32)) continue;
        progs.clearProgram(slot);
        report.orphansRemoved.push(`${mode} prog-array slot ${slot}`);
      }
    }
    // A state written before replaced micro-cubes were part of the topology.
    migrateMicrocubesFile(this.layout.root, this.state, (name) => {
      const cube = this.cubes.get(name);
      return cube?.type.programs.map((i) => cube.program(i).id);
    });
    this.save();
  }

  /**
   * Removes the transient layers an earlier daemon left: their sessions died with
   * it. Should that apply fail (a netdev gone meanwhile), they stay recorded as
   * transient and the next apply removes them.
   */
  private async removeTransientLeft(): Promise<void> {
    const left = this.state.transient ?? [];
    this.desired = withoutCubes(normalise(this.state.topology), new Set(left));
    if (left.length === 0) return;
    try {
      await this.exclusive(() => this.applyWithTransient(this.desired, []));
      this.adoption.transientRemoved.push(...left);
    } catch {
      // Kept for the next apply, as said above.
    }
  }

  private save(): void {
    this.savedState = saveState(this.layout.state, this.state, this.savedState);
  }

  /** Resolves once every change asked for so far has finished (at stop: the cubes of sessions that just ended removed). */
  idle(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  /** Runs `fn` after every earlier mutation has finished: one change at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The topology last applied. */
  topology(): Topology {
    return normalise(this.state.topology);
  }

  cube(name: string): Cube {
    const c = this.cubes.get(name);
    if (!c) throw new NotFoundError(`no cube named ${name} on this host`);
    return c;
  }

  /** The name of the live cube with data-plane id `id`. */
  cubeNameById(id: number): string | undefined {
    for (const [key, c] of this.cubes) if (c.id === id && !key.includes('@')) return key;
    return undefined;
  }

  cubeNames(): string[] {
    return [...this.cubes.keys()].filter((k) => !k.includes('@')).sort();
  }

  table(cube: string, table: string): Table {
    return this.cube(cube).table(table);
  }

  portStats(cube: string, port: string): PortStats {
    return this.cube(cube).portStats(port);
  }

  /**
   * Sets packet-out up (the inject veth and its programs, 150-250 ms), or takes
   * over an earlier daemon's. The daemon calls it at start, so that the first
   * packet-out (an ARP reply someone waits for) does not wait; later calls return
   * the same promise. A failure is kept for sendPacket to report; the next call
   * tries again.
   */
  preparePacketOut(): Promise<void> {
    if (this.packetOut) return Promise.resolve();
    this.packetOutSetup ??= PacketOut.open({ host: this.host, layout: this.layout, objectsDir: this.netdevCtx.objectsDir, netns: this.netdevCtx.netns }).then(
      (out) => {
        if (this.closed) out.close();
        else this.packetOut = out;
        this.packetOutSetup = undefined;
        this.packetOutProblem = undefined;
      },
      (err: Error) => {
        this.packetOutSetup = undefined;
        this.packetOutProblem = err.message;
        throw err;
      },
    );
    return this.packetOutSetup;
  }

  /** Whether sendPacket can send now (preparePacketOut has finished). */
  get packetOutReady(): boolean {
    return this.packetOut !== undefined;
  }

  /**
   * Sends a control plane's packet into the data plane: into `port` of `cube` as if
   * it arrived there (ingress), or out of it to its peer (egress). Synchronous;
   * false when the inject queue was full and the packet was dropped. Needs
   * preparePacketOut() to have finished.
   */
  sendPacket(p: { cube: string; port: string; direction: 'ingress' | 'egress'; frame: Buffer; user?: readonly number[] }): boolean {
    const cube = this.cube(p.cube);
    const port = cube.transparent ? (['ingress', 'egress'] as const).indexOf(p.port as 'ingress') : cube.ports.get(p.port);
    if (port === undefined || port < 0)
      throw new InvalidArgumentError('port', cube.transparent ? `transparent cube ${p.cube} has the ports ingress and egress` : `cube ${p.cube} has no port ${p.port}`);
    if (p.frame.length < 14 || p.frame.length > PKT_MAX)
      throw new InvalidArgumentError('packet', `a packet-out is an Ethernet frame of 14 to ${PKT_MAX} bytes, got ${p.frame.length}`);
    const out = this.packetOut;
    if (!out)
      throw new FailedPreconditionError(`packet-out is not set up on this host yet${this.packetOutProblem ? `: ${this.packetOutProblem}` : ''}; retry once preparePacketOut() has finished`);
    const gen = this.host.currentGen;
    const peer = p.direction === 'ingress' ? encodePeer({ kind: 'cube', slot: slotOf(cube.id), port }) : cube.word(gen, port);
    return out.send(p.frame, peer, gen, cube.mode, p.user);
  }

  /** Registers an uploaded type, checked apart (CubeType.inspect under this host's policy). */
  async registerType(name: string, objects: Partial<Record<Mode, Buffer>>): Promise<CubeType> {
    return this.types.add(await CubeType.inspect(name, objects, { policy: this.types.policy }));
  }

  /** Registers a type inspected already. */
  addType(type: CubeType): CubeType {
    return this.types.add(type);
  }

  unregisterType(name: string): void {
    this.types.unregister(
      name,
      this.state.topology.cubes.filter((c) => c.type === name).map((c) => c.name),
    );
  }

  /**
   * Brings the data plane to `next`, with the transient layers that can stay on it.
   * One whose target `next` no longer has (or runs in another mode), or that `next`
   * cannot take with it (the tail-call limit), is removed, and its session told why
   * first. Should this apply fail, such a layer stays in the data plane, no longer
   * kept: the next apply removes it. See the top of this file.
   */
  apply(next: Topology, opts: ApplyOptions = {}): Promise<ApplyReport> {
    return this.exclusive(async () => {
      if (opts.objects) this.objects = opts.objects;
      const want = normalise(next);
      // Sessions are told before their cubes go, so that none reads a removed cube's tables.
      const end = (t: Transient, why: string): void => {
        this.transient.delete(t.layer.cube.name);
        t.ended(`${t.layer.cube.name} on ${endpointName(t.layer.target)} was removed: ${why}`);
      };
      for (const t of [...this.transient.values()]) {
        const problem = transientProblem(want, t.layer);
        if (problem) end(t, problem);
      }
      const kept = [...this.transient.values()];
      const problem = kept.length === 0 ? undefined : this.wiringProblem(withTransient(want, kept.map((t) => t.layer)));
      // Unless `want` is wrong by itself: then applyNow says why, and nothing changes.
      if (problem && !this.wiringProblem(want)) for (const t of kept) end(t, `this host's chains changed so that it cannot stay: ${problem}`);
      const report = await this.applyWithTransient(want, [...this.transient.values()]);
      this.desired = want;
      return report;
    });
  }

  /** Why wire() refuses `topo`, or undefined. */
  private wiringProblem(topo: Topology): string | undefined {
    try {
      wire(topo, (t) => this.types.get(t));
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /**
   * Stacks a transparent cube of `type`, named `<prefix>-<n>`, outermost on
   * `target` (a port of a cube or a netdev of the topology apply() was last
   * given), and keeps it there across applies until unstackTransient, or until an
   * apply cannot keep it: then it is removed and `ended` is told why. Returns its
   * name. One per target.
   */
  stackTransient(opts: { type: string; prefix: string; target: Endpoint; direction: Direction; ended: (why: string) => void }): Promise<string> {
    return this.exclusive(async () => {
      const { target } = opts;
      const mode = endpointMode(this.desired, target);
      if (mode === undefined) throw this.unknownTarget(target);
      for (const [name, t] of this.transient)
        if (endpointName(t.layer.target) === endpointName(target))
          throw new FailedPreconditionError(`${endpointName(target)} has ${name} of another session stacked already: one session at a time on it`);
      const taken = new Set([...this.desired.cubes.map((c) => c.name), ...this.transient.keys(), ...this.cubes.keys()].map((k) => k.split('@')[0]));
      let n = 1;
      while (taken.has(`${opts.prefix}-${n}`)) n++;
      const name = `${opts.prefix}-${n}`;
      const t: Transient = { layer: { cube: { name, type: opts.type, mode, ports: [], logLevel: 'info' }, target, direction: opts.direction }, ended: opts.ended };
      await this.applyWithTransient(this.desired, [...this.transient.values(), t]);
      this.transient.set(name, t);
      return name;
    });
  }

  /** Removes a transient layer stackTransient put; one already gone is fine. */
  unstackTransient(name: string): Promise<void> {
    return this.exclusive(async () => {
      if (!this.transient.delete(name)) return;
      await this.applyWithTransient(this.desired, [...this.transient.values()]);
    });
  }

  /** Why `target` is not somewhere a transient layer can go, naming the field to fix. */
  private unknownTarget(target: Endpoint): Error {
    const topo = this.desired;
    if ('netdev' in target) {
      const used = new Set([...topo.links.flatMap((l) => [l.a, l.b]), ...topo.stacks.map((s) => s.target)].flatMap((e) => ('netdev' in e ? [e.netdev] : [])));
      return new InvalidArgumentError('netdev', `the chains of this host use no netdev named ${target.netdev} (they use: ${[...used].sort().join(', ') || 'none'}): name one linked to a cube or stacked on`);
    }
    const cube = topo.cubes.find((c) => c.name === target.cube);
    if (!cube) return new NotFoundError(`no cube named ${target.cube} on this host (its cubes: ${topo.cubes.map((c) => c.name).sort().join(', ') || 'none'})`);
    if (cube.ports.length === 0)
      return new InvalidArgumentError('port', `cube ${target.cube} is transparent (type ${cube.type}) and has no ports: name the port or netdev it is stacked on instead`);
    return new InvalidArgumentError('port', `cube ${target.cube} has no port ${JSON.stringify(target.port)} (its ports: ${cube.ports.join(', ')})`);
  }

  /**
   * Applies `want` with `layers` on top, recorded as transient in the state before
   * anything is built; a failure (which changes nothing) leaves the record as it was.
   */
  private async applyWithTransient(want: Topology, layers: Transient[]): Promise<ApplyReport> {
    const before = this.state.transient;
    this.state.transient = layers.length > 0 ? layers.map((t) => t.layer.cube.name) : undefined;
    try {
      return await this.applyNow(withTransient(want, layers.map((t) => t.layer)));
    } catch (err) {
      this.state.transient = before;
      throw err;
    }
  }

  /**
   * Carries out the plan of bringing the data plane to `next` (apply-plan.ts), in
   * the steps at the top of this file.
   */
  private async applyNow(next: Topology): Promise<ApplyReport> {
    const started = process.hrtime.bigint();
    for (const c of next.cubes) {
      const refused = this.types.get(c.type) ? undefined : this.types.broken.get(c.type);
      if (refused) throw new InvalidArgumentError('type', `cube ${c.name}: cube type ${c.type} is refused on this host: ${refused}`);
    }
    const wiring = wire(next, (t) => this.types.get(t));
    next.cubes.forEach((c, i) => checkTableSizes(`cubes[${i}].tableSizes`, c.name, this.types.get(c.type)!, c.tableSizes, this.types.policy, possibleCpus));
    const [ifindexes, intoPeer] = await Promise.all([this.resolveNetdevs(wiring), redirectPeerTargets(this.netdevCtx.netns, tcOutNetdevs(next, wiring))]);
    const plan = planApply(next, { cubes: this.cubes, topology: this.state.topology }, { type: (t) => this.types.get(t), policy: this.types.policy, wiring, ifindexes, intoPeer, cpus: possibleCpus });
    const specs = new Map(next.cubes.map((c) => [c.name, c]));
    const keep = new Map(plan.keep.map((name) => [name, this.cubes.get(name)!]));
    const drop = plan.drop.map((key) => this.cubes.get(key)!);
    // The objects of the micro-cubes that change, checked apart before anything is built.
    const microcubes = new Map<string, { index: number; elf: Buffer }[]>();
    for (const [name, changes] of plan.microcubes) {
      const spec = specs.get(name)!;
      microcubes.set(name, await Promise.all(changes.map(async ({ index, digest }) => ({ index, elf: await this.microCubeObject(spec, index, digest) }))));
    }

    // 1. Build: new cubes, complete but unreachable, with their replaced
    //    micro-cubes; the micro-cubes kept cubes change to, loaded but not in place.
    const fresh: Cube[] = [];
    const loaded: { cube: Cube; micro: LoadedMicroCube }[] = [];
    const undo = async (attached: NetdevEntry[]): Promise<void> => {
      for (const e of attached) await e.detach().catch(() => undefined);
      for (const { micro } of loaded) micro.close();
      for (const c of fresh) c.destroy();
    };
    try {
      for (const { spec, id } of plan.create) {
        const cube = await Cube.create(this.deps, this.types.get(spec.type)!, { name: spec.name, id, mode: spec.mode, ports: plan.ports.get(spec.name)!, config: this.cubeConfig(spec), tableSizes: spec.tableSizes });
        fresh.push(cube);
        for (const change of microcubes.get(spec.name) ?? []) await cube.replaceMicroCube(change.index, change.elf);
      }
      for (const [name, cube] of keep) for (const change of microcubes.get(name) ?? []) loaded.push({ cube, micro: await cube.loadMicroCube(change.index, change.elf) });
    } catch (err) {
      await undo([]);
      throw err;
    }
    const live = new Map<string, Cube>([...keep, ...fresh.map((c) => [c.name, c] as const)]);

    // 2. The plan's words of the spare generation lead into these cubes.
    const gen = this.host.currentGen;
    const spare = (gen + 1) % GENERATIONS;
    const firstOf = (first: PlannedHop | undefined): FirstHop | undefined => first && { cube: live.get(first.cube)!, port: first.port };
    const entryWords = new Map([...plan.entryWords].map(([key, w]) => [key, { word: w.word, first: firstOf(w.first) }]));
    const passWord = encodePeer({ kind: 'stack' });
    const problems: string[] = [];

    // 3. Entry programs for netdevs that gain one. Until the flip they pass every
    //    packet on to the kernel, as if they were not there.
    const attached: NetdevEntry[] = [];
    try {
      for (const [key, { word, first }] of entryWords) {
        if (this.netdevs.has(key)) continue;
        const dot = key.lastIndexOf('.');
        const ifname = key.slice(0, dot);
        const words = [passWord, passWord];
        const firsts: (FirstHop | undefined)[] = [undefined, undefined];
        words[spare] = word;
        firsts[spare] = first;
        attached.push(await NetdevEntry.attach(this.netdevCtx, ifname, ifindexes.get(ifname)!, key.slice(dot + 1) as Mode, words, firsts, first, problems));
      }
    } catch (err) {
      await undo(attached);
      throw err;
    }

    // From here on nothing fails. Record the new pieces first, so that a daemon
    // dying now adopts them instead of leaking them.
    for (const e of attached) this.netdevs.set(e.key, e);
    for (const [name, cube] of keep) cube.ports = plan.ports.get(name)!;
    this.state.cubes = this.records(next, live, drop);
    this.state.netdevs = Object.fromEntries([...this.netdevs.values()].map((e) => [e.key, e.record]));
    this.save();

    // Kept cubes' micro-cubes swapped in, one slot store each; what led to a
    // replaced entry leads to the new one, in every generation.
    const entryReplaced = new Set<Cube>();
    for (const { cube, micro } of loaded) {
      const { replaced, program } = cube.swapMicroCube(micro);
      if (micro.index !== 0) continue;
      entryReplaced.add(cube);
      for (const other of this.cubes.values()) other.repointPeers(replaced, program);
      for (const e of this.netdevs.values()) e.repointPeers(replaced, program);
    }

    let rewired = attached.length > 0 || fresh.length > 0 || drop.length > 0;
    for (const [name, words] of plan.cubeWords) {
      const cube = live.get(name)!;
      words.forEach(({ word, first }, port) => {
        const entry = first && live.get(first.cube)!.program(0);
        cube.setPeer(spare, port, word, entry);
        if (cube.word(gen, port) !== word || cube.peerProgram(gen, port) !== (entry?.id ?? 0)) rewired = true;
      });
    }
    for (const e of this.netdevs.values()) {
      const { word, first } = entryWords.get(e.key) ?? { word: passWord };
      e.setPeer(spare, word, first);
      if (withFused(e.word(gen), false) !== word) rewired = true;
    }
    for (const name of plan.reconfigure) keep.get(name)!.configure(this.cubeConfig(specs.get(name)!));

    // 4. Flip, and wait until no packet follows the old generation.
    if (rewired) {
      this.host.currentGen = spare;
      await synchronizeRcu();
    }
    const now = this.host.currentGen;

    // 5. Netdev entries fused with the cube they now lead to, then flagged so
    //    once no packet runs the program they had (netdev.ts).
    let refused = false;
    for (const e of this.netdevs.values()) {
      const next = entryWords.get(e.key);
      if (!next) continue;
      const before = e.entryProgram.id;
      await e.fuse(next.first, problems, next.first !== undefined && entryReplaced.has(next.first.cube));
      refused ||= e.entryProgram.id !== before;
    }
    if (refused) await synchronizeRcu();
    for (const e of this.netdevs.values()) e.markFused(now, entryWords.get(e.key)?.first);

    // 6. Remove what the new topology no longer has; no slot of the generation
    //    packets no longer follow keeps a program of it.
    const report: ApplyReport = {
      created: fresh.map((c) => c.name),
      deleted: [],
      attached: attached.map((e) => e.key),
      detached: [],
      rewired,
      reconfigured: plan.reconfigure,
      resized: plan.resized,
      microcubes: [...plan.microcubes].flatMap(([name, changes]) => changes.map((c) => `${name}/${c.index}`)),
      problems,
      durationMs: 0,
    };
    for (const e of [...this.netdevs.values()]) {
      if (entryWords.has(e.key)) continue;
      await e.detach();
      this.netdevs.delete(e.key);
      report.detached.push(e.key);
    }
    for (const c of drop) {
      const entry = c.program(0).id;
      for (const other of live.values()) other.repointPeers(entry, undefined, [(now + 1) % GENERATIONS]);
      for (const e of this.netdevs.values()) e.repointPeers(entry, undefined, [(now + 1) % GENERATIONS]);
    }
    for (const c of drop) {
      c.destroy();
      report.deleted.push(c.name);
    }
    this.cubes.clear();
    for (const [name, c] of live) this.cubes.set(name, c);
    this.hostTables.prune(new Set([...live.values()].flatMap((c) => c.type.tables.filter((t) => t.scope === 'host').map((t) => t.name))));
    this.state.topology = next;
    this.state.cubes = this.records(next, live, []);
    this.state.netdevs = Object.fromEntries([...this.netdevs.values()].map((e) => [e.key, e.record]));
    this.save();
    report.durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    return report;
  }

  /**
   * The object micro-cube `index` of `spec` is to run: `digest`'s as
   * ApplyOptions.objects gives it, checked apart, or the type's own.
   */
  private async microCubeObject(spec: CubeSpec, index: number, digest: string | undefined): Promise<Buffer> {
    if (!digest) return this.types.get(spec.type)!.objects[spec.mode]!;
    if (!this.objects)
      throw new FailedPreconditionError(`cube ${spec.name}: micro-cube ${index} runs object ${digest}, and this runtime was given no objects to take it from`);
    const elf = await this.objects(digest);
    const sha256 = crypto.createHash('sha256').update(elf).digest('hex');
    if (sha256 !== digest) throw new FailedPreconditionError(`cube ${spec.name}: the object given for micro-cube ${index} has sha256 ${sha256}, not ${digest}`);
    await checkMicroCubeObject(spec.name, index, spec.mode, elf, this.types.policy);
    return elf;
  }

  /** State records of the `live` cubes, and of `leaving` ones that stay pinned until the flip is done. */
  private records(next: Topology, live: Map<string, Cube>, leaving: Cube[]): Record<string, CubeRecord> {
    const record = (c: Cube, logLevel: CubeRecord['logLevel']): CubeRecord => ({
      id: c.id,
      type: c.type.name,
      digest: c.type.digest,
      mode: c.mode,
      ports: Object.fromEntries(c.ports),
      logLevel,
      ...(Object.keys(c.tableSizes).length > 0 ? { tableSizes: { ...c.tableSizes } } : {}),
    });
    const out: Record<string, CubeRecord> = {};
    for (const c of leaving) out[`${c.name}@${c.id}`] = record(c, 'off');
    for (const spec of next.cubes) out[spec.name] = record(live.get(spec.name)!, spec.logLevel);
    return out;
  }

  private async resolveNetdevs(wiring: Wiring): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    await Promise.all(
      [...wiring.netdevs].map(async (name) => {
        try {
          out.set(name, await resolveIfindex(name, this.netdevCtx.netns));
        } catch (err) {
          if (err instanceof BpfNotFound || (err as { code?: string }).code === 'ENODEV' || (err as { code?: string }).code === 'ENOENT')
            throw new InvalidArgumentError('links', `netdev ${name} does not exist${this.netdevCtx.netns ? ` in ${this.netdevCtx.netns}` : ' on this host'}; create it or fix the name`);
          throw err;
        }
      }),
    );
    return out;
  }

  /** Closes every handle; the data plane stays as it is, pinned. */
  close(): void {
    this.closed = true;
    this.packetOut?.close();
    this.packetOut = undefined;
    for (const c of this.cubes.values()) c.close();
    for (const e of this.netdevs.values()) e.close();
    this.hostTables.close();
    this.host.close();
    this.cubes.clear();
    this.netdevs.clear();
  }

  /** Removes everything this runtime put on the host: entries, cubes, pins, state, the bpffs mount. */
  async destroy(): Promise<void> {
    await this.exclusive(async () => {
      this.closed = true;
      await this.packetOutSetup?.catch(() => undefined);
      this.packetOut?.close();
      this.packetOut = undefined;
      await PacketOut.remove({ host: this.host, layout: this.layout, objectsDir: this.netdevCtx.objectsDir, netns: this.netdevCtx.netns });
      for (const e of this.netdevs.values()) await e.detach();
      for (const c of this.cubes.values()) c.destroy();
      this.netdevs.clear();
      this.cubes.clear();
      this.hostTables.close();
      this.host.close();
      unmountBpffs(this.layout.bpffs);
      fs.rmSync(this.layout.root, { recursive: true, force: true });
    });
  }
}

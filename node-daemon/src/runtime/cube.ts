// One cube on the host: its programs, its per-cube maps (peer words and the prog
// array of the programs they lead to, its micro-cubes' prog array, counters,
// settings) and its tables, all pinned under bpf/cubes/<id>-<name>; its entry
// also sits in the host's nc_progs, where packet-out finds it. A cube is created
// complete and unreachable; only peer words and slots written by the runtime
// ever lead packets to it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfMap, CollectionSpec, Collection, Program, VerifierError } from '../bpf';
import {
  CubeConfig,
  GENERATIONS,
  MAX_PORTS,
  CUBE_STATS_SIZE,
  PortStats,
  encodeCubeConfig,
  portWord,
  slotOf,
  sumPortStats,
} from './abi';
import { InvalidArgumentError, NotFoundError } from './errors';
import { HostLayout, HostMaps } from './host';
import { CubeRecord } from './state';
import { Table } from './tables';
import { CUBE_MAPS, CubeType, HOST_MAPS, NETDEV_MAPS, NETDEV_PEER_MAP, NETDEV_PROGRAM, PORTS_MAP, TableInfo, checkMicroCubeObject, mapPinName, programName } from './types';
import type { TypePolicy } from '../typecheck/policy';
import { Mode } from './topology';
import type { TableSizes } from './table-sizes';

/** A transparent cube's two internal ports, by index (DIR_INGRESS, DIR_EGRESS). */
export const TRANSPARENT_PORTS = ['ingress', 'egress'] as const;

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

/** Host-scope tables are shared by every cube that declares them; first come, first created. */
export class HostTables {
  private readonly maps = new Map<string, BpfMap>();

  constructor(private readonly layout: HostLayout) {}

  get(name: string): BpfMap | undefined {
    let m = this.maps.get(name);
    if (!m && fs.existsSync(this.layout.hostTable(name))) {
      m = BpfMap.openPinned(this.layout.hostTable(name));
      this.maps.set(name, m);
    }
    return m;
  }

  adopt(name: string, map: BpfMap): void {
    map.pin(this.layout.hostTable(name));
    this.maps.set(name, map);
  }

  drop(name: string): void {
    this.maps.get(name)?.close();
    this.maps.delete(name);
    fs.rmSync(this.layout.hostTable(name), { force: true });
  }

  /** Drops the tables no remaining cube declares. */
  prune(inUse: Set<string>): void {
    const dir = path.dirname(this.layout.hostTable('x'));
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (!inUse.has(name)) this.drop(name);
  }

  close(): void {
    for (const m of this.maps.values()) m.close();
    this.maps.clear();
  }
}

function sameShape(spec: { type: string; keySize: number; valueSize: number; maxEntries: number }, map: BpfMap): boolean {
  return spec.type === map.type && spec.keySize === map.keySize && spec.valueSize === map.valueSize && spec.maxEntries === map.maxEntries;
}

/** The maps of one netdev entry (netdev.ts), which its fused program uses. */
export interface NetdevMaps {
  peer: BpfMap;
  progs: BpfMap;
}

/** A micro-cube's program loaded for a cube (Cube.loadMicroCube), not in place yet. */
export interface LoadedMicroCube {
  index: number;
  /** The object it came from (an entry's is kept: fused netdev entries are built from it). */
  elf: Buffer;
  program: Program;
  /** Its private tables, new ones (a replaced micro-cube starts them empty). */
  privateMaps: Map<string, BpfMap>;
  /** Drops it, when it is not swapped in after all. */
  close(): void;
}

export interface CubeDeps {
  host: HostMaps;
  hostTables: HostTables;
  layout: HostLayout;
  /** What an object from outside is held to (a replaced entry's, read back after a restart). */
  policy: TypePolicy;
}

export class Cube {
  private constructor(
    readonly name: string,
    readonly id: number,
    readonly type: CubeType,
    readonly mode: Mode,
    /** Port name -> port index. */
    public ports: Map<string, number>,
    private readonly maps: Map<string, BpfMap>,
    private readonly programs: Map<number, Program>,
    private readonly deps: CubeDeps,
    /** The object micro-cube 0 (the entry) was loaded from: the type's, or a replacement's. */
    private entryElf: Buffer,
    /** The sizes its chain gave its tables (table name -> max entries), fixed for the cube's life. */
    readonly tableSizes: TableSizes,
    /**
     * entryElf is a replacement read back from the state directory after a restart,
     * not yet checked apart (typecheck/): it is, before it is opened here.
     */
    private entryUnchecked = false,
  ) {}

  /** The verifier's refusal of the entry fused with a netdev's, for the object it refused. */
  private netdevEntryRefused: { elf: Buffer; error: VerifierError } | undefined;

  get dir(): string {
    return this.deps.layout.cube(this.name, this.id);
  }

  get transparent(): boolean {
    return this.type.transparent;
  }

  /**
   * Loads a cube of `type` with id `id`, pins it and fills its prog-array slots.
   * Nothing points at it yet. On failure nothing is left behind.
   */
  static async create(
    deps: CubeDeps,
    type: CubeType,
    opts: { name: string; id: number; mode: Mode; ports: Map<string, number>; config: CubeConfig; tableSizes?: TableSizes },
  ): Promise<Cube> {
    const dir = deps.layout.cube(opts.name, opts.id);
    const spec = type.open(opts.mode);
    let coll: Collection;
    const newHostTables: string[] = [];
    const internal = new Set([...spec.maps].filter(([n, m]) => m.internal && !(CUBE_MAPS as readonly string[]).includes(n)).map(([n]) => n));
    const hostTables = new Set(type.tables.filter((t) => t.scope === 'host').map((t) => t.name));
    try {
      spec.variables.get('nc_cube_id')!.set(opts.id);
      // The fused netdev entry loads per netdev (loadNetdevEntry), not with the cube.
      spec.programs.get(NETDEV_PROGRAM)!.autoload = false;
      for (const name of HOST_MAPS) spec.maps.get(name)!.replaceWith(deps.host.framework(name, opts.mode));
      // Sizes checked by the runtime (table-sizes.ts): cube-scope hashes and tries only.
      for (const [name, size] of Object.entries(opts.tableSizes ?? {})) spec.maps.get(name)!.setMaxEntries(size);
      for (const name of hostTables) {
        const existing = deps.hostTables.get(name);
        if (!existing) {
          newHostTables.push(name);
          continue;
        }
        if (!sameShape(spec.maps.get(name)!, existing))
          throw new InvalidArgumentError('type', `host table ${name} already exists with another shape (${existing.type}, key ${existing.keySize} B, value ${existing.valueSize} B, ${existing.maxEntries} entries) than cube type ${type.name} declares`);
        spec.maps.get(name)!.replaceWith(existing);
      }
      coll = await spec.load();
    } catch (err) {
      spec.close();
      throw err;
    }
    const maps = new Map<string, BpfMap>();
    const programs = new Map<number, Program>();
    try {
      fs.mkdirSync(path.join(dir, 'maps'), { recursive: true });
      fs.mkdirSync(path.join(dir, 'progs'), { recursive: true });
      for (const [name, m] of coll.maps) {
        if ((HOST_MAPS as readonly string[]).includes(name) || (NETDEV_MAPS as readonly string[]).includes(name) || internal.has(name)) {
          m.close();
        } else if (hostTables.has(name)) {
          if (newHostTables.includes(name)) deps.hostTables.adopt(name, m);
          else m.close();
          maps.set(name, deps.hostTables.get(name)!);
        } else {
          m.pin(path.join(dir, 'maps', mapPinName(name)));
          maps.set(name, m);
        }
      }
      for (const index of type.programs) {
        const prog = coll.programs.get(programName(index))!;
        prog.pin(path.join(dir, 'progs', programName(index)));
        programs.set(index, prog);
      }
      const cube = new Cube(opts.name, opts.id, type, opts.mode, new Map(opts.ports), maps, programs, deps, type.objects[opts.mode]!, { ...opts.tableSizes });
      cube.configure(opts.config);
      for (const [index, prog] of programs) maps.get('nc_micro')!.setProgram(index, prog);
      deps.host.progs[opts.mode].setProgram(slotOf(opts.id), programs.get(0)!);
      return cube;
    } catch (err) {
      deps.host.progs[opts.mode].clearProgram(slotOf(opts.id));
      coll.close();
      for (const name of newHostTables) deps.hostTables.drop(name);
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Opens a cube an earlier daemon pinned. Returns undefined when its pins are gone;
   * `healed` lists what was repaired (an emptied prog-array slot).
   */
  static adopt(deps: CubeDeps, type: CubeType, name: string, record: CubeRecord, healed: string[]): Cube | undefined {
    const dir = deps.layout.cube(name, record.id);
    const maps = new Map<string, BpfMap>();
    const programs = new Map<number, Program>();
    try {
      for (const index of type.programs) programs.set(index, Program.openPinned(path.join(dir, 'progs', programName(index))));
      // The cube's own maps open on first use (map()): a host adopts thousands of
      // cubes at start and touches few of their maps. Their pins must be there.
      const pinned = new Set(fs.readdirSync(path.join(dir, 'maps')));
      for (const t of type.tables.filter((t) => t.scope === 'host')) {
        const m = deps.hostTables.get(t.name);
        if (!m) throw new NotFoundError(`host table ${t.name}`);
        maps.set(t.name, m);
      }
      for (const name of CUBE_MAPS) if (!pinned.has(mapPinName(name))) throw new NotFoundError(`map ${name}`);
      // A table the chain sized must be pinned at that size (the record and the pins agree).
      for (const [table, size] of Object.entries(record.tableSizes ?? {})) {
        const m = BpfMap.openPinned(path.join(dir, 'maps', mapPinName(table)));
        maps.set(table, m);
        if (m.maxEntries !== size) throw new NotFoundError(`table ${table} of ${size} entries`);
      }
    } catch {
      for (const p of programs.values()) p.close();
      for (const [n, m] of maps) if (!type.tables.some((t) => t.name === n && t.scope === 'host')) m.close();
      return undefined;
    }
    const replaced = deps.layout.entryObject(name, record.id);
    const stored = fs.existsSync(replaced);
    const entryElf = stored ? fs.readFileSync(replaced) : type.objects[record.mode]!;
    const cube = new Cube(name, record.id, type, record.mode, new Map(Object.entries(record.ports)), maps, programs, deps, entryElf, { ...record.tableSizes }, stored);
    // Slots an interrupted change may have left empty or stale: the host's for
    // packet-out, and the cube's own micro-cube slots.
    const slots: { progs: BpfMap; slot: number; index: number; where: string }[] = [
      { progs: deps.host.progs[record.mode], slot: slotOf(record.id), index: 0, where: `the host's prog-array slot ${slotOf(record.id)}` },
      ...[...programs.keys()].map((index) => ({ progs: cube.map('nc_micro'), slot: index, index, where: `micro-cube slot ${index}` })),
    ];
    for (const { progs, slot, index, where } of slots) {
      const inSlot = progs.lookup(u32(slot));
      if (!inSlot || inSlot.readUInt32LE(0) !== programs.get(index)!.id) {
        progs.setProgram(slot, programs.get(index)!);
        healed.push(`cube ${name}: ${where} refilled with ${programName(index)}`);
      }
    }
    return cube;
  }

  /** The loaded program of micro-cube `index`. */
  program(index = 0): Program {
    const p = this.programs.get(index);
    if (!p) throw new NotFoundError(`cube ${this.name} has no micro-cube ${index}`);
    return p;
  }

  private map(name: string): BpfMap {
    let m = this.maps.get(name);
    if (!m) {
      // Not opened yet (an adopted cube), or not the cube's at all.
      const pin = path.join(this.dir, 'maps', mapPinName(name));
      const declared = (CUBE_MAPS as readonly string[]).includes(name) || this.type.tables.some((t) => t.name === name);
      if (!declared || !fs.existsSync(pin)) throw new NotFoundError(`cube ${this.name} has no map ${name}`);
      m = BpfMap.openPinned(pin);
      this.maps.set(name, m);
    }
    return m;
  }

  word(gen: number, port: number): bigint {
    return this.map(PORTS_MAP).loadU64(portWord(gen, port));
  }

  setWord(gen: number, port: number, word: bigint): void {
    this.map(PORTS_MAP).storeU64Atomic(portWord(gen, port), word);
  }

  /** What nc_peer_progs holds, by portWord(): program ids, 0 for empty. Only this object writes it. */
  private peerSlots?: number[];

  private get peerPrograms(): number[] {
    if (!this.peerSlots) {
      // One batch read (an adopted cube's first apply reads a thousand of these).
      const slots = new Array<number>(GENERATIONS * MAX_PORTS).fill(0);
      const { keys, values } = this.map('nc_peer_progs').lookupBatch();
      keys.forEach((k, i) => (slots[k.readUInt32LE(0)] = values[i].readUInt32LE(0)));
      this.peerSlots = slots;
    }
    return this.peerSlots;
  }

  /** The id of the program a port's peer slot of generation `gen` leads to; 0 when none. */
  peerProgram(gen: number, port: number): number {
    return this.peerPrograms[portWord(gen, port)];
  }

  /**
   * Sets a port's peer in generation `gen`: the program its slot jumps to (the
   * entry of the cube `word` names; none for other peers), then the word. Writes
   * only what changes: a slot write makes the kernel re-patch the jumps into it.
   */
  setPeer(gen: number, port: number, word: bigint, entry: Program | undefined): void {
    this.setPeerProgram(portWord(gen, port), entry);
    if (this.word(gen, port) !== word) this.setWord(gen, port, word);
  }

  private setPeerProgram(slot: number, entry: Program | undefined): void {
    const slots = this.peerPrograms;
    if (slots[slot] === (entry?.id ?? 0)) return;
    if (entry) this.map('nc_peer_progs').setProgram(slot, entry);
    else this.map('nc_peer_progs').clearProgram(slot);
    slots[slot] = entry?.id ?? 0;
  }

  /**
   * Re-points slots that lead to program `from`: to `to` (an entry replaced), or
   * nowhere (a cube gone, in the generation no packet follows any more).
   * `gens`: the generations to look at.
   */
  repointPeers(from: number, to: Program | undefined, gens: readonly number[] = [0, 1]): void {
    for (const gen of gens)
      for (let port = 0; port < MAX_PORTS; port++)
        if (this.peerProgram(gen, port) === from) this.setPeerProgram(portWord(gen, port), to);
  }

  configure(config: CubeConfig): void {
    this.map('nc_cfg').update(u32(0), encodeCubeConfig(config));
  }

  /** Counters of a port; a transparent cube's are its directions, 'ingress' and 'egress'. */
  portStats(port: string): PortStats {
    const index = this.transparent ? TRANSPARENT_PORTS.indexOf(port as (typeof TRANSPARENT_PORTS)[number]) : this.ports.get(port);
    if (index === undefined || index < 0)
      throw new NotFoundError(this.transparent ? `transparent cube ${this.name} counts by direction: ${TRANSPARENT_PORTS.join(' or ')}, not ${port}` : `cube ${this.name} has no port ${port}`);
    const stats = this.map('nc_stats');
    const v = stats.lookup(u32(0));
    return sumPortStats(v ?? Buffer.alloc(CUBE_STATS_SIZE), v ? stats.possibleCpus : 1, index);
  }

  get tableNames(): string[] {
    return this.type.tables.map((t) => t.name);
  }

  table(name: string): Table {
    const info = this.type.tables.find((t) => t.name === name);
    if (!info) throw new NotFoundError(`cube ${this.name} (type ${this.type.name}) has no table ${name}; its tables: ${this.tableNames.join(', ') || 'none'}`);
    return new Table(this.name, name, info.scope, this.map(name));
  }

  /**
   * Points the maps of `spec`, a cube object, at this cube's: the host's, the
   * cube's own and its tables. Private tables stay the object's own unless
   * `sharePrivate`; `netdev` supplies the netdev entry's maps. Throws
   * InvalidArgumentError when the object's tables do not match the cube's.
   */
  private bindMaps(spec: CollectionSpec, sharePrivate: boolean, netdev?: NetdevMaps): void {
    spec.variables.get('nc_cube_id')?.set(this.id);
    const tableScope = (name: string): TableInfo['scope'] | undefined => this.type.tables.find((t) => t.name === name)?.scope;
    for (const [name, m] of spec.maps) {
      if ((HOST_MAPS as readonly string[]).includes(name)) {
        m.replaceWith(this.deps.host.framework(name, this.mode));
        continue;
      }
      if ((NETDEV_MAPS as readonly string[]).includes(name)) {
        if (netdev) m.replaceWith(name === NETDEV_PEER_MAP ? netdev.peer : netdev.progs);
        continue;
      }
      if (m.internal && !(CUBE_MAPS as readonly string[]).includes(name)) continue;
      const scope = (CUBE_MAPS as readonly string[]).includes(name) ? 'cube' : tableScope(name);
      if (scope === undefined) throw new InvalidArgumentError('object', `the object declares table ${name}, which cube ${this.name} (type ${this.type.name}) does not have`);
      if (scope === 'private' && !sharePrivate) continue;
      const size = this.tableSizes[name];
      if (size !== undefined) m.setMaxEntries(size);
      const existing = this.map(name);
      if (!sameShape(m, existing)) throw new InvalidArgumentError('object', `table ${name} in the object does not match the one of cube ${this.name} (${existing.type}, key ${existing.keySize} B, value ${existing.valueSize} B, ${existing.maxEntries} entries)`);
      m.replaceWith(existing);
    }
  }

  /**
   * Replaces micro-cube `index` with the program of the same name in `elf`, built
   * against the same tables: loadMicroCube, then swapMicroCube.
   */
  async replaceMicroCube(index: number, elf: Buffer): Promise<{ replaced: number; program: Program }> {
    return this.swapMicroCube(await this.loadMicroCube(index, elf));
  }

  /**
   * Loads the program of micro-cube `index` from `elf` (checked apart already),
   * against this cube's tables, without putting it anywhere: swapMicroCube does,
   * or close() of what it returns drops it.
   */
  async loadMicroCube(index: number, elf: Buffer): Promise<LoadedMicroCube> {
    if (!Number.isInteger(index) || !this.type.programs.includes(index))
      throw new InvalidArgumentError('index', `cube ${this.name} has micro-cubes ${this.type.programs.join(', ')}; ${index} is not one of them`);
    const want = programName(index);
    let spec: CollectionSpec;
    try {
      spec = CollectionSpec.fromBuffer(elf, `${this.name}.${want}`);
    } catch (err) {
      throw new InvalidArgumentError('object', `the object for micro-cube ${index} of cube ${this.name} is not a usable BPF ELF object: ${(err as Error).message}`);
    }
    let coll: Collection;
    try {
      const prog = spec.programs.get(want);
      if (!prog) throw new InvalidArgumentError('object', `the object has no program ${want}; micro-cube ${index} must be declared with ${index === 0 ? 'NC_CUBE()' : `NC_MICROCUBE(${index}, ...)`}`);
      if (index === 0 && !spec.programs.has(NETDEV_PROGRAM))
        throw new InvalidArgumentError('object', `the object has no program ${NETDEV_PROGRAM}, which an entry needs to be fused with a netdev: build it with NC_CUBE() of this netcube version`);
      for (const p of spec.programs.values()) p.autoload = p === prog;
      this.bindMaps(spec, false);
      coll = await spec.load();
    } catch (err) {
      spec.close();
      throw err;
    }
    const program = coll.programs.get(want)!;
    const privateMaps = new Map<string, BpfMap>();
    for (const [name, m] of coll.maps) {
      if (this.type.tables.some((t) => t.name === name && t.scope === 'private')) privateMaps.set(name, m);
      else m.close();
    }
    return {
      index,
      elf,
      program,
      privateMaps,
      close: () => {
        program.close();
        for (const m of privateMaps.values()) m.close();
      },
    };
  }

  /**
   * Puts a micro-cube loadMicroCube made in place of the one the cube runs: pinned,
   * then into the cube's slots, one store each, so packets run the old or the new
   * one. Returns the program replaced (closed), for the runtime to re-point what
   * else leads to an entry: other cubes' and netdevs' slots, and fused netdev
   * entries (loadNetdevEntry builds them from the new object from now on).
   */
  swapMicroCube(loaded: LoadedMicroCube): { replaced: number; program: Program } {
    const { index, elf, program: fresh } = loaded;
    const pin = path.join(this.dir, 'progs', programName(index));
    fs.rmSync(pin, { force: true });
    fresh.pin(pin);
    for (const [name, m] of loaded.privateMaps) {
      fs.rmSync(path.join(this.dir, 'maps', name), { force: true });
      m.pin(path.join(this.dir, 'maps', name));
      this.maps.get(name)?.close();
      this.maps.set(name, m);
    }
    if (index === 0) {
      fs.mkdirSync(path.dirname(this.deps.layout.entryObject(this.name, this.id)), { recursive: true });
      fs.writeFileSync(this.deps.layout.entryObject(this.name, this.id), elf);
      this.entryElf = elf;
      this.entryUnchecked = false;
      this.deps.host.progs[this.mode].setProgram(slotOf(this.id), fresh);
    }
    this.map('nc_micro').setProgram(index, fresh);
    const replaced = this.programs.get(index)!;
    const replacedId = replaced.id;
    replaced.close();
    this.programs.set(index, fresh);
    return { replaced: replacedId, program: fresh };
  }

  /**
   * Loads the cube's entry fused with a netdev entry (nc_netdev, see
   * netcube/netdev.h) for the netdev whose maps are `netdev`: the cube's own
   * entry code, sharing all its maps, private tables included.
   */
  async loadNetdevEntry(netdev: NetdevMaps): Promise<Program> {
    // The verifier's answer depends on the entry's object alone: one it refused is
    // refused again, for every netdev and at every apply, until the entry changes.
    if (this.netdevEntryRefused?.elf === this.entryElf) throw this.netdevEntryRefused.error;
    if (this.entryUnchecked) {
      await checkMicroCubeObject(this.name, 0, this.mode, this.entryElf, this.deps.policy);
      this.entryUnchecked = false;
    }
    const spec = CollectionSpec.fromBuffer(this.entryElf, `${this.name}.${NETDEV_PROGRAM}`);
    let coll: Collection;
    try {
      for (const p of spec.programs.values()) p.autoload = p.name === NETDEV_PROGRAM;
      this.bindMaps(spec, true, netdev);
      coll = await spec.load();
    } catch (err) {
      spec.close();
      if (err instanceof VerifierError) this.netdevEntryRefused = { elf: this.entryElf, error: err };
      throw err;
    }
    for (const m of coll.maps.values()) m.close();
    return coll.programs.get(NETDEV_PROGRAM)!;
  }

  /** Every peer word of a generation, by port index. */
  words(gen: number): bigint[] {
    return Array.from({ length: MAX_PORTS }, (_, port) => this.word(gen, port));
  }

  /**
   * Empties the cube's host slot and removes its pins (its prog arrays empty
   * themselves with them). Only once no packet can reach it.
   */
  destroy(): void {
    this.deps.host.progs[this.mode].clearProgram(slotOf(this.id));
    this.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.rmSync(this.deps.layout.entryObject(this.name, this.id), { force: true });
  }

  close(): void {
    for (const p of this.programs.values()) p.close();
    for (const [name, m] of this.maps) if (!this.type.tables.some((t) => t.name === name && t.scope === 'host')) m.close();
    this.programs.clear();
    this.maps.clear();
  }
}

// Cube types: what a type is (read from its ELF objects, which describe
// themselves), and the registry of the types a host knows — the built-ins shipped
// in build/bpf/cubes and those uploaded at run time.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CollectionSpec } from '../bpf';
import { KIND_STANDARD, KIND_TRANSPARENT, MAX_MICROCUBES, SCOPE, TableScope } from './abi';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors';
import { MODES, Mode, NAME_RE, TypeFacts } from './topology';

/**
 * Maps every cube object declares; the runtime supplies the host's instances.
 * '.data.nc_gen' is the map libbpf makes of the section of the global nc_gen.
 */
export const HOST_MAPS = ['.data.nc_gen', 'nc_log_rb', 'nc_pkt_rb', 'nc_errors'] as const;
/**
 * Maps every cube object declares; created fresh for each cube. '.data.nc_ports'
 * is the map libbpf makes of the section of the global nc_ports (the peer words).
 */
export const CUBE_MAPS = ['.data.nc_ports', 'nc_stats', 'nc_cfg', 'nc_pkt_bucket', 'nc_peer_progs', 'nc_micro'] as const;
/** A cube's peer words. */
export const PORTS_MAP = '.data.nc_ports';
/**
 * Maps of a netdev entry (netcube/netdev.h), which every cube object declares for
 * its fused entry (nc_netdev); the runtime creates them for each netdev: its peer
 * words (the section of the global nc_netdev_peer) and their prog array.
 */
export const NETDEV_MAPS = ['.data.nc_netdev', 'nc_netdev_progs'] as const;
export const NETDEV_PEER_MAP = '.data.nc_netdev';
export const NETDEV_PROGS_MAP = 'nc_netdev_progs';

/** The name a map of a cube is pinned under: a section's map without its '.data.' (bpffs takes no dots). */
export function mapPinName(name: string): string {
  return name.replace(/^\.data\./, '');
}
/** The program of a cube object that is its entry fused with a netdev entry. */
export const NETDEV_PROGRAM = 'nc_netdev';

const isFrameworkMap = (name: string): boolean =>
  [HOST_MAPS, CUBE_MAPS, NETDEV_MAPS].some((maps) => (maps as readonly string[]).includes(name));

export interface TableInfo {
  name: string;
  scope: TableScope;
  mapType: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** The program name of micro-cube `index`. */
export function programName(index: number): string {
  return index === 0 ? 'nc_entry' : `nc_micro_${index}`;
}

function programIndex(name: string): number | undefined {
  if (name === 'nc_entry') return 0;
  const m = /^nc_micro_([1-9][0-9]*)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

interface ObjectFacts {
  transparent: boolean;
  programs: number[];
  tables: TableInfo[];
}

/** Reads what a cube object says about itself; throws InvalidArgumentError naming what is missing. */
function inspectObject(type: string, mode: Mode, elf: Buffer): ObjectFacts {
  const what = `cube type ${type} (${mode} object)`;
  let spec: CollectionSpec;
  try {
    spec = CollectionSpec.fromBuffer(elf, `${type}.${mode}`);
  } catch (err) {
    throw new InvalidArgumentError('objects', `${what} is not a usable BPF ELF object: ${(err as Error).message}`);
  }
  try {
    const programs: number[] = [];
    for (const [name, prog] of spec.programs) {
      const index = programIndex(name);
      if (index === undefined && name !== NETDEV_PROGRAM) continue;
      if (index !== undefined && index >= MAX_MICROCUBES) throw new InvalidArgumentError('objects', `${what}: program ${name} is beyond the ${MAX_MICROCUBES} micro-cubes a cube may have`);
      const want = mode === 'xdp' ? 'xdp' : 'sched_cls';
      if (prog.type !== want)
        throw new InvalidArgumentError('objects', `${what}: program ${name} is a ${prog.type} program, expected ${want}; build the ${mode} object with -DNC_HOOK_${mode.toUpperCase()}`);
      if (index !== undefined) programs.push(index);
    }
    if (!programs.includes(0))
      throw new InvalidArgumentError('objects', `${what} has no program nc_entry: declare the cube with NC_CUBE() or NC_TRANSPARENT_CUBE() from <netcube/netcube.h>`);
    if (!spec.programs.has(NETDEV_PROGRAM))
      throw new InvalidArgumentError('objects', `${what} has no program ${NETDEV_PROGRAM}: build it with NC_CUBE() or NC_TRANSPARENT_CUBE() from <netcube/netcube.h> of this netcube version`);
    for (const name of [...HOST_MAPS, ...CUBE_MAPS, ...NETDEV_MAPS])
      if (!spec.maps.has(name)) throw new InvalidArgumentError('objects', `${what} lacks the framework map ${name}: build it against <netcube/netcube.h> of this netcube version`);
    if (!spec.variables.has('nc_cube_id')) throw new InvalidArgumentError('objects', `${what} lacks the variable nc_cube_id: build it against <netcube/netcube.h>`);
    const kind = spec.variables.get('nc_cube_kind')?.get();
    if (kind !== KIND_STANDARD && kind !== KIND_TRANSPARENT)
      throw new InvalidArgumentError('objects', `${what} does not say what kind of cube it is (nc_cube_kind): declare it with NC_CUBE() or NC_TRANSPARENT_CUBE()`);
    const tables: TableInfo[] = [];
    for (const [name, m] of spec.maps) {
      if (m.internal || isFrameworkMap(name)) continue;
      const scopeVar = spec.variables.get(`__nc_scope_${name}`)?.get();
      const scope = (Object.keys(SCOPE) as TableScope[]).find((s) => SCOPE[s] === scopeVar) ?? 'cube';
      tables.push({ name, scope, mapType: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries });
    }
    return { transparent: kind === KIND_TRANSPARENT, programs: programs.sort((a, b) => a - b), tables };
  } finally {
    spec.close();
  }
}

export class CubeType implements TypeFacts {
  private constructor(
    readonly name: string,
    readonly transparent: boolean,
    /** Micro-cube indexes present (0 is the entry). */
    readonly programs: readonly number[],
    readonly tables: readonly TableInfo[],
    readonly objects: Readonly<Partial<Record<Mode, Buffer>>>,
    readonly builtin: boolean,
    readonly digest: string,
  ) {}

  get modes(): Mode[] {
    return MODES.filter((m) => this.objects[m]);
  }

  /** Tail calls a packet may spend inside one cube of this type. */
  get microcubes(): number {
    return Math.max(...this.programs) + 1;
  }

  /** Checks the objects of a type and describes it. Objects of both modes must agree. */
  static inspect(name: string, objects: Partial<Record<Mode, Buffer>>, builtin = false): CubeType {
    if (typeof name !== 'string' || !NAME_RE.test(name))
      throw new InvalidArgumentError('name', `cube type name ${JSON.stringify(name)} is not valid: lower-case letters, digits, '-', '_' or '.'`);
    const modes = MODES.filter((m) => objects[m]);
    if (modes.length === 0) throw new InvalidArgumentError('objects', `cube type ${name}: give at least one object, for xdp or tc`);
    const facts = modes.map((m) => inspectObject(name, m, objects[m]!));
    const [first] = facts;
    for (let i = 1; i < facts.length; i++) {
      const f = facts[i];
      const same =
        f.transparent === first.transparent &&
        f.programs.join() === first.programs.join() &&
        JSON.stringify(f.tables.map((t) => [t.name, t.scope])) === JSON.stringify(first.tables.map((t) => [t.name, t.scope]));
      if (!same) throw new InvalidArgumentError('objects', `cube type ${name}: the xdp and tc objects describe different cubes; build both from one source`);
    }
    const digest = createHash('sha256');
    for (const m of modes) digest.update(m).update(objects[m]!);
    return new CubeType(name, first.transparent, first.programs, first.tables, { ...objects }, builtin, digest.digest('hex'));
  }

  /** A fresh, editable spec of this type's object for `mode`. */
  open(mode: Mode): CollectionSpec {
    const elf = this.objects[mode];
    if (!elf) throw new InvalidArgumentError('mode', `cube type ${this.name} has no ${mode} object`);
    return CollectionSpec.fromBuffer(elf, `${this.name}.${mode}`);
  }
}

/**
 * The types a host knows. Built-ins come from the build; uploaded types are kept
 * under the runtime's state directory so that a restarted daemon still has them
 * when etcd is out of reach.
 */
export class TypeRegistry {
  private readonly types = new Map<string, CubeType>();

  constructor(private readonly uploadDir: string) {}

  /** Loads build/bpf/cubes/<type>.<mode>.o and the uploads kept in the state directory. */
  load(builtinDir: string): void {
    for (const [dir, builtin] of [[builtinDir, true], [this.uploadDir, false]] as const) {
      if (!fs.existsSync(dir)) continue;
      const byType = new Map<string, Partial<Record<Mode, Buffer>>>();
      for (const file of fs.readdirSync(dir)) {
        const m = /^(.+)\.(xdp|tc)\.o$/.exec(file);
        if (!m) continue;
        const objects = byType.get(m[1]) ?? {};
        objects[m[2] as Mode] = fs.readFileSync(path.join(dir, file));
        byType.set(m[1], objects);
      }
      for (const [name, objects] of byType) this.types.set(name, CubeType.inspect(name, objects, builtin));
    }
  }

  get(name: string): CubeType | undefined {
    return this.types.get(name);
  }

  list(): CubeType[] {
    return [...this.types.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Registers an uploaded type; registering the same objects again is a no-op. */
  register(name: string, objects: Partial<Record<Mode, Buffer>>): CubeType {
    const type = CubeType.inspect(name, objects);
    const existing = this.types.get(name);
    if (existing) {
      if (existing.digest === type.digest) return existing;
      throw new AlreadyExistsError(
        existing.builtin
          ? `cube type ${name} is built in and cannot be replaced; register yours under another name`
          : `cube type ${name} is already registered with other objects; unregister it first (no cube may use it)`,
      );
    }
    fs.mkdirSync(this.uploadDir, { recursive: true });
    for (const m of type.modes) fs.writeFileSync(path.join(this.uploadDir, `${name}.${m}.o`), objects[m]!);
    this.types.set(name, type);
    return type;
  }

  /** Removes an uploaded type; `users` are the cubes that still use it. */
  unregister(name: string, users: string[]): void {
    const type = this.types.get(name);
    if (!type) throw new NotFoundError(`cube type ${name} is not registered`);
    if (type.builtin) throw new FailedPreconditionError(`cube type ${name} is built in and cannot be unregistered`);
    if (users.length > 0) throw new FailedPreconditionError(`cube type ${name} is used by cube(s) ${users.join(', ')}; delete them first`);
    for (const m of type.modes) fs.rmSync(path.join(this.uploadDir, `${name}.${m}.o`), { force: true });
    this.types.delete(name);
  }
}

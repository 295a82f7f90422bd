// Cube types: what a type is (read from its ELF objects, which describe
// themselves), and the registry of the types a host knows — the built-ins shipped
// in build/bpf/cubes and those uploaded at run time.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CollectionSpec } from '../bpf';
import { possibleCpus } from '../bpf/addon';
import type { Verdict } from '../typecheck/child';
import { inspectObjects, type InspectResult } from '../typecheck/inspect';
import { cubeBytes, DEFAULT_TYPE_POLICY, microCubeIndex, NETDEV_PROGRAM, policyProblems, type TypePolicy } from '../typecheck/policy';
import { describeObject, type ObjectReport } from '../typecheck/report';
import { KIND_STANDARD, KIND_TRANSPARENT, MAX_MICROCUBES, SCOPE, TableScope } from './abi';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors';
import { MODES, Mode, TypeFacts } from './topology';
import { nameProblem } from '@netcube/api/names';

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
/** The program of a cube object that is its entry fused with a netdev entry (typecheck/policy.ts). */
export { NETDEV_PROGRAM };

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

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

interface ObjectFacts {
  transparent: boolean;
  decrementsTtl: boolean;
  programs: number[];
  tables: TableInfo[];
  /** Kernel memory one cube of the type takes for its maps (typecheck/policy.ts). */
  mapBytes: number;
}

/**
 * What a cube object says about itself, from its report; throws
 * InvalidArgumentError (field: the mode) naming what breaks the policy or what
 * the framework needs and is missing.
 */
function objectFacts(what: string, mode: Mode, report: ObjectReport, policy: TypePolicy): ObjectFacts {
  const problems = policyProblems(what, mode, report, policy, possibleCpus);
  if (problems.length > 0) throw new InvalidArgumentError(mode, problems.join('; '));
  const programs: number[] = [];
  for (const p of report.programs) {
    // The policy let only micro-cubes and the fused netdev entry through.
    const index = microCubeIndex(p.name);
    if (index === undefined) continue;
    if (index >= MAX_MICROCUBES) throw new InvalidArgumentError(mode, `${what}: program ${p.name} is beyond the ${MAX_MICROCUBES} micro-cubes a cube may have`);
    programs.push(index);
  }
  if (!programs.includes(0))
    throw new InvalidArgumentError(mode, `${what} has no program nc_entry: declare the cube with NC_CUBE() or NC_TRANSPARENT_CUBE() from <netcube/netcube.h>`);
  if (!report.programs.some((p) => p.name === NETDEV_PROGRAM))
    throw new InvalidArgumentError(mode, `${what} has no program ${NETDEV_PROGRAM}: build it with NC_CUBE() or NC_TRANSPARENT_CUBE() from <netcube/netcube.h> of this netcube version`);
  const maps = new Map(report.maps.map((m) => [m.name, m]));
  for (const name of [...HOST_MAPS, ...CUBE_MAPS, ...NETDEV_MAPS])
    if (!maps.has(name)) throw new InvalidArgumentError(mode, `${what} lacks the framework map ${name}: build it against <netcube/netcube.h> of this netcube version`);
  if (!report.hasCubeId) throw new InvalidArgumentError(mode, `${what} lacks the variable nc_cube_id: build it against <netcube/netcube.h>`);
  const kind = report.constants.nc_cube_kind;
  if (kind !== KIND_STANDARD && kind !== KIND_TRANSPARENT)
    throw new InvalidArgumentError(mode, `${what} does not say what kind of cube it is (nc_cube_kind): declare it with NC_CUBE() or NC_TRANSPARENT_CUBE()`);
  const tables: TableInfo[] = [];
  for (const m of report.maps) {
    if (m.internal || isFrameworkMap(m.name)) continue;
    const scopeVar = report.constants[`__nc_scope_${m.name}`];
    const scope = (Object.keys(SCOPE) as TableScope[]).find((s) => SCOPE[s] === scopeVar) ?? 'cube';
    tables.push({ name: m.name, scope, mapType: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries });
  }
  return { transparent: kind === KIND_TRANSPARENT, decrementsTtl: report.constants.nc_decrements_ttl === 1, programs: programs.sort((a, b) => a - b), tables, mapBytes: cubeBytes(report, possibleCpus) };
}

export interface InspectOptions {
  /** Shipped with this daemon (build/bpf/cubes): opened in process; anything else is opened apart (typecheck/). */
  builtin?: boolean;
  policy?: TypePolicy;
  /** Load each object into the kernel once, so a type the verifier rejects is refused now (RegisterType). */
  testLoad?: boolean;
}

/** The verifier's or the kernel's refusal of a test load, as an error that says which program and why. */
function refusal(what: string, mode: Mode, verdict: Verdict): InvalidArgumentError {
  if (verdict.program)
    return new InvalidArgumentError(mode, `${what}: the kernel's verifier rejected program ${verdict.program}: ${(verdict.log ?? '').trim().split('\n').slice(-4).join(' | ')}`);
  return new InvalidArgumentError(mode, `${what}: the kernel refused to load it: ${verdict.message ?? 'no reason given'}`);
}

/**
 * Checks, apart from the daemon, an object that is to replace micro-cube `index`
 * of `cube`: that libbpf can open it, that it keeps to the policy and that it has
 * the program, of the cube's hook. Throws InvalidArgumentError (field 'object').
 */
export async function checkMicroCubeObject(cube: string, index: number, mode: Mode, elf: Buffer, policy: TypePolicy): Promise<void> {
  const what = `the object for micro-cube ${index} of cube ${cube}`;
  if (!elf.subarray(0, 4).equals(ELF_MAGIC)) throw new InvalidArgumentError('object', `${what} is not a usable BPF ELF object: it is no ELF file; give the .o that clang -target bpf produced`);
  const [result] = await inspectObjects([{ label: what, mode, elf }], policy);
  if (!result.ok) throw new InvalidArgumentError('object', result.error);
  const problems = policyProblems(what, mode, result.report, policy, possibleCpus);
  if (problems.length > 0) throw new InvalidArgumentError('object', problems.join('; '));
  const want = programName(index);
  if (!result.report.programs.some((p) => p.name === want))
    throw new InvalidArgumentError('object', `${what} has no program ${want}; micro-cube ${index} is declared with ${index === 0 ? 'NC_CUBE()' : `NC_MICROCUBE(${index}, ...)`}`);
}

export class CubeType implements TypeFacts {
  private constructor(
    readonly name: string,
    readonly transparent: boolean,
    /** Declared with NC_DECREMENTS_TTL(): cycles through it are allowed. */
    readonly decrementsTtl: boolean,
    /** Micro-cube indexes present (0 is the entry). */
    readonly programs: readonly number[],
    readonly tables: readonly TableInfo[],
    readonly objects: Readonly<Partial<Record<Mode, Buffer>>>,
    readonly builtin: boolean,
    readonly digest: string,
    /** Kernel memory one cube of this type takes for its maps, in its larger mode (typecheck/policy.ts). */
    readonly mapBytes: number,
  ) {}

  get modes(): Mode[] {
    return MODES.filter((m) => this.objects[m]);
  }

  /** Tail calls a packet may spend inside one cube of this type. */
  get microcubes(): number {
    return Math.max(...this.programs) + 1;
  }

  /**
   * Checks the objects of a type against the policy and describes it; objects of
   * both modes must agree. An object that is not built in is opened (and test
   * loaded, if asked) in a child process first, so that a malformed one cannot
   * crash the daemon: see typecheck/inspect.ts. Throws InvalidArgumentError whose
   * field is the mode at fault ('xdp', 'tc'), or 'objects'.
   */
  static async inspect(name: string, objects: Partial<Record<Mode, Buffer>>, opts: InspectOptions = {}): Promise<CubeType> {
    const nameIssue = nameProblem(name, 'cube type name');
    if (nameIssue) throw new InvalidArgumentError('name', nameIssue);
    const modes = MODES.filter((m) => objects[m]);
    if (modes.length === 0) throw new InvalidArgumentError('objects', `cube type ${name}: give at least one object, for xdp or tc`);
    const policy = opts.policy ?? DEFAULT_TYPE_POLICY;
    const what = (m: Mode): string => `cube type ${name} (${m} object)`;
    for (const m of modes) if (!objects[m]!.subarray(0, 4).equals(ELF_MAGIC)) throw new InvalidArgumentError(m, `${what(m)} is not a usable BPF ELF object: it is no ELF file; give the .o that clang -target bpf produced`);
    let results: InspectResult[];
    if (opts.builtin) {
      results = modes.map((m) => {
        try {
          return { ok: true, report: describeObject(objects[m]!, `${name}.${m}`) };
        } catch (err) {
          return { ok: false, error: `${what(m)}: not a usable BPF ELF object: ${(err as Error).message}` };
        }
      });
    } else {
      results = await inspectObjects(modes.map((m) => ({ label: what(m), mode: m, elf: objects[m]!, testLoad: opts.testLoad })), policy);
    }
    const facts = modes.map((m, i) => {
      const r = results[i];
      if (!r.ok) throw new InvalidArgumentError(m, r.error);
      const f = objectFacts(what(m), m, r.report, policy);
      if (r.verdict && !r.verdict.ok) throw refusal(what(m), m, r.verdict);
      return f;
    });
    const [first] = facts;
    for (let i = 1; i < facts.length; i++) {
      const f = facts[i];
      const same =
        f.transparent === first.transparent &&
        f.decrementsTtl === first.decrementsTtl &&
        f.programs.join() === first.programs.join() &&
        JSON.stringify(f.tables.map((t) => [t.name, t.scope])) === JSON.stringify(first.tables.map((t) => [t.name, t.scope]));
      if (!same) throw new InvalidArgumentError('objects', `cube type ${name}: the xdp and tc objects describe different cubes; build both from one source`);
    }
    const digest = createHash('sha256');
    for (const m of modes) digest.update(m).update(objects[m]!);
    const mapBytes = Math.max(...facts.map((f) => f.mapBytes));
    return new CubeType(name, first.transparent, first.decrementsTtl, first.programs, first.tables, { ...objects }, opts.builtin === true, digest.digest('hex'), mapBytes);
  }

  /** A fresh, editable spec of this type's object for `mode`. */
  open(mode: Mode): CollectionSpec {
    const elf = this.objects[mode];
    if (!elf) throw new InvalidArgumentError('mode', `cube type ${this.name} has no ${mode} object`);
    return CollectionSpec.fromBuffer(elf, `${this.name}.${mode}`);
  }
}

/**
 * Built-in objects read and described once per process while their files stay
 * the same: a process that opens many runtimes (the tests, the bench) does not
 * read and parse the same megabytes again.
 */
const builtinFiles = new Map<string, { stamp: string; elf: Buffer }>();
const builtinTypes = new Map<string, { objects: Partial<Record<Mode, Buffer>>; policy: TypePolicy; type: Promise<CubeType> }>();

function readBuiltin(file: string): Buffer {
  const st = fs.statSync(file);
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const known = builtinFiles.get(file);
  if (known?.stamp === stamp) return known.elf;
  const elf = fs.readFileSync(file);
  builtinFiles.set(file, { stamp, elf });
  return elf;
}

function builtinType(name: string, objects: Partial<Record<Mode, Buffer>>, policy: TypePolicy): Promise<CubeType> {
  const known = builtinTypes.get(name);
  if (known && known.policy === policy && MODES.every((m) => known.objects[m] === objects[m])) return known.type;
  const type = CubeType.inspect(name, objects, { builtin: true, policy });
  builtinTypes.set(name, { objects, policy, type });
  return type;
}

/**
 * The types a host knows. Built-ins come from the build; uploaded types are kept
 * under the runtime's state directory so that a restarted daemon still has them
 * when etcd is out of reach.
 */
export class TypeRegistry {
  private readonly types = new Map<string, CubeType>();
  /** Types whose objects were refused when loaded, with why: reported, never in the way of the others. */
  readonly broken = new Map<string, string>();

  constructor(
    private readonly uploadDir: string,
    readonly policy: TypePolicy = DEFAULT_TYPE_POLICY,
  ) {}

  /**
   * Loads build/bpf/cubes/<type>.<mode>.o and the uploads kept in the state
   * directory. A type whose objects are refused (unreadable, malformed, against
   * the policy) is left out and listed in `broken`; the others load.
   */
  async load(builtinDir: string): Promise<void> {
    for (const [dir, builtin] of [[builtinDir, true], [this.uploadDir, false]] as const) {
      if (!fs.existsSync(dir)) continue;
      const byType = new Map<string, Partial<Record<Mode, Buffer>>>();
      for (const file of fs.readdirSync(dir)) {
        const m = /^(.+)\.(xdp|tc)\.o$/.exec(file);
        if (!m) continue;
        const objects = byType.get(m[1]) ?? {};
        try {
          objects[m[2] as Mode] = builtin ? readBuiltin(path.join(dir, file)) : fs.readFileSync(path.join(dir, file));
        } catch (err) {
          this.broken.set(m[1], `cannot read ${path.join(dir, file)}: ${(err as Error).message}`);
          continue;
        }
        byType.set(m[1], objects);
      }
      for (const [name, objects] of byType) {
        if (this.broken.has(name)) continue;
        try {
          this.types.set(name, await (builtin ? builtinType(name, objects, this.policy) : CubeType.inspect(name, objects, { policy: this.policy })));
        } catch (err) {
          this.broken.set(name, (err as Error).message);
        }
      }
    }
  }

  get(name: string): CubeType | undefined {
    return this.types.get(name);
  }

  list(): CubeType[] {
    return [...this.types.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Registers an uploaded type (made by CubeType.inspect); registering the same objects again is a no-op. */
  add(type: CubeType): CubeType {
    const name = type.name;
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
    // Whole or not at all: a daemon killed meanwhile leaves no half an object to load next time.
    for (const m of type.modes) {
      const file = path.join(this.uploadDir, `${name}.${m}.o`);
      fs.writeFileSync(`${file}.tmp`, type.objects[m]!);
      fs.renameSync(`${file}.tmp`, file);
    }
    this.types.set(name, type);
    this.broken.delete(name);
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

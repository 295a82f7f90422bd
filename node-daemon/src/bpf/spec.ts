// Specs: an ELF object opened by libbpf but not loaded, editable (variables,
// pin paths, shared maps, map sizes, which programs load), and the Collection
// its load() produces.
import { decode, encode, type BtfType } from '@netcube/api/btf';
import { native, type NativeObject, type ObjectDescription } from './addon';
import { ClosedError } from './errors';
import { BpfMap, mapHandle, type MapType } from './map';
import { Program, type ProgType } from './program';
import { checkBuffer, checkIndex, checkOptions, checkPath } from './validate';

export interface OpenOptions {
  /**
   * Bytes kept for the verifier log of a program that fails to load; default
   * 16 MiB (only what the verifier writes is ever touched). When the log is
   * longer the kernel keeps its end, where the reason is.
   */
  logSize?: number;
}

export interface LoadOptions {
  /**
   * Verifier log level requested for every program: 0 (default) asks for a
   * log only when a load fails (libbpf then retries with level 1), 2 logs
   * every instruction's state.
   */
  logLevel?: number;
}

const defaultLogSize = 16 << 20;

export class CollectionSpec {
  readonly name: string;
  /** Every map, including the internal ones backing .rodata/.data/.bss (flagged `internal`). */
  readonly maps: ReadonlyMap<string, MapSpec>;
  readonly programs: ReadonlyMap<string, ProgramSpec>;
  /** Globals of .rodata/.data/.bss, from the object's BTF. */
  readonly variables: ReadonlyMap<string, VariableSpec>;
  #native: NativeObject | undefined;
  #label: string;

  static fromFile(path: string, opts: OpenOptions = {}): CollectionSpec {
    checkPath(path, 'path');
    const name = path.replace(/^.*\//, '').replace(/\.o$/, '').replace(/\.bpf$/, '');
    return new CollectionSpec(path, name, opts);
  }

  /** ELF bytes, e.g. a cube type uploaded over gRPC; `name` names the object in errors and map names. */
  static fromBuffer(elf: Buffer, name: string, opts: OpenOptions = {}): CollectionSpec {
    checkBuffer(elf, 'elf');
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('name must be a non-empty string');
    return new CollectionSpec(elf, name, opts);
  }

  private constructor(source: string | Buffer, name: string, opts: OpenOptions) {
    checkOptions(opts);
    const logSize = opts.logSize ?? defaultLogSize;
    checkIndex(logSize, 'options.logSize', 128, 0x3fffffff);
    this.#label = `CollectionSpec '${name}'`;
    this.#native = new native.BpfObject(source, name, logSize);
    let description: ObjectDescription;
    try {
      description = this.#native.describe();
    } catch (error) {
      this.close();
      throw error;
    }
    this.name = description.name;
    this.maps = new Map(description.maps.map((m) => [m.name, new MapSpec(this, m)]));
    this.programs = new Map(description.programs.map((p) => [p.name, new ProgramSpec(this, p)]));
    this.variables = new Map(description.variables.map((v) => [v.name, new VariableSpec(this, v)]));
  }

  get closed(): boolean {
    return this.#native === undefined;
  }

  /**
   * Creates the maps (or reuses pinned and replaced ones) and loads the
   * programs, off the event loop. Consumes the spec: it is closed afterwards,
   * whether the load succeeded or not.
   */
  async load(opts: LoadOptions = {}): Promise<Collection> {
    const obj = this.live();
    checkOptions(opts);
    const logLevel = opts.logLevel ?? 0;
    checkIndex(logLevel, 'options.logLevel', 0, 2);
    this.#native = undefined;
    const loaded = await obj.load(logLevel);
    return new Collection(loaded.maps.map(({ name, handle }) => new BpfMap(handle, name)),
                          loaded.programs.map(({ name, handle }) => new Program(handle, name)));
  }

  close(): void {
    this.#native?.close();
    this.#native = undefined;
  }

  toString(): string {
    return this.#label;
  }

  /** @internal */
  live(): NativeObject {
    if (this.#native === undefined) throw new ClosedError(this.#label);
    return this.#native;
  }
}

type MapDescription = ObjectDescription['maps'][number];

export class MapSpec {
  readonly name: string;
  readonly type: MapType;
  /** The kernel's enum bpf_map_type value. */
  readonly typeId: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly flags: number;
  readonly internal: boolean;
  readonly keyType?: BtfType;
  readonly valueType?: BtfType;
  #maxEntries: number;
  #pinPath: string | undefined;
  #spec: CollectionSpec;

  /** @internal */
  constructor(spec: CollectionSpec, m: MapDescription) {
    this.#spec = spec;
    this.name = m.name;
    this.type = m.type as MapType;
    this.typeId = m.typeId;
    this.keySize = m.keySize;
    this.valueSize = m.valueSize;
    this.flags = m.flags;
    this.internal = m.internal;
    this.keyType = m.keyType;
    this.valueType = m.valueType;
    this.#maxEntries = m.maxEntries;
  }

  get maxEntries(): number {
    return this.#maxEntries;
  }

  setMaxEntries(n: number): void {
    checkIndex(n, 'maxEntries', 1, 0xffffffff);
    this.#spec.live().setMaxEntries(this.name, n);
    this.#maxEntries = n;
  }

  /**
   * Where the map is pinned. Set before load: libbpf reuses a compatible map
   * pinned there, or creates the map and pins it there (the directory must
   * exist on a bpffs mount).
   */
  get pinPath(): string | undefined {
    return this.#pinPath;
  }

  set pinPath(path: string | undefined) {
    if (path !== undefined) checkPath(path, `pinPath of map '${this.name}'`);
    this.#spec.live().setPinPath(this.name, path ?? null);
    this.#pinPath = path;
  }

  /** Loads the programs against `map` instead of creating this one (shared tables). */
  replaceWith(map: BpfMap): void {
    const handle = mapHandle(map);
    const want = `${this.type} ${this.keySize}/${this.valueSize}`;
    const got = `${map.type} ${map.keySize}/${map.valueSize}`;
    if (want !== got) {
      throw new TypeError(`${map} (${got}) cannot replace map '${this.name}' (${want}): type and key/value sizes differ`);
    }
    this.#spec.live().reuseMap(this.name, handle);
  }
}

type ProgramDescription = ObjectDescription['programs'][number];

export class ProgramSpec {
  readonly name: string;
  readonly section: string;
  readonly type: ProgType;
  #autoload: boolean;
  #spec: CollectionSpec;

  /** @internal */
  constructor(spec: CollectionSpec, p: ProgramDescription) {
    this.#spec = spec;
    this.name = p.name;
    this.section = p.section;
    this.type = p.type as ProgType;
    this.#autoload = p.autoload;
  }

  /** Whether load() loads this program; a Collection only has the loaded ones. */
  get autoload(): boolean {
    return this.#autoload;
  }

  set autoload(value: boolean) {
    if (typeof value !== 'boolean') throw new TypeError(`autoload of program '${this.name}' must be a boolean`);
    this.#spec.live().setAutoload(this.name, value);
    this.#autoload = value;
  }
}

type VariableDescription = ObjectDescription['variables'][number];

export class VariableSpec {
  readonly name: string;
  readonly section: string;
  readonly offset: number;
  readonly size: number;
  readonly type: BtfType;
  /** In .rodata (`const volatile`): the verifier sees the value and prunes what it turns off. */
  readonly constant: boolean;
  #spec: CollectionSpec;

  /** @internal */
  constructor(spec: CollectionSpec, v: VariableDescription) {
    this.#spec = spec;
    this.name = v.name;
    this.section = v.section;
    this.offset = v.offset;
    this.size = v.size;
    this.type = v.type;
    this.constant = v.section.startsWith('.rodata');
  }

  /** Sets the initial value, encoded through the variable's BTF type; before load only. */
  set(value: number | bigint | boolean | string | Buffer | object): void {
    const obj = this.#spec.live();
    obj.setInitialValue(this.section, this.offset, encode(this.type, value, this.name));
  }

  get(): unknown {
    const bytes = this.#spec.live().initialValue(this.section);
    if (bytes === undefined) throw new TypeError(`variable '${this.name}' has no initial value`);
    return decode(this.type, bytes.subarray(this.offset, this.offset + this.size));
  }
}

export class Collection {
  /** Every map, internal ones included (keyed '.rodata', '.data', '.bss'); each with its own fd. */
  readonly maps: ReadonlyMap<string, BpfMap>;
  /** The programs that were loaded (autoload). */
  readonly programs: ReadonlyMap<string, Program>;

  /** @internal */
  constructor(maps: BpfMap[], programs: Program[]) {
    this.maps = new Map(maps.map((m) => [m.name, m]));
    this.programs = new Map(programs.map((p) => [p.name, p]));
  }

  /** The map called `name`; throws naming the map when there is none. */
  map(name: string): BpfMap {
    const map = this.maps.get(name);
    if (map === undefined) throw new RangeError(`no map '${name}' (maps: ${[...this.maps.keys()].join(', ')})`);
    return map;
  }

  /** The program called `name`; throws naming the program when there is none. */
  program(name: string): Program {
    const program = this.programs.get(name);
    if (program === undefined) {
      throw new RangeError(`no program '${name}' (programs: ${[...this.programs.keys()].join(', ')})`);
    }
    return program;
  }

  close(): void {
    for (const map of this.maps.values()) map.close();
    for (const program of this.programs.values()) program.close();
  }
}

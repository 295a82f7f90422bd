// The values netcube keeps in etcd (see keys.ts for where), and how they are read back.
// Revisions are not stored in values: etcd's own mod revision of the key is the truth.

// Every value read back is checked whole, as if it came from a stranger: anything
// with etcd access can write these keys. One that fails is a CorruptValueError
// naming the key and what is wrong; where many are read (decodeEach, watches) it is
// set apart and reported, and the others go on.

import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Chain, CUBE_MODES, CubeMode, CubeTypeInfo, MAX_MICROCUBES, tableFacts, tableNameProblem } from '../chain';
import { normalizeChain, pathToString } from '../chain/schema';
import { cite, firstOf } from '../cite';
import { decode, KeyValue } from './etcd';
import { CorruptValueError, CubePlacement } from './errors';
import { CHAIN_HISTORY_PREFIX, CHAINS_PREFIX, HOSTS_PREFIX, MAX_VERSION, STATUS_PREFIX, TYPES_PREFIX } from './keys';
import { hostNameProblem, nameProblem } from '../names';

/** The current version of a chain. */
export interface StoredChain {
  name: string;
  version: number;
  /** etcd revision of the write that applied this version. */
  revision: number;
  appliedAt: string;
  chain: Chain;
}

/** What /chains/<name> holds. */
export interface CurrentChainValue {
  version: number;
  appliedAt: string;
  chain: Chain;
}

/** What /chain-history/<name>/<version> holds: a version applied, or the chain deleted. */
export type HistoryValue = { version: number; at: string } & (
  | { action: 'apply'; chain: Chain; /** The version this one restored. */ rollbackOf?: number }
  | { action: 'delete' }
);

/** One entry of a chain's history. */
export type ChainHistoryEntry = HistoryValue & { name: string; /** etcd revision of the write. */ revision: number };

export interface HostRegistration {
  name: string;
  /** Where netcubed serves gRPC, e.g. `10.0.0.1:7400`. */
  endpoints: string[];
  startedAt: string;
  kernel: string;
  features: string[];
}

export interface RegisteredHost extends HostRegistration {
  revision: number;
}

export const CUBE_STATES = ['applied', 'error', 'pending'] as const;
export type CubeState = (typeof CUBE_STATES)[number];

/** What a host observed applying one cube. */
export interface CubeStatus {
  chain: string;
  version: number;
  /** etcd revision of the chain version the host applied. */
  revision: number;
  state: CubeState;
  error?: string;
  updatedAt: string;
}

export interface CubeStatusEntry extends CubeStatus {
  host: string;
  cube: string;
}

export type CubeObjects = Partial<Record<CubeMode, Buffer>>;

export interface RegisteredCubeType extends CubeTypeInfo {
  /** The ELF object of each mode. */
  objects: CubeObjects;
  /** Identifies the objects, so a host can tell whether its loaded copy is current. */
  sha256: string;
  registeredAt: string;
  revision: number;
}

interface CubeTypeValue extends CubeTypeInfo {
  objects: Partial<Record<CubeMode, string>>; // base64
  sha256: string;
  registeredAt: string;
}

/** A value that could not be read, where many were: what the list says in its place. */
export interface BrokenRecord {
  /** The key below its prefix: a chain, type or host name, `host/cube` for status. */
  name: string;
  key: string;
  /** etcd revision of its last write. */
  revision: number;
  /** What is wrong, and what to do. */
  error: string;
  /** Of a chain: its version and where it places cubes, as far as they could be read. */
  version?: number;
  cubes?: readonly CubePlacement[];
}

/** What a range of keys holds: the values that read, and the keys that did not, apart. */
export interface Decoded<T> {
  values: T[];
  broken: BrokenRecord[];
}

/** Decodes each of `kvs` under `prefix`; one that fails is set apart, not thrown. */
export function decodeEach<T>(kvs: readonly KeyValue[], prefix: string, decodeOne: (kv: KeyValue) => T): Decoded<T> {
  const out: Decoded<T> = { values: [], broken: [] };
  for (const kv of kvs) {
    try {
      out.values.push(decodeOne(kv));
    } catch (err) {
      if (!(err instanceof CorruptValueError)) throw err;
      out.broken.push(brokenRecord(kv, prefix, err));
    }
  }
  return out;
}

export function brokenRecord(kv: KeyValue, prefix: string, err: CorruptValueError): BrokenRecord {
  return { name: kv.key.slice(prefix.length), key: kv.key, revision: kv.modRevision, error: err.message, ...err.salvaged };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isDate = (v: unknown): v is string => typeof v === 'string' && v.length <= 64 && !Number.isNaN(Date.parse(v));
const isVersion = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_VERSION;
const problemsOf = (...found: (string | undefined | false)[]): string[] => found.filter((p): p is string => !!p);
/** The most problems of one value a message names. */
const MAX_PROBLEMS = 3;

function corrupt(kv: KeyValue, what: string, problems: readonly string[], salvaged?: CorruptValueError['salvaged']): CorruptValueError {
  return new CorruptValueError(
    `value at ${cite(kv.key)} (etcd revision ${kv.modRevision}) is not ${what}: ${firstOf(problems, MAX_PROBLEMS)}. It was not written by netcube: delete or repair it with etcdctl`,
    kv.key,
    salvaged,
  );
}

/** The problems of a chain's shape, as path: message. */
function chainProblems(value: unknown): { chain?: Chain; problems: string[] } {
  const { chain, issues } = normalizeChain(value);
  return { chain, problems: issues.map((i) => `chain ${pathToString(i.path) || '(whole)'}: ${i.message}`) };
}

/** What can still be read of a broken chain: its version, and the cubes it places on hosts. */
function salvageChain(value: unknown): CorruptValueError['salvaged'] {
  if (!isObject(value)) return {};
  const spec = isObject(value.chain) && isObject(value.chain.spec) ? value.chain.spec : undefined;
  const cubes = Array.isArray(spec?.cubes)
    ? spec.cubes.filter(
        (c): c is CubePlacement =>
          isObject(c) && typeof c.name === 'string' && typeof c.host === 'string' && !nameProblem(c.name, 'cube name') && !hostNameProblem(c.host),
      ).map((c) => ({ name: c.name, host: c.host }))
    : undefined;
  return { ...(isVersion(value.version) ? { version: value.version } : {}), ...(cubes ? { cubes } : {}) };
}

export function decodeStoredChain(kv: KeyValue): StoredChain {
  const name = kv.key.slice(CHAINS_PREFIX.length);
  const value = decode<CurrentChainValue>(kv);
  if (!isObject(value)) throw corrupt(kv, 'a chain', ['it is not a mapping']);
  const { chain, problems } = chainProblems(value.chain);
  problems.unshift(
    ...problemsOf(
      nameProblem(name, 'chain name (its key)'),
      !isVersion(value.version) && `version must be an integer from 1 to ${MAX_VERSION}`,
      !isDate(value.appliedAt) && 'appliedAt must be a date',
      chain && chain.metadata.name !== name && `its key names chain ${cite(name)} but metadata.name is ${chain.metadata.name}`,
    ),
  );
  if (problems.length > 0 || !chain) throw corrupt(kv, 'a chain', problems, salvageChain(value));
  return { name, version: value.version, revision: kv.modRevision, appliedAt: value.appliedAt, chain };
}

/** The version a history key is for, from the key alone. */
export function historyVersion(key: string): number | undefined {
  const digits = key.slice(key.lastIndexOf('/') + 1);
  const version = /^[0-9]{1,10}$/.test(digits) ? Number(digits) : NaN;
  return isVersion(version) ? version : undefined;
}

export function decodeHistoryEntry(kv: KeyValue): ChainHistoryEntry {
  const value = decode<HistoryValue>(kv);
  const name = kv.key.slice(CHAIN_HISTORY_PREFIX.length, kv.key.lastIndexOf('/'));
  if (!isObject(value)) throw corrupt(kv, 'a chain history entry', ['it is not a mapping']);
  const fromKey = historyVersion(kv.key);
  const problems = problemsOf(
    nameProblem(name, 'chain name (its key)'),
    fromKey === undefined && 'its key does not end in a version',
    value.version !== fromKey && `version must be ${fromKey ?? 'the one its key ends in'}`,
    !isDate(value.at) && 'at must be a date',
    value.action !== 'apply' && value.action !== 'delete' && 'action must be apply or delete',
  );
  if (value.action === 'apply') {
    const { chain, problems: shape } = chainProblems(value.chain);
    problems.push(...shape, ...problemsOf(chain && chain.metadata.name !== name && `its key names chain ${cite(name)} but metadata.name is ${chain.metadata.name}`));
    if (value.rollbackOf !== undefined && !isVersion(value.rollbackOf)) problems.push('rollbackOf must be a version');
    if (problems.length === 0) return { ...value, chain: chain!, name, revision: kv.modRevision };
  }
  if (problems.length > 0) throw corrupt(kv, 'a chain history entry', problems);
  return { version: value.version, at: value.at, action: 'delete', name, revision: kv.modRevision };
}

/** What is wrong with a host's registration; empty when nothing is. */
export function registrationProblems(info: HostRegistration): string[] {
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 1024);
  return problemsOf(
    typeof info.name === 'string' ? hostNameProblem(info.name) : 'name must be a string',
    (!strings(info.endpoints) || info.endpoints.length === 0) && 'endpoints must list at least one address (host:port) where netcubed serves gRPC',
    !isDate(info.startedAt) && `startedAt must be an ISO 8601 date, got ${cite(JSON.stringify(info.startedAt) ?? 'nothing')}`,
    typeof info.kernel !== 'string' && 'kernel must be a string (the uname release)',
    !strings(info.features) && 'features must be a list of non-empty strings',
  );
}

export function decodeHost(kv: KeyValue): RegisteredHost {
  const value = decode<HostRegistration>(kv);
  const name = kv.key.slice(HOSTS_PREFIX.length);
  if (!isObject(value)) throw corrupt(kv, 'a host registration', ['it is not a mapping']);
  const problems = registrationProblems(value);
  if (problems.length === 0 && value.name !== name) problems.push(`its key names host ${cite(name)} but name is ${value.name}`);
  if (problems.length > 0) throw corrupt(kv, 'a host registration', problems);
  const { endpoints, startedAt, kernel, features } = value;
  return { name, endpoints, startedAt, kernel, features, revision: kv.modRevision };
}

/** What is wrong with a status `host` reports about `cube`; empty when nothing is. */
export function statusProblems(host: string, cube: string, status: Omit<CubeStatus, 'updatedAt'> & { updatedAt?: unknown }): string[] {
  return problemsOf(
    hostNameProblem(String(host)),
    nameProblem(String(cube), 'cube name'),
    typeof status.chain === 'string' ? nameProblem(status.chain, 'chain name') : 'chain must be a chain name',
    !isVersion(status.version) && `version must be an integer >= 1, got ${cite(String(status.version))}`,
    !(Number.isInteger(status.revision) && status.revision >= 1) && `revision must be an etcd revision (>= 1), got ${cite(String(status.revision))}`,
    !CUBE_STATES.includes(status.state) && `state must be one of ${CUBE_STATES.join(', ')}, got ${cite(JSON.stringify(status.state) ?? 'nothing')}`,
    status.state === 'error' && !status.error && 'state is error but error is empty: say what failed',
    status.error !== undefined && typeof status.error !== 'string' && 'error must be a string',
    status.updatedAt !== undefined && !isDate(status.updatedAt) && 'updatedAt must be a date',
  );
}

export function decodeStatus(kv: KeyValue): CubeStatusEntry {
  const value = decode<CubeStatus>(kv);
  const segments = kv.key.slice(STATUS_PREFIX.length).split('/');
  const [host, cube] = segments;
  if (!isObject(value)) throw corrupt(kv, 'a cube status', ['it is not a mapping']);
  const problems = segments.length === 2 ? statusProblems(host, cube, value) : ['its key is not status/<host>/<cube>'];
  if (value.updatedAt === undefined) problems.push('updatedAt must be a date');
  if (problems.length > 0) throw corrupt(kv, 'a cube status', problems);
  const { chain, version, revision, state, error, updatedAt } = value;
  return { chain, version, revision, state, ...(error !== undefined ? { error } : {}), updatedAt, host, cube };
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** What is wrong with a cube type's description and objects; empty when nothing is. */
export function cubeTypeProblems(type: { name: unknown; transparent: unknown; microcubes: unknown; modes: unknown; objects: unknown; decrementsTtl?: unknown; tables?: unknown }): string[] {
  const problems: string[] = [];
  const nameIssue = typeof type.name === 'string' ? nameProblem(type.name, 'cube type name') : 'name must be a string';
  if (nameIssue) problems.push(nameIssue);
  if (typeof type.transparent !== 'boolean') problems.push('transparent must be true or false');
  if (type.decrementsTtl !== undefined && typeof type.decrementsTtl !== 'boolean') problems.push('decrementsTtl must be true or false when given');
  if (type.tables !== undefined) problems.push(...tablesProblems(type.tables));
  if (!Number.isInteger(type.microcubes) || (type.microcubes as number) < 1 || (type.microcubes as number) > MAX_MICROCUBES) {
    problems.push(`microcubes must be an integer from 1 to ${MAX_MICROCUBES} (the programs a cube has slots for), got ${cite(String(type.microcubes))}`);
  }
  const modes: unknown[] = Array.isArray(type.modes) ? type.modes : [];
  if (modes.length === 0 || modes.some((m) => !CUBE_MODES.includes(m as CubeMode)) || new Set(modes).size !== modes.length) {
    problems.push(`modes must list xdp, tc or both, once each; got ${cite(JSON.stringify(type.modes) ?? 'nothing')}`);
  }
  const objects = isObject(type.objects) ? type.objects : {};
  if (!isObject(type.objects)) problems.push('objects must map modes to ELF objects');
  for (const mode of CUBE_MODES) {
    const object = objects[mode];
    if (modes.includes(mode) && !Buffer.isBuffer(object)) problems.push(`objects.${mode} is missing: upload the ${mode} ELF object`);
    if (!modes.includes(mode) && object !== undefined) problems.push(`objects.${mode} is given but modes does not list ${mode}`);
    if (Buffer.isBuffer(object) && !object.subarray(0, 4).equals(ELF_MAGIC)) {
      problems.push(`objects.${mode} is not an ELF object: upload the .o that clang -target bpf produced`);
    }
    if (Buffer.isBuffer(object) && object.length > MAX_UNPACKED_OBJECT_BYTES) {
      problems.push(`objects.${mode} is ${object.length} bytes, over the ${MAX_UNPACKED_OBJECT_BYTES} an object may have`);
    }
  }
  for (const key of Object.keys(objects)) {
    if (!CUBE_MODES.includes(key as CubeMode)) problems.push(`objects.${cite(key)}: unknown mode; objects are keyed xdp or tc`);
  }
  return problems;
}

/** The most tables a type's record may list (a bound on what a record can make us hold). */
const MAX_TYPE_TABLES = 1024;
const TABLE_SCOPES: readonly string[] = ['private', 'cube', 'host'];

/** What is wrong with the tables a type's record lists (name, scope, map kind, declared size each). */
function tablesProblems(tables: unknown): string[] {
  if (!Array.isArray(tables) || tables.length > MAX_TYPE_TABLES) return [`tables must be a list of at most ${MAX_TYPE_TABLES} tables`];
  const problems: string[] = [];
  tables.forEach((t: unknown, i) => {
    const table = isObject(t) ? t : {};
    const ok =
      isObject(t) &&
      typeof table.name === 'string' &&
      tableNameProblem(table.name) === undefined &&
      typeof table.scope === 'string' &&
      TABLE_SCOPES.includes(table.scope) &&
      typeof table.mapType === 'string' &&
      /^[a-z_]{1,32}$/.test(table.mapType) &&
      Number.isInteger(table.maxEntries) &&
      (table.maxEntries as number) >= 0 &&
      (table.maxEntries as number) <= 0xffffffff;
    if (!ok) problems.push(`tables[${i}] must be {name, scope (private, cube or host), mapType, maxEntries}`);
  });
  return problems.slice(0, 3);
}

/** Over the objects in mode order, each framed by its mode and length so no two uploads collide. */
export function objectsDigest(objects: CubeObjects): string {
  const hash = createHash('sha256');
  for (const mode of CUBE_MODES) {
    const object = objects[mode];
    if (object) hash.update(`${mode}:${object.length}:`).update(object);
  }
  return hash.digest('hex');
}

// An object is kept gzipped ("gzip:" and base64): the catalog's types, with a
// direct-jump tree at every way out of a cube, pass etcd's 1.5 MiB request limit
// uncompressed, and BPF code compresses about five to one. Plain base64 is read too.
const GZIP = 'gzip:';
/** The most bytes an object in etcd may unpack to: a bound on what a record can make us allocate. */
export const MAX_UNPACKED_OBJECT_BYTES = 16 * 1024 * 1024;

export function cubeTypeValue(type: Omit<RegisteredCubeType, 'revision'>): CubeTypeValue {
  const objects: CubeTypeValue['objects'] = {};
  for (const [mode, object] of Object.entries(type.objects) as [CubeMode, Buffer][]) {
    objects[mode] = GZIP + gzipSync(object, { level: 9 }).toString('base64');
  }
  return { ...type, objects };
}

/** An object as a record holds it, or why it cannot be read. */
function unpackObject(text: string): Buffer | string {
  if (!text.startsWith(GZIP)) return Buffer.from(text, 'base64');
  try {
    return gunzipSync(Buffer.from(text.slice(GZIP.length), 'base64'), { maxOutputLength: MAX_UNPACKED_OBJECT_BYTES });
  } catch (err) {
    return err instanceof RangeError ? `unpacks to more than ${MAX_UNPACKED_OBJECT_BYTES} bytes` : `is not gzip data (${cite((err as Error).message, 80)})`;
  }
}

export function decodeCubeType(kv: KeyValue): RegisteredCubeType {
  const value = decode<CubeTypeValue>(kv);
  const name = kv.key.slice(TYPES_PREFIX.length);
  if (!isObject(value)) throw corrupt(kv, 'a cube type', ['it is not a mapping']);
  const objects: CubeObjects = {};
  const problems: string[] = [];
  for (const [mode, text] of Object.entries(isObject(value.objects) ? value.objects : {})) {
    const object = typeof text === 'string' ? unpackObject(text) : 'must be base64, or gzip: and base64';
    if (Buffer.isBuffer(object)) objects[mode as CubeMode] = object;
    else problems.push(`objects.${cite(mode)} ${object}`);
  }
  problems.push(...cubeTypeProblems({ ...value, name, objects: isObject(value.objects) ? objects : value.objects }));
  if (problems.length === 0 && value.name !== name) problems.push(`its key names type ${cite(name)} but name is ${cite(String(value.name))}`);
  if (!isDate(value.registeredAt)) problems.push('registeredAt must be a date');
  if (problems.length === 0 && value.sha256 !== objectsDigest(objects)) problems.push('sha256 is not the digest of its objects');
  if (problems.length > 0) throw corrupt(kv, 'a cube type', problems);
  const { transparent, microcubes, modes, sha256, registeredAt } = value;
  const tables = value.tables?.map(tableFacts);
  return { name, transparent, microcubes, modes, ...(value.decrementsTtl === true ? { decrementsTtl: true } : {}), ...(tables ? { tables } : {}), objects, sha256, registeredAt, revision: kv.modRevision };
}

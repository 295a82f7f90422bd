// The values netcube keeps in etcd (see keys.ts for where), and how they are read back.
// Revisions are not stored in values: etcd's own mod revision of the key is the truth.

import { Chain, CubeMode, CubeTypeInfo } from '../chain';
import { decode, KeyValue } from './etcd';
import { StoreError } from './errors';
import { CHAIN_HISTORY_PREFIX, CHAINS_PREFIX, HOSTS_PREFIX, STATUS_PREFIX, TYPES_PREFIX } from './keys';

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

function corrupt(kv: KeyValue, what: string): StoreError {
  return new StoreError(`value at ${kv.key} is not ${what}: it was not written by netcube; delete or repair it with etcdctl`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function decodeStoredChain(kv: KeyValue): StoredChain {
  const value = decode<CurrentChainValue>(kv);
  if (!isObject(value) || typeof value.version !== 'number' || !isObject(value.chain)) throw corrupt(kv, 'a chain');
  return {
    name: kv.key.slice(CHAINS_PREFIX.length),
    version: value.version,
    revision: kv.modRevision,
    appliedAt: value.appliedAt,
    chain: value.chain,
  };
}

export function decodeHistoryEntry(kv: KeyValue): ChainHistoryEntry {
  const value = decode<HistoryValue>(kv);
  if (!isObject(value) || typeof value.version !== 'number' || (value.action !== 'apply' && value.action !== 'delete')) {
    throw corrupt(kv, 'a chain history entry');
  }
  const name = kv.key.slice(CHAIN_HISTORY_PREFIX.length, kv.key.lastIndexOf('/'));
  return { ...value, name, revision: kv.modRevision };
}

export function decodeHost(kv: KeyValue): RegisteredHost {
  const value = decode<HostRegistration>(kv);
  if (!isObject(value) || typeof value.name !== 'string' || !Array.isArray(value.endpoints)) {
    throw corrupt(kv, 'a host registration');
  }
  return { ...value, name: kv.key.slice(HOSTS_PREFIX.length), revision: kv.modRevision };
}

export function decodeStatus(kv: KeyValue): CubeStatusEntry {
  const value = decode<CubeStatus>(kv);
  if (!isObject(value) || typeof value.chain !== 'string' || !CUBE_STATES.includes(value.state)) {
    throw corrupt(kv, 'a cube status');
  }
  const [host, cube] = kv.key.slice(STATUS_PREFIX.length).split('/');
  return { ...value, host, cube };
}

export function cubeTypeValue(type: Omit<RegisteredCubeType, 'revision'>): CubeTypeValue {
  const objects: CubeTypeValue['objects'] = {};
  for (const [mode, object] of Object.entries(type.objects) as [CubeMode, Buffer][]) {
    objects[mode] = object.toString('base64');
  }
  return { ...type, objects };
}

export function decodeCubeType(kv: KeyValue): RegisteredCubeType {
  const value = decode<CubeTypeValue>(kv);
  if (!isObject(value) || typeof value.microcubes !== 'number' || !Array.isArray(value.modes) || !isObject(value.objects)) {
    throw corrupt(kv, 'a cube type');
  }
  const objects: CubeObjects = {};
  for (const [mode, base64] of Object.entries(value.objects) as [CubeMode, string][]) {
    objects[mode] = Buffer.from(base64, 'base64');
  }
  return { ...value, name: kv.key.slice(TYPES_PREFIX.length), objects, revision: kv.modRevision };
}

// The config a service's SetConfig gives a cube, kept under the service's own keys
// (a service may write no chain: store/access.ts). A cube's config is its params in
// its chain, unless the service holds config for it that was set over exactly those
// params: SetConfig's config stands until the chain gives the cube other params
// (a new apply, a rollback), which then win. The leader forgets config that no
// longer stands (forgetStale), so that going back to old params does not bring it
// back either.

import { createHash } from 'node:crypto';
import { type JsonObject, type JsonValue } from '../chain';
import { cite, firstOf } from '../cite';
import { absent, decode, deleteOp, Etcd, KeyValue, prefixOp, putOp, unchangedSince } from './etcd';
import { ConflictError, CorruptValueError, ValidationError } from './errors';
import { chainKey, serviceConfigKey, serviceConfigPrefix } from './keys';
import { Decoded, decodeEach, type StoredChain } from './records';
import { PrefixWatch } from './watch';
import { nameProblem } from '../names';

/** What services/<type>/config/<cube> holds. */
export interface ServiceConfigValue {
  /** The config, as SetConfig validated it. */
  params: JsonObject;
  /** The chain the cube was in, and paramsDigest() of its params there when this was set. */
  chain: string;
  basis: string;
  setAt: string;
  /** Who set it (the caller's identity). */
  setBy: string;
}

export interface StoredServiceConfig extends ServiceConfigValue {
  cube: string;
  /** etcd revision of the write. */
  revision: number;
}

export type ServiceConfigWatch = PrefixWatch<StoredServiceConfig>;

/** A digest of params that does not depend on the order of their keys. */
export function paramsDigest(params: JsonValue | undefined): string {
  const canonical = (v: JsonValue | undefined): unknown =>
    Array.isArray(v) ? v.map(canonical) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])])) : (v ?? null);
  return createHash('sha256').update(JSON.stringify(canonical(params))).digest('hex');
}

/** The config of `cube` given its chain's params and the service's config for it: which stands, and where from. */
export function effectiveConfig(chainParams: JsonObject, held: StoredServiceConfig | undefined, chain: string): { params: JsonObject; source: 'chain' | 'service'; revision?: number } {
  if (held && held.chain === chain && held.basis === paramsDigest(chainParams)) return { params: held.params, source: 'service', revision: held.revision };
  return { params: chainParams, source: 'chain' };
}

export class ServiceConfigs {
  constructor(private readonly etcd: Etcd) {}

  /** The config held for each cube; a value that cannot be read is left out (it stands for nothing: the chain's params do). */
  async list(type: string): Promise<StoredServiceConfig[]> {
    return (await this.listWithBroken(type)).values;
  }

  /** The config held for each cube, and apart the values that cannot be read, with why. */
  async listWithBroken(type: string): Promise<Decoded<StoredServiceConfig>> {
    const { ranges } = await this.etcd.read(`read the config of the ${type} service`, [prefixOp(serviceConfigPrefix(type))]);
    return decodeEach(ranges[0], serviceConfigPrefix(type), (kv) => decodeServiceConfig(serviceConfigPrefix(type), kv));
  }

  watch(type: string): ServiceConfigWatch {
    return new PrefixWatch(this.etcd, serviceConfigPrefix(type), (kv) => decodeServiceConfig(serviceConfigPrefix(type), kv), `config of the ${type} service`);
  }

  /**
   * Sets `cube`'s config over its params in `stored` (its chain as read), if neither
   * the chain nor the held config (`heldRevision`, 0: none; that of a value that cannot
   * be read, to replace it) changed since they were read: ConflictError otherwise.
   */
  async put(type: string, cube: string, stored: StoredChain, params: JsonObject, heldRevision: number, setBy: string): Promise<StoredServiceConfig> {
    const spec = stored.chain.spec.cubes.find((c) => c.name === cube);
    if (!spec) throw new ValidationError(`cube ${cube} is not in chain ${stored.name}`);
    const value: ServiceConfigValue = { params, chain: stored.name, basis: paramsDigest(spec.params), setAt: new Date().toISOString(), setBy };
    const key = serviceConfigKey(type, cube);
    const result = await this.etcd.write(
      `set the config of cube ${cube}`,
      [unchangedSince(chainKey(stored.name), stored.revision), heldRevision ? unchangedSince(key, heldRevision) : absent(key)],
      [putOp(key, value)],
    );
    if (!result.succeeded) throw new ConflictError(`cube ${cube}: its chain ${stored.name} or its config changed meanwhile; read it again`);
    return { ...value, cube, revision: result.revision };
  }

  /** Forgets `held` unless it changed since (its revision): once the chain gave the cube other params. */
  async forgetStale(type: string, held: StoredServiceConfig): Promise<void> {
    const key = serviceConfigKey(type, held.cube);
    await this.etcd.write(`forget the config of cube ${held.cube}`, [unchangedSince(key, held.revision)], [deleteOp(key)]);
  }
}

function decodeServiceConfig(prefix: string, kv: KeyValue): StoredServiceConfig {
  const cube = kv.key.slice(prefix.length);
  const value = decode<ServiceConfigValue>(kv);
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const problems = !isObject(value)
    ? ['it is not a mapping']
    : [
        nameProblem(cube, 'cube name (its key)'),
        !isObject(value.params) && 'params must be a mapping',
        typeof value.chain === 'string' ? nameProblem(value.chain, 'chain name') : 'chain must be a chain name',
        !(typeof value.basis === 'string' && /^[0-9a-f]{64}$/.test(value.basis)) && 'basis must be the sha256 of the params it was set over',
        !(typeof value.setAt === 'string' && !Number.isNaN(Date.parse(value.setAt))) && 'setAt must be a date',
        typeof value.setBy !== 'string' && 'setBy must be a string',
      ].filter((p): p is string => !!p);
  if (problems.length > 0) {
    throw new CorruptValueError(`value at ${cite(kv.key)} is not a cube's config: ${firstOf(problems, 3)}. It was not written by netcube: set the config again (SetConfig) or delete it with etcdctl`, kv.key);
  }
  const { params, chain, basis, setAt, setBy } = value;
  return { params, chain, basis, setAt, setBy, cube, revision: kv.modRevision };
}

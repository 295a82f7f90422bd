// The config a service's SetConfig gives a cube, kept under the service's own keys
// (a service may write no chain: store/access.ts). A cube's config is its params in
// its chain, unless the service holds config for it that was set over exactly those
// params: SetConfig's config stands until the chain gives the cube other params
// (a new apply, a rollback), which then win. The leader forgets config that no
// longer stands (forgetStale), so that going back to old params does not bring it
// back either.

import { createHash } from 'node:crypto';
import type { JsonObject, JsonValue } from '../chain';
import { absent, decode, deleteOp, Etcd, prefixOp, putOp, unchangedSince } from './etcd';
import { ConflictError, ValidationError } from './errors';
import { chainKey, serviceConfigKey, serviceConfigPrefix } from './keys';
import type { StoredChain } from './records';
import { PrefixWatch } from './watch';

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

  async list(type: string): Promise<StoredServiceConfig[]> {
    const { ranges } = await this.etcd.read(`read the config of the ${type} service`, [prefixOp(serviceConfigPrefix(type))]);
    return ranges[0].map((kv) => decodeServiceConfig(kv.key.slice(serviceConfigPrefix(type).length), kv));
  }

  watch(type: string): ServiceConfigWatch {
    return new PrefixWatch(this.etcd, serviceConfigPrefix(type), (kv) => decodeServiceConfig(kv.key.slice(serviceConfigPrefix(type).length), kv), `config of the ${type} service`);
  }

  /**
   * Sets `cube`'s config over its params in `stored` (its chain as read), if neither
   * the chain nor the held config (`heldRevision`, 0: none) changed since they were
   * read: ConflictError otherwise.
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

function decodeServiceConfig(cube: string, kv: Parameters<typeof decode>[0]): StoredServiceConfig {
  const value = decode<ServiceConfigValue>(kv);
  return { ...value, cube, revision: kv.modRevision };
}

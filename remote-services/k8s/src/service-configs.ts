// What of a node's chain goes into etcd as a new version of the chain, and what as
// the services' config (store/service-config.ts, the records netcubectl config and
// SetConfig write and the services' leaders follow). Pure: the derived chain, the
// chain as stored and the config held in, the writes out.
//
// The chain is written whole (every cube's params with it) when its shape changes: a
// cube, a port, a link or an attachment, or the params of a cube whose type has no
// config here (the router's). A pod that comes or goes changes the shape, so a new
// firewall or a new frontend arrives in one write, never without its config. Changes
// of the configured cubes' params alone (a Service's endpoints, a NetworkPolicy's
// rules) go to the services' config, set over the params the stored chain gives the
// cube: the chain is not rewritten (no new version, nothing for the daemons to
// reconcile) for an endpoint that comes or goes.

import { checkedChain, diffChains, type Chain, type JsonObject } from '@netcube/api/chain';
import { effectiveConfig, paramsDigest, type StoredChain, type StoredServiceConfig } from '@netcube/api/store';

/** The cube types whose services take config from the controller (the catalog's). */
export const CONFIGURED_TYPES = ['lbrp', 'firewall'] as const;

export interface ConfigPut {
  type: string;
  cube: string;
  /** The chain as stored: the config is set over its params there. */
  stored: StoredChain;
  params: JsonObject;
  /** The revision of the config it replaces, 0: none. */
  heldRevision: number;
}

export interface ConfigPlan {
  /** The chain to apply whole, if its shape changed (or it is not stored yet). */
  chain?: Chain;
  puts: ConfigPut[];
  /** Held config that must go: it no longer stands, or the chain's params are the ones wanted. */
  deletes: { type: string; held: StoredServiceConfig }[];
}

/** Config held per type, by cube. */
export type HeldConfigs = ReadonlyMap<string, ReadonlyMap<string, StoredServiceConfig>>;

const configured = (type: string): boolean => (CONFIGURED_TYPES as readonly string[]).includes(type);

/** The chain with the configured cubes' params left out: its shape. */
function shape(chain: Chain): Chain {
  return { ...chain, spec: { ...chain.spec, cubes: chain.spec.cubes.map((c) => (configured(c.type) ? { ...c, params: {} } : c)) } };
}

/** What to write so that `stored` (with the config held) becomes `wanted`. */
export function planChain(wanted: Chain, stored: StoredChain | undefined, held: HeldConfigs): ConfigPlan {
  const name = wanted.metadata.name;
  const normalized = checkedChain(wanted);
  const mine = (type: string, cube: string): StoredServiceConfig | undefined => {
    const h = held.get(type)?.get(cube);
    return h?.chain === name ? h : undefined;
  };
  if (!stored || diffChains(shape(stored.chain), shape(normalized)).length > 0) {
    // Written whole: what was held for its cubes no longer stands (the services forget it too).
    const deletes = normalized.spec.cubes.flatMap((c) => {
      const h = configured(c.type) ? mine(c.type, c.name) : undefined;
      return h ? [{ type: c.type, held: h }] : [];
    });
    return { chain: normalized, puts: [], deletes };
  }
  const plan: ConfigPlan = { puts: [], deletes: [] };
  const storedCubes = new Map(stored.chain.spec.cubes.map((c) => [c.name, c]));
  for (const cube of normalized.spec.cubes) {
    if (!configured(cube.type)) continue;
    const chainParams = storedCubes.get(cube.name)!.params;
    const h = mine(cube.type, cube.name);
    const wantedDigest = paramsDigest(cube.params);
    const effective = effectiveConfig(chainParams, h, name);
    if (wantedDigest === paramsDigest(chainParams)) {
      // The chain's own params are wanted: config held over them (or stale) goes.
      if (h) plan.deletes.push({ type: cube.type, held: h });
      continue;
    }
    if (effective.source === 'service' && wantedDigest === paramsDigest(effective.params)) continue;
    plan.puts.push({ type: cube.type, cube: cube.name, stored, params: cube.params, heldRevision: h?.revision ?? 0 });
  }
  return plan;
}

/** Held config of cubes no wanted chain has (`prefix`: the controller's cube names). */
export function orphanedConfigs(wanted: Iterable<Chain>, held: HeldConfigs, prefix: string): { type: string; held: StoredServiceConfig }[] {
  const cubes = new Set<string>();
  for (const chain of wanted) for (const c of chain.spec.cubes) if (configured(c.type)) cubes.add(`${c.type}/${c.name}`);
  const out: { type: string; held: StoredServiceConfig }[] = [];
  for (const [type, byCube] of held) {
    for (const h of byCube.values()) if (h.cube.startsWith(prefix) && !cubes.has(`${type}/${h.cube}`)) out.push({ type, held: h });
  }
  return out;
}

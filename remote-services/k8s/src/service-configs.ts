// What of a node's chain goes into etcd as a new version of the chain, and what as
// the services' config (store/service-config.ts, the records netcubectl config and
// SetConfig write and the services' leaders follow). Pure: the derived chain, the
// chain as stored and the config held in, the writes out.
//
// A load balancer's services and frontends live in its config record only, never
// in the chain: 5,000 Services make about 800 KB of lbrp config, where a cube's
// params take 64 KiB; and the lbrp's params in the chain (its backend and default
// frontend ports) stay the same whatever pods and Services come and go, so its
// record, set over them, stands across every version of the chain.
//
// The chain is written whole when its shape changes: a cube, a port, a link or an
// attachment, or the params of a cube whose type has no config here (the router's).
// A new firewall comes in that write with its rules, never without them. The lbrp's
// record follows in two steps around it: before the chain, what holds on the old
// chain and on the new one (a pod gone: its frontend gone first, while its port is
// still there), after it the rest (a pod come: its frontend, once its port is
// there). Changes of the configured cubes' config alone (a Service's endpoints, a
// NetworkPolicy's rules) are config records only: no new version of the chain,
// nothing for the daemons to reconcile.

import { checkedChain, diffChains, type Chain, type CubeSpec, type JsonObject } from '@netcube/api/chain';
import { effectiveConfig, paramsDigest, type StoredChain, type StoredServiceConfig } from '@netcube/api/store';

/** The cube types whose services take config from the controller (the catalog's). */
export const CONFIGURED_TYPES = ['lbrp', 'firewall'] as const;

/** Params of these types that are kept in the config record alone, out of the chain. */
const RECORDED: Readonly<Record<string, readonly string[]>> = { lbrp: ['frontends', 'services'] };

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
  /** Config to set before the chain is applied: it holds on the stored chain and on the new one. */
  before: ConfigPut[];
  /** The chain to apply whole, if its shape changed (or it is not stored yet); plan again against it once applied. */
  chain?: Chain;
  puts: ConfigPut[];
  /** Held config that must go: it no longer stands, or the chain's params are the ones wanted. */
  deletes: { type: string; held: StoredServiceConfig }[];
}

/** Config held per type, by cube. */
export type HeldConfigs = ReadonlyMap<string, ReadonlyMap<string, StoredServiceConfig>>;

const configured = (type: string): boolean => (CONFIGURED_TYPES as readonly string[]).includes(type);

/** A cube's params as the chain carries them: without what its type keeps in the record. */
function inChain(cube: CubeSpec): CubeSpec {
  const recorded = RECORDED[cube.type];
  if (!recorded) return cube;
  return { ...cube, params: Object.fromEntries(Object.entries(cube.params).filter(([k]) => !recorded.includes(k))) };
}

/** The chain with the params that config records may change left out: its shape. */
function shape(chain: Chain): Chain {
  return { ...chain, spec: { ...chain.spec, cubes: chain.spec.cubes.map((c) => (configured(c.type) && !RECORDED[c.type] ? { ...c, params: {} } : c)) } };
}

/** `params` with the frontends of ports other than `ports` left out. */
function frontendsOn(params: JsonObject, ports: readonly string[]): JsonObject {
  const frontends = params.frontends as JsonObject | undefined;
  if (!frontends) return params;
  return { ...params, frontends: Object.fromEntries(Object.entries(frontends).filter(([port]) => ports.includes(port))) };
}

/** What to write so that `stored` (with the config held) becomes `wanted`. */
export function planChain(wanted: Chain, stored: StoredChain | undefined, held: HeldConfigs): ConfigPlan {
  const name = wanted.metadata.name;
  // Checked as written: what the records hold is the services' to check, and may be far larger than a chain takes.
  const written = checkedChain({ ...wanted, spec: { ...wanted.spec, cubes: wanted.spec.cubes.map(inChain) } });
  const mine = (type: string, cube: string): StoredServiceConfig | undefined => {
    const h = held.get(type)?.get(cube);
    return h?.chain === name ? h : undefined;
  };
  /** The config to set for `cube` over its params in `stored`, if it is not what stands. */
  const put = (stored: StoredChain, cube: CubeSpec, params: JsonObject): ConfigPut | undefined => {
    const h = mine(cube.type, cube.name);
    const effective = effectiveConfig(stored.chain.spec.cubes.find((c) => c.name === cube.name)!.params, h, name);
    if (effective.source === 'service' && paramsDigest(params) === paramsDigest(effective.params)) return undefined;
    return { type: cube.type, cube: cube.name, stored, params, heldRevision: h?.revision ?? 0 };
  };

  if (!stored || diffChains(shape(stored.chain), shape(written)).length > 0) {
    const plan: ConfigPlan = { before: [], chain: written, puts: [], deletes: [] };
    const storedCubes = new Map(stored?.chain.spec.cubes.map((c) => [c.name, c]));
    for (const cube of wanted.spec.cubes) {
      if (!configured(cube.type)) continue;
      const h = mine(cube.type, cube.name);
      if (!RECORDED[cube.type]) {
        // Its params come with the chain: what was held for it no longer stands (the services forget it too).
        if (h) plan.deletes.push({ type: cube.type, held: h });
        continue;
      }
      // A record stands across the write if the chain keeps the cube's params: the part that holds on both goes first.
      const before = storedCubes.get(cube.name);
      const after = written.spec.cubes.find((c) => c.name === cube.name)!;
      if (!before || before.type !== cube.type || paramsDigest(before.params) !== paramsDigest(after.params)) continue;
      const early = put(stored!, cube, frontendsOn(cube.params, before.ports));
      if (early) plan.before.push(early);
    }
    return plan;
  }

  const plan: ConfigPlan = { before: [], puts: [], deletes: [] };
  const storedCubes = new Map(stored.chain.spec.cubes.map((c) => [c.name, c]));
  for (const cube of wanted.spec.cubes) {
    if (!configured(cube.type)) continue;
    const h = mine(cube.type, cube.name);
    if (paramsDigest(cube.params) === paramsDigest(storedCubes.get(cube.name)!.params)) {
      // The chain's own params are wanted: config held over them (or stale) goes.
      if (h) plan.deletes.push({ type: cube.type, held: h });
      continue;
    }
    const p = put(stored, cube, cube.params);
    if (p) plan.puts.push(p);
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

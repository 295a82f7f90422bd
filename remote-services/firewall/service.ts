// The control plane of firewall cubes (bpf/cubes/firewall.bpf.c). The fast path
// classifies by itself; this service
//   - compiles each cube's rules into decision trees (tables.ts) and writes them the
//     way packets in flight never see a mix: the counters of rules new to the set
//     zeroed, the bank no packet uses written, then fw_active switched with one
//     store;
//   - keeps every rule's counters across changes (a rule keeps its counter slot
//     while it exists) and across its own restarts (the slots are read back from
//     the bank in use);
//   - shows the rules with their packet and byte counters through GetState;
//   - deletes expired connection-tracking entries (control.ts).

import type { FirewallConfig__Output as FirewallConfig } from '@netcube/api/generated/netcube/firewall/v1/FirewallConfig';
import { checked, collectConntrack, conntrackConfig, eachLimited, putInBatches, type GcResult } from '@netcube/catalog/control';
import { defineService, type Cube, type CubeInfo } from '@netcube/sdk';
import { chainIndex, compileFirewall, counterIndex, DEFAULT_SLOT, DIRECTIONS, ruleBase, SLOTS, type Direction, type FirewallTables, type SlotAssignment } from './tables';

interface FirewallState {
  /** The bank packets use (fw_active), as last written or read back. */
  activeBank?: number;
  /** The compile the active bank holds. */
  compiled?: FirewallTables;
  /** The counter slot of each rule in the active bank, for the next compile. */
  slots?: SlotAssignment;
  /** Its config, as JSON: a config that means the same is not written again. */
  programmed?: string;
  gc?: GcResult & { at: string };
}

type Firewall = Cube<FirewallConfig, FirewallState>;

/** The rule sets of a config, in the translator's terms (the conntrack timeouts go to their own table). */
const ruleSets = (config: FirewallConfig): unknown => ({ ...(config.ingress && { ingress: config.ingress }), ...(config.egress && { egress: config.egress }) });

interface RuleValue {
  slot: number;
  [field: string]: unknown;
}

/** Whether rule `running` (as fw_rules holds it) is `compiled` but for its counter slot. */
const sameRule = (running: RuleValue, compiled: RuleValue): boolean => {
  // 64-bit members may come back as numbers or decimal text: compare as text.
  const text = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' ? String(x) : x));
  return Object.keys(compiled).every((k) => k === 'slot' || text(running[k]) === text(compiled[k]));
};

/**
 * The counter slots the bank packets use gives the rules of `config` (after this
 * service restarted): a rule at the same place with the same content keeps its slot
 * and so its counters.
 */
async function slotsInUse(cube: Firewall, config: FirewallConfig, bank: number): Promise<SlotAssignment | undefined> {
  const chains = cube.table<number, { loaded: number }>('fw_chains');
  const loaded = await Promise.all(DIRECTIONS.map(async (_d, di) => (await chains.get(chainIndex(bank, di)))?.loaded === 1));
  if (!loaded.some(Boolean)) return undefined;
  const fresh = compileFirewall(ruleSets(config));
  const inUse = new Map((await cube.table<number, RuleValue>('fw_rules').list()).map((e) => [e.key, e.value]));
  const slots: SlotAssignment = { ingress: {}, egress: {} };
  DIRECTIONS.forEach((dir, di) => {
    if (!loaded[di]) return;
    const keyOfSlot = new Map(Object.entries(fresh.slots[dir]).map(([key, slot]) => [slot, key]));
    const rules = fresh.tables.fw_rules.filter((e) => e.key >= ruleBase(fresh.bank, di) && e.key < ruleBase(fresh.bank, di) + fresh.rules[dir].length);
    for (const e of rules) {
      const i = e.key - ruleBase(fresh.bank, di);
      const running = inUse.get(ruleBase(bank, di) + i);
      if (running && sameRule(running, e.value as RuleValue)) slots[dir][keyOfSlot.get((e.value as RuleValue).slot)!] = running.slot;
    }
  });
  return slots;
}

/** Writes `config` into the bank packets do not use, then switches them to it. */
async function program(cube: Firewall): Promise<void> {
  const { state, config } = cube;
  const json = JSON.stringify(ruleSets(config));
  if (state.programmed === json) return;
  const compiled = compileFirewall(ruleSets(config), { activeBank: state.activeBank, previous: state.slots });
  const counters = DIRECTIONS.flatMap((dir, di) => compiled.freshSlots[dir].map((slot) => ({ key: counterIndex(di, slot), value: { packets: 0, bytes: 0 } })));
  await putInBatches(cube.table('fw_counters'), counters);
  for (const [name, entries] of Object.entries(compiled.tables)) await putInBatches(cube.table(name), entries);
  await cube.table(compiled.activate.table).put(compiled.activate.key, compiled.activate.value);
  state.activeBank = compiled.bank;
  state.compiled = compiled;
  state.slots = compiled.slots;
  state.programmed = json;
  cube.log.info('rules switched', { bank: compiled.bank, ingress: compiled.rules.ingress.length, egress: compiled.rules.egress.length, newCounters: counters.length });
}

interface Counter {
  packets: number | string;
  bytes: number | string;
}

/** A per-CPU counter, summed. */
const total = (perCpu: Counter[] | undefined): { packets: number; bytes: number } =>
  (perCpu ?? []).reduce<{ packets: number; bytes: number }>((a, c) => ({ packets: a.packets + Number(c.packets), bytes: a.bytes + Number(c.bytes) }), { packets: 0, bytes: 0 });

/**
 * The counters of the compiled rules and of the defaults, by fw_counters index:
 * one read each, or (for thousands of rules) the whole table, which is the cheaper
 * then.
 */
async function readCounters(cube: Firewall, compiled: FirewallTables): Promise<Map<number, Counter[]>> {
  const table = cube.table<number, Counter[]>('fw_counters');
  const wanted = DIRECTIONS.flatMap((dir, di) => [counterIndex(di, DEFAULT_SLOT), ...compiled.rules[dir].map((r) => counterIndex(di, r.slot))]);
  if (wanted.length > SLOTS / 2) return new Map((await table.list()).map((e) => [e.key, e.value]));
  const out = new Map<number, Counter[]>();
  await eachLimited(wanted, 16, async (key) => {
    const value = await table.get(key);
    if (value) out.set(key, value);
  });
  return out;
}

export default defineService<FirewallConfig, FirewallState>({
  type: 'firewall',
  config: { proto: 'netcube/firewall/v1/firewall.proto', message: 'netcube.firewall.v1.FirewallConfig' },
  state: (): FirewallState => ({}),

  validate(config: FirewallConfig, _cube: CubeInfo) {
    checked(() => compileFirewall(ruleSets(config)));
  },

  staticTables: (cube) => ({ fw_ct_config: conntrackConfig(cube.config.conntrack) }),

  // New to this replica (or the cube recreated, or its daemon back): find the bank
  // packets use and the counter slots its rules have, then write the config again.
  async cubeCreated(cube) {
    const active = await cube.table<number, { bank: number }>('fw_active').get(0);
    const bank = (active?.bank ?? 0) & 1;
    const state = cube.state;
    state.activeBank = bank;
    state.slots = await slotsInUse(cube, cube.config, bank);
    state.programmed = undefined;
    await program(cube);
  },

  configChanged: (cube) => program(cube),

  tickSeconds: 5,
  async tick(cube) {
    cube.state.gc = { ...(await collectConntrack(cube, 'fw_ct')), at: new Date().toISOString() };
  },

  async describe(cube) {
    const compiled = cube.state.compiled;
    if (!compiled?.rules) return { rules: 'not written yet' };
    const counters = await readCounters(cube, compiled);
    const direction = (dir: Direction, di: number) => {
      const chain = cube.config[dir];
      const ids = [...(chain?.acceptEstablished ? ['accept-established'] : []), ...(chain?.rules ?? []).map((r) => r.id)];
      return {
        defaultAction: chain?.defaultAction ?? 'accept',
        default: total(counters.get(counterIndex(di, DEFAULT_SLOT))),
        rules: compiled.rules[dir].map((r, i) => ({ index: i, ...(ids[i] !== undefined && { id: ids[i] }), rule: r.text, ...total(counters.get(counterIndex(di, r.slot))) })),
        tree: compiled.stats[dir],
      };
    };
    return {
      bank: compiled.bank,
      ingress: direction('ingress', 0),
      egress: direction('egress', 1),
      ...(cube.state.gc && { conntrack: cube.state.gc }),
    };
  },
});

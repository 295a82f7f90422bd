// The control plane of lbrp cubes (bpf/cubes/lbrp.bpf.c). The fast path picks
// backends, keeps sessions and rewrites by itself; this service
//   - compiles the services into Maglev tables (tables.ts) and writes what changed
//     in the order that keeps every packet right: backends and Maglev tables
//     before the services that use them, then the services, then the backends no
//     longer used emptied; ids stay with their service and backend, across its own
//     restarts too (read back from lb_services and lb_backends);
//   - shows the services and the session table through GetState;
//   - deletes expired flows (conntrack entries and their sessions) and affinities.

import type { LbrpConfig__Output as LbrpConfig } from '@netcube/api/generated/netcube/lbrp/v1/LbrpConfig';
import { checked, collectConntrack, conntrackConfig, ctKey, EXPIRY_MARGIN_NS, eachLimited, putInBatches, type GcResult } from '@netcube/catalog/control';
import { PROTOCOLS } from '@netcube/catalog/fields';
import { defineService, type Cube, type TableEntry } from '@netcube/sdk';
import { compileLb, type LbIds, type LbTables } from './tables';

/** Tables written from config, in the order they are written. */
const TABLES = ['lb_ports', 'lb_config', 'lb_hosts', 'lb_backends', 'lb_maglev', 'lb_services'] as const;
type TableName = (typeof TABLES)[number];
/** Hash tables: an entry config no longer has is deleted (arrays are overwritten or emptied). */
const HASHES: readonly TableName[] = ['lb_hosts', 'lb_services'];
const EMPTY_BACKEND = { addr: '::', port: 0, pad: 0 };
/** Sessions GetState lists at most; the table itself: netcubectl table dump CUBE lb_sessions. */
const MAX_LISTED = 16_384;

interface LbState {
  /** Ids of services and backends, for the next compile. */
  ids?: LbIds;
  compiled?: LbTables;
  /** What each table holds as this replica wrote (or read) it: key JSON -> value JSON. */
  written?: Record<TableName, Map<string, string>>;
  gc?: GcResult & { at: string; affinities: number };
}

type Lbrp = Cube<LbrpConfig, LbState>;

/** The config in the translator's terms: the conntrack timeouts go to their own table. */
const lbConfig = ({ conntrack: _t, ...rest }: LbrpConfig): unknown => rest;

const portIndexes = (cube: Lbrp): Record<string, number> => Object.fromEntries(cube.ports.map((p) => [p.name, p.index]));
const json = (v: unknown): string => JSON.stringify(v);
const PROTOCOL_NAMES = new Map(Object.entries(PROTOCOLS).map(([name, n]) => [n, name]));

interface ServiceKey {
  vip: string;
  port: number;
  proto: number;
}
interface BackendValue {
  addr: string;
  port: number;
}

/** Reads back what the tables hold: the ids to keep, and the entries to compare with. */
async function readBack(cube: Lbrp): Promise<{ ids: LbIds; written: LbState['written'] }> {
  const ids: LbIds = { services: {}, backends: {} };
  const written = Object.fromEntries(TABLES.map((t) => [t, new Map<string, string>()])) as Record<TableName, Map<string, string>>;
  for (const { key, value } of await cube.table<ServiceKey, { id: number }>('lb_services').list()) {
    const protocol = PROTOCOL_NAMES.get(key.proto);
    if (protocol) ids.services[`${key.vip} ${key.port}/${protocol}`] = value.id;
    written.lb_services.set(json(key), json(value));
  }
  for (const { key, value } of await cube.table<number, BackendValue>('lb_backends').list()) {
    if (value.port === 0) continue;
    ids.backends[`${value.addr} ${value.port}`] = key;
    written.lb_backends.set(json(key), json(value));
  }
  for (const { key, value } of await cube.table('lb_hosts').list()) written.lb_hosts.set(json(key), json(value));
  return { ids, written };
}

/** Writes the config's tables: what changed, in order; see the top of this file. */
async function program(cube: Lbrp): Promise<void> {
  const state = cube.state;
  const written = state.written!;
  const compiled = compileLb(lbConfig(cube.config), { ports: portIndexes(cube), previous: state.ids });
  const changed = (name: TableName): TableEntry[] => compiled.tables[name].filter((e) => written[name].get(json(e.key)) !== json(e.value));
  const stale = (name: TableName): unknown[] => {
    const keep = new Set(compiled.tables[name].map((e) => json(e.key)));
    return [...written[name].keys()].filter((k) => !keep.has(k)).map((k) => JSON.parse(k));
  };
  const counts: Record<string, number> = {};
  for (const name of TABLES) {
    const puts = changed(name);
    counts[name] = puts.length;
    await putInBatches(cube.table(name), puts);
    for (const e of puts) written[name].set(json(e.key), json(e.value));
  }
  // Only once no service names them: services gone, backends no longer used, hosts gone.
  for (const name of HASHES) {
    const table = cube.table(name);
    const gone = stale(name);
    await eachLimited(gone, 16, (key) => table.delete(key));
    for (const key of gone) written[name].delete(json(key));
    counts[`${name}Deleted`] = gone.length;
  }
  const freed = compiled.freedBackends.map((id) => ({ key: id, value: EMPTY_BACKEND }));
  await putInBatches(cube.table('lb_backends'), freed);
  for (const e of freed) written.lb_backends.delete(json(e.key));
  state.ids = compiled.ids;
  state.compiled = compiled;
  cube.log.info('services written', { services: compiled.tables.lb_services.length, ...counts, backendsFreed: freed.length });
}

interface SessionKey {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
}

const end = (addr: string, port: number): string => {
  const text = addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
  return text.includes(':') ? `[${text}]:${port}` : `${text}:${port}`;
};

export default defineService<LbrpConfig, LbState>({
  type: 'lbrp',
  config: { proto: 'netcube/lbrp/v1/lbrp.proto', message: 'netcube.lbrp.v1.LbrpConfig' },
  state: (): LbState => ({}),

  validate(config, cube) {
    checked(() => compileLb(lbConfig(config), { ports: Object.fromEntries(cube.portNames.map((name, i) => [name, i])) }));
  },

  staticTables: (cube) => ({ lb_ct_config: conntrackConfig(cube.config.conntrack) }),

  // New to this replica (or its daemon back, or the cube recreated): keep the ids
  // the tables use, write everything that differs.
  async cubeCreated(cube) {
    const { ids, written } = await readBack(cube);
    cube.state.ids = ids;
    cube.state.written = written;
    await program(cube);
  },

  configChanged: (cube) => program(cube),

  tickSeconds: 5,
  async tick(cube) {
    const gc = await collectConntrack(cube, 'lb_ct', [
      { table: 'lb_sessions', flowOf: (k: SessionKey) => ctKey({ addr: k.saddr, port: k.sport }, { addr: k.daddr, port: k.dport }, k.proto) },
      { table: 'lb_reverse', flowOf: (k: SessionKey, v: { vip: string; vport: number }) => ctKey({ addr: k.daddr, port: k.dport }, { addr: v.vip, port: v.vport }, k.proto) },
    ]);
    const affinity = cube.table<unknown, { expires_ns: string | number }>('lb_affinity');
    const now = cube.clock.now();
    const expired = (await affinity.list()).filter((e) => BigInt(e.value.expires_ns) + EXPIRY_MARGIN_NS < now);
    await eachLimited(expired, 16, (e) => affinity.delete(e.key));
    cube.state.gc = { ...gc, affinities: expired.length, at: new Date().toISOString() };
  },

  async describe(cube) {
    const compiled = cube.state.compiled;
    if (!compiled) return { services: 'not written yet' };
    const backends = new Map(compiled.tables.lb_backends.map((e) => [e.key as number, e.value as BackendValue]));
    // A listing is no snapshot: an entry deleted meanwhile restarts the walk, and repeats some.
    const sessions = [...new Map((await cube.table<SessionKey, { backend: number }>('lb_sessions').list()).map((e) => [JSON.stringify(e.key), e])).values()];
    const protocol = (n: number): string => PROTOCOL_NAMES.get(n) ?? String(n);
    return {
      services: cube.config.services.map((s) => ({ vip: s.vip, port: s.port, protocol: s.protocol, backends: s.backends.map((b) => ({ address: b.address, port: b.port ?? s.port, weight: b.weight })) })),
      sessionCount: sessions.length,
      sessions: sessions.slice(0, MAX_LISTED).map(({ key, value }) => {
        const b = backends.get(value.backend);
        return { protocol: protocol(key.proto), client: end(key.saddr, key.sport), service: end(key.daddr, key.dport), backend: b ? end(b.addr, b.port) : `#${value.backend} (removed)` };
      }),
      ...(cube.state.gc && { conntrack: cube.state.gc }),
    };
  },
});

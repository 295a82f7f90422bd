// What the control planes of the catalog's cubes (firewall, nat, lbrp) do alike
// through the SDK: turn the translators' errors into config errors, write a
// conntrack table's timeouts, write big tables in batches a gRPC message holds,
// and collect the garbage of connection tracking.
//
// Garbage. The data plane never walks its tables: an expired conntrack entry is
// treated as absent and overwritten by the next flow of its tuple, and the
// entries that live as long as a flow (NAT sessions, load-balancer sessions) are
// reused or evicted by the LRU. So nothing frees their room ahead of that, and a
// table listing shows flows long gone. The control plane does, every tick:
//
//   1. list the conntrack table, and delete the entries expired for more than
//      EXPIRY_MARGIN_NS by the host's clock;
//   2. then list the tables whose entries belong to a flow (sessions) and delete
//      those whose flow has no live conntrack entry (listing a big table costs
//      seconds, so only when some flow expired, and every few runs for entries
//      the LRU left without their flow);
//   3. but before any delete read the conntrack entry again: a flow whose tuple
//      a new packet just reopened, or that opened after the listing, keeps its
//      entries.
//
// Times are the host's CLOCK_MONOTONIC (the SDK's cube.clock, exact or a lower
// bound, never ahead), against the data plane's bpf_ktime_get_coarse_ns.

import type { ConntrackTimeouts__Output as ConntrackTimeouts } from '@netcube/api/generated/netcube/catalog/v1/ConntrackTimeouts';
import { addressBytes } from '@netcube/api/fields';
import { ConfigError, type Cube, type Table, type TableEntry } from '@netcube/sdk';
import { FieldError } from './fields';

/** Runs a translator; a FieldError it throws becomes the SDK's ConfigError for the same field. */
export function checked<T>(translate: () => T): T {
  try {
    return translate();
  } catch (err) {
    if (err instanceof FieldError) throw new ConfigError(err.field, err.problem);
    throw err;
  }
}

/** The `<conntrack table>_config` entries for `timeouts` (0: the data plane's default). */
export function conntrackConfig(timeouts: ConntrackTimeouts | null | undefined): TableEntry[] {
  const t = timeouts ?? ({} as Partial<ConntrackTimeouts>);
  return [
    {
      key: 0,
      value: {
        tcp_syn: t.tcpSyn ?? 0,
        tcp_established: t.tcpEstablished ?? 0,
        tcp_fin_wait: t.tcpFinWait ?? 0,
        tcp_time_wait: t.tcpTimeWait ?? 0,
        tcp_close: t.tcpClose ?? 0,
        udp: t.udp ?? 0,
        udp_stream: t.udpStream ?? 0,
        icmp: t.icmp ?? 0,
        other: t.other ?? 0,
      },
    },
  ];
}

/** JSON bytes a batch of puts holds at most: well within the daemon's 16 MB messages. */
const BATCH_BYTES = 4 << 20;

/** Puts `entries` in as few batches as fit a message; resolves once all are written. */
export async function putInBatches(table: Table, entries: readonly TableEntry[]): Promise<void> {
  let batch: TableEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = JSON.stringify(e).length;
    if (batch.length > 0 && bytes + size > BATCH_BYTES) {
      await table.putBatch(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(e);
    bytes += size;
  }
  if (batch.length > 0) await table.putBatch(batch);
}

/** Calls `fn` on every item, `concurrency` calls in flight at most. */
export async function eachLimited<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

// ---- connection tracking --------------------------------------------------------------------

/** struct nc_ct_key as the table API shows it. */
export interface CtKey {
  addr_a: string;
  addr_b: string;
  port_a: number;
  port_b: number;
  proto: number;
  pad: number[];
}

/** struct nc_ct_entry: the fields the control plane reads. */
export interface CtEntry {
  expires_ns: string | number;
}

/** One end of a flow: an nc_ipv6_t address as text and a port (an ICMP echo's identifier). */
export interface FlowEnd {
  addr: string;
  port: number;
}

/** An address in its 16 bytes (IPv4 mapped), for ordering ends as the data plane does. */
function address16(text: string): Buffer {
  const b = addressBytes(text);
  if (!b) throw new TypeError(`not an address: ${text}`);
  return b.length === 16 ? b : Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), b]);
}

/** The conntrack key of the flow between two ends, in nc_ct_key_of()'s order (the smaller address, then port, first). */
export function ctKey(x: FlowEnd, y: FlowEnd, proto: number): CtKey {
  const order = Buffer.compare(address16(x.addr), address16(y.addr));
  const [a, b] = order < 0 || (order === 0 && x.port <= y.port) ? [x, y] : [y, x];
  return { addr_a: a.addr, addr_b: b.addr, port_a: a.port, port_b: b.port, proto, pad: [0, 0, 0] };
}

/** A key's identity whatever the spelling of its addresses. */
const ctId = (k: CtKey): string => `${address16(k.addr_a).toString('hex')} ${k.port_a} ${address16(k.addr_b).toString('hex')} ${k.port_b} ${k.proto}`;

/** Past its expiry by this much before it is collected: the data plane refreshes an expiry in steps of 1 s. */
export const EXPIRY_MARGIN_NS = 2_000_000_000n;

/** A table whose entries live as long as their flow's conntrack entry. */
export interface FlowTable<K = unknown, V = unknown> {
  table: string;
  /** The conntrack key of an entry's flow; undefined for an entry to keep. */
  flowOf(key: K, value: V): CtKey | undefined;
}

export interface GcResult {
  /** Conntrack entries left, and deleted. */
  flows: number;
  expired: number;
  /** Entries of the flow tables deleted, by table. */
  deleted: Record<string, number>;
  /** How long the collection took. */
  ms: number;
}

/** Requests in flight at once while collecting: enough to hide a round trip, little for the daemon. */
const GC_CONCURRENCY = 16;

/** Every this many collections, the flow tables are listed even when no flow expired (entries the LRU orphaned). */
const FULL_EVERY = 6;
const runs = new WeakMap<object, number>();

/**
 * Deletes the expired entries of conntrack table `ct` and the entries of `flowTables`
 * whose flow has none; see the top of this file. The flow tables are listed when
 * some flow expired, and every FULL_EVERY runs.
 */
export async function collectConntrack(cube: Cube<unknown, unknown>, ct: string, flowTables: readonly FlowTable[] = []): Promise<GcResult> {
  const started = Date.now();
  const ctTable = cube.table<CtKey, CtEntry>(ct);
  const flows = await ctTable.list();
  const now = cube.clock.now();
  const expiredAt = (e: CtEntry | undefined): boolean => !e || BigInt(e.expires_ns) + EXPIRY_MARGIN_NS < now;
  const live = new Set<string>();
  const expired: CtKey[] = [];
  for (const { key, value } of flows) {
    if (expiredAt(value)) expired.push(key);
    else live.add(ctId(key));
  }
  // Read again just before deleting: a packet may have opened the tuple again since.
  // That also keeps the entries of a flow that opened after the listing above.
  const stillGone = async (key: CtKey): Promise<boolean> => expiredAt(await ctTable.get(key));
  const result: GcResult = { flows: live.size, expired: 0, deleted: {}, ms: 0 };
  await eachLimited(expired, GC_CONCURRENCY, async (key) => {
    if (await stillGone(key)) {
      if (await ctTable.delete(key)) result.expired++;
    } else {
      live.add(ctId(key));
    }
  });
  const run = (runs.get(cube) ?? 0) + 1;
  runs.set(cube, run);
  if (expired.length > 0 || run % FULL_EVERY === 0) {
    for (const f of flowTables) {
      const table = cube.table(f.table);
      const orphans = (await table.list()).flatMap((e) => {
        const flow = f.flowOf(e.key, e.value);
        return flow && !live.has(ctId(flow)) ? [{ key: e.key, flow }] : [];
      });
      let n = 0;
      await eachLimited(orphans, GC_CONCURRENCY, async ({ key, flow }) => {
        if ((await stillGone(flow)) && (await table.delete(key))) n++;
      });
      result.deleted[f.table] = n;
    }
  }
  result.ms = Date.now() - started;
  const deleted = result.expired + Object.values(result.deleted).reduce((a, b) => a + b, 0);
  cube.log[deleted > 0 ? 'info' : 'debug']('expired flows collected', { table: ct, ...result });
  return result;
}

/** A session of bpf/include/netcube/nat.h (nat_sessions: struct nat_flow -> struct nat_session) as the table API shows it. */
export interface NatSessionKey {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
  dir: number;
}
export interface NatSessionValue {
  addr: string;
  port: number;
  rewrite: number;
}

/** The entries of `table`, each once: a listing is no snapshot (an entry deleted meanwhile restarts the walk, and repeats some). */
export async function listedOnce(cube: Cube<unknown, unknown>, table: string): Promise<TableEntry[]> {
  return [...new Map((await cube.table(table).list()).map((e) => [JSON.stringify(e.key), e])).values()];
}

/** A per-CPU array of counters (`table`, its indexes named by `names`), each summed over the CPUs. */
export async function counterTotals(cube: Cube<unknown, unknown>, table: string, names: readonly string[]): Promise<Record<string, number>> {
  const counters = await cube.table<number, (number | string)[]>(table).list();
  return Object.fromEntries(names.map((name, i) => [name, (counters.find((c) => c.key === i)?.value ?? []).reduce((a: number, n) => a + Number(n), 0)]));
}

/** The collection of a cube whose flows are nat.h's: nat_ct's expired flows, with their sessions. */
export async function collectNatFlows(cube: Cube<unknown, unknown>): Promise<GcResult & { at: string }> {
  return { ...(await collectConntrack(cube, 'nat_ct', [{ table: 'nat_sessions', flowOf: natSessionFlow }])), at: new Date().toISOString() };
}

/** enum nat_rewrite: NAT_REWRITE_DST. */
const REWRITE_DST = 1;

/**
 * The conntrack key of a NAT session's flow (the nat and k8sdispatcher cubes'): as
 * nat.h tracks it, before its source is translated and after its destination is.
 * A session that rewrites the destination is the way back of a flow whose inside
 * end is that destination (an ICMP echo's identifier stands for its ports).
 */
export function natSessionFlow(k: NatSessionKey, v: NatSessionValue): CtKey {
  if (v.rewrite !== REWRITE_DST) return ctKey({ addr: k.saddr, port: k.sport }, { addr: k.daddr, port: k.dport }, k.proto);
  const icmp = k.proto === 1 || k.proto === 58;
  return ctKey({ addr: k.saddr, port: icmp ? v.port : k.sport }, { addr: v.addr, port: v.port }, k.proto);
}

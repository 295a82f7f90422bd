// The firewall's rule compiler: rules per direction in, the tables of
// bpf/cubes/firewall.bpf.c out. Pure (no kernel, no SDK): the data-plane tests,
// the benchmarks and the control plane share it.
//
// Classification is by decision trees over the packet's fields (HyperSplit, Qi et
// al. 2009): an inner node compares one field with a threshold, a leaf names at
// most LEAF_RULES rules that may match in its region, in rule order, and the fast
// path checks the packet against those. It walks one path per tree, so a packet
// costs the trees' depth, which grows with the logarithm of the rule count: 1,000
// rules are 8 compares deep here, 10,000 are 14 (the ANCS'19 firewall's bit vectors
// are linear in the rules). Building the trees is this module's work, in the slow
// path, once per change; the fast path never sees a list of rules.
//
// A rule for any source would be copied into every part of a tree that splits on
// sources (and the same for destinations), so rules go into seven trees by the
// addresses they name: none; source, destination, or both, per family. A packet
// walks four (the one without addresses and the three of its family) and the
// lowest rule index found wins, as in a list. An IPv6 prefix, ::/0 too, matches
// IPv6 packets only, an IPv4 one IPv4 only; a rule without addresses matches both.
//
// Fields, as 64-bit numbers: source and destination address as two halves each of
// their IPv6 form (IPv4 mapped to ::ffff:a.b.c.d), protocol, ports, and the
// connection-tracking state. TCP flags are checked at the leaves only.
//
// A change never edits what packets are using. The tables hold two banks; a
// compile fills the bank the packets are not using (FirewallTables.bank), then
// one store to fw_active switches every packet to it. A rule's counters live in
// a slot that stays the rule's for as long as it exists, whichever bank.

import { FieldError, type Prefix, type PortRange, arrayAt, objectAt, oneOf, onlyKnown, parsePortRange, parsePrefix, parseProtocol, PORT_PROTOCOLS, PROTOCOLS, prefixText, portRangeText } from '@netcube/catalog/fields';

// ---- the data plane's sizes and encodings (bpf/cubes/firewall.bpf.c) ----------------------

/** Rules per direction (FW_MAX_RULES). */
export const MAX_RULES = 10_000;
export const BANKS = 2;
export const DIRECTIONS = ['ingress', 'egress'] as const;
export type Direction = (typeof DIRECTIONS)[number];
/** Tree nodes of one direction in one bank, all its trees together (FW_MAX_NODES). */
export const MAX_NODES = 65_536;
/** Leaf entries of one direction in one bank (FW_MAX_LEAF_ENTRIES). */
export const MAX_LEAF_ENTRIES = 65_536;
/** Rules one leaf lists at most, checked in order by the fast path (FW_LEAF_RULES). */
export const LEAF_RULES = 4;
/** Compares on the way to a leaf (FW_MAX_DEPTH). */
export const MAX_DEPTH = 48;
/** Counter slots per direction: twice the rules, so a new rule set never takes a slot the running one counts in. */
export const SLOTS = 2 * MAX_RULES + 1;
/** The slot that counts the default action. */
export const DEFAULT_SLOT = 2 * MAX_RULES;
/** enum fw_field: what an inner node compares; FW_LEAF marks a leaf. */
export const FIELDS = ['src_hi', 'src_lo', 'dst_hi', 'dst_lo', 'proto', 'sport', 'dport', 'ct'] as const;
export const LEAF = 255;
/** enum fw_action */
export const ACTIONS = { accept: 'FW_ACCEPT', drop: 'FW_DROP' } as const;
/**
 * enum fw_tree: the trees of a direction. Rules are split by which addresses they
 * name, and of which family: a rule that matches any source would otherwise be
 * copied into every part of the tree that splits on sources. A packet walks the
 * tree of rules without addresses and the three of its family.
 */
export const TREES = ['any', 'v4_src', 'v4_dst', 'v4_both', 'v6_src', 'v6_dst', 'v6_both'] as const;
/** fw_chain.roots of a tree with no rules. */
export const NO_TREE = 0xffffffff;

const U64 = (1n << 64n) - 1n;
const DOMAIN: readonly bigint[] = [U64, U64, U64, U64, 255n, 65535n, 65535n, 4n];

// ---- config ---------------------------------------------------------------------------------

export type Action = 'accept' | 'drop';
export const CT_STATES = ['new', 'established', 'related', 'invalid', 'untracked'] as const;
export type CtState = (typeof CT_STATES)[number];
export const TCP_FLAGS = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ece: 0x40, cwr: 0x80 } as const;
export type TcpFlag = keyof typeof TCP_FLAGS;

/** A rule as config writes it; every field but `action` optional (absent: any). */
export interface Rule {
  /** Names the rule: its counters follow it across changes. Default: its content. */
  id?: string;
  action: Action;
  /** Source and destination prefix, IPv4 or IPv6 ("10.0.0.0/8", "fd00::1"). */
  src?: string;
  dst?: string;
  /** 'tcp', 'udp', 'icmp', 'icmpv6', 'sctp' or a number. */
  protocol?: string | number;
  /** A port or range ("1024-65535"); needs protocol tcp, udp or sctp. */
  sport?: string | number;
  dport?: string | number;
  /** TCP flags that must be set, and that must be clear; needs protocol tcp. */
  tcpFlags?: { set?: TcpFlag[]; clear?: TcpFlag[] };
  /** Connection-tracking states the packet must be in; absent or empty: any. */
  ctState?: CtState[];
}

export interface ChainConfig {
  /** What happens to a packet no rule matches; default accept. */
  defaultAction?: Action;
  /** Put `ctState: [established, related] accept` before the rules: replies and flows already let through keep going. */
  acceptEstablished?: boolean;
  rules?: Rule[];
}

export interface FirewallConfig {
  ingress?: ChainConfig;
  egress?: ChainConfig;
}

/** A rule checked and in the compiler's terms. */
export interface CompiledRule {
  key: string;
  action: Action;
  src?: Prefix;
  dst?: Prefix;
  protocol?: number;
  sport?: PortRange;
  dport?: PortRange;
  flagsMask: number;
  flagsValue: number;
  ctStates?: number[];
}

function parseRule(raw: unknown, field: string): CompiledRule {
  const r = objectAt(raw, field);
  onlyKnown(r, ['id', 'action', 'src', 'dst', 'protocol', 'sport', 'dport', 'tcpFlags', 'ctState'], field);
  const action = oneOf(r.action, ['accept', 'drop'] as const, `${field}.action`);
  const rule: CompiledRule = { key: '', action, flagsMask: 0, flagsValue: 0 };
  if (r.src !== undefined) rule.src = parsePrefix(r.src, `${field}.src`);
  if (r.dst !== undefined) rule.dst = parsePrefix(r.dst, `${field}.dst`);
  if (rule.src && rule.dst && rule.src.family !== rule.dst.family) {
    throw new FieldError(`${field}.dst`, `${r.dst} is IPv${rule.dst.family} but src ${r.src} is IPv${rule.src.family}: no packet has both`);
  }
  if (r.protocol !== undefined) rule.protocol = parseProtocol(r.protocol, `${field}.protocol`);
  for (const which of ['sport', 'dport'] as const) {
    if (r[which] === undefined) continue;
    if (rule.protocol === undefined || !PORT_PROTOCOLS.has(rule.protocol)) {
      throw new FieldError(`${field}.${which}`, 'ports need protocol tcp, udp or sctp');
    }
    rule[which] = parsePortRange(r[which], `${field}.${which}`);
  }
  if (r.tcpFlags !== undefined) {
    const flags = objectAt(r.tcpFlags, `${field}.tcpFlags`);
    onlyKnown(flags, ['set', 'clear'], `${field}.tcpFlags`);
    if (rule.protocol !== PROTOCOLS.tcp) throw new FieldError(`${field}.tcpFlags`, 'TCP flags need protocol tcp');
    for (const which of ['set', 'clear'] as const) {
      arrayAt(flags[which], `${field}.tcpFlags.${which}`).forEach((name, i) => {
        const bit = TCP_FLAGS[oneOf(name, Object.keys(TCP_FLAGS) as TcpFlag[], `${field}.tcpFlags.${which}[${i}]`)];
        if (rule.flagsMask & bit) throw new FieldError(`${field}.tcpFlags.${which}[${i}]`, `${name} is named twice`);
        rule.flagsMask |= bit;
        if (which === 'set') rule.flagsValue |= bit;
      });
    }
  }
  // An empty list is no condition, as an absent one: a config through its proto
  // schema cannot tell the two apart.
  const states = arrayAt(r.ctState, `${field}.ctState`).map((s, i) => CT_STATES.indexOf(oneOf(s, CT_STATES, `${field}.ctState[${i}]`)));
  if (states.length > 0) rule.ctStates = [...new Set(states)].sort((a, b) => a - b);
  rule.key = r.id !== undefined ? `id:${String(r.id)}` : ruleText(rule);
  return rule;
}

/** A rule as one line, nftables-like: for messages, and as its default identity. */
export function ruleText(r: CompiledRule): string {
  const parts: string[] = [];
  if (r.src) parts.push(`src ${prefixText(r.src)}`);
  if (r.dst) parts.push(`dst ${prefixText(r.dst)}`);
  if (r.protocol !== undefined) parts.push(Object.keys(PROTOCOLS).find((k) => PROTOCOLS[k] === r.protocol) ?? `protocol ${r.protocol}`);
  if (r.sport) parts.push(`sport ${portRangeText(r.sport)}`);
  if (r.dport) parts.push(`dport ${portRangeText(r.dport)}`);
  if (r.flagsMask) parts.push(`flags ${r.flagsValue.toString(16)}/${r.flagsMask.toString(16)}`);
  if (r.ctStates) parts.push(`ct ${r.ctStates.map((s) => CT_STATES[s]).join(',')}`);
  parts.push(r.action);
  return parts.join(' ');
}

export interface ParsedChain {
  defaultAction: Action;
  rules: CompiledRule[];
}

/** Checks a firewall config; errors name the field ("ingress.rules[3].dport"). */
export function parseFirewall(config: unknown): Record<Direction, ParsedChain> {
  const c = objectAt(config ?? {}, '');
  onlyKnown(c, [...DIRECTIONS], '');
  const out = {} as Record<Direction, ParsedChain>;
  for (const dir of DIRECTIONS) {
    const chain = objectAt(c[dir] ?? {}, dir);
    onlyKnown(chain, ['defaultAction', 'acceptEstablished', 'rules'], dir);
    if (chain.acceptEstablished !== undefined && typeof chain.acceptEstablished !== 'boolean') {
      throw new FieldError(`${dir}.acceptEstablished`, `expected true or false, got ${JSON.stringify(chain.acceptEstablished)}`);
    }
    const raw = arrayAt(chain.rules, `${dir}.rules`);
    if (raw.length > MAX_RULES) throw new FieldError(`${dir}.rules`, `${raw.length} rules; a direction holds at most ${MAX_RULES}`);
    const rules = raw.map((r, i) => parseRule(r, `${dir}.rules[${i}]`));
    if (chain.acceptEstablished) rules.unshift(parseRule({ id: 'accept-established', action: 'accept', ctState: ['established', 'related'] }, `${dir}.acceptEstablished`));
    out[dir] = { defaultAction: oneOf(chain.defaultAction, ['accept', 'drop'] as const, `${dir}.defaultAction`, 'accept'), rules };
  }
  return out;
}

// ---- counter slots --------------------------------------------------------------------------

/** Which counter slot each rule counts in, per direction: rule key (and occurrence) -> slot. */
export type SlotAssignment = Record<Direction, Record<string, number>>;

function assignSlots(rules: CompiledRule[], previous: Record<string, number> | undefined): { slots: number[]; assignment: Record<string, number>; fresh: number[] } {
  const assignment: Record<string, number> = {};
  const seen = new Map<string, number>();
  const keys = rules.map((r) => {
    const n = (seen.get(r.key) ?? 0) + 1;
    seen.set(r.key, n);
    return n === 1 ? r.key : `${r.key}#${n}`;
  });
  const taken = new Set<number>();
  for (const k of keys) {
    const s = previous?.[k];
    if (s !== undefined && s >= 0 && s < DEFAULT_SLOT && !taken.has(s)) {
      assignment[k] = s;
      taken.add(s);
    }
  }
  // New rules take slots the running rule set does not count in.
  const busy = new Set<number>([...taken, ...Object.values(previous ?? {})]);
  const fresh: number[] = [];
  let next = 0;
  for (const k of keys) {
    if (assignment[k] !== undefined) continue;
    while (busy.has(next)) next++;
    assignment[k] = next;
    busy.add(next);
    fresh.push(next);
  }
  return { slots: keys.map((k) => assignment[k]), assignment, fresh };
}

// ---- the trees -----------------------------------------------------------------------------

/** One rule as ranges of field values, [lo, hi] inclusive; a rule with several ct ranges makes several boxes. */
interface Box {
  rule: number;
  lo: bigint[];
  hi: bigint[];
}

const MAPPED = 0xffffn << 32n;

function addressRange(p: Prefix | undefined): [bigint, bigint, bigint, bigint] {
  if (!p) return [0n, U64, 0n, U64];
  if (p.family === 4) {
    const base = MAPPED | BigInt(p.bytes.readUInt32BE(0));
    return [0n, 0n, base, base + (1n << BigInt(32 - p.length)) - 1n];
  }
  const hi = p.bytes.readBigUInt64BE(0);
  const lo = p.bytes.readBigUInt64BE(8);
  if (p.length <= 64) return [hi, hi + (1n << BigInt(64 - p.length)) - 1n, 0n, U64];
  return [hi, hi, lo, lo + (1n << BigInt(128 - p.length)) - 1n];
}

/** A rule's ranges: [lo, hi] per field, the ct field aside (every state). */
function ranges(r: CompiledRule): { lo: bigint[]; hi: bigint[] } {
  const [shl, shh, sll, slh] = addressRange(r.src);
  const [dhl, dhh, dll, dlh] = addressRange(r.dst);
  const proto: [bigint, bigint] = r.protocol === undefined ? [0n, 255n] : [BigInt(r.protocol), BigInt(r.protocol)];
  const port = (p?: PortRange): [bigint, bigint] => (p ? [BigInt(p.first), BigInt(p.last)] : [0n, 65535n]);
  const [spl, sph] = port(r.sport);
  const [dpl, dph] = port(r.dport);
  return { lo: [shl, sll, dhl, dll, proto[0], spl, dpl, 0n], hi: [shh, slh, dhh, dlh, proto[1], sph, dph, 4n] };
}

function boxesOf(r: CompiledRule, rule: number): Box[] {
  const { lo, hi } = ranges(r);
  // The ct states as runs of consecutive values.
  const runs: [number, number][] = [];
  for (const s of r.ctStates ?? [0, 1, 2, 3, 4]) {
    const last = runs[runs.length - 1];
    if (last && last[1] === s - 1) last[1] = s;
    else runs.push([s, s]);
  }
  return runs.map(([cl, ch]) => ({ rule, lo: [...lo.slice(0, 7), BigInt(cl)], hi: [...hi.slice(0, 7), BigInt(ch)] }));
}

/** The tree a rule goes into. */
function treeOf(r: CompiledRule): (typeof TREES)[number] {
  const family = (r.src ?? r.dst)?.family;
  if (family === undefined) return 'any';
  return `v${family}_${r.src && r.dst ? 'both' : r.src ? 'src' : 'dst'}`;
}

/** A box in compressed coordinates: per field, the elementary intervals [a, b). */
interface Cell {
  rule: number;
  a: Int32Array;
  b: Int32Array;
}

/** A leaf lists the rules (indexes, in order) that may match in its region. */
type TreeNode = { leaf: number[] } | { field: number; threshold: bigint; left: TreeNode; right: TreeNode };

interface Build {
  rules: CompiledRule[];
  /** Per field: the sorted distinct values where an elementary interval starts. */
  points: bigint[][];
  depth: number;
}

const F = FIELDS.length;

function covers(c: Cell, ra: Int32Array, rb: Int32Array): boolean {
  for (let d = 0; d < F; d++) if (c.a[d] > ra[d] || c.b[d] < rb[d]) return false;
  return true;
}

/** The tree of the cells (in priority order) over the region [ra, rb). */
function grow(build: Build, cells: Cell[], ra: Int32Array, rb: Int32Array, depth: number): TreeNode {
  build.depth = Math.max(build.depth, depth);
  // Rules after the first one that takes all of the region unconditionally are shadowed here.
  let keep = cells.length;
  for (let j = 0; j < cells.length; j++) {
    if (build.rules[cells[j].rule].flagsMask === 0 && covers(cells[j], ra, rb)) {
      keep = j + 1;
      break;
    }
  }
  const live = cells.slice(0, keep);
  const rules = [...new Set(live.map((c) => c.rule))];
  if (rules.length <= LEAF_RULES) return { leaf: rules };
  if (depth >= MAX_DEPTH) throw new FieldError('rules', `the rules need a classification tree deeper than ${MAX_DEPTH}: simplify them`);
  const cut = chooseSplit(live, ra, rb);
  if (!cut) {
    throw new FieldError('rules', `${rules.length} rules match the same packets but for their TCP flags (${rules.map((r) => ruleText(build.rules[r])).join('; ')}): at most ${LEAF_RULES} can`);
  }
  const { field, at } = cut;
  const lb = Int32Array.from(rb);
  lb[field] = at;
  const la = Int32Array.from(ra);
  la[field] = at;
  const left = live.filter((c) => c.a[field] < at);
  const right = live.filter((c) => c.b[field] > at);
  // Field values up to the last of the left side's elementary intervals go left.
  const threshold = build.points[field][at] - 1n;
  return { field, threshold, left: grow(build, left, ra, lb, depth + 1), right: grow(build, right, la, rb, depth + 1) };
}

/**
 * Where to cut the region: the field and elementary boundary that leave the fewer
 * cells on the fuller side, counting cells cut in two on both sides.
 */
function chooseSplit(cells: Cell[], ra: Int32Array, rb: Int32Array): { field: number; at: number } | undefined {
  let best = { field: -1, at: 0, cost: Infinity };
  for (let d = 0; d < F; d++) {
    if (rb[d] - ra[d] < 2) continue;
    const starts: number[] = [];
    const ends: number[] = [];
    const candidates = new Set<number>();
    for (const c of cells) {
      const a = Math.max(c.a[d], ra[d]);
      const b = Math.min(c.b[d], rb[d]);
      starts.push(a);
      ends.push(b);
      if (a > ra[d]) candidates.add(a);
      if (b < rb[d]) candidates.add(b);
    }
    if (candidates.size === 0) continue;
    starts.sort((x, y) => x - y);
    ends.sort((x, y) => x - y);
    const ks = [...candidates].sort((x, y) => x - y);
    let si = 0;
    let ei = 0;
    for (const k of ks) {
      while (si < starts.length && starts[si] < k) si++;
      while (ei < ends.length && ends[ei] <= k) ei++;
      const left = si; // cells starting before k
      const right = ends.length - ei; // cells ending after k
      const cost = Math.max(left, right) + 0.5 * (left + right);
      if (cost < best.cost) best = { field: d, at: k, cost };
    }
  }
  return best.field < 0 ? undefined : { field: best.field, at: best.at };
}

/** The tree of the rules `which` (indexes into `rules`, in order). */
function buildTree(rules: CompiledRule[], which: number[]): { root: TreeNode; depth: number } {
  const boxes = which.flatMap((i) => boxesOf(rules[i], i));
  const points: bigint[][] = [];
  const cells: Cell[] = boxes.map((b) => ({ rule: b.rule, a: new Int32Array(F), b: new Int32Array(F) }));
  for (let d = 0; d < F; d++) {
    const vals = new Set<bigint>([0n]);
    for (const b of boxes) {
      vals.add(b.lo[d]);
      if (b.hi[d] < DOMAIN[d]) vals.add(b.hi[d] + 1n);
    }
    const sorted = [...vals].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const index = new Map(sorted.map((v, i) => [v, i]));
    points.push(sorted);
    boxes.forEach((b, i) => {
      cells[i].a[d] = index.get(b.lo[d])!;
      cells[i].b[d] = b.hi[d] < DOMAIN[d] ? index.get(b.hi[d] + 1n)! : sorted.length;
    });
  }
  const build: Build = { rules, points, depth: 0 };
  const root = grow(build, cells, new Int32Array(F), Int32Array.from(points, (p) => p.length), 0);
  return { root, depth: build.depth };
}

// ---- tables ---------------------------------------------------------------------------------

export interface TableEntry {
  key: number;
  value: unknown;
}

/** What one compile writes: every entry of the bank's part of each table, then the switch. */
export interface FirewallTables {
  /** The bank written: the one packets are not using (see fw_active). */
  bank: number;
  /** fw_nodes, fw_leaves, fw_rules and fw_chains entries of this bank (JSON for the tables' BTF). */
  tables: { fw_nodes: TableEntry[]; fw_leaves: TableEntry[]; fw_rules: TableEntry[]; fw_chains: TableEntry[] };
  /** Written last, once the tables are: every packet from then on uses this bank. */
  activate: { table: 'fw_active'; key: 0; value: { bank: number } };
  /** Counter slots of rules new in this compile, per direction: zero them before activating. */
  freshSlots: Record<Direction, number[]>;
  /** Keep for the next compile, so rules keep their counters. */
  slots: SlotAssignment;
  /** Per direction: the rules as compiled, by index, with their counter slot. */
  rules: Record<Direction, { text: string; slot: number }[]>;
  stats: Record<Direction, { nodes: number; leafEntries: number; depth: number; trees: number }>;
}

/** Index of the first entry of a (bank, direction) part of fw_nodes, fw_leaves, fw_rules; of its fw_chains entry. */
export const nodeBase = (bank: number, dir: number): number => (bank * DIRECTIONS.length + dir) * MAX_NODES;
export const leafBase = (bank: number, dir: number): number => (bank * DIRECTIONS.length + dir) * MAX_LEAF_ENTRIES;
export const ruleBase = (bank: number, dir: number): number => (bank * DIRECTIONS.length + dir) * MAX_RULES;
export const chainIndex = (bank: number, dir: number): number => bank * DIRECTIONS.length + dir;
/** fw_counters index of a direction's slot. */
export const counterIndex = (dir: number, slot: number): number => dir * SLOTS + slot;

export interface CompileOptions {
  /** The bank packets use now (fw_active); the compile writes the other. Default 1, so a first compile writes 0. */
  activeBank?: number;
  /** The previous compile's slots (FirewallTables.slots), so unchanged rules keep their counters. */
  previous?: SlotAssignment;
}

/** Compiles a firewall config into the tables of the bank packets are not using. */
export function compileFirewall(config: unknown, opts: CompileOptions = {}): FirewallTables {
  const parsed = parseFirewall(config);
  const bank = 1 - (opts.activeBank ?? 1);
  const out: FirewallTables = {
    bank,
    tables: { fw_nodes: [], fw_leaves: [], fw_rules: [], fw_chains: [] },
    activate: { table: 'fw_active', key: 0, value: { bank } },
    freshSlots: { ingress: [], egress: [] },
    slots: { ingress: {}, egress: {} },
    rules: { ingress: [], egress: [] },
    stats: {} as FirewallTables['stats'],
  };
  // Tracking serves both directions: a flow one direction lets out is the one the other answers.
  const track = DIRECTIONS.some((d) => parsed[d].rules.some((r) => r.ctStates !== undefined));
  DIRECTIONS.forEach((dir, di) => {
    const chain = parsed[dir];
    const { slots, assignment, fresh } = assignSlots(chain.rules, opts.previous?.[dir]);
    out.slots[dir] = assignment;
    out.freshSlots[dir] = fresh;
    out.rules[dir] = chain.rules.map((r, i) => ({ text: ruleText(r), slot: slots[i] }));
    const rb = ruleBase(bank, di);
    chain.rules.forEach((r, i) => out.tables.fw_rules.push({ key: rb + i, value: ruleValue(r, slots[i]) }));
    const layout = new Layout(nodeBase(bank, di), leafBase(bank, di), rb);
    const roots: number[] = [];
    let depth = 0;
    let trees = 0;
    for (const tree of TREES) {
      const which = chain.rules.flatMap((r, i) => (treeOf(r) === tree ? [i] : []));
      if (which.length === 0) {
        roots.push(NO_TREE);
        continue;
      }
      let built: ReturnType<typeof buildTree>;
      try {
        built = buildTree(chain.rules, which);
      } catch (err) {
        if (err instanceof FieldError) throw new FieldError(`${dir}.${err.field}`, err.problem);
        throw err;
      }
      roots.push(layout.add(built.root));
      depth = Math.max(depth, built.depth);
      trees++;
    }
    if (layout.nodes.length > MAX_NODES) throw new FieldError(`${dir}.rules`, `the rules need ${layout.nodes.length} tree nodes; a direction holds ${MAX_NODES}`);
    if (layout.leaves.length > MAX_LEAF_ENTRIES) throw new FieldError(`${dir}.rules`, `the rules need ${layout.leaves.length} leaf entries; a direction holds ${MAX_LEAF_ENTRIES}`);
    layout.nodes.forEach((n, i) => out.tables.fw_nodes.push({ key: layout.nodeBase + i, value: n }));
    layout.leaves.forEach((rule, i) => out.tables.fw_leaves.push({ key: layout.leafBase + i, value: rule }));
    out.tables.fw_chains.push({ key: chainIndex(bank, di), value: { roots, default_action: ACTIONS[chain.defaultAction], track: track ? 1 : 0, loaded: 1 } });
    out.stats[dir] = { nodes: layout.nodes.length, leafEntries: layout.leaves.length, depth, trees };
  });
  return out;
}

/** A rule as fw_rules holds it: the ranges the fast path checks at a leaf. */
function ruleValue(r: CompiledRule, slot: number): unknown {
  const { lo, hi } = ranges(r);
  return {
    lo: lo.slice(0, 4).map(String),
    hi: hi.slice(0, 4).map(String),
    sport_lo: Number(lo[5]),
    sport_hi: Number(hi[5]),
    dport_lo: Number(lo[6]),
    dport_hi: Number(hi[6]),
    proto_lo: Number(lo[4]),
    proto_hi: Number(hi[4]),
    ct_mask: (r.ctStates ?? [0, 1, 2, 3, 4]).reduce((m, s) => m | (1 << s), 0),
    flags_mask: r.flagsMask,
    flags_value: r.flagsValue,
    action: ACTIONS[r.action],
    slot,
  };
}

interface NodeValue {
  threshold: string;
  next: number;
  field: number;
  count: number;
}

/**
 * Trees laid out in fw_nodes (children of a node side by side: left at `next`,
 * right at `next + 1`; a leaf's `next` is its first fw_leaves entry) and fw_leaves
 * (fw_rules indexes). Equal leaves, and equal pairs of subtrees, are written once.
 */
class Layout {
  readonly nodes: NodeValue[] = [];
  readonly leaves: number[] = [];
  private readonly leafAt = new Map<string, number>();
  private readonly pairAt = new Map<string, number>();
  private readonly ids = new Map<TreeNode, string>();

  constructor(
    readonly nodeBase: number,
    readonly leafBase: number,
    private readonly ruleBase: number,
  ) {}

  /** Lays out a tree; returns its root's fw_nodes index. */
  add(root: TreeNode): number {
    const value = this.value(root);
    this.nodes.push(value);
    return this.nodeBase + this.nodes.length - 1;
  }

  private value(n: TreeNode): NodeValue {
    if ('leaf' in n) {
      const key = n.leaf.join(',');
      let at = this.leafAt.get(key);
      if (at === undefined) {
        at = this.leaves.length;
        this.leafAt.set(key, at);
        for (const r of n.leaf) this.leaves.push(this.ruleBase + r);
      }
      this.ids.set(n, `L${key}`);
      return { threshold: '0', next: this.leafBase + at, field: LEAF, count: n.leaf.length };
    }
    const l = this.value(n.left);
    const r = this.value(n.right);
    const key = `${this.ids.get(n.left)}|${this.ids.get(n.right)}`;
    let at = this.pairAt.get(key);
    if (at === undefined) {
      at = this.nodes.length;
      this.pairAt.set(key, at);
      this.nodes.push(l, r);
    }
    this.ids.set(n, `N${n.field}:${n.threshold}:${at}`);
    return { threshold: n.threshold.toString(), next: this.nodeBase + at, field: n.field, count: 0 };
  }
}

// ---- what the fast path does, in TypeScript ---------------------------------------------------

/** A packet as the classifier sees it. */
export interface PacketFields {
  src: string;
  dst: string;
  protocol: number;
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  ctState?: CtState;
}

/** The fields' values, as firewall.bpf.c computes them. */
export function fieldValues(p: PacketFields): bigint[] {
  const half = (text: string): [bigint, bigint] => {
    const pr = parsePrefix(text, 'address');
    if (pr.family === 4) return [0n, MAPPED | BigInt(pr.bytes.readUInt32BE(0))];
    return [pr.bytes.readBigUInt64BE(0), pr.bytes.readBigUInt64BE(8)];
  };
  const [sh, sl] = half(p.src);
  const [dh, dl] = half(p.dst);
  return [sh, sl, dh, dl, BigInt(p.protocol), BigInt(p.sport ?? 0), BigInt(p.dport ?? 0), BigInt(CT_STATES.indexOf(p.ctState ?? 'new'))];
}

interface RuleValue {
  lo: string[];
  hi: string[];
  sport_lo: number;
  sport_hi: number;
  dport_lo: number;
  dport_hi: number;
  proto_lo: number;
  proto_hi: number;
  ct_mask: number;
  flags_mask: number;
  flags_value: number;
  action: string;
  slot: number;
}

/**
 * Classifies a packet with a direction's compiled tables as the fast path does:
 * the counter slot of the rule that decides (DEFAULT_SLOT for the default), and
 * the action. For tests, and to tell an operator which rule a packet meets.
 */
export function classify(tables: FirewallTables, dir: Direction, p: PacketFields): { slot: number; action: Action } {
  const di = DIRECTIONS.indexOf(dir);
  const nodes = new Map(tables.tables.fw_nodes.map((e) => [e.key, e.value as NodeValue]));
  const leaves = new Map(tables.tables.fw_leaves.map((e) => [e.key, e.value as number]));
  const rules = new Map(tables.tables.fw_rules.map((e) => [e.key, e.value as RuleValue]));
  const chain = tables.tables.fw_chains.find((c) => c.key === chainIndex(tables.bank, di))!.value as { roots: number[]; default_action: string };
  const v = fieldValues(p);
  const v6 = v[0] !== 0n || v[1] >> 32n !== 0xffffn;
  let best = Infinity;
  for (const t of [0, ...(v6 ? [4, 5, 6] : [1, 2, 3])]) {
    const root = chain.roots[t];
    if (root === NO_TREE) continue;
    let n = nodes.get(root)!;
    for (let i = 0; n.field !== LEAF; i++) {
      if (i >= MAX_DEPTH) throw new Error('tree deeper than MAX_DEPTH');
      n = nodes.get(n.next + (v[n.field] > BigInt(n.threshold) ? 1 : 0))!;
    }
    for (let j = 0; j < n.count; j++) {
      const index = leaves.get(n.next + j)!;
      if (index >= best) break;
      const r = rules.get(index)!;
      const inRange = [0, 1, 2, 3].every((f) => v[f] >= BigInt(r.lo[f]) && v[f] <= BigInt(r.hi[f]));
      const hit =
        inRange &&
        v[4] >= r.proto_lo && v[4] <= r.proto_hi &&
        v[5] >= r.sport_lo && v[5] <= r.sport_hi &&
        v[6] >= r.dport_lo && v[6] <= r.dport_hi &&
        (r.ct_mask & (1 << Number(v[7]))) !== 0 &&
        ((p.tcpFlags ?? 0) & r.flags_mask) === r.flags_value;
      if (hit) {
        best = index;
        break;
      }
    }
  }
  const winner = best === Infinity ? undefined : rules.get(best)!;
  const action = winner ? winner.action : chain.default_action;
  return { slot: winner ? winner.slot : DEFAULT_SLOT, action: action === ACTIONS.accept ? 'accept' : 'drop' };
}

/** The first rule of a direction that matches, as a list of rules would decide: the reference for classify(). */
export function firstMatch(config: unknown, dir: Direction, p: PacketFields): { rule: number; action: Action } {
  const chain = parseFirewall(config)[dir];
  const v = fieldValues(p);
  const family = parsePrefix(p.src, 'src').family;
  for (const [i, r] of chain.rules.entries()) {
    // An IPv6 prefix, ::/0 too, is for IPv6 packets only (IPv4 ones are not mapped on the wire).
    const ruleFamily = (r.src ?? r.dst)?.family;
    if (ruleFamily !== undefined && ruleFamily !== family) continue;
    const hit = boxesOf(r, i).some((b) => b.lo.every((lo, d) => v[d] >= lo && v[d] <= b.hi[d]));
    if (hit && ((p.tcpFlags ?? 0) & r.flagsMask) === r.flagsValue) return { rule: i, action: r.action };
  }
  return { rule: -1, action: chain.defaultAction };
}

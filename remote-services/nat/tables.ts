// NAT config -> the rule tables of bpf/cubes/nat.bpf.c, and the NAT table (its
// sessions) read back as translations. Pure (no kernel, no SDK): the data-plane
// tests and the control plane share it.
//
// The fast path does all per-flow work (ports, sessions, checksums); config only
// becomes rules. Masquerade is an SNAT rule whose address is the outside port's
// own: the control plane knows it and passes it here (masqueradeAddress), and
// compiles again when it changes.

import type { NatSessionKey as SessionKey, NatSessionValue as SessionValue } from '@netcube/catalog/control';
import { FieldError, type Address, type Prefix, arrayAt, integerAt, objectAt, onlyKnown, parseAddress, parsePortRange, parsePrefix, parseProtocol, PORT_PROTOCOLS, PROTOCOLS, tableAddress } from '@netcube/catalog/fields';

/** nat_snat_rules and nat_dnat_rules sizes (nat.bpf.c). */
export const MAX_SNAT_RULES = 1024;
export const MAX_DNAT_ENTRIES = 4096;
/** Ports (and ICMP identifiers) SNAT chooses from when a rule does not say. */
export const DEFAULT_PORTS = { first: 1024, last: 65535 };

export interface SnatRule {
  /** Inside sources this rule translates: a prefix, IPv4 or IPv6. */
  from: string;
  /** The address they take going out; or masquerade. */
  to?: string;
  /** Take the outside port's own address (CompileOptions.masqueradeAddress). */
  masquerade?: boolean;
  /** Ports to choose from, "1024-65535" by default. */
  ports?: string | number;
}

export interface DnatRule {
  /** The outside address packets come to. */
  address: string;
  /** With `port`: forward only that protocol's port (or range); without: the whole address. */
  protocol?: string | number;
  port?: string | number;
  /** The inside address they go to, and port (default: the same). */
  to: string;
  toPort?: number;
}

export interface NatConfig {
  snat?: SnatRule[];
  dnat?: DnatRule[];
}

export interface CompileOptions {
  /** The address masquerade rules take, per family: the outside port's. */
  masqueradeAddress?: string | { ipv4?: string; ipv6?: string };
}

export interface TableEntry {
  key: unknown;
  value: unknown;
}

export interface NatTables {
  nat_snat_rules: TableEntry[];
  nat_dnat_rules: TableEntry[];
}

const ANY_PROTOCOL = 0;

/** Checks a NAT config and compiles its rules; errors name the field ("dnat[2].toPort"). */
export function compileNat(config: unknown, opts: CompileOptions = {}): NatTables {
  const c = objectAt(config ?? {}, '');
  onlyKnown(c, ['snat', 'dnat'], '');
  const masquerade = masqueradeAddresses(opts.masqueradeAddress);
  const out: NatTables = { nat_snat_rules: [], nat_dnat_rules: [] };

  const snatSeen = new Map<string, number>();
  arrayAt(c.snat, 'snat').forEach((raw, i) => {
    const at = `snat[${i}]`;
    const r = objectAt(raw, at);
    onlyKnown(r, ['from', 'to', 'masquerade', 'ports'], at);
    const from = parsePrefix(r.from, `${at}.from`);
    if (r.masquerade !== undefined && typeof r.masquerade !== 'boolean') throw new FieldError(`${at}.masquerade`, `expected true or false, got ${JSON.stringify(r.masquerade)}`);
    if ((r.to === undefined) === !r.masquerade) throw new FieldError(at, 'give either to (an address) or masquerade: true');
    let to: Address;
    if (r.masquerade) {
      const m = masquerade[from.family];
      if (!m) throw new FieldError(`${at}.masquerade`, `the outside port has no IPv${from.family} address to masquerade as`);
      to = m;
    } else {
      to = parseAddress(r.to, `${at}.to`);
      if (to.family !== from.family) throw new FieldError(`${at}.to`, `${r.to} is IPv${to.family} but from ${r.from} is IPv${from.family}`);
    }
    const ports = r.ports === undefined ? DEFAULT_PORTS : parsePortRange(r.ports, `${at}.ports`);
    if (ports.first === 0) throw new FieldError(`${at}.ports`, 'port 0 is not a port to give a flow: start at 1 or more');
    const key = lpmKey(from);
    const dup = snatSeen.get(JSON.stringify(key));
    if (dup !== undefined) throw new FieldError(`${at}.from`, `snat[${dup}] has the same prefix`);
    snatSeen.set(JSON.stringify(key), i);
    out.nat_snat_rules.push({ key, value: { to_addr: tableAddress(to), port_min: ports.first, port_max: ports.last } });
  });
  if (out.nat_snat_rules.length > MAX_SNAT_RULES) throw new FieldError('snat', `${out.nat_snat_rules.length} rules; a nat cube holds ${MAX_SNAT_RULES}`);

  const dnatSeen = new Map<string, string>();
  arrayAt(c.dnat, 'dnat').forEach((raw, i) => {
    const at = `dnat[${i}]`;
    const r = objectAt(raw, at);
    onlyKnown(r, ['address', 'protocol', 'port', 'to', 'toPort'], at);
    const address = parseAddress(r.address, `${at}.address`);
    const to = parseAddress(r.to, `${at}.to`);
    if (to.family !== address.family) throw new FieldError(`${at}.to`, `${r.to} is IPv${to.family} but address ${r.address} is IPv${address.family}`);
    const protocol = r.protocol === undefined ? ANY_PROTOCOL : parseProtocol(r.protocol, `${at}.protocol`);
    let ports: { first: number; last: number } | undefined;
    if (r.port !== undefined) {
      if (!PORT_PROTOCOLS.has(protocol)) throw new FieldError(`${at}.port`, 'a port needs protocol tcp, udp or sctp');
      ports = parsePortRange(r.port, `${at}.port`);
      if (ports.first === 0) throw new FieldError(`${at}.port`, 'port 0 stands for every port: leave port out instead');
    } else if (protocol !== ANY_PROTOCOL && PORT_PROTOCOLS.has(protocol)) {
      throw new FieldError(`${at}.port`, `forwarding ${r.protocol} needs its port; leave protocol out to forward the whole address`);
    }
    let toPort = 0;
    if (r.toPort !== undefined) {
      if (!ports || ports.first !== ports.last) throw new FieldError(`${at}.toPort`, 'toPort goes with a single port');
      toPort = integerAt(r.toPort, 1, 65535, `${at}.toPort`);
    }
    const range = ports ?? { first: 0, last: 0 };
    if (range.last - range.first >= MAX_DNAT_ENTRIES) throw new FieldError(`${at}.port`, `a range of ${range.last - range.first + 1} ports; forward at most ${MAX_DNAT_ENTRIES} at once`);
    for (let port = range.first; port <= range.last; port++) {
      const key = { addr: tableAddress(address), port, proto: protocol, pad: 0 };
      const id = JSON.stringify(key);
      const dup = dnatSeen.get(id);
      if (dup !== undefined) throw new FieldError(at, `${dup} forwards ${r.address}${port ? ` port ${port}` : ''} already`);
      dnatSeen.set(id, at);
      out.nat_dnat_rules.push({ key, value: { to_addr: tableAddress(to), to_port: toPort, pad: 0 } });
    }
  });
  if (out.nat_dnat_rules.length > MAX_DNAT_ENTRIES) throw new FieldError('dnat', `${out.nat_dnat_rules.length} entries; a nat cube holds ${MAX_DNAT_ENTRIES}`);
  return out;
}

function masqueradeAddresses(option: CompileOptions['masqueradeAddress']): Partial<Record<4 | 6, Address>> {
  const texts = typeof option === 'string' ? [option] : [option?.ipv4, option?.ipv6].filter((x): x is string => x !== undefined);
  const out: Partial<Record<4 | 6, Address>> = {};
  for (const t of texts) {
    const a = parseAddress(t, 'masqueradeAddress');
    out[a.family] = a;
  }
  return out;
}

/** An LPM key over the tables' IPv6 form: an IPv4 prefix sits behind the 96 bits of ::ffff:0:0. */
function lpmKey(p: Prefix): { prefixlen: number; addr: string } {
  return { prefixlen: p.family === 4 ? 96 + p.length : p.length, addr: tableAddress(p) };
}

// ---- the NAT table --------------------------------------------------------------------------

/** A nat_sessions key (struct nat_flow) and value (struct nat_session) as the table API shows them. */
export type { NatSessionKey as SessionKey, NatSessionValue as SessionValue } from '@netcube/catalog/control';
/** One translated flow, as `netcubectl` and the control plane show it. */
export interface Translation {
  protocol: string;
  /** The inside end, as the inside sees it. */
  inside: string;
  /** The same end as the outside sees it. */
  outside: string;
  /** The outside peer. */
  peer: string;
}

/** enum nc_direction: the way a session's packets go. */
export const DIR_EGRESS = 1;
const REWRITE_SRC = 0;

/** ICMP or ICMPv6: an echo's identifier stands for its ports. */
export const isIcmpProto = (proto: number): boolean => proto === 1 || proto === 58;
const unmap = (a: string): string => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);
const endText = (a: string, port: number, proto: number): string => {
  const text = unmap(a);
  if (!PORT_PROTOCOLS.has(proto)) return isIcmpProto(proto) ? `${text} id ${port}` : text;
  return text.includes(':') ? `[${text}]:${port}` : `${text}:${port}`;
};

/**
 * The NAT table (nat_sessions entries, as the table API lists them) as one
 * translation per flow, from its egress session: the inside end, and what that
 * end becomes outside. Flows whose conntrack entry expired may still be listed
 * until their session is reused or evicted.
 */
export function translations(sessions: readonly { key: unknown; value: unknown }[]): Translation[] {
  const names = new Map(Object.entries(PROTOCOLS).map(([k, v]) => [v, k]));
  const out: Translation[] = [];
  for (const { key, value } of sessions) {
    const k = key as SessionKey;
    const v = value as SessionValue;
    if (k.dir !== DIR_EGRESS || v.rewrite !== REWRITE_SRC) continue;
    out.push({
      protocol: names.get(k.proto) ?? String(k.proto),
      inside: endText(k.saddr, k.sport, k.proto),
      outside: endText(v.addr, v.port, k.proto),
      // An echo's identifier is the inside end's: the peer has none of its own.
      peer: isIcmpProto(k.proto) ? unmap(k.daddr) : endText(k.daddr, k.dport, k.proto),
    });
  }
  return out.sort((a, b) => (a.inside < b.inside ? -1 : a.inside > b.inside ? 1 : 0));
}

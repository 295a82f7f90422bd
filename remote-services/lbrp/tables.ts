// Load-balancer config -> the tables of bpf/cubes/lbrp.bpf.c, with the Maglev
// tables built here. Pure (no kernel, no SDK): the data-plane tests, the
// benchmarks and the control plane share it.
//
// Maglev (Eisenbud et al., NSDI 2016): each backend walks its own permutation of
// the MAGLEV_SIZE slots (from two hashes of its name) and takes the next free
// slot in turn, weight times per round, until every slot has a backend. A slot
// goes to a backend by its name alone, not by the order of the list, so a change
// of backends changes few other slots; flows already open keep their backend
// through the data plane's sessions whatever the table says.
//
// Ids stay with their service and backend across compiles (CompileOptions.previous),
// and an id freed by a compile is not given out by that compile: the data plane
// may still have sessions that name it.

import { createHash } from 'node:crypto';
import { FieldError, type Address, arrayAt, integerAt, objectAt, onlyKnown, oneOf, parseAddress, PROTOCOLS, tableAddress } from '@netcube/catalog/fields';

/** lbrp.bpf.c's sizes. */
export const MAGLEV_SIZE = 1021;
export const MAX_SERVICES = 16_384;
/** Backend ids 1..MAX_BACKENDS - 1; 0 is no backend. */
export const MAX_BACKENDS = 65_536;
/** Frontend hosts (lb_hosts). */
export const MAX_HOSTS = 4096;
export const NO_PORT = 0xffffffff;

export interface BackendConfig {
  address: string;
  /** Default: the service's port. */
  port?: number;
  /** Share of the service's new flows, relative to the others'; 0 takes none (draining). Default 1. */
  weight?: number;
}

export interface ServiceConfig {
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  backends?: BackendConfig[];
  /** Session affinity by client address (Kubernetes ClientIP), for this long. */
  affinitySeconds?: number;
}

export interface LbConfig {
  /** The port towards the backends. */
  backendPort: string;
  /** Frontend ports and the hosts behind them; packets from the backends to a host go out of its port. */
  frontends?: Record<string, { hosts?: string[] }>;
  /** Where packets to hosts no frontend names go; default none (dropped). */
  defaultFrontend?: string;
  services?: ServiceConfig[];
}

/** Ids given out so far, by service ("vip port/protocol") and backend ("address port"). */
export interface LbIds {
  services: Record<string, number>;
  backends: Record<string, number>;
}

export interface CompileOptions {
  /** The cube's ports: name -> index. */
  ports: Record<string, number>;
  /** The previous compile's ids (LbTables.ids). */
  previous?: LbIds;
}

export interface TableEntry {
  key: unknown;
  value: unknown;
}

export interface LbTables {
  tables: {
    lb_ports: TableEntry[];
    lb_config: TableEntry[];
    lb_hosts: TableEntry[];
    lb_services: TableEntry[];
    lb_backends: TableEntry[];
    lb_maglev: TableEntry[];
  };
  ids: LbIds;
  /** Backend ids no longer in use: empty their lb_backends entries after writing the rest. */
  freedBackends: number[];
}

const SERVICE_PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;
const addressKey = (a: Address, port: number): string => `${tableAddress(a)} ${port}`;

/** Checks a load-balancer config and compiles it; errors name the field ("services[3].backends[0].port"). */
export function compileLb(config: unknown, opts: CompileOptions): LbTables {
  const c = objectAt(config, '');
  onlyKnown(c, ['backendPort', 'frontends', 'defaultFrontend', 'services'], '');
  const portOf = (name: unknown, field: string): number => {
    if (typeof name !== 'string' || opts.ports[name] === undefined) {
      throw new FieldError(field, `${JSON.stringify(name)} is not a port of the cube; its ports are ${Object.keys(opts.ports).join(', ')}`);
    }
    return opts.ports[name];
  };
  const backendPort = portOf(c.backendPort, 'backendPort');
  const tables: LbTables['tables'] = { lb_ports: [], lb_config: [], lb_hosts: [], lb_services: [], lb_backends: [], lb_maglev: [] };
  for (const index of Object.values(opts.ports)) {
    tables.lb_ports.push({ key: index, value: { role: index === backendPort ? 'LB_BACKEND' : 'LB_FRONTEND' } });
  }
  let defaultPort = NO_PORT;
  if (c.defaultFrontend !== undefined) {
    defaultPort = portOf(c.defaultFrontend, 'defaultFrontend');
    if (defaultPort === backendPort) throw new FieldError('defaultFrontend', 'the backend port cannot be a frontend');
  }
  tables.lb_config.push({ key: 0, value: { backend_port: backendPort, default_port: defaultPort } });
  const hostSeen = new Map<string, string>();
  for (const [name, raw] of Object.entries(objectAt(c.frontends ?? {}, 'frontends'))) {
    const at = `frontends.${name}`;
    const port = portOf(name, at);
    if (port === backendPort) throw new FieldError(at, 'the backend port cannot be a frontend');
    const f = objectAt(raw, at);
    onlyKnown(f, ['hosts'], at);
    arrayAt(f.hosts, `${at}.hosts`).forEach((h, i) => {
      const addr = tableAddress(parseAddress(h, `${at}.hosts[${i}]`));
      const dup = hostSeen.get(addr);
      if (dup !== undefined) throw new FieldError(`${at}.hosts[${i}]`, `${h} is behind ${dup} already`);
      hostSeen.set(addr, name);
      tables.lb_hosts.push({ key: addr, value: port });
    });
  }
  if (tables.lb_hosts.length > MAX_HOSTS) throw new FieldError('frontends', `${tables.lb_hosts.length} hosts; an lbrp holds ${MAX_HOSTS}`);

  // Services and their backends, checked.
  const services = arrayAt(c.services, 'services').map((raw, i) => {
    const at = `services[${i}]`;
    const s = objectAt(raw, at);
    onlyKnown(s, ['vip', 'port', 'protocol', 'backends', 'affinitySeconds'], at);
    const vip = parseAddress(s.vip, `${at}.vip`);
    const port = integerAt(s.port, 1, 65535, `${at}.port`);
    const protocol = oneOf(s.protocol, SERVICE_PROTOCOLS, `${at}.protocol`);
    const affinity = integerAt(s.affinitySeconds, 0, 86400 * 7, `${at}.affinitySeconds`, 0);
    const seen = new Set<string>();
    const backends = arrayAt(s.backends, `${at}.backends`).map((rawB, j) => {
      const bt = `${at}.backends[${j}]`;
      const b = objectAt(rawB, bt);
      onlyKnown(b, ['address', 'port', 'weight'], bt);
      const address = parseAddress(b.address, `${bt}.address`);
      if (address.family !== vip.family) throw new FieldError(`${bt}.address`, `${b.address} is IPv${address.family} but the service's vip ${s.vip} is IPv${vip.family}`);
      const bport = integerAt(b.port, 1, 65535, `${bt}.port`, port);
      const weight = integerAt(b.weight, 0, 1000, `${bt}.weight`, 1);
      const key = addressKey(address, bport);
      if (seen.has(key)) throw new FieldError(bt, `${b.address} port ${bport} is listed twice`);
      seen.add(key);
      return { key, address, port: bport, weight };
    });
    return { at, key: `${tableAddress(vip)} ${port}/${protocol}`, vip, port, protocol, affinity, backends };
  });
  if (services.length > MAX_SERVICES) throw new FieldError('services', `${services.length} services; an lbrp holds ${MAX_SERVICES}`);
  const serviceSeen = new Map<string, string>();
  for (const s of services) {
    const dup = serviceSeen.get(s.key);
    if (dup !== undefined) throw new FieldError(s.at, `${dup} is the same service (vip, port and protocol)`);
    serviceSeen.set(s.key, s.at);
  }

  const serviceIds = assignIds(services.map((s) => s.key), opts.previous?.services, 0, MAX_SERVICES, 'services');
  const backendKeys = [...new Set(services.flatMap((s) => s.backends.map((b) => b.key)))];
  const backendIds = assignIds(backendKeys, opts.previous?.backends, 1, MAX_BACKENDS, 'backends');
  const written = new Set<number>();
  for (const s of services) {
    for (const b of s.backends) {
      const id = backendIds.ids[b.key];
      if (written.has(id)) continue;
      written.add(id);
      tables.lb_backends.push({ key: id, value: { addr: tableAddress(b.address), port: b.port, pad: 0 } });
    }
    const id = serviceIds.ids[s.key];
    const live = s.backends.filter((b) => b.weight > 0);
    const slots = maglev(live.map((b) => ({ name: b.key, weight: b.weight })));
    tables.lb_maglev.push({ key: id, value: { slot: slots.map((i) => (i < 0 ? 0 : backendIds.ids[live[i].key])) } });
    tables.lb_services.push({
      key: { vip: tableAddress(s.vip), port: s.port, proto: PROTOCOLS[s.protocol], pad: 0 },
      value: { id, backends: live.length, affinity_s: s.affinity, pad: 0 },
    });
  }
  const freedBackends = Object.entries(opts.previous?.backends ?? {}).filter(([k]) => backendIds.ids[k] === undefined).map(([, id]) => id);
  return { tables, ids: { services: serviceIds.ids, backends: backendIds.ids }, freedBackends };
}

/** Stable ids: kept from `previous`; new keys take the lowest ids neither kept nor just freed. */
function assignIds(keys: string[], previous: Record<string, number> | undefined, first: number, limit: number, field: string): { ids: Record<string, number> } {
  const ids: Record<string, number> = {};
  const taken = new Set<number>();
  for (const k of keys) {
    const id = previous?.[k];
    if (id !== undefined && id >= first && id < limit && !taken.has(id)) {
      ids[k] = id;
      taken.add(id);
    }
  }
  const busy = new Set<number>([...taken, ...Object.values(previous ?? {})]);
  let next = first;
  for (const k of keys) {
    if (ids[k] !== undefined) continue;
    while (busy.has(next)) next++;
    if (next >= limit) throw new FieldError(field, `more than ${limit - first} ${field} (counting those just removed, whose ids the data plane may still use)`);
    ids[k] = next;
    busy.add(next);
  }
  return { ids };
}

function hashes(name: string): [number, number] {
  const h = createHash('sha256').update(name).digest();
  return [h.readUInt32BE(0), h.readUInt32BE(4)];
}

/**
 * A Maglev table of MAGLEV_SIZE slots over `backends` (by name and weight): each
 * slot's backend index into `backends`, or -1 for all when none has weight.
 */
export function maglev(backends: readonly { name: string; weight: number }[], size = MAGLEV_SIZE): number[] {
  const table = new Array<number>(size).fill(-1);
  const live = backends.map((b, i) => ({ ...b, i })).filter((b) => b.weight > 0);
  if (live.length === 0) return table;
  // The order of turns follows the names, not the list: the same backends make the same table.
  live.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const perm = live.map((b) => {
    const [h1, h2] = hashes(b.name);
    return { offset: h1 % size, skip: (h2 % (size - 1)) + 1 };
  });
  const next = live.map(() => 0);
  const credit = live.map(() => 0);
  const maxWeight = Math.max(...live.map((b) => b.weight));
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < live.length && filled < size; i++) {
      credit[i] += live[i].weight;
      while (credit[i] >= maxWeight && filled < size) {
        credit[i] -= maxWeight;
        let slot = (perm[i].offset + next[i] * perm[i].skip) % size;
        while (table[slot] >= 0) {
          next[i]++;
          slot = (perm[i].offset + next[i] * perm[i].skip) % size;
        }
        table[slot] = live[i].i;
        next[i]++;
        filled++;
      }
    }
  }
  return table;
}

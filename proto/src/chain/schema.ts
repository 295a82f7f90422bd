// The shape of a chain: field names, types, name rules, enums and defaults. Shared by
// the parser (text in) and the validator (objects from anywhere: gRPC, etcd, code), so
// both report the same problems with the same words.

import {
  AttachmentSpec,
  CHAIN_API_VERSION,
  CHAIN_KIND,
  Chain,
  CUBE_MODES,
  CubeSpec,
  Direction,
  DIRECTIONS,
  Endpoint,
  JsonObject,
  LinkSpec,
  LOG_LEVELS,
  StackDirection,
} from './types';
import { cite } from '../cite';
import { MAX_SIZED_TABLES, tableNameProblem, tableSizeRangeProblem } from './tables';

// The name rules are the whole project's (../names.ts); the chain format re-exports them.
import { hostNameProblem, ifnameProblem, nameProblem, portNameProblem } from '../names';
export { hostNameProblem, ifnameProblem, nameProblem, portNameProblem };

export type Path = readonly (string | number)[];
export interface PathIssue {
  path: Path;
  message: string;
}

/** Ports of one cube: the data plane's NC_MAX_PORTS (bpf/include/netcube/abi.h; test/dataplane/abi.test.ts checks they agree). */
export const MAX_PORTS = 32;
/** A cube's params as JSON, at most: config, not data (etcd keeps every version of a chain). */
export const MAX_PARAMS_BYTES = 64 * 1024;
/** How deep params may nest. */
export const MAX_PARAMS_DEPTH = 32;
/** A chain as JSON, at most: etcd takes 1.5 MiB a request, and a change writes a chain twice (current and history). */
export const MAX_CHAIN_BYTES = 512 * 1024;
/** Programs per cube: the entry and its micro-cubes (NC_MAX_MICROCUBES). */
export const MAX_MICROCUBES = 8;
/** `spec.links[2].to` */
export function pathToString(path: Path): string {
  let out = '';
  for (const segment of path) {
    out += typeof segment === 'number' ? `[${segment}]` : out ? `.${segment}` : segment;
  }
  return out;
}

/** Syntax only: `<cube>:<port>` or `netdev:<ifname>`; whether they exist is the validator's job. */
export function parseEndpoint(text: string): Endpoint | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) return undefined;
  const left = text.slice(0, colon);
  const right = text.slice(colon + 1);
  if (left === 'netdev') return { kind: 'netdev', ifname: right };
  if (right.includes(':')) return undefined;
  return { kind: 'port', cube: left, port: right };
}

export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.kind === 'netdev' ? `netdev:${endpoint.ifname}` : `${endpoint.cube}:${endpoint.port}`;
}

/** For chains that passed validation; a malformed endpoint here is a caller's bug. */
export function endpointOf(text: string): Endpoint {
  const endpoint = parseEndpoint(text);
  if (!endpoint) throw new TypeError(`endpoint '${text}' is not <cube>:<port> or netdev:<ifname>; validate the chain first`);
  return endpoint;
}

/** The directions a stack of `direction` runs in. */
export function stackDirections(direction: Direction): StackDirection[] {
  return direction === 'both' ? ['ingress', 'egress'] : [direction];
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string '${cite(value)}'`;
  return `the ${typeof value} ${String(value)}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Collects every problem of one chain while building its normalized form. */
class SchemaCheck {
  readonly issues: PathIssue[] = [];

  problem(path: Path, message: string): void {
    this.issues.push({ path, message });
  }

  /** A mapping with only `allowed` keys and every `required` one; undefined when it is not a mapping. */
  mapping(value: unknown, path: Path, what: string, allowed: readonly string[], required: readonly string[]) {
    if (!isPlainObject(value)) {
      this.problem(path, `${what} must be a mapping, got ${describeValue(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (allowed.includes(key)) continue;
      const close = allowed.find(candidate => Math.abs(candidate.length - key.length) <= 2 && editDistance(candidate, key) <= 2);
      const hint = close ? ` (did you mean '${close}'?)` : '';
      this.problem([...path, cite(key)], `unknown field '${cite(key)}' in ${what}${hint}; its fields are ${allowed.join(', ')}`);
    }
    for (const key of required) {
      if (value[key] === undefined || value[key] === null) {
        this.problem([...path, key], `${what} needs '${key}'`);
      }
    }
    return value;
  }

  string(value: unknown, path: Path, what: string): string | undefined {
    if (value === undefined || value === null) return undefined; // reported by mapping() when required
    if (typeof value === 'string') return value;
    const quote = typeof value === 'number' || typeof value === 'boolean' ? ` (quote it: "${cite(String(value))}")` : '';
    this.problem(path, `${what} must be a string, got ${describeValue(value)}${quote}`);
    return undefined;
  }

  named(value: unknown, path: Path, what: string, rule: (name: string) => string | undefined): string | undefined {
    const text = this.string(value, path, what);
    if (text === undefined) return undefined;
    const problem = rule(text);
    if (problem) {
      this.problem(path, problem);
      return undefined;
    }
    return text;
  }

  oneOf<T extends string>(value: unknown, path: Path, what: string, allowed: readonly T[], fallback?: T): T | undefined {
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    this.problem(path, `${what} must be one of ${allowed.join(', ')}; got ${describeValue(value)}`);
    return undefined;
  }

  list(value: unknown, path: Path, what: string): unknown[] | undefined {
    if (value === undefined || value === null) return [];
    if (Array.isArray(value)) return value;
    this.problem(path, `${what} must be a list, got ${describeValue(value)}`);
    return undefined;
  }

  endpoint(value: unknown, path: Path, what: string): string | undefined {
    const text = this.string(value, path, what);
    if (text === undefined) return undefined;
    const endpoint = parseEndpoint(text);
    if (!endpoint) {
      this.problem(path, `${what} must be <cube>:<port> or netdev:<ifname>, got '${cite(text)}'`);
      return undefined;
    }
    const problem =
      endpoint.kind === 'netdev'
        ? ifnameProblem(endpoint.ifname)
        : (nameProblem(endpoint.cube, 'cube name') ?? portNameProblem(endpoint.port));
    if (problem) {
      this.problem(path, problem);
      return undefined;
    }
    return text;
  }

  /** JSON only, nested at most MAX_PARAMS_DEPTH deep: params travel to control planes as JSON. */
  json(value: unknown, path: Path, depth = 0): boolean {
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
    if (depth >= MAX_PARAMS_DEPTH) {
      this.problem(path, `params nest at most ${MAX_PARAMS_DEPTH} levels deep`);
      return false;
    }
    if (typeof value === 'number') {
      if (Number.isFinite(value)) return true;
      this.problem(path, `${String(value)} is not a JSON number`);
      return false;
    }
    if (Array.isArray(value)) return value.every((item, i) => this.json(item, [...path, i], depth + 1));
    if (isPlainObject(value)) return Object.entries(value).every(([k, v]) => this.json(v, [...path, cite(k)], depth + 1));
    this.problem(path, `params hold JSON values only, got ${describeValue(value)}`);
    return false;
  }

  cube(value: unknown, path: Path): CubeSpec | undefined {
    const fields = ['name', 'host', 'type', 'mode', 'ports', 'logLevel', 'params', 'replacedMicrocubes', 'tableSizes'];
    const raw = this.mapping(value, path, 'a cube', fields, ['name', 'host', 'type']);
    if (!raw) return undefined;
    const before = this.issues.length;
    const name = this.named(raw.name, [...path, 'name'], 'cube name', n => nameProblem(n, 'cube name'));
    if (name === 'netdev') {
      this.problem([...path, 'name'], `'netdev' is reserved for netdev endpoints (netdev:<ifname>): rename the cube`);
    }
    const host = this.named(raw.host, [...path, 'host'], 'host', hostNameProblem);
    const type = this.named(raw.type, [...path, 'type'], 'type', n => nameProblem(n, 'cube type name'));
    const mode = this.oneOf(raw.mode, [...path, 'mode'], 'mode', CUBE_MODES, 'xdp');
    const logLevel = this.oneOf(raw.logLevel, [...path, 'logLevel'], 'logLevel', LOG_LEVELS, 'info');
    const ports: string[] = [];
    const rawPorts = this.list(raw.ports, [...path, 'ports'], 'ports');
    if (rawPorts && rawPorts.length > MAX_PORTS) {
      this.problem([...path, 'ports'], `a cube has at most ${MAX_PORTS} ports; this one lists ${rawPorts.length}`);
    }
    rawPorts?.forEach((port, i) => {
      const portName = this.named(port, [...path, 'ports', i], 'a port name', portNameProblem);
      if (portName !== undefined) ports.push(portName);
    });
    let params: JsonObject = {};
    if (raw.params !== undefined && raw.params !== null) {
      if (!isPlainObject(raw.params)) {
        this.problem([...path, 'params'], `params must be a mapping, got ${describeValue(raw.params)}`);
      } else if (this.json(raw.params, [...path, 'params'])) {
        const bytes = Buffer.byteLength(JSON.stringify(raw.params));
        if (bytes > MAX_PARAMS_BYTES) this.problem([...path, 'params'], `params take ${bytes} bytes as JSON, over the limit of ${MAX_PARAMS_BYTES} bytes a cube: keep data in tables, not in params`);
        // A copy, so the normalized chain shares nothing mutable with its input.
        else params = structuredClone(raw.params) as JsonObject;
      }
    }
    const replaced = this.replacedMicrocubes(raw.replacedMicrocubes, [...path, 'replacedMicrocubes']);
    const tableSizes = this.tableSizes(raw.tableSizes, [...path, 'tableSizes']);
    if (this.issues.length > before || !name || !host || !type || !mode || !logLevel) return undefined;
    return {
      name,
      host,
      type,
      mode,
      ports,
      logLevel,
      params,
      ...(replaced ? { replacedMicrocubes: replaced } : {}),
      ...(tableSizes ? { tableSizes } : {}),
    };
  }

  /** Table name -> max entries; undefined when none is sized. Whether the type has such a table is the validator's. */
  tableSizes(value: unknown, path: Path): Record<string, number> | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isPlainObject(value)) {
      this.problem(path, `tableSizes must be a mapping of table name to its max entries (e.g. fw_ct: 262144), got ${describeValue(value)}`);
      return undefined;
    }
    const entries = Object.entries(value);
    if (entries.length > MAX_SIZED_TABLES) {
      this.problem(path, `a cube sizes at most ${MAX_SIZED_TABLES} tables; this one sizes ${entries.length}`);
      return undefined;
    }
    const out: Record<string, number> = {};
    // Sorted, so the stored chain says it one way whatever order it was written in.
    for (const [table, size] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const problem = tableNameProblem(table) ?? tableSizeRangeProblem(size);
      if (problem) this.problem([...path, cite(table)], problem);
      else out[table] = size as number;
    }
    return Object.keys(out).length > 0 ? out : undefined;
  }

  /** Micro-cube index -> sha256 of its object; undefined when there is none. */
  replacedMicrocubes(value: unknown, path: Path): Record<string, string> | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isPlainObject(value)) {
      this.problem(path, `replacedMicrocubes must be a mapping of micro-cube index to the sha256 of its object, got ${describeValue(value)}`);
      return undefined;
    }
    const out: Record<string, string> = {};
    for (const [index, sha] of Object.entries(value)) {
      if (!/^(0|[1-9][0-9]?)$/.test(index) || Number(index) >= MAX_MICROCUBES) {
        this.problem([...path, cite(index)], `'${cite(index)}' is not a micro-cube index: use 0 to ${MAX_MICROCUBES - 1}`);
      } else if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) {
        this.problem([...path, index], `the object of micro-cube ${index} must be named by its sha256 in lower-case hex, got ${describeValue(sha)}`);
      } else {
        out[index] = sha;
      }
    }
    return Object.keys(out).length > 0 ? out : undefined;
  }

  link(value: unknown, path: Path): LinkSpec | undefined {
    const raw = this.mapping(value, path, 'a link', ['from', 'to', 'via'], ['from', 'to']);
    if (!raw) return undefined;
    const before = this.issues.length;
    const from = this.endpoint(raw.from, [...path, 'from'], 'from');
    const to = this.endpoint(raw.to, [...path, 'to'], 'to');
    let via: LinkSpec['via'];
    if (raw.via !== undefined && raw.via !== null) {
      const rawVia = this.mapping(raw.via, [...path, 'via'], 'via', ['from', 'to'], ['from', 'to']);
      if (rawVia) {
        const viaFrom = this.named(rawVia.from, [...path, 'via', 'from'], 'via.from', ifnameProblem);
        const viaTo = this.named(rawVia.to, [...path, 'via', 'to'], 'via.to', ifnameProblem);
        if (viaFrom && viaTo) via = { from: viaFrom, to: viaTo };
      }
    }
    if (this.issues.length > before || !from || !to) return undefined;
    return via ? { from, to, via } : { from, to };
  }

  attachment(value: unknown, path: Path): AttachmentSpec | undefined {
    const raw = this.mapping(value, path, 'an attachment', ['cube', 'to', 'direction'], ['cube', 'to', 'direction']);
    if (!raw) return undefined;
    const cube = this.named(raw.cube, [...path, 'cube'], 'cube', n => nameProblem(n, 'cube name'));
    const to = this.endpoint(raw.to, [...path, 'to'], 'to');
    const direction =
      raw.direction === undefined || raw.direction === null
        ? undefined
        : this.oneOf(raw.direction, [...path, 'direction'], 'direction', DIRECTIONS);
    if (!cube || !to || !direction) return undefined;
    return { cube, to, direction };
  }

  items<T>(value: unknown, path: Path, what: string, item: (value: unknown, path: Path) => T | undefined): T[] | undefined {
    const raw = this.list(value, path, what);
    if (!raw) return undefined;
    const out: T[] = [];
    raw.forEach((v, i) => {
      const parsed = item(v, [...path, i]);
      if (parsed !== undefined) out.push(parsed);
    });
    return out.length === raw.length ? out : undefined;
  }

  chain(value: unknown): Chain | undefined {
    const raw = this.mapping(value, [], 'a chain', ['apiVersion', 'kind', 'metadata', 'spec'], ['apiVersion', 'kind', 'metadata', 'spec']);
    if (!raw) return undefined;
    if (raw.apiVersion !== undefined && raw.apiVersion !== null && raw.apiVersion !== CHAIN_API_VERSION) {
      this.problem(['apiVersion'], `apiVersion must be ${CHAIN_API_VERSION}; got ${describeValue(raw.apiVersion)}`);
    }
    if (raw.kind !== undefined && raw.kind !== null && raw.kind !== CHAIN_KIND) {
      this.problem(['kind'], `kind must be ${CHAIN_KIND}; got ${describeValue(raw.kind)}`);
    }
    let name: string | undefined;
    if (raw.metadata !== undefined && raw.metadata !== null) {
      const metadata = this.mapping(raw.metadata, ['metadata'], 'metadata', ['name'], ['name']);
      if (metadata) name = this.named(metadata.name, ['metadata', 'name'], 'chain name', n => nameProblem(n, 'chain name'));
    }
    let cubes: CubeSpec[] | undefined;
    let links: LinkSpec[] | undefined;
    let attachments: AttachmentSpec[] | undefined;
    if (raw.spec !== undefined && raw.spec !== null) {
      const spec = this.mapping(raw.spec, ['spec'], 'spec', ['cubes', 'links', 'attachments'], ['cubes']);
      if (spec) {
        if (Array.isArray(spec.cubes) && spec.cubes.length === 0) {
          this.problem(['spec', 'cubes'], 'a chain needs at least one cube');
        }
        cubes = this.items(spec.cubes, ['spec', 'cubes'], 'cubes', (v, p) => this.cube(v, p));
        links = this.items(spec.links, ['spec', 'links'], 'links', (v, p) => this.link(v, p));
        attachments = this.items(spec.attachments, ['spec', 'attachments'], 'attachments', (v, p) => this.attachment(v, p));
      }
    }
    if (this.issues.length > 0 || !name || !cubes || !links || !attachments) return undefined;
    return { apiVersion: CHAIN_API_VERSION, kind: CHAIN_KIND, metadata: { name }, spec: { cubes, links, attachments } };
  }
}

/**
 * Checks the shape of anything claiming to be a chain and returns its normalized form
 * (defaults filled, canonical field order), or every shape problem found.
 */
export function normalizeChain(value: unknown): { chain?: Chain; issues: PathIssue[] } {
  const check = new SchemaCheck();
  const chain = check.chain(value);
  return chain && check.issues.length === 0 ? { chain, issues: [] } : { issues: check.issues };
}

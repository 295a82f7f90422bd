// The chain format: the unit of desired state that `netcubectl apply` stores in etcd
// and every netcubed reconciles its own host's slice of. Types only; the parser,
// validator, planner and diff live in their own modules.

import type { TableFacts } from './tables';

export const CHAIN_API_VERSION = 'netcube/v1';
export const CHAIN_KIND = 'Chain';

export const CUBE_MODES = ['xdp', 'tc'] as const;
export type CubeMode = (typeof CUBE_MODES)[number];

export const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DIRECTIONS = ['ingress', 'egress', 'both'] as const;
export type Direction = (typeof DIRECTIONS)[number];
/** A direction a transparent stack actually runs in ('both' expands to the two). */
export type StackDirection = Exclude<Direction, 'both'>;

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/**
 * A chain as parsed and normalized: every optional field is filled with its default,
 * so a stored chain says explicitly what runs.
 */
export interface Chain {
  apiVersion: typeof CHAIN_API_VERSION;
  kind: typeof CHAIN_KIND;
  metadata: ChainMetadata;
  spec: ChainSpec;
}

export interface ChainMetadata {
  name: string;
}

export interface ChainSpec {
  cubes: CubeSpec[];
  links: LinkSpec[];
  attachments: AttachmentSpec[];
}

export interface CubeSpec {
  /** Unique across the cluster (all chains). */
  name: string;
  /** The host (netcubed) that runs the cube. */
  host: string;
  /** A cube type known to the cluster. */
  type: string;
  mode: CubeMode;
  /** Empty for transparent cubes. */
  ports: string[];
  logLevel: LogLevel;
  /** Type-specific config, passed as is to the cube's control plane. */
  params: JsonObject;
  /**
   * Micro-cubes replaced at run time (the API's ReplaceMicroCube): micro-cube index ->
   * sha256 of the ELF object, kept in etcd, whose program of the same name runs instead
   * of the type's. Absent when none is replaced.
   */
  replacedMicrocubes?: Record<string, string>;
  /**
   * Tables sized by the chain instead of by the type's object: table name -> max
   * entries (chain/tables.ts says which tables and how far). Absent when none is.
   * A cube whose sizes change is loaded anew, its tables empty.
   */
  tableSizes?: Record<string, number>;
}

/** Endpoints are written `<cube>:<port>` or `netdev:<ifname>`. */
export interface LinkSpec {
  from: string;
  to: string;
  /** Only for cubes on different hosts: the netdev on each side that joins them. */
  via?: { from: string; to: string };
}

export interface AttachmentSpec {
  /** A transparent cube. */
  cube: string;
  /** `netdev:<ifname>` or `<cube>:<port>`, on the transparent cube's host. */
  to: string;
  direction: Direction;
}

export type Endpoint = PortEndpoint | NetdevEndpoint;
export interface PortEndpoint {
  kind: 'port';
  cube: string;
  port: string;
}
export interface NetdevEndpoint {
  kind: 'netdev';
  ifname: string;
}

/** One problem found in a chain; `path` is like `spec.links[2].to`. */
export interface ChainIssue {
  path: string;
  message: string;
  /** 1-based position in the source text, when the chain was parsed from text. */
  line?: number;
  column?: number;
}

/** What validation needs to know about a cube type. */
export interface CubeTypeInfo {
  name: string;
  /** Transparent cubes have no ports and are stacked on a port or netdev. */
  transparent: boolean;
  /** eBPF programs per cube (>= 1); each one past the entry may cost a tail call. */
  microcubes: number;
  modes: CubeMode[];
  /** Its cubes decrement the TTL of what they forward (routers): chains may link them in a cycle. */
  decrementsTtl?: boolean;
  /**
   * The tables its cubes have, from the type's record; absent in records written
   * before types published them, where netcubed alone checks a chain's tableSizes.
   */
  tables?: TableFacts[];
}

export interface TypeCatalog {
  get(type: string): CubeTypeInfo | undefined;
  /** Every known type name, for error messages that list the alternatives. */
  names(): string[];
}

export interface ValidationContext {
  types: TypeCatalog;
  /** The other chains of the cluster; a chain of the same name is ignored (it is being replaced). */
  otherChains: Chain[];
  /**
   * What the chains placed on `host` mean for its data plane: loops, the kernel's
   * tail-call limit on every path, modes along a path. netcubed's runtime owns that
   * rule (node-daemon/src/chain/host-check.ts gives it here), so the daemon and
   * netcubectl pass it; without it, a chain is checked as far as the format goes.
   * Returns the problem, or undefined.
   */
  hostCheck?: HostCheck;
}

export type HostCheck = (chains: readonly Chain[], host: string, types: TypeCatalog) => string | undefined;

/** One line of `netcubectl diff`. */
export interface ChainChange {
  op: 'added' | 'removed' | 'changed';
  kind: 'chain' | 'cube' | 'link' | 'attachment';
  /** The cube name, the link `a:x <-> b:y`, the attached cube's name. */
  id: string;
  /** A readable one-line description, e.g. `~ cube fwd1: logLevel info -> debug`. */
  text: string;
}

// What a remote service is, to the SDK: a cube type, the schema of its cubes'
// config, the tables it derives from that config, and handlers for what its
// cubes' fast path leaves to it. Everything else — finding the cubes in etcd,
// reaching their daemons, electing one leader among replicas, resyncing after a
// restart, serving the config API — the SDK does (see run.ts).
//
//   export default defineService<MyConfig>({
//     type: 'myfilter',
//     config: { proto: 'netcube/myfilter/v1/myfilter.proto', message: 'netcube.myfilter.v1.MyFilterConfig' },
//     staticTables: (cube) => ({ blocked: cube.config.macs.map((m) => ({ key: macKey(m), value: 1 })) }),
//     packetIn: (cube, pkt) => cube.packetOut(pkt.port, 'egress', pkt.frame),
//   });

import type { ChainSpec } from '@netcube/api/chain';
import type { Logger } from '@netcube/api/log';
import { nameProblem } from '@netcube/api/names';
import type { HostClock } from './clock';
import type { Table, TableEntry } from './tables';

export type CubeMode = 'xdp' | 'tc';
export type PacketDirection = 'ingress' | 'egress';

/** A port of a cube, as its daemon numbers it. */
export interface Port {
  name: string;
  /** The port's index in the data plane (md->in_port, the value of port fields in tables). */
  index: number;
  /** Its peer: `netdev:<ifname>`, `<cube>:<port>`, or undefined when unlinked. */
  peer?: string;
}

/** A cube as its chain describes it, before any daemon is asked. */
export interface CubeInfo {
  name: string;
  host: string;
  chain: string;
  mode: CubeMode;
  /** Port names, in the chain's order. */
  portNames: readonly string[];
  /**
   * The spec of its chain as stored: its neighbours, links and where it is stacked,
   * for a config that depends on them (a NAT's masquerade takes the address its
   * router gives the port it sits on). A change of the chain rewrites the cube's
   * static tables.
   */
  chainSpec: ChainSpec;
}

/** A cube in the service's hands: what it is, its config, and what the service can do with it. */
export interface Cube<C = unknown, S = unknown> extends CubeInfo {
  /** Its data-plane id on its host. */
  readonly id: number;
  /** The config (the cube's params), validated, with every default filled in. */
  readonly config: C;
  /** The service's own state for this cube (from `state()` of the definition); kept across resyncs. */
  readonly state: S;
  /** The cube's ports with their indexes and peers, as its daemon has them. */
  readonly ports: readonly Port[];
  /** The port named `name`; throws when the cube has none. */
  port(name: string): Port;
  /** The port with data-plane index `index`, if any. */
  portAt(index: number): Port | undefined;
  /** One of the cube's tables, through its daemon. */
  table<K = unknown, V = unknown>(name: string): Table<K, V>;
  /**
   * Sends `frame` into the data plane: `ingress` into the cube through `port` (as
   * if it had arrived there, with metadata words `user`), `egress` out of `port`
   * to its peer. Fire and forget: a failure is logged and counted. The packet-outs
   * of one turn of the event loop leave together, in the order they were issued, at
   * the end of that turn: leave `frame` as it is until then.
   */
  packetOut(port: string, direction: PacketDirection, frame: Buffer, user?: readonly number[]): void;
  /** The host's data-plane clock (bpf_ktime_get_ns), for aging entries. */
  readonly clock: HostClock;
  readonly log: Logger;
}

/** A packet the cube's fast path handed to its control plane (nc_to_controller). */
export interface PacketIn {
  /** The port it entered the cube on. */
  port: Port;
  /** The reason the fast path gave. */
  reason: number;
  /** The cube's metadata words (md->user) as they were. */
  user: readonly number[];
  /** The packet's first bytes (at most 1536). */
  frame: Buffer;
  /** Its length in the data plane; more than frame.length when it was cut. */
  wireLength: number;
  /**
   * When the fast path handed it over, on the host's data-plane clock
   * (bpf_ktime_get_ns; compare with `cube.clock.now()`). A packet-out carrying it
   * back lets the data plane measure the whole slow-path round trip.
   */
  timestampNs: bigint;
}

type Awaitable<T> = T | Promise<T>;

/** Desired entries of tables the service derives from config, by table name. */
export type StaticTables = Record<string, readonly TableEntry[]>;

export interface ServiceDefinition<C = unknown, S = unknown> {
  /** The cube type the service controls. */
  type: string;
  /**
   * The per-cube config: a proto message, in a .proto file under proto/ (e.g.
   * netcube/bridge/v1/bridge.proto) and its full name. Cubes' params are checked
   * against it and completed with its defaults.
   */
  config: { proto: string; message: string };
  /**
   * The type's compiled objects, for a type the daemons do not have built in: the
   * SDK registers it cluster-wide (RegisterType) before it starts.
   */
  objects?: { xdp?: string; tc?: string };
  /** Checks beyond the schema (addresses, port names); throw ConfigError(field, problem). */
  validate?(config: C, cube: CubeInfo): void;
  /** The service's state for a new cube (queues, caches); default {}. */
  state?(cube: CubeInfo): S;
  /**
   * The entries of the tables derived from config. The SDK makes each listed table
   * hold exactly these on every (re)sync and config change: it puts what is missing
   * or different and deletes the rest. Tables the data plane or the slow path fill
   * themselves (an FDB, neighbours) are not listed.
   */
  staticTables?(cube: Cube<C, S>): StaticTables;
  /** A cube is in the service's hands: new, or again after its daemon or the service restarted. */
  cubeCreated?(cube: Cube<C, S>): Awaitable<void>;
  /** Its config changed (static tables are already rewritten). */
  configChanged?(cube: Cube<C, S>, previous: C): Awaitable<void>;
  /** The cube is gone from the chains. */
  cubeDeleted?(cube: Cube<C, S>): Awaitable<void>;
  /** A packet from the cube's fast path. */
  packetIn?(cube: Cube<C, S>, packet: PacketIn): Awaitable<void>;
  /** Runs every `tickSeconds` for each ready cube (aging); never twice at once for one cube. */
  tick?(cube: Cube<C, S>): Awaitable<void>;
  tickSeconds?: number;
  /** Live state for the config API's GetState (an FDB with MACs formatted ...), as JSON. */
  describe?(cube: Cube<C, S>): Awaitable<Record<string, unknown>>;
}

/** Declares a service; the identity function, there for the types. */
export function defineService<C, S = Record<string, never>>(definition: ServiceDefinition<C, S>): ServiceDefinition<C, S> {
  const typeIssue = nameProblem(definition?.type, 'definition.type (a cube type name)');
  if (typeIssue) throw new TypeError(typeIssue);
  if (typeof definition.config?.proto !== 'string' || typeof definition.config.message !== 'string') {
    throw new TypeError('definition.config must name the config message: { proto: "netcube/<svc>/v1/<svc>.proto", message: "netcube.<svc>.v1.<Message>" }');
  }
  if (definition.tickSeconds !== undefined && !(definition.tickSeconds > 0)) {
    throw new RangeError(`definition.tickSeconds must be a positive number, got ${definition.tickSeconds}`);
  }
  return definition;
}

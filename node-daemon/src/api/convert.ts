// Between the wire (netcube.v1 messages) and the daemon's own shapes: enums,
// endpoints, JSON params as google.protobuf.Struct, and the Cube, Topology and
// TableInfo messages built from what the runtime runs.

import type { BtfType } from '../bpf';
import { formatEndpoint, JsonObject, JsonValue, parseEndpoint } from '../chain';
import { LOG_LEVELS, LogLevel } from '../runtime/abi';
import { Runtime } from '../runtime/runtime';
import { Direction, Endpoint as RuntimeEndpoint, Mode } from '../runtime/topology';
import { TableInfo as RuntimeTableInfo } from '../runtime/types';
import { StoredChain } from '../store';
import type { Cube } from './generated/netcube/v1/Cube';
import type { Direction__Output } from './generated/netcube/v1/Direction';
import type { Endpoint, Endpoint__Output } from './generated/netcube/v1/Endpoint';
import type { LogLevel__Output } from './generated/netcube/v1/LogLevel';
import type { Mode__Output } from './generated/netcube/v1/Mode';
import type { TableInfo } from './generated/netcube/v1/TableInfo';
import type { Topology } from './generated/netcube/v1/Topology';
import type { Struct, Struct__Output } from './generated/google/protobuf/Struct';
import type { Value, Value__Output } from './generated/google/protobuf/Value';
import { invalidArgument } from './status';

// ---------------------------------------------------------------- enums

const MODES: Record<Mode, Mode__Output> = { xdp: 'MODE_XDP', tc: 'MODE_TC' };

/** UNSPECIFIED is XDP. */
export function modeFromProto(mode: Mode__Output | undefined, field: string): Mode {
  if (!mode || mode === 'MODE_UNSPECIFIED' || mode === 'MODE_XDP') return 'xdp';
  if (mode === 'MODE_TC') return 'tc';
  throw invalidArgument(field, `unknown mode ${JSON.stringify(mode)}: MODE_XDP or MODE_TC`);
}

export const modeToProto = (mode: Mode): Mode__Output => MODES[mode];

/** undefined for UNSPECIFIED: the caller's default. */
export function logLevelFromProto(level: LogLevel__Output | undefined, field: string): LogLevel | undefined {
  if (!level || level === 'LOG_LEVEL_UNSPECIFIED') return undefined;
  const name = level.replace(/^LOG_LEVEL_/, '').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(name)) throw invalidArgument(field, `unknown log level ${JSON.stringify(level)}`);
  return name as LogLevel;
}

export const logLevelToProto = (level: LogLevel): LogLevel__Output => `LOG_LEVEL_${level.toUpperCase()}` as LogLevel__Output;

/** UNSPECIFIED is both. */
export function directionFromProto(direction: Direction__Output | undefined, field: string): Direction {
  switch (direction ?? 'DIRECTION_UNSPECIFIED') {
    case 'DIRECTION_UNSPECIFIED':
    case 'DIRECTION_BOTH':
      return 'both';
    case 'DIRECTION_INGRESS':
      return 'ingress';
    case 'DIRECTION_EGRESS':
      return 'egress';
  }
  throw invalidArgument(field, `unknown direction ${JSON.stringify(direction)}`);
}

export const directionToProto = (d: Direction): Direction__Output => `DIRECTION_${d.toUpperCase()}` as Direction__Output;

// ---------------------------------------------------------------- endpoints

/** A chain endpoint (`cube:port`, `netdev:ifname`) as a message. */
export function endpointToProto(text: string): Endpoint {
  const e = parseEndpoint(text);
  if (!e) return {};
  return e.kind === 'netdev' ? { netdev: e.ifname } : { port: { cube: e.cube, port: e.port } };
}

export function runtimeEndpointToProto(e: RuntimeEndpoint): Endpoint {
  return 'netdev' in e ? { netdev: e.netdev } : { port: { cube: e.cube, port: e.port } };
}

/** A message endpoint as chains write it; `field` names it in errors. Syntax only. */
export function endpointFromProto(e: Endpoint__Output | null | undefined, field: string): string {
  if (!e || !e.kind) throw invalidArgument(field, 'give a cube port (port: {cube, port}) or a netdev (netdev: ifname)');
  if (e.kind === 'netdev') {
    if (!e.netdev) throw invalidArgument(`${field}.netdev`, 'the netdev name is empty');
    return formatEndpoint({ kind: 'netdev', ifname: e.netdev });
  }
  if (!e.port?.cube) throw invalidArgument(`${field}.port.cube`, 'the cube name is empty');
  if (!e.port.port) throw invalidArgument(`${field}.port.port`, 'the port name is empty');
  return formatEndpoint({ kind: 'port', cube: e.port.cube, port: e.port.port });
}

// ---------------------------------------------------------------- JSON as Struct

export function jsonToStruct(obj: JsonObject): Struct {
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, jsonToValue(v)])) };
}

function jsonToValue(v: JsonValue): Value {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v) };
}

export function structToJson(s: Struct__Output | null | undefined): JsonObject {
  return Object.fromEntries(Object.entries(s?.fields ?? {}).map(([k, v]) => [k, valueToJson(v)]));
}

function valueToJson(v: Value__Output): JsonValue {
  switch (v.kind) {
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'listValue':
      return (v.listValue?.values ?? []).map(valueToJson);
    case 'structValue':
      return structToJson(v.structValue);
    default:
      return null;
  }
}

// ---------------------------------------------------------------- cubes, topology

/** Which chain a cube belongs to, as far as this host knows (nothing before etcd was reached). */
export function chainOf(chains: StoredChain[], cube: string): { chain: StoredChain; index: number } | undefined {
  for (const chain of chains) {
    const index = chain.chain.spec.cubes.findIndex((c) => c.name === cube);
    if (index >= 0) return { chain, index };
  }
  return undefined;
}

/** A cube as this host runs it; throws the runtime's NotFoundError when it does not. */
export function cubeMessage(runtime: Runtime, applied: StoredChain[], name: string): Cube {
  const cube = runtime.cube(name);
  const topology = runtime.topology();
  const spec = topology.cubes.find((c) => c.name === name);
  const key = (e: RuntimeEndpoint): string => ('netdev' in e ? `netdev:${e.netdev}` : `${e.cube}:${e.port}`);
  const peerOf = (port: string): Endpoint | null => {
    for (const l of topology.links) {
      if (key(l.a) === `${name}:${port}`) return runtimeEndpointToProto(l.b);
      if (key(l.b) === `${name}:${port}`) return runtimeEndpointToProto(l.a);
    }
    return null;
  };
  let attachment: Cube['attachment'] = null;
  for (const s of topology.stacks) {
    const position = s.layers.findIndex((l) => l.cube === name);
    if (position >= 0) attachment = { target: runtimeEndpointToProto(s.target), direction: directionToProto(s.layers[position].direction), position };
  }
  const owner = chainOf(applied, name);
  const chainSpec = owner?.chain.chain.spec.cubes[owner.index];
  return {
    name,
    type: cube.type.name,
    mode: modeToProto(cube.mode),
    logLevel: logLevelToProto(spec?.logLevel ?? 'info'),
    ports: [...cube.ports]
      .sort((a, b) => a[1] - b[1])
      .map(([port, index]) => {
        const s = runtime.portStats(name, port);
        return {
          name: port,
          index,
          peer: peerOf(port),
          stats: {
            rxPackets: s.rxPackets.toString(),
            rxBytes: s.rxBytes.toString(),
            txPackets: s.txPackets.toString(),
            txBytes: s.txBytes.toString(),
            drops: s.drops.toString(),
            toController: s.toController.toString(),
          },
        };
      }),
    transparent: cube.transparent,
    chain: owner?.chain.name ?? '',
    attachment,
    params: jsonToStruct(chainSpec?.params ?? {}),
    id: cube.id,
    microcubes: [...cube.type.programs],
    replacedMicrocubes: Object.fromEntries(Object.entries(chainSpec?.replacedMicrocubes ?? {}).map(([i, sha]) => [Number(i), sha])),
  };
}

export function topologyMessage(runtime: Runtime, applied: StoredChain[]): Topology {
  const t = runtime.topology();
  return {
    cubes: runtime.cubeNames().map((name) => cubeMessage(runtime, applied, name)),
    links: t.links.map((l) => ({ a: runtimeEndpointToProto(l.a), b: runtimeEndpointToProto(l.b) })),
    stacks: t.stacks.map((s) => ({ target: runtimeEndpointToProto(s.target), layers: s.layers.map((l) => ({ cube: l.cube, direction: directionToProto(l.direction) })) })),
  };
}

// ---------------------------------------------------------------- tables

/** BTF as JSON: bigints (enum64 values) as decimal strings. */
export function btfJson(type: BtfType | undefined): string {
  return type ? JSON.stringify(type, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) : '';
}

export function tableInfoMessage(t: RuntimeTableInfo, btf: { keyType?: BtfType; valueType?: BtfType }): TableInfo {
  return {
    name: t.name,
    scope: t.scope,
    mapType: t.mapType,
    keySize: t.keySize,
    valueSize: t.valueSize,
    maxEntries: t.maxEntries,
    keyTypeJson: btfJson(btf.keyType),
    valueTypeJson: btfJson(btf.valueType),
  };
}

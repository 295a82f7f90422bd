// Between the API's messages and the chain format's values: enums, endpoints, and
// JSON as google.protobuf.Struct (a cube's params, a service's config). Used by
// netcubed's handlers and by its clients (netcubectl, the SDK) alike.

import { CubeMode, Direction, formatEndpoint, JsonObject, JsonValue, LOG_LEVELS, LogLevel, MAX_PARAMS_BYTES, MAX_PARAMS_DEPTH, parseEndpoint } from '../chain';
import type { Struct, Struct__Output } from '../generated/google/protobuf/Struct';
import type { Value, Value__Output } from '../generated/google/protobuf/Value';
import type { Direction__Output } from '../generated/netcube/v1/Direction';
import type { Endpoint, Endpoint__Output } from '../generated/netcube/v1/Endpoint';
import type { LogLevel__Output } from '../generated/netcube/v1/LogLevel';
import type { Mode__Output } from '../generated/netcube/v1/Mode';
import { cite } from '../cite';
import { invalidArgument } from './status';

// ---------------------------------------------------------------- enums

const MODES: Record<CubeMode, Mode__Output> = { xdp: 'MODE_XDP', tc: 'MODE_TC' };

/** UNSPECIFIED is XDP. */
export function modeFromProto(mode: Mode__Output | undefined, field: string): CubeMode {
  if (!mode || mode === 'MODE_UNSPECIFIED' || mode === 'MODE_XDP') return 'xdp';
  if (mode === 'MODE_TC') return 'tc';
  throw invalidArgument(field, `unknown mode ${cite(JSON.stringify(mode))}: MODE_XDP or MODE_TC`);
}

export const modeToProto = (mode: CubeMode): Mode__Output => MODES[mode];

/** undefined for UNSPECIFIED: the caller's default. */
export function logLevelFromProto(level: LogLevel__Output | undefined, field: string): LogLevel | undefined {
  if (!level || level === 'LOG_LEVEL_UNSPECIFIED') return undefined;
  // An enum value this API does not define arrives as its number.
  const name = typeof level === 'string' ? level.replace(/^LOG_LEVEL_/, '').toLowerCase() : undefined;
  if (!name || !(LOG_LEVELS as readonly string[]).includes(name)) {
    throw invalidArgument(field, `unknown log level ${cite(JSON.stringify(level))}: one of ${LOG_LEVELS.map(logLevelToProto).join(', ')}`);
  }
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
  throw invalidArgument(field, `unknown direction ${cite(JSON.stringify(direction) ?? 'nothing')}: DIRECTION_INGRESS, DIRECTION_EGRESS or DIRECTION_BOTH`);
}

export const directionToProto = (d: Direction): Direction__Output => `DIRECTION_${d.toUpperCase()}` as Direction__Output;

// ---------------------------------------------------------------- endpoints

/** A chain endpoint (`cube:port`, `netdev:ifname`) as a message. */
export function endpointToProto(text: string): Endpoint {
  const e = parseEndpoint(text);
  if (!e) return {};
  return e.kind === 'netdev' ? { netdev: e.ifname } : { port: { cube: e.cube, port: e.port } };
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

/**
 * `s` as JSON. `request` holds it to the limits of params (a service's config is
 * params too): INVALID_ARGUMENT naming `request.field` when it takes more than
 * MAX_PARAMS_BYTES as JSON. Nesting deeper than MAX_PARAMS_DEPTH is refused either way.
 */
export function structToJson(s: Struct__Output | null | undefined, request?: { field: string }): JsonObject {
  const field = request?.field ?? 'struct';
  const json = structFields(s, field, 0);
  if (request) {
    const bytes = Buffer.byteLength(JSON.stringify(json));
    if (bytes > MAX_PARAMS_BYTES) throw invalidArgument(field, `takes ${bytes} bytes as JSON, over the limit of ${MAX_PARAMS_BYTES} bytes (keep data in tables)`);
  }
  return json;
}

function structFields(s: Struct__Output | null | undefined, field: string, depth: number): JsonObject {
  if (depth >= MAX_PARAMS_DEPTH) throw invalidArgument(field, `nests deeper than ${MAX_PARAMS_DEPTH} levels, the most params may`);
  return Object.fromEntries(Object.entries(s?.fields ?? {}).map(([k, v]) => [k, valueToJson(v, field, depth + 1)]));
}

function valueToJson(v: Value__Output, field: string, depth: number): JsonValue {
  switch (v.kind) {
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'listValue':
      if (depth >= MAX_PARAMS_DEPTH) throw invalidArgument(field, `nests deeper than ${MAX_PARAMS_DEPTH} levels, the most params may`);
      return (v.listValue?.values ?? []).map((item) => valueToJson(item, field, depth + 1));
    case 'structValue':
      return structFields(v.structValue, field, depth);
    default:
      return null;
  }
}

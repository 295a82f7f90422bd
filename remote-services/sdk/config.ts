// A service's per-cube config: a proto message (proto/netcube/<service>/v1/*.proto)
// read with protobufjs, against which the `params` of a cube in its chain are
// checked and completed. The result is the message as JSON, in the form
// @grpc/proto-loader gives (camelCase fields, enums by name, 64-bit integers as
// decimal strings, every field present), so the types generated into
// remote-services/generated describe it exactly.
//
// protobufjs's own verify() names neither map keys nor unknown fields, and takes
// -5 for a uint32; the walk below is stricter and says where: "ports.p0.vlan:
// expected an integer from 0 to 4294967295, got -5".

import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { protoDir } from '@netcube/api/grpc/proto';

/** A config that does not fit the schema (or the service's own checks); `field` is its path. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    /** The field at fault, as a path from the config's root: `ports.p0.vlan`, `routes[2].prefix`. */
    readonly field: string,
    readonly problem: string,
  ) {
    super(field ? `${field}: ${problem}` : problem);
  }

  /** The same problem, seen from a field further out (`config` + `.ports.p0` ...). */
  under(prefix: string): ConfigError {
    return new ConfigError(this.field ? `${prefix}.${this.field}` : prefix, this.problem);
  }
}

const DEFAULT_OPTION = /^\((?:[\w.]*\.)?default_json\)$/;

let descriptorRegistered = false;

/** The message `message` of `file` (relative to proto/, e.g. netcube/bridge/v1/bridge.proto). */
export function loadMessage(file: string, message: string): protobuf.Type {
  if (!descriptorRegistered) {
    // Field options extend google.protobuf.FieldOptions; protobufjs ships descriptor.proto
    // as JSON but does not register it as a common import by itself.
    const descriptor = require('protobufjs/google/protobuf/descriptor.json') as { nested: { google: { nested: { protobuf: { nested: protobuf.INamespace['nested'] } } } } };
    protobuf.common('descriptor', descriptor.nested.google.nested.protobuf.nested!);
    descriptorRegistered = true;
  }
  const dir = protoDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
  root.loadSync(file, { keepCase: false });
  root.resolveAll();
  try {
    return root.lookupType(message);
  } catch {
    throw new TypeError(`config message ${message} is not defined in proto/${file}`);
  }
}

const INT_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (isObject(v)) return 'an object';
  return String(v);
}

const join = (at: string, name: string): string => (at ? `${at}.${name}` : name);

/** The schema of a service's config. */
export class ConfigSchema<C> {
  private constructor(readonly type: protobuf.Type) {}

  static load<C>(file: string, message: string): ConfigSchema<C> {
    return new ConfigSchema<C>(loadMessage(file, message));
  }

  /** The message's full name, e.g. netcube.bridge.v1.BridgeConfig. */
  get name(): string {
    return this.type.fullName.replace(/^\./, '');
  }

  /**
   * Checks `params` against the message and returns it complete: every field
   * present, defaults filled in. Field names may be written camelCase (as
   * returned) or as in the .proto. Throws ConfigError naming the first field at fault.
   */
  normalize(params: unknown): C {
    return this.message(this.type, params ?? {}, '') as C;
  }

  private message(type: protobuf.Type, value: unknown, at: string): Record<string, unknown> {
    if (!isObject(value)) throw new ConfigError(at, `expected an object (${type.name}), got ${show(value)}`);
    const byName = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      byName.set(f.name, f);
      byName.set(protoName(f), f);
    }
    const given = new Map<protobuf.Field, unknown>();
    for (const [key, v] of Object.entries(value)) {
      const field = byName.get(key);
      if (!field) {
        const names = type.fieldsArray.map((f) => f.name).join(', ');
        throw new ConfigError(join(at, key), `${type.name} has no such field (${names ? `its fields: ${names}` : 'it has none'})`);
      }
      if (given.has(field)) throw new ConfigError(join(at, field.name), `given twice (as ${field.name} and ${protoName(field)})`);
      if (v !== undefined && v !== null) given.set(field, v);
    }
    for (const oneof of type.oneofsArray) {
      const set = oneof.fieldsArray.filter((f) => given.has(f));
      if (set.length > 1) throw new ConfigError(join(at, set[1].name), `only one of ${oneof.fieldsArray.map((f) => f.name).join(', ')} can be set, and ${set[0].name} is`);
    }
    const out: Record<string, unknown> = {};
    for (const field of type.fieldsArray) {
      const where = join(at, field.name);
      if (given.has(field)) {
        out[field.name] = this.field(field, given.get(field), where);
        continue;
      }
      const def = defaultOf(field);
      if (def !== undefined) out[field.name] = this.field(field, def, where);
      else if (field.map) out[field.name] = {};
      else if (field.repeated) out[field.name] = [];
      // Optional fields, real oneofs and message fields stay absent when not given.
      else if (field.partOf || field.resolvedType instanceof protobuf.Type) continue;
      else out[field.name] = zeroOf(field);
    }
    return out;
  }

  private field(field: protobuf.Field, value: unknown, at: string): unknown {
    if (field instanceof protobuf.MapField) {
      if (!isObject(value)) throw new ConfigError(at, `expected an object (a map of ${field.type} by ${field.keyType}), got ${show(value)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (field.keyType !== 'string') this.scalar(field.keyType, /^-?\d+$/.test(k) ? k : NaN, `${at}.${k}`);
        out[k] = this.single(field, v, `${at}.${k}`);
      }
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) throw new ConfigError(at, `expected a list of ${field.type}, got ${show(value)}`);
      return value.map((v, i) => this.single(field, v, `${at}[${i}]`));
    }
    return this.single(field, value, at);
  }

  private single(field: protobuf.Field, value: unknown, at: string): unknown {
    const t = field.resolvedType;
    if (t instanceof protobuf.Type) return this.message(t, value, at);
    if (t instanceof protobuf.Enum) return enumName(t, value, at);
    return this.scalar(field.type, value, at);
  }

  private scalar(type: string, value: unknown, at: string): unknown {
    const range = INT_RANGES[type];
    if (range) {
      let n: bigint | undefined;
      if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
      else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = BigInt(value);
      if (n === undefined || n < range[0] || n > range[1]) {
        throw new ConfigError(at, `expected an integer from ${range[0]} to ${range[1]} (${type}), got ${show(value)}`);
      }
      return type.endsWith('64') ? n.toString() : Number(n);
    }
    switch (type) {
      case 'double':
      case 'float':
        if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(at, `expected a number, got ${show(value)}`);
        return value;
      case 'bool':
        if (typeof value !== 'boolean') throw new ConfigError(at, `expected true or false, got ${show(value)}`);
        return value;
      case 'string':
        // YAML writes a port as 80, which a field of ports or ranges ("80", "8000-8100") takes as text.
        if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
        if (typeof value !== 'string') throw new ConfigError(at, `expected a string, got ${show(value)}`);
        return value;
      case 'bytes':
        if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new ConfigError(at, `expected base64 text, got ${show(value)}`);
        return value;
      default:
        throw new ConfigError(at, `fields of type ${type} are not supported in configs`);
    }
  }
}

/** The field's name as the .proto writes it (snake_case). */
function protoName(field: protobuf.Field): string {
  return field.name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function defaultOf(field: protobuf.Field): unknown {
  for (const [key, text] of Object.entries(field.options ?? {})) {
    if (!DEFAULT_OPTION.test(key)) continue;
    try {
      return JSON.parse(String(text));
    } catch {
      throw new TypeError(`${field.fullName}: its default_json option is not JSON: ${String(text)}`);
    }
  }
  return undefined;
}

function zeroOf(field: protobuf.Field): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) return enumName(t, 0, '');
  switch (field.type) {
    case 'bool':
      return false;
    case 'string':
    case 'bytes':
      return '';
    default:
      return field.type.endsWith('64') ? '0' : 0;
  }
}

function enumName(t: protobuf.Enum, value: unknown, at: string): string {
  if (typeof value === 'string' && Object.hasOwn(t.values, value)) return value;
  if (typeof value === 'number' && t.valuesById[value] !== undefined) return t.valuesById[value];
  throw new ConfigError(at, `expected one of ${Object.keys(t.values).join(', ')}, got ${show(value)}`);
}

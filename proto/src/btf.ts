// BTF-typed values: the JS description of a BTF type (made natively from an
// object's or the kernel's BTF) and the codec between JSON-like values and the
// bytes a map or a global holds. Little-endian, as every host netcube runs on;
// the framework's typed fields (fields.ts: addresses, ports) read as text.

import { decodeField, encodeField, fieldKind } from './fields';

export type BtfMember = { name: string; offset: number; bitOffset?: number; bitSize?: number; type: BtfType };

/**
 * Typedefs, const, volatile and restrict are resolved away; a typedef's name is
 * kept in `name` (an array has one only when a typedef names it: nc_mac_t).
 */
export type BtfType =
  | { kind: 'int'; name: string; size: number; signed: boolean; char?: boolean; bool?: boolean }
  | { kind: 'float'; name: string; size: number }
  | { kind: 'ptr'; size: 8 }
  | { kind: 'array'; name?: string; elem: BtfType; length: number; size: number }
  | { kind: 'struct' | 'union'; name: string; size: number; members: BtfMember[] }
  | { kind: 'enum'; name: string; size: number; signed: boolean; values: { name: string; value: number | bigint }[] };

type Composite = Extract<BtfType, { kind: 'struct' | 'union' }>;

/**
 * Encodes `value` as `type`'s bytes. Accepts numbers, bigints and decimal strings
 * for integers, booleans for bools, names for enums, strings for char arrays,
 * arrays for arrays, objects for structs (missing members are zero) and unions
 * (one member), text for typed fields ("10.0.0.1", "fe80::1", "02:00:00:00:00:01";
 * a number for nc_port_t), and a Buffer of exactly the type's size for anything.
 * Errors name the member path: "settings.label: 9 bytes do not fit in char[8]".
 */
export function encode(type: BtfType, value: unknown, name = 'value'): Buffer {
  const out = Buffer.alloc(type.size);
  encodeAt(type, value, out, 0, name);
  return out;
}

/** As encode(), into `out` at `offset` (zeroed there first): many values into one buffer, without one allocation each. */
export function encodeInto(type: BtfType, value: unknown, out: Buffer, offset: number, name = 'value'): void {
  if (offset < 0 || offset + type.size > out.length) throw new RangeError(`${name}: ${type.size} bytes do not fit at offset ${offset} of ${out.length}`);
  out.fill(0, offset, offset + type.size);
  encodeAt(type, value, out, offset, name);
}

/**
 * Decodes `bytes` (exactly `type.size` of them) as bpftool's map dump shows
 * them: char arrays as strings, enums by name, 64-bit integers as numbers when
 * safe and decimal strings otherwise; typed fields as addresses and port numbers.
 */
export function decode(type: BtfType, bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Buffer');
  if (bytes.length !== type.size) {
    throw new RangeError(`bytes are ${bytes.length} long, expected ${type.size} for ${typeName(type)}`);
  }
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return decodeAt(type, buf, 0);
}

/** How a type reads in C, for messages: "__u16", "struct flow_key", "char[8]". */
export function typeName(type: BtfType): string {
  switch (type.kind) {
    case 'ptr': return 'pointer';
    case 'array': return type.name ?? `${typeName(type.elem)}[${type.length}]`;
    case 'struct': case 'union': return `${type.kind} ${type.name || '(anonymous)'}`;
    case 'enum': return `enum ${type.name || '(anonymous)'}`;
    default: return type.name;
  }
}

function encodeAt(type: BtfType, value: unknown, out: Buffer, at: number, path: string): void {
  if (value instanceof Uint8Array && !isCharArray(type)) {
    if (value.length !== type.size) {
      throw new RangeError(`${path}: ${value.length} bytes given for ${typeName(type)} of ${type.size} bytes`);
    }
    out.set(value, at);
    return;
  }
  const field = fieldKind(type);
  if (field !== undefined) {
    encodeField(field, value, out, at, path);
    return;
  }
  switch (type.kind) {
    case 'int':
      writeInt(out, at, type.size, toInteger(value, type, path));
      return;
    case 'ptr':
      writeInt(out, at, 8, toInteger(value, { name: 'pointer', size: 8, signed: false }, path));
      return;
    case 'enum':
      writeInt(out, at, type.size, enumValue(type, value, path));
      return;
    case 'float':
      if (typeof value !== 'number') throw new TypeError(`${path}: expected a number for ${type.name}`);
      if (type.size === 4) out.writeFloatLE(value, at);
      else if (type.size === 8) out.writeDoubleLE(value, at);
      else throw new TypeError(`${path}: ${type.size}-byte floats are not supported`);
      return;
    case 'array':
      encodeArray(type, value, out, at, path);
      return;
    case 'struct':
    case 'union':
      encodeComposite(type, value, out, at, path);
      return;
  }
}

function isCharArray(type: BtfType): boolean {
  return type.kind === 'array' && type.elem.kind === 'int' && type.elem.char === true;
}

function encodeArray(type: Extract<BtfType, { kind: 'array' }>, value: unknown, out: Buffer, at: number,
                     path: string): void {
  if (isCharArray(type) && (typeof value === 'string' || value instanceof Uint8Array)) {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    if (bytes.length > type.length) {
      throw new RangeError(`${path}: ${bytes.length} bytes do not fit in ${typeName(type)}`);
    }
    out.set(bytes, at);
    return;
  }
  if (!Array.isArray(value)) throw new TypeError(`${path}: expected an array for ${typeName(type)}`);
  if (value.length > type.length) {
    throw new RangeError(`${path}: ${value.length} elements do not fit in ${typeName(type)}`);
  }
  const stride = type.elem.size;
  value.forEach((elem, i) => encodeAt(type.elem, elem, out, at + i * stride, `${path}[${i}]`));
}

function encodeComposite(type: Composite, value: unknown, out: Buffer, at: number, path: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${path}: expected an object for ${typeName(type)}`);
  }
  const fields = fieldsOf(type);
  const keys = Object.keys(value);
  if (type.kind === 'union' && keys.length > 1) {
    throw new RangeError(`${path}: a ${typeName(type)} holds one member, got ${keys.join(', ')}`);
  }
  for (const key of keys) {
    const field = fields.get(key);
    if (field === undefined) throw new TypeError(`${path}: ${typeName(type)} has no member '${key}'`);
    const member = (value as Record<string, unknown>)[key];
    if (member === undefined) continue;
    if (field.bitSize !== undefined) {
      writeBitfield(out, at + field.offset, field, member, `${path}.${key}`);
    } else {
      encodeAt(field.type, member, out, at + field.offset, `${path}.${key}`);
    }
  }
}

interface Field { offset: number; bitOffset: number; bitSize?: number; type: BtfType }

// Members of anonymous structs and unions are addressed as if they were the
// parent's own, as in C.
const fieldCache = new WeakMap<Composite, Map<string, Field>>();
function fieldsOf(type: Composite): Map<string, Field> {
  let fields = fieldCache.get(type);
  if (fields !== undefined) return fields;
  fields = new Map();
  for (const m of type.members) {
    if (m.name === '' && (m.type.kind === 'struct' || m.type.kind === 'union')) {
      for (const [name, inner] of fieldsOf(m.type)) fields.set(name, { ...inner, offset: inner.offset + m.offset });
    } else {
      fields.set(m.name, { offset: m.offset, bitOffset: m.bitOffset ?? 0, bitSize: m.bitSize, type: m.type });
    }
  }
  fieldCache.set(type, fields);
  return fields;
}

function toInteger(value: unknown, type: { name: string; size: number; signed: boolean; bool?: boolean }, path: string,
                   bits = type.size * 8): bigint {
  let n: bigint;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
  else if (typeof value === 'boolean' && type.bool) n = value ? 1n : 0n;
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = BigInt(value);
  else throw new TypeError(`${path}: expected an integer for ${type.name}, got ${describe(value)}`);
  const min = type.signed ? -(1n << BigInt(bits - 1)) : 0n;
  const max = type.signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
  if (n < min || n > max) {
    throw new RangeError(`${path}: ${n} does not fit in ${type.name} (${min}..${max})`);
  }
  return n;
}

function enumValue(type: Extract<BtfType, { kind: 'enum' }>, value: unknown, path: string): bigint {
  if (typeof value === 'string' && !/^-?\d+$/.test(value)) {
    const entry = type.values.find((v) => v.name === value);
    if (entry === undefined) {
      throw new RangeError(`${path}: '${value}' is not a value of ${typeName(type)} ` +
                           `(${type.values.map((v) => v.name).join(', ')})`);
    }
    return BigInt(entry.value);
  }
  return toInteger(value, { name: typeName(type), size: type.size, signed: type.signed }, path);
}

function writeInt(out: Buffer, at: number, size: number, n: bigint): void {
  let v = BigInt.asUintN(size * 8, n);
  for (let i = 0; i < size; i++) {
    out[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function readInt(buf: Buffer, at: number, size: number, signed: boolean): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[at + i]);
  return signed ? BigInt.asIntN(size * 8, v) : v;
}

function bitfieldSpan(field: Field): number {
  return Math.ceil((field.bitOffset + (field.bitSize ?? 0)) / 8);
}

function writeBitfield(out: Buffer, at: number, field: Field, value: unknown, path: string): void {
  const base = field.type.kind === 'int' || field.type.kind === 'enum' ? field.type : undefined;
  if (base === undefined) throw new TypeError(`${path}: bitfield of ${typeName(field.type)} is not supported`);
  const bits = field.bitSize ?? 0;
  const n = base.kind === 'enum'
    ? enumValue(base, value, path)
    : toInteger(value, base, path, bits);
  const span = bitfieldSpan(field);
  const mask = ((1n << BigInt(bits)) - 1n) << BigInt(field.bitOffset);
  const word = (readInt(out, at, span, false) & ~mask) | ((BigInt.asUintN(bits, n) << BigInt(field.bitOffset)) & mask);
  writeInt(out, at, span, word);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

// Numbers when exact, decimal strings beyond 2^53 (as JSON can carry them).
function integerValue(n: bigint): number | string {
  const asNumber = Number(n);
  return Number.isSafeInteger(asNumber) ? asNumber : n.toString();
}

function decodeAt(type: BtfType, buf: Buffer, at: number): unknown {
  const field = fieldKind(type);
  if (field !== undefined) return decodeField(field, buf, at);
  switch (type.kind) {
    case 'int': {
      if (type.bool) return buf[at] !== 0;
      return integerValue(readInt(buf, at, type.size, type.signed));
    }
    case 'ptr':
      return integerValue(readInt(buf, at, 8, false));
    case 'enum': {
      const n = readInt(buf, at, type.size, type.signed);
      const entry = type.values.find((v) => BigInt(v.value) === n);
      return entry !== undefined ? entry.name : integerValue(n);
    }
    case 'float':
      if (type.size === 4) return buf.readFloatLE(at);
      if (type.size === 8) return buf.readDoubleLE(at);
      return buf.toString('hex', at, at + type.size);
    case 'array': {
      if (isCharArray(type)) {
        const bytes = buf.subarray(at, at + type.length);
        const nul = bytes.indexOf(0);
        return bytes.toString('utf8', 0, nul < 0 ? bytes.length : nul);
      }
      const out = new Array(type.length);
      for (let i = 0; i < type.length; i++) out[i] = decodeAt(type.elem, buf, at + i * type.elem.size);
      return out;
    }
    case 'struct':
    case 'union': {
      const out: Record<string, unknown> = {};
      for (const [name, field] of fieldsOf(type)) {
        out[name] = field.bitSize !== undefined ? readBitfield(buf, at + field.offset, field)
                                                : decodeAt(field.type, buf, at + field.offset);
      }
      return out;
    }
  }
}

function readBitfield(buf: Buffer, at: number, field: Field): unknown {
  const bits = field.bitSize ?? 0;
  const raw = (readInt(buf, at, bitfieldSpan(field), false) >> BigInt(field.bitOffset)) & ((1n << BigInt(bits)) - 1n);
  const type = field.type;
  const signed = (type.kind === 'int' || type.kind === 'enum') && type.signed;
  const n = signed ? BigInt.asIntN(bits, raw) : raw;
  if (type.kind === 'enum') {
    const entry = type.values.find((v) => BigInt(v.value) === n);
    if (entry !== undefined) return entry.name;
  }
  if (type.kind === 'int' && type.bool) return n !== 0n;
  return integerValue(n);
}

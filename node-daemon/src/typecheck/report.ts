// ObjectReport: what a cube type's ELF object holds, as libbpf reads it, in plain
// data: made where the object is opened (the inspector child, or in process for
// the built-in types) and checked where it is used, so nothing else ever has to
// open an object that was not reported on first.

import { CollectionSpec } from '../bpf';

export interface ProgramReport {
  name: string;
  section: string;
  /** Program type as libbpf names it: xdp, sched_cls, kprobe ... */
  type: string;
}

export interface MapReport {
  name: string;
  /** Map type as libbpf names it: array, hash, ringbuf ... */
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** .rodata, .data, .bss: globals, not tables. */
  internal: boolean;
}

export interface ObjectReport {
  programs: ProgramReport[];
  maps: MapReport[];
  /**
   * Values of the framework's constants the object declares (nc_cube_kind,
   * __nc_scope_<table>), for what it says about itself; and whether it has
   * nc_cube_id, which the runtime sets.
   */
  constants: Record<string, number>;
  hasCubeId: boolean;
}

/** The framework's constants a report carries, by name. */
const CONSTANT = /^(nc_cube_kind|nc_decrements_ttl|__nc_scope_[A-Za-z0-9_]{1,64})$/;

/** Reads the report of an opened spec. */
export function describeSpec(spec: CollectionSpec): ObjectReport {
  const constants: Record<string, number> = {};
  for (const [name, v] of spec.variables) {
    if (!CONSTANT.test(name) || v.size > 8) continue;
    const value = v.get();
    if (typeof value === 'number') constants[name] = value;
  }
  return {
    programs: [...spec.programs.values()].map((p) => ({ name: p.name, section: p.section, type: p.type })),
    maps: [...spec.maps].map(([name, m]) => ({ name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags, internal: m.internal })),
    constants,
    hasCubeId: spec.variables.has('nc_cube_id'),
  };
}

/** Opens `elf` in this process and reports on it: for objects this daemon trusts (its own build). */
export function describeObject(elf: Buffer, label: string): ObjectReport {
  const spec = CollectionSpec.fromBuffer(elf, label);
  try {
    return describeSpec(spec);
  } finally {
    spec.close();
  }
}

const MAX_ITEMS = 4096;
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/**
 * A report as it came from another process, checked to be one: the inspector
 * child is our code, but it ran libbpf on hostile input, so what it says is read
 * as data of a known shape, nothing more. Throws naming what is wrong.
 */
export function checkReport(value: unknown): ObjectReport {
  const fail = (what: string): never => {
    throw new TypeError(`the object inspector's report is malformed: ${what}`);
  };
  if (typeof value !== 'object' || value === null) fail('not an object');
  const r = value as Record<string, unknown>;
  if (!Array.isArray(r.programs) || r.programs.length > MAX_ITEMS) fail('programs');
  if (!Array.isArray(r.maps) || r.maps.length > MAX_ITEMS) fail('maps');
  const programs = (r.programs as unknown[]).map((p) => {
    const q = p as Record<string, unknown>;
    if (!isName(q?.name) || typeof q.section !== 'string' || q.section.length > 256 || !isName(q.type)) fail('a program');
    return { name: q.name as string, section: q.section as string, type: q.type as string };
  });
  const maps = (r.maps as unknown[]).map((m) => {
    const q = m as Record<string, unknown>;
    if (!isName(q?.name) || !isName(q.type) || ![q.keySize, q.valueSize, q.maxEntries, q.flags].every(isUint) || typeof q.internal !== 'boolean') fail('a map');
    return { name: q.name as string, type: q.type as string, keySize: q.keySize as number, valueSize: q.valueSize as number, maxEntries: q.maxEntries as number, flags: q.flags as number, internal: q.internal as boolean };
  });
  const constants: Record<string, number> = {};
  if (typeof r.constants !== 'object' || r.constants === null) fail('constants');
  for (const [name, v] of Object.entries(r.constants as object)) {
    if (!CONSTANT.test(name) || typeof v !== 'number' || !Number.isSafeInteger(v)) fail(`constant ${name.slice(0, 80)}`);
    constants[name] = v;
  }
  if (typeof r.hasCubeId !== 'boolean') fail('hasCubeId');
  return { programs, maps, constants, hasCubeId: r.hasCubeId as boolean };
}

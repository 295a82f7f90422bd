// What a capture request asks for, checked, and what it means for a packetcapture
// cube's tables (bpf/cubes/packetcapture.bpf.c). Pure: no kernel, no I/O, so the
// daemon and the tests share it.

import { directionFromProto } from '@netcube/api/grpc/convert';
import { PKT_MAX } from '../runtime/abi';
import { InvalidArgumentError } from '../runtime/errors';
import { FieldError, parsePrefix, parseProtocol, tableAddress } from '@netcube/catalog/fields';
import type { CaptureRequest__Output } from '@netcube/api/generated/netcube/v1/CaptureRequest';
import { type Direction } from '@netcube/api/chain';
import type { Side__Output } from '@netcube/api/generated/netcube/v1/Side';
import { ifnameProblem, nameProblem, portNameProblem } from '@netcube/api/names';

/** The cube type that copies packets. */
export const CAPTURE_TYPE = 'packetcapture';

/** Defaults and bounds of a session (capture.proto). */
export const CAPTURE_LIMITS = {
  defaultRate: 50_000,
  maxRate: 1_000_000,
  minBurst: 100,
  /** Filter fields of each kind the data plane has room for (CAPTURE_ADDRS, CAPTURE_PORTS). */
  addresses: 2,
  ports: 2,
} as const;

export type Side = 'src' | 'dst' | 'either';

export interface CaptureFilter {
  addresses: { prefix: string; side: Side }[];
  ports: { port: number; side: Side }[];
  protocol?: number;
  family?: 4 | 6;
}

/**
 * Where to capture: a packetcapture cube a chain placed (`cube` alone), or a port
 * of another cube or a netdev, where the daemon stacks a packetcapture cube of its
 * own for the session.
 */
export type CaptureTarget = { cube: string; port?: undefined } | { cube: string; port: string } | { netdev: string };

export interface CaptureSpec {
  target: CaptureTarget;
  direction: Direction;
  filter: CaptureFilter;
  snapLength: number;
  rate: number;
  burst: number;
  /** Packets to send before the session ends; 0: no end. */
  count: bigint;
}

const SIDES: Record<Side__Output, Side> = { SIDE_UNSPECIFIED: 'either', SIDE_EITHER: 'either', SIDE_SRC: 'src', SIDE_DST: 'dst' };
const SIDE_IDS: Record<Side, number> = { src: 1, dst: 2, either: 3 };

function check<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FieldError) throw new InvalidArgumentError(err.field, err.message);
    throw err;
  }
}

/** Checks a request; throws InvalidArgumentError naming the field at fault. */
export function captureSpec(req: CaptureRequest__Output): CaptureSpec {
  const target = captureTarget(req);
  const direction = directionFromProto(req.direction, 'direction');

  const snapLength = req.snapLength || PKT_MAX;
  if (snapLength < 1 || snapLength > PKT_MAX) throw new InvalidArgumentError('snap_length', `the snap length is 1 to ${PKT_MAX} bytes, got ${snapLength}`);
  const rate = req.rate || CAPTURE_LIMITS.defaultRate;
  if (rate > CAPTURE_LIMITS.maxRate) throw new InvalidArgumentError('rate', `a capture copies at most ${CAPTURE_LIMITS.maxRate} packets a second, got ${rate}`);
  const burst = req.burst || Math.min(rate, Math.max(CAPTURE_LIMITS.minBurst, Math.round(rate / 10)));
  if (burst > rate) throw new InvalidArgumentError('burst', `the burst (${burst}) is at most the rate (${rate} a second)`);
  const count = BigInt(req.count || '0');

  const f = req.filter;
  const filter: CaptureFilter = { addresses: [], ports: [] };
  if (f) {
    if (f.addresses.length > CAPTURE_LIMITS.addresses)
      throw new InvalidArgumentError('filter.addresses', `a filter matches at most ${CAPTURE_LIMITS.addresses} addresses, got ${f.addresses.length}`);
    f.addresses.forEach((a, i) => {
      const field = `filter.addresses[${i}]`;
      const prefix = check(field, () => parsePrefix(a.prefix, `${field}.prefix`));
      const side = SIDES[a.side];
      if (!side) throw new InvalidArgumentError(`${field}.side`, `side is SRC, DST or EITHER, not ${String(a.side)}`);
      if (f.family && f.family !== prefix.family)
        throw new InvalidArgumentError(`${field}.prefix`, `${a.prefix} is an IPv${prefix.family} prefix, and the filter asks for IPv${f.family} only`);
      filter.addresses.push({ prefix: `${tableAddress(prefix)}/${prefix.family === 4 ? prefix.length + 96 : prefix.length}`, side });
    });
    if (f.ports.length > CAPTURE_LIMITS.ports) throw new InvalidArgumentError('filter.ports', `a filter matches at most ${CAPTURE_LIMITS.ports} ports, got ${f.ports.length}`);
    f.ports.forEach((p, i) => {
      const field = `filter.ports[${i}]`;
      if (!Number.isInteger(p.port) || p.port < 0 || p.port > 0xffff) throw new InvalidArgumentError(`${field}.port`, `a port is 0 to 65535, got ${p.port}`);
      const side = SIDES[p.side];
      if (!side) throw new InvalidArgumentError(`${field}.side`, `side is SRC, DST or EITHER, not ${String(p.side)}`);
      filter.ports.push({ port: p.port, side });
    });
    if (f.protocol !== '') {
      const value = /^\d+$/.test(f.protocol) ? Number(f.protocol) : f.protocol;
      filter.protocol = check('filter.protocol', () => parseProtocol(value, 'filter.protocol'));
    }
    if (f.family !== 0) {
      if (f.family !== 4 && f.family !== 6) throw new InvalidArgumentError('filter.family', `the family is 4 or 6 (0: either), got ${f.family}`);
      filter.family = f.family;
    }
    if (filter.ports.length > 0 && filter.protocol !== undefined && filter.protocol !== 6 && filter.protocol !== 17)
      throw new InvalidArgumentError('filter.ports', 'ports are matched in TCP and UDP packets only; the filter asks for another protocol');
  }
  return { target, direction, filter, snapLength, rate, burst, count };
}

/** The request's target: `cube`, `cube` and `port`, or `netdev`. */
function captureTarget(req: CaptureRequest__Output): CaptureTarget {
  const problem = (field: string, why: string | undefined): void => {
    if (why) throw new InvalidArgumentError(field, why);
  };
  if (req.netdev) {
    if (req.cube || req.port) throw new InvalidArgumentError('netdev', 'capture on a netdev or on a cube, not both: leave cube and port empty with netdev');
    problem('netdev', ifnameProblem(req.netdev));
    return { netdev: req.netdev };
  }
  if (!req.cube)
    throw new InvalidArgumentError('cube', 'name what to capture on: a packetcapture cube, a port of a cube (cube and port), or a netdev of this host\'s chains (netdev)');
  problem('cube', nameProblem(req.cube, 'cube name'));
  if (!req.port) return { cube: req.cube };
  problem('port', portNameProblem(req.port));
  return { cube: req.cube, port: req.port };
}

/**
 * capture_config[0] of a packetcapture cube as JSON for its table (through BTF);
 * `session` tags its records; copying stops at `leaseUntilNs` (CLOCK_MONOTONIC,
 * as process.hrtime.bigint()) unless renewed.
 */
export function captureConfigValue(spec: CaptureSpec, session: number, active: boolean, leaseUntilNs: bigint): Record<string, unknown> {
  const addrs = Array.from({ length: CAPTURE_LIMITS.addresses }, (_, i) => {
    const a = spec.filter.addresses[i];
    if (!a) return { addr: '::', prefix_len: 0, side: 0 };
    const [addr, len] = a.prefix.split('/');
    return { addr, prefix_len: Number(len), side: SIDE_IDS[a.side] };
  });
  const ports = Array.from({ length: CAPTURE_LIMITS.ports }, (_, i) => {
    const p = spec.filter.ports[i];
    return p ? { port: p.port, side: SIDE_IDS[p.side] } : { port: 0, side: 0 };
  });
  return {
    active: active ? 1 : 0,
    pad: 0,
    lease_until_ns: active ? leaseUntilNs : 0n,
    session,
    snap_len: spec.snapLength,
    rate: spec.rate,
    burst: spec.burst,
    directions: spec.direction === 'both' ? 3 : spec.direction === 'ingress' ? 1 : 2,
    family: spec.filter.family ?? 0,
    match_proto: spec.filter.protocol === undefined ? 0 : 1,
    proto: spec.filter.protocol ?? 0,
    addrs,
    ports,
  };
}

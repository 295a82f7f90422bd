// Every RPC of netcubed's API (netcube.v1, all six services) fed what no honest
// client sends, through a client below the generated one (helpers/raw-grpc.ts):
// random bytes, valid requests with their bytes mutated, and valid requests with
// one field replaced by a random value of its kind (long, non-ASCII, negative,
// unknown enum numbers). For each call: the daemon answers (within the call's
// deadline), never INTERNAL or UNKNOWN, with details of bounded length; where it
// answered an error, etcd's desired state is as it was. Throughout, the daemon is
// the same process, and its memory grows by less than MEMORY_BOUND_MB.
//
// fast-check draws the requests, from a fixed seed and a bounded count (RUNS per
// method and kind), so every run sends the same ones and the file stays within a
// few minutes.

import anyTest, { type TestFn } from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MAX_DETAILS_CHARS } from '@netcube/api/grpc/status';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { type ApiEnv, openEnv, probeObjects } from '../api/setup';
import { apiMethods, type MethodInfo, RawClient, type RawStatus } from '../helpers/raw-grpc';
import { rssKb, trackPeakRss } from '../helpers/slowpath';

const test = anyTest as TestFn<ApiEnv & { raw: RawClient }>;

/** Requests of each kind per method: about 300 calls, two minutes of the suite's twenty. */
const RUNS = 4;
const MEMORY_BOUND_MB = 96;
const CALL_DEADLINE_MS = 15_000;
/** StreamLogs and Capture follow until the client leaves: an open stream is their answer, and the client leaves after this. */
const FOLLOWS = new Set(['StreamLogs', 'Capture']);
const FOLLOW_MS = 1_000;

const nop = fs.readFileSync(path.join(DEFAULT_OBJECTS_DIR, 'cubes', 'nop.xdp.o'));
const ddTable = { cube: 'dd', table: 'blacklist_v4' };

/** A valid request of each method, on the state before() sets up. */
const SAMPLES: Record<string, unknown> = {
  GetHost: {},
  GetTopology: {},
  ListTypes: {},
  GetType: { name: 'nop' },
  RegisterType: { name: 'fuzzed', xdpObject: nop, dryRun: true },
  UnregisterType: { name: 'fuzzed' },
  CreateCube: { name: 'fz1', type: 'nop', mode: 'MODE_TC', ports: ['a', 'b'], logLevel: 'LOG_LEVEL_DEBUG', params: { fields: { k: { stringValue: 'v' } } } },
  GetCube: { name: 'pr' },
  ListCubes: {},
  UpdateCube: { name: 'pr', logLevel: 'LOG_LEVEL_INFO', params: { fields: { n: { numberValue: 1 } } } },
  DeleteCube: { name: 'fz1' },
  SetPeer: { cube: 'pr', port: 'a', peer: { port: { cube: 'pr', port: 'b' } } },
  Attach: { cube: 'dd', target: { port: { cube: 'pr', port: 'a' } }, direction: 'DIRECTION_INGRESS', position: 0 },
  Detach: { cube: 'dd' },
  ReplaceMicroCube: { cube: 'pr', index: 1, object: probeObjects().xdpObject },
  ListTables: { cube: 'dd' },
  GetEntry: { table: ddTable, entry: { keyJson: '"10.0.0.1"' } },
  PutEntry: { table: ddTable, entry: { keyJson: '"10.0.0.1"', valueJson: '7' } },
  DeleteEntry: { table: ddTable, entry: { keyJson: '"10.0.0.1"' } },
  ListEntries: { table: ddTable, raw: true },
  PutEntries: { table: ddTable, entries: [{ keyRaw: Buffer.from([10, 0, 0, 2]), valueRaw: Buffer.alloc(8) }, { keyJson: '"10.0.0.3"', valueJson: '1' }] },
  StreamLogs: { cubes: ['pr'], level: 'LOG_LEVEL_DEBUG' },
  Connect: { hello: { controller: 'fuzz', types: ['probe'] } },
  Capture: { cube: 'pr', direction: 'DIRECTION_INGRESS', filter: { addresses: [{ prefix: '10.0.0.0/8', side: 'SIDE_SRC' }], ports: [{ port: 53, side: 'SIDE_DST' }], protocol: 'udp', family: 4 }, snapLength: 96, rate: 100, burst: 10, count: 5 },
};

test.before(async (t) => {
  const env = await openEnv();
  const raw = new RawClient(env.daemon.target);
  t.context = { ...env, raw };
  await env.client.registerType({ name: 'probe', ...probeObjects() });
  await env.client.createCube({ name: 'pr', type: 'probe', ports: ['a', 'b'] });
  await env.client.createCube({ name: 'dd', type: 'ddosmitigator' });
});
test.after.always(async (t) => {
  t.context.raw?.close();
  await t.context?.close?.();
});

/** etcd's desired state (status and registrations are the hosts' observations, and change by themselves). */
async function desiredState(env: ApiEnv): Promise<Record<string, string>> {
  const all = await env.store.etcdClient.getAll().prefix('/netcube/v1/').strings();
  return Object.fromEntries(Object.entries(all).filter(([key]) => !/^\/netcube\/v1\/(status|hosts)\//.test(key)));
}

/** The leaves of a plain request object, as paths. */
function leaves(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Buffer.isBuffer(value) || value === null || typeof value !== 'object') return [at];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return entries.length === 0 ? [at] : entries.flatMap(([k, v]) => leaves(v, [...at, k]));
}

function replaced(value: unknown, at: (string | number)[], by: unknown): unknown {
  if (at.length === 0) return by;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<string | number, unknown>;
  copy[at[0]] = replaced(copy[at[0]], at.slice(1), by);
  return copy;
}

/** A value of the same kind as `like`, drawn to hurt: long, empty, non-ASCII, negative, huge, unknown enum numbers. */
function hostile(like: unknown): fc.Arbitrary<unknown> {
  if (typeof like === 'string') {
    return fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.constantFrom('', '../../etc', 'a'.repeat(70_000), 'netdev:', ':', 'pr:', 'LOG_LEVEL_NOPE'),
      fc.integer({ min: -5, max: 1_000 }), // an enum by an unknown number
    );
  }
  if (typeof like === 'number') return fc.oneof(fc.integer(), fc.constantFrom(-1, 2 ** 32, 2 ** 53, Number.MAX_SAFE_INTEGER));
  if (typeof like === 'boolean') return fc.boolean();
  if (Buffer.isBuffer(like)) return fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), fc.constant(Buffer.alloc(0)));
  return fc.constant(like);
}

type Mutation = { kind: 'flip' | 'cut' | 'insert' | 'delete'; at: number; byte: number };
const byteMutation: fc.Arbitrary<Mutation> = fc.record({ kind: fc.constantFrom('flip', 'cut', 'insert', 'delete'), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) });

function mutateBytes(bytes: Buffer, mutations: Mutation[]): Buffer {
  let out = Buffer.from(bytes);
  for (const m of mutations) {
    const at = out.length === 0 ? 0 : m.at % out.length;
    if (m.kind === 'flip' && out.length > 0) out[at] ^= m.byte || 1;
    else if (m.kind === 'cut') out = out.subarray(0, at);
    else if (m.kind === 'insert') out = Buffer.concat([out.subarray(0, at), Buffer.from([m.byte]), out.subarray(at)]);
    else if (m.kind === 'delete' && out.length > 0) out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
  }
  return out;
}

/** The three kinds of request, as bytes, for one method. */
function requests(method: MethodInfo): fc.Arbitrary<{ kind: string; bytes: Buffer }>[] {
  const sample = SAMPLES[method.name];
  const paths = leaves(sample);
  const encoded = method.encode(sample);
  return [
    fc.uint8Array({ maxLength: 600 }).map((b) => ({ kind: 'random bytes', bytes: Buffer.from(b) })),
    fc.array(byteMutation, { minLength: 1, maxLength: 4 }).map((ms) => ({ kind: 'mutated bytes', bytes: mutateBytes(encoded, ms) })),
    fc
      .nat({ max: paths.length - 1 })
      .chain((i) => hostile(pathValue(sample, paths[i])).map((v) => ({ i, v })))
      .map(({ i, v }) => {
        try {
          return { kind: `field ${paths[i].join('.')} replaced`, bytes: method.encode(replaced(sample, paths[i], v)) };
        } catch {
          // A value the encoder itself refuses: send the sample with its bytes cut short instead.
          return { kind: 'field refused by the encoder', bytes: encoded.subarray(0, encoded.length >> 1) };
        }
      }),
  ];
}

function pathValue(value: unknown, at: (string | number)[]): unknown {
  return at.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)?.[k], value);
}

test('every RPC, fed random, mutated and hostile requests: an answer, never INTERNAL, short, and nothing changed where it is an error', async (t) => {
  t.timeout(15 * 60_000);
  const env = t.context;
  const methods = apiMethods();
  t.deepEqual(methods.map((m) => m.name).filter((m) => !(m in SAMPLES)), [], 'every method has a sample');
  const pid = env.daemon.pid!;
  const baselineKb = rssKb(pid);
  const peak = trackPeakRss(pid);
  const codes = new Map<string, number>();
  const failures: string[] = [];
  let calls = 0;

  for (const [m, method] of methods.entries()) {
    for (const [k, kind] of requests(method).entries()) {
      await fc.assert(
        fc.asyncProperty(kind, async ({ kind: what, bytes }) => {
          const before = await desiredState(env);
          const follows = FOLLOWS.has(method.name);
          const r: RawStatus = await env.raw.call(method, bytes, follows ? FOLLOW_MS : CALL_DEADLINE_MS);
          if (follows && r.codeName === 'DEADLINE_EXCEEDED') r.codeName = 'OK (following)';
          calls++;
          codes.set(r.codeName, (codes.get(r.codeName) ?? 0) + 1);
          const where = `${method.name}, ${what} (${bytes.length} bytes): ${r.codeName} ${r.details.slice(0, 200)}`;
          if (['INTERNAL', 'UNKNOWN', 'DEADLINE_EXCEEDED', 'UNAVAILABLE'].includes(r.codeName)) failures.push(where);
          if (r.details.length > MAX_DETAILS_CHARS) failures.push(`${where}: details of ${r.details.length} characters`);
          if (!r.codeName.startsWith('OK')) {
            const after = await desiredState(env);
            if (JSON.stringify(after) !== JSON.stringify(before)) failures.push(`${where}: etcd changed although the call failed`);
          }
          return true;
        }),
        { numRuns: RUNS, seed: 1000 + 10 * m + k, endOnFailure: true },
      );
    }
  }
  // A daemon that died has no memory to measure: say how it ended instead.
  t.true(env.daemon.running && env.daemon.pid === pid, `the daemon is gone; its log ends:\n${env.daemon.logTail()}`);
  if (!env.daemon.running) return;
  const growthMb = (peak.peakKb() - baselineKb) / 1024;
  t.log(`${calls} calls over ${methods.length} methods: ${[...codes].map(([c, n]) => `${c} ${n}`).join(', ')}; RSS +${growthMb.toFixed(0)} MB at the peak`);
  t.deepEqual(failures, []);
  t.is((await env.client.getHost()).name, env.daemon.name);
  t.true(growthMb < MEMORY_BOUND_MB, `RSS grew by ${growthMb.toFixed(0)} MB`);
});

// Chain documents put straight into etcd, as anything with etcd access could: the
// value of a valid chain mutated (a field removed, a value of the wrong kind, the
// whole replaced by arbitrary JSON, bytes that are not JSON), under its own key and
// under keys that are no chain name. After each, another chain of the same host
// still goes through (a change of it is applied and reported), the chains list
// (with the broken ones apart) still reads, and the daemon is the same process; at
// the end its memory grew by less than MEMORY_BOUND_MB, and a valid version of the
// mutated chain repairs it.
//
// fast-check draws the mutations from a fixed seed, RUNS of them.

import anyTest, { type TestFn } from 'ava';
import fc from 'fast-check';
import { CHAINS_PREFIX } from '@netcube/api/store';
import { type ApiEnv, openEnv } from '../api/setup';
import { netcubectl } from '../cli/run';
import { chain } from '../daemon/setup';
import { rssKb, trackPeakRss } from '../helpers/slowpath';

const test = anyTest as TestFn<ApiEnv>;

const RUNS = 30;
const MEMORY_BOUND_MB = 64;

test.before(async (t) => {
  t.context = await openEnv();
});
test.after.always(async (t) => {
  await t.context?.close();
});

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path into a JSON value. */
function paths(value: Json, at: (string | number)[] = []): (string | number)[][] {
  const here = [at];
  if (Array.isArray(value)) return [...here, ...value.flatMap((v, i) => paths(v, [...at, i]))];
  if (value && typeof value === 'object') return [...here, ...Object.entries(value).flatMap(([k, v]) => paths(v, [...at, k]))];
  return here;
}

/** `value` with the node at `at` replaced by `by`, or removed when `by` is undefined. */
function edit(value: Json, at: (string | number)[], by: Json | undefined): Json {
  if (at.length === 0) return by ?? null;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<string | number, Json>;
  if (at.length === 1 && by === undefined) {
    if (Array.isArray(copy)) (copy as unknown as Json[]).splice(at[0] as number, 1);
    else delete copy[at[0]];
  } else {
    copy[at[0]] = edit(copy[at[0]], at.slice(1), by);
  }
  return copy as Json;
}

test('mutated chain documents in etcd: the host\'s other chain keeps being applied, the chains still list, the daemon stays', async (t) => {
  t.timeout(10 * 60_000);
  const env = t.context;
  const host = env.daemon.name;
  const apply = async (c: ReturnType<typeof chain>): Promise<void> => {
    const r = await env.store.chains.apply(c);
    await env.store.status.waitApplied(c.metadata.name, r.version, { timeoutMs: 30_000 });
  };
  await apply(chain('keep', host, [{ name: 'k1' }], []));
  await apply(chain('fz', host, [{ name: 'f1' }, { name: 'f2' }], [['f1:p1', 'f2:p0']]));
  const stored = JSON.parse((await env.store.etcdClient.get(`${CHAINS_PREFIX}fz`).string())!) as Json;
  const nodes = paths(stored);
  const pid = env.daemon.pid!;
  const baselineKb = rssKb(pid);
  const peak = trackPeakRss(pid);

  const document = fc.oneof(
    // A node removed, or replaced by any JSON value.
    fc.record({ at: fc.nat({ max: nodes.length - 1 }), by: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }) }).map(({ at, by }) => JSON.stringify(edit(stored, nodes[at], by as Json | undefined))),
    // Anything at all.
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
  );
  const key = fc.oneof({ weight: 4, arbitrary: fc.constant('fz') }, { weight: 1, arbitrary: fc.constantFrom('Bad_Name', 'fz/extra', 'x'.repeat(300), 'ünï') });
  let level: 'info' | 'debug' = 'info';
  const seen = { valid: 0, broken: 0 };

  await fc.assert(
    fc.asyncProperty(key, document, async (name, text) => {
      await env.store.etcdClient.put(`${CHAINS_PREFIX}${name}`).value(text);
      // Another chain of the host goes on: a change of it is applied and reported.
      level = level === 'info' ? 'debug' : 'info';
      await apply(chain('keep', host, [{ name: 'k1', logLevel: level }], []));
      const listed = await env.store.chains.listWithBroken();
      if (listed.broken.some((b) => b.name === name)) seen.broken++;
      else seen.valid++;
      if (name !== 'fz') await env.store.etcdClient.delete().key(`${CHAINS_PREFIX}${name}`);
      return env.daemon.running && env.daemon.pid === pid && (await env.client.getCube({ name: 'k1' })).logLevel === `LOG_LEVEL_${level.toUpperCase()}`;
    }),
    { numRuns: RUNS, seed: 7, endOnFailure: true },
  );
  const growthMb = (peak.peakKb() - baselineKb) / 1024;
  t.log(`${RUNS} documents: ${seen.valid} still a chain, ${seen.broken} broken; RSS +${growthMb.toFixed(0)} MB at the peak`);
  t.true(seen.broken > RUNS / 2);
  t.true(growthMb < MEMORY_BOUND_MB, `RSS grew by ${growthMb.toFixed(0)} MB`);

  // The CLI lists the cluster whatever fz holds now; a valid version repairs it.
  const listing = await netcubectl(['get', 'chains'], { etcd: env.etcd.endpoints });
  t.is(listing.code, 0, listing.stderr);
  await apply(chain('fz', host, [{ name: 'f1', logLevel: 'debug' }], []));
  t.is((await env.client.getCube({ name: 'f1' })).logLevel, 'LOG_LEVEL_DEBUG');
});

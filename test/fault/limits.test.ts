// Limits where input enters netcubed (issue 10, item 4), against a real daemon:
// each refusal names the limit and its value, quotes at most a short prefix of the
// input, is never INTERNAL, and changes nothing in etcd; a failed change leaves
// etcd exactly as it was (no version, no object); the heavy calls are admitted a
// few at a time, so a burst of them costs bounded memory and GetHost still answers.

import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ApiCallError } from '@netcube/api/grpc/client';
import { MAX_BATCH_ENTRIES, MAX_REQUEST_BYTES } from '@netcube/api/grpc/limits';
import { MAX_PARAMS_BYTES } from '@netcube/api/chain';
import { MAX_RUNNING, MAX_WAITING } from '../../node-daemon/src/api/heavy';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { DEFAULT_TYPE_POLICY, policyProblems } from '../../node-daemon/src/typecheck/policy';
import { type ApiEnv, failsWith, openEnv, probeObjects } from '../api/setup';
import { apiMethods, RawClient } from '../helpers/raw-grpc';
import { rssKb, trackPeakRss } from '../helpers/slowpath';

const test = anyTest as TestFn<ApiEnv>;

test.before(async (t) => {
  t.context = await openEnv();
  await t.context.client.createCube({ name: 'dd', type: 'ddosmitigator' });
});
test.after.always(async (t) => {
  await t.context?.close();
});

/** Everything etcd holds of the desired state, key by key (status and registrations are hosts' observations). */
async function desiredState(env: ApiEnv): Promise<Record<string, string>> {
  const all = await env.store.etcdClient.getAll().prefix('/netcube/v1/').strings();
  return Object.fromEntries(Object.entries(all).filter(([key]) => !/^\/netcube\/v1\/(status|hosts)\//.test(key)));
}

/** `call` fails with `code`, and etcd's desired state is as it was. */
async function refusedUnchanged(t: ExecutionContext<ApiEnv>, call: Promise<unknown>, code: keyof typeof grpc.status, says: string[]): Promise<ApiCallError> {
  const before = await desiredState(t.context);
  const err = await failsWith(t, call, code, { says });
  t.true(err.details.length < 1_000, `a short answer: ${err.details.length} characters`);
  t.deepEqual(await desiredState(t.context), before, 'etcd as it was');
  return err;
}

const ipv4 = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const rawKey = (i: number): Buffer => Buffer.from([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]);
const table = { cube: 'dd', table: 'blacklist_v4' };

test.serial('PutEntries: past the batch limit or the table, refused before writing; a table that fills up part way, told exactly what was written', async (t) => {
  const { client } = t.context;
  const tooMany = Array.from({ length: MAX_BATCH_ENTRIES + 1 }, (_, i) => ({ keyRaw: rawKey(i), valueRaw: Buffer.alloc(8) }));
  await refusedUnchanged(t, client.putEntries({ table, entries: tooMany }), 'INVALID_ARGUMENT', [`65537 entries, over the limit of ${MAX_BATCH_ENTRIES} a call`]);

  // 1,000 entries there, then 65,536 new ones: the table (65,536) fills part way.
  await client.putEntries({ table, entries: Array.from({ length: 1_000 }, (_, i) => ({ keyRaw: rawKey(i), valueRaw: Buffer.alloc(8) })) });
  const fresh = Array.from({ length: 65_536 }, (_, i) => ({ keyRaw: rawKey(100_000 + i), valueRaw: Buffer.alloc(8) }));
  const err = await failsWith(t, client.putEntries({ table, entries: fresh }), 'RESOURCE_EXHAUSTED', {
    says: ['table blacklist_v4 of cube dd is full (it holds at most 65536 entries): entries[0] to entries[64535] were written (64536 of 65536), entries[64536] and after were not'],
  });
  t.log(err.details);
  let count = 0;
  for await (const _ of client.listEntries({ table, raw: true })) count++;
  t.is(count, 65_536, 'exactly what the answer said was written');

  // A single put into the full table: RESOURCE_EXHAUSTED, not INTERNAL.
  await failsWith(t, client.putEntry({ table, entry: { keyJson: JSON.stringify('192.0.2.1'), valueJson: '0' } }), 'RESOURCE_EXHAUSTED', { says: ['E2BIG'] });
});

test.serial('16 PutEntries of 65,536 entries at once: a few run, some wait, the rest are refused naming the limits; memory stays bounded; GetHost answers', async (t) => {
  const { client, daemon } = t.context;
  await client.createCube({ name: 'dd2', type: 'ddosmitigator' });
  const table = { cube: 'dd2', table: 'blacklist_v4' };
  const entries = Array.from({ length: 65_536 }, (_, i) => ({ keyJson: JSON.stringify(ipv4(i)), valueJson: String(i) }));
  const pid = daemon.pid!;
  const baselineKb = rssKb(pid);
  const peak = trackPeakRss(pid);
  const calls = Array.from({ length: 16 }, () => client.putEntries({ table, entries }).then(
    (r) => ({ ok: r.written }),
    (err: ApiCallError) => ({ code: err.codeName, details: err.details }),
  ));
  // The daemon answers while they run.
  const asked = performance.now();
  t.is((await client.getHost()).name, daemon.name);
  const getHostMs = performance.now() - asked;
  const results = await Promise.all(calls);
  const growthMb = (peak.peakKb() - baselineKb) / 1024;
  const written = results.filter((r) => 'ok' in r);
  const refused = results.filter((r) => 'code' in r) as { code: string; details: string }[];
  t.log(`${written.length} written, ${refused.length} refused; RSS ${Math.round(baselineKb / 1024)} MB before, +${growthMb.toFixed(0)} MB at the peak; GetHost in ${getHostMs.toFixed(0)} ms meanwhile`);
  t.true(written.length >= MAX_RUNNING + 1 && written.length <= MAX_RUNNING + MAX_WAITING + 4, `${written.length} written`);
  for (const r of written) t.is((r as { ok: number }).ok, 65_536);
  for (const r of refused) {
    t.is(r.code, 'RESOURCE_EXHAUSTED');
    t.true(r.details.includes(`at most ${MAX_RUNNING} heavy calls (PutEntries, RegisterType, ReplaceMicroCube) at once and queues ${MAX_WAITING} more`), r.details);
  }
  // Two decoded at a time; those waiting their turn are held as their 1.7 MB of bytes.
  t.true(growthMb < 256, `RSS grew by ${growthMb.toFixed(0)} MB`);
  await client.deleteCube({ name: 'dd2' });
});

test.serial('params, names, enums: past their limits or unknown, INVALID_ARGUMENT naming the limit, quoting little; 8 MB of params never reach etcd', async (t) => {
  const { client, daemon } = t.context;
  const big = 'x'.repeat(3 * 1024 * 1024);
  await refusedUnchanged(t, client.createCube({ name: 'p1', type: 'nop', ports: ['a'], params: { fields: { blob: { stringValue: big } } } }), 'INVALID_ARGUMENT', [
    `params: takes ${big.length + 11} bytes as JSON, over the limit of ${MAX_PARAMS_BYTES} bytes`,
  ]);
  await refusedUnchanged(t, client.createCube({ name: 'n'.repeat(1 << 20), type: 'nop' }), 'INVALID_ARGUMENT', ['is invalid', '(1048576 characters)']);
  await refusedUnchanged(t, client.createCube({ name: 'p1', type: 'nop', logLevel: 99 as never }), 'INVALID_ARGUMENT', ['log_level: unknown log level 99']);
  await refusedUnchanged(t, client.createCube({ name: 'p1', type: 'nop', mode: 42 as never }), 'INVALID_ARGUMENT', ['mode: unknown mode 42']);

  // 8 MB: past what a request may be; gRPC refuses it before it is decoded, and etcd never sees it.
  const raw = new RawClient(daemon.target);
  t.teardown(() => raw.close());
  const createCube = apiMethods().find((m) => m.name === 'CreateCube')!;
  const registered = (await t.context.store.hosts.listHosts()).find((h) => h.name === daemon.name)!;
  const before = await desiredState(t.context);
  const huge = createCube.encode({ name: 'p2', type: 'nop', params: { fields: { blob: { stringValue: 'y'.repeat(8 << 20) } } } });
  const r = await raw.call(createCube, huge);
  t.is(r.codeName, 'RESOURCE_EXHAUSTED', r.details);
  t.regex(r.details, new RegExp(`larger than max \\(\\d+ vs\\.? ${MAX_REQUEST_BYTES}\\)`));
  t.deepEqual(await desiredState(t.context), before);
  // Still in touch with etcd: a change goes through, and the host's registration held.
  await client.createCube({ name: 'p3', type: 'nop', params: { fields: { small: { numberValue: 1 } } } });
  t.true((await client.getHost()).storeConnected);
  t.is((await t.context.store.hosts.listHosts()).find((h) => h.name === daemon.name)?.revision, registered.revision, 'the registration was never lost');
  await client.deleteCube({ name: 'p3' });
});

test.serial('a failed change leaves etcd exactly as it was: no chain version, no object of a failed ReplaceMicroCube', async (t) => {
  const { client } = t.context;
  await client.registerType({ name: 'probe', ...probeObjects() });
  await client.createCube({ name: 'pr', type: 'probe', ports: ['a', 'b'] });
  const history = async () => (await t.context.store.chains.history(t.context.hostChain)).length;
  const versions = await history();
  // Within the policy, rejected by the verifier when the host applies it.
  const unverifiable = fs.readFileSync(path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes', 'unverifiable.xdp.o'));
  await refusedUnchanged(t, client.replaceMicroCube({ cube: 'pr', index: 0, object: unverifiable }), 'INVALID_ARGUMENT', ["the kernel's verifier rejected"]);
  // A link the host cannot make (no native XDP on lo).
  await refusedUnchanged(t, client.setPeer({ cube: 'pr', port: 'a', peer: { netdev: 'lo' } }), 'FAILED_PRECONDITION', ["interface 'lo'"]);
  t.is(await history(), versions, 'no version was added');
  t.deepEqual((await client.getCube({ name: 'pr' })).replacedMicrocubes, {});
  await client.deleteCube({ name: 'pr' });
});

test('the type policy refuses a cube type whose one map would take 1 GiB (2^27 entries of 8 bytes)', (t) => {
  const map = { name: 'big', type: 'array', keySize: 4, valueSize: 8, maxEntries: 2 ** 27, flags: 0, internal: false };
  const report = { programs: [{ name: 'nc_entry', section: 'xdp', type: 'xdp' }], maps: [map], constants: { nc_cube_kind: 1 }, hasCubeId: true };
  const [perMap] = policyProblems('x', 'xdp', report as never, DEFAULT_TYPE_POLICY, 2);
  t.is(perMap, 'x: map big (array, 134217728 entries of key 4 B and value 8 B) would take 1.0 GiB of kernel memory, over the limit of 64 MiB per map (--max-map-memory)');
});

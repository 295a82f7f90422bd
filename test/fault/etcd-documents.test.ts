// Documents in etcd written by something other than netcube (issue 10, item 3),
// against a real netcubed and the real netcubectl: a chain whose spec.cubes is not
// a list, values that are not JSON at all where chains, types, status and host
// registrations live, a chain under a key whose name is invalid. Each is set apart
// and reported broken (its cubes' status, `netcubectl get` with the reason); every
// other chain goes on reconciling, and netcubectl goes on working for the rest of
// the cluster.

import anyTest, { type TestFn } from 'ava';
import { CHAIN_HISTORY_PREFIX, CHAINS_PREFIX, HOSTS_PREFIX, STATUS_PREFIX, TYPES_PREFIX } from '@netcube/api/store';
import { type ApiEnv, openEnv } from '../api/setup';
import { netcubectl, scratch, writeFile } from '../cli/run';
import { chain, statusOf } from '../daemon/setup';
import { waitFor } from '../helpers/wait';

const test = anyTest as TestFn<ApiEnv>;

test.before(async (t) => {
  t.context = await openEnv();
});
test.after.always(async (t) => {
  await t.context?.close();
});

const run = (env: ApiEnv, args: string[]) => netcubectl(args, { etcd: env.etcd.endpoints });
const put = (env: ApiEnv, key: string, value: string) => env.store.etcdClient.put(key).value(value);

/** Applies `c` and waits until the daemon reports it applied. */
async function applied(env: ApiEnv, c: ReturnType<typeof chain>): Promise<void> {
  const r = await env.store.chains.apply(c);
  await env.store.status.waitApplied(c.metadata.name, r.version, { timeoutMs: 30_000 });
}

test.serial('a chain whose spec.cubes is not a list: its host keeps the version it ran and reports it broken; the others reconcile', async (t) => {
  const env = t.context;
  const host = env.daemon.name;
  await applied(env, chain('keep', host, [{ name: 'k1' }], []));
  await applied(env, chain('brk', host, [{ name: 'b1' }], []));

  const broken = { version: 2, appliedAt: new Date().toISOString(), chain: { ...chain('brk', host, [{ name: 'b1' }], []), spec: { cubes: 'b1', links: [], attachments: [] } } };
  await put(env, `${CHAINS_PREFIX}brk`, JSON.stringify(broken));
  const status = await waitFor('b1 reported broken', async () => {
    const s = (await env.store.status.listStatus('brk')).find((r) => r.cube === 'b1');
    return s?.state === 'error' ? s : undefined;
  });
  t.regex(status.error!, /chain spec\.cubes: cubes must be a list, got the string 'b1'/);
  t.regex(status.error!, /this host keeps running version 1/);
  t.is((await env.client.getCube({ name: 'b1' })).name, 'b1', 'the version it ran still runs');

  // Every other chain goes on: a change of one is applied.
  await applied(env, chain('keep', host, [{ name: 'k1', logLevel: 'debug' }], []));
  t.is((await env.client.getCube({ name: 'k1' })).logLevel, 'LOG_LEVEL_DEBUG');

  const chains = await run(env, ['get', 'chains']);
  t.is(chains.code, 0, chains.stderr);
  t.regex(chains.stdout, /^keep\s+2\s/m);
  t.regex(chains.stdout, /^brk\s+2\s.*BROKEN/m);
  t.regex(chains.stdout, /chain brk is BROKEN in etcd: value at \/netcube\/v1\/chains\/brk .* cubes must be a list/);
  const json = JSON.parse((await run(env, ['get', 'chains', '-o', 'json'])).stdout) as { name: string; broken?: string }[];
  t.regex(json.find((c) => c.name === 'brk')?.broken ?? '', /cubes must be a list/);
  const one = await run(env, ['get', 'chain', 'brk']);
  t.is(one.code, 1);
  t.regex(one.stderr, /cubes must be a list/);
  const cubes = await run(env, ['get', 'cubes']);
  t.is(cubes.code, 0, cubes.stderr);
  t.regex(cubes.stdout, /^k1\s+keep v2/m);
  t.regex(cubes.stderr, /chain brk is broken in etcd, its cubes are not listed/);

  // A history entry that cannot be read is shown where it stands.
  await put(env, `${CHAIN_HISTORY_PREFIX}brk/0000000002`, '{"version": "two"}');
  const history = await run(env, ['history', 'brk']);
  t.is(history.code, 0, history.stderr);
  t.regex(history.stdout, /^1\s+apply/m);
  t.regex(history.stdout, /^2\s+BROKEN\s.*version must be 2/m);

  // Applying the chain whole repairs it, as a new version.
  const dir = scratch(t);
  const file = writeFile(dir, 'brk.json', JSON.stringify(chain('brk', host, [{ name: 'b1', logLevel: 'debug' }], [])));
  const repaired = await run(env, ['apply', '-f', file, '--wait', '--timeout', '30s']);
  t.is(repaired.code, 0, repaired.stderr);
  t.regex(repaired.stdout, /version 3/);
  t.is((await env.client.getCube({ name: 'b1' })).logLevel, 'LOG_LEVEL_DEBUG');
  t.is((await statusOf(env.store, 'brk')).b1.state, 'applied');
  for (const name of ['keep', 'brk']) await env.store.chains.delete(name);
});

test.serial('values that are not JSON where chains, types, status and hosts live: get and apply work for the rest of the cluster', async (t) => {
  const env = t.context;
  const host = env.daemon.name;
  await put(env, `${CHAINS_PREFIX}junk`, '{not json');
  await put(env, `${TYPES_PREFIX}junktype`, '{"name": "junktype", "objects": 7}');
  await put(env, `${STATUS_PREFIX}${host}/ghost`, 'zzz');
  await put(env, `${HOSTS_PREFIX}ghost-host`, '[]');
  t.teardown(async () => {
    for (const key of [`${CHAINS_PREFIX}junk`, `${TYPES_PREFIX}junktype`, `${STATUS_PREFIX}${host}/ghost`, `${HOSTS_PREFIX}ghost-host`]) await env.store.etcdClient.delete().key(key);
  });

  for (const [what, says] of [
    ['chains', /junk\s.*BROKEN[^]*chain junk is BROKEN in etcd: value at \/netcube\/v1\/chains\/junk is not JSON/],
    ['types', /junktype\s+BROKEN[^]*cube type junktype is BROKEN in etcd: .*is not a cube type: transparent must be true or false/],
    ['hosts', new RegExp(`${host}\\s[^]*ghost-host\\s+BROKEN[^]*host registration ghost-host is BROKEN in etcd: .*it is not a mapping`)],
    ['cubes', /no cubes|NAME/],
  ] as const) {
    const r = await run(env, ['get', what]);
    t.is(r.code, 0, `get ${what}: ${r.stderr}`);
    t.regex(r.stdout, says, `get ${what}`);
  }

  const dir = scratch(t);
  const file = writeFile(dir, 'fine.json', JSON.stringify(chain('fine', host, [{ name: 'f1' }], [])));
  const apply = await run(env, ['apply', '-f', file, '--wait', '--timeout', '30s']);
  t.is(apply.code, 0, apply.stderr);
  t.is((await env.client.getCube({ name: 'f1' })).name, 'f1');

  // A chain placing a type whose record cannot be read is refused as of a type etcd does not have.
  const refused = await run(env, ['apply', '-f', writeFile(dir, 'jt.json', JSON.stringify(chain('jt', host, [{ name: 'j1', type: 'junktype' }], [])))]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /unknown cube type junktype/);
  await env.store.chains.delete('fine');
});

test.serial('a chain under a key whose name is invalid is not applied, and --wait works for every other chain of its host', async (t) => {
  const env = t.context;
  const host = env.daemon.name;
  const bad = chain('placeholder', host, [{ name: 'bn1' }], []);
  bad.metadata.name = 'Bad_Name';
  await put(env, `${CHAINS_PREFIX}Bad_Name`, JSON.stringify({ version: 1, appliedAt: new Date().toISOString(), chain: bad }));
  t.teardown(() => env.store.etcdClient.delete().key(`${CHAINS_PREFIX}Bad_Name`));

  const dir = scratch(t);
  const file = writeFile(dir, 'after.json', JSON.stringify(chain('after', host, [{ name: 'a1' }], [])));
  const apply = await run(env, ['apply', '-f', file, '--wait', '--timeout', '30s']);
  t.is(apply.code, 0, apply.stderr);
  t.regex(apply.stderr + apply.stdout, /applied on every host/);
  await t.throwsAsync(env.client.getCube({ name: 'bn1' }), { message: /NOT_FOUND|no cube/i });
  const chains = await run(env, ['get', 'chains']);
  t.regex(chains.stdout, /chain Bad_Name is BROKEN in etcd: .*chain name \(its key\) 'Bad_Name' is invalid/);
  t.true((await env.client.getHost()).storeConnected);
  await env.store.chains.delete('after');
});

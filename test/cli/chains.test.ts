// netcubectl's etcd commands against a real etcd: apply, get, delete, diff, history,
// rollback, and --wait with hosts played by the test (it writes their status reports
// through the store, as a netcubed would).

import test from 'ava';
import { parse as parseYaml } from 'yaml';
import { parseChain } from '@netcube/api/chain';
import { Store } from '@netcube/api/store';
import { startEtcd } from '../helpers/etcd';
import { waitFor } from '../helpers/wait';
import { connectStore, netcubectl, registerTypes, RunOptions, scratch, twoHostChain, writeFile } from './run';

async function cluster(t: Parameters<typeof startEtcd>[0]) {
  const etcd = await startEtcd(t);
  const store = await connectStore(t, etcd.endpoints);
  await registerTypes(store);
  const run = (args: string[], options: Parameters<typeof netcubectl>[1] = {}) => netcubectl(args, { etcd: etcd.endpoints, ...options });
  return { etcd, store, run, dir: scratch(t) };
}

/** What a running netcubectl has written to stderr so far: pass `options` to run(). */
function stderrOf(): { options: RunOptions; text(): string } {
  let text = '';
  return { options: { spawned: child => child.stderr!.on('data', chunk => (text += chunk)) }, text: () => text };
}

/** Plays the hosts of `chain`: reports every cube applied (or `errors[cube]`) at its current version. */
async function reportAll(store: Store, chain: string, errors: Record<string, string> = {}): Promise<void> {
  const current = await store.chains.get(chain);
  for (const cube of current.chain.spec.cubes) {
    const error = errors[cube.name];
    await store.status.putStatus(cube.host, cube.name, {
      chain,
      version: current.version,
      revision: current.revision,
      state: error ? 'error' : 'applied',
      ...(error ? { error } : {}),
    });
  }
}

test('apply creates a chain, a second apply of the same file changes nothing', async t => {
  const { run, dir, store } = await cluster(t);
  const file = writeFile(dir, 'demo.yaml', twoHostChain());
  const first = await run(['apply', '-f', file]);
  t.is(first.code, 0, first.stderr);
  t.is(first.stdout, 'chain demo applied as version 1\n');
  const again = await run(['apply', '-f', file]);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'chain demo unchanged (version 1)\n');
  t.is((await store.chains.get('demo')).version, 1);

  const changed = await run(['apply', '-f', writeFile(dir, 'v2.yaml', twoHostChain({ logLevel: 'debug' })), '-o', 'json']);
  t.is(changed.code, 0, changed.stderr);
  t.like(JSON.parse(changed.stdout), { chain: 'demo', version: 2, unchanged: false });
});

test('apply -f - reads the chain from stdin', async t => {
  const { run } = await cluster(t);
  const res = await run(['apply', '-f', '-'], { input: twoHostChain({ name: 'piped' }) });
  t.is(res.code, 0, res.stderr);
  t.is(res.stdout, 'chain piped applied as version 1\n');
});

test('apply reports every problem of a file as file:line:column path: message', async t => {
  const { run, dir, store } = await cluster(t);
  const text = twoHostChain().replace('type: nop\n      mode: tc\n      ports: [left, right]\n      logLevel', 'type: nop\n      mode: fast\n      ports: [left, right]\n      logLevel').replace('to: fwd2:left', 'to: fwd9:left');
  const file = writeFile(dir, 'bad.yaml', text);
  const res = await run(['apply', '-f', file]);
  t.is(res.code, 1);
  t.is(res.stdout, '');
  const lines = res.stderr.trim().split('\n');
  t.regex(lines[0], /^netcubectl: chain demo is invalid/);
  const modeLine = text.split('\n').findIndex(l => l.includes('mode: fast')) + 1;
  t.true(lines.some(l => l.startsWith(`${file}:${modeLine}:`) && l.includes('spec.cubes[0].mode: mode must be one of xdp, tc')), res.stderr);
  await t.throwsAsync(store.chains.get('demo'), { name: 'NotFoundError' });

  // Problems only the cluster reveals (an unknown cube) still point into the file.
  const unknown = writeFile(dir, 'unknown.yaml', twoHostChain().replace('to: fwd2:left', 'to: fwd9:left'));
  const res2 = await run(['apply', '-f', unknown]);
  t.is(res2.code, 1);
  const linkLine = twoHostChain().split('\n').findIndex(l => l.includes('to: fwd2:left')) + 1;
  t.regex(res2.stderr, new RegExp(`${unknown.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:${linkLine}:\\d+ spec\\.links\\[1\\]\\.to: unknown cube fwd9`));

  const yaml = await run(['apply', '-f', writeFile(dir, 'broken.yaml', 'metadata: [unclosed\n')]);
  t.is(yaml.code, 1);
  t.regex(yaml.stderr, /broken\.yaml:\d+:\d+ /);
});

test('apply: usage errors exit 2 and say what to do', async t => {
  const { run, dir } = await cluster(t);
  const noFile = await run(['apply']);
  t.is(noFile.code, 2);
  t.regex(noFile.stderr, /--file is required/);
  t.regex(noFile.stderr, /netcubectl apply --help/);
  const missing = await run(['apply', '-f', `${dir}/nope.yaml`]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read the chain \(no such file\)/);
  const unknownFlag = await run(['apply', '-f', 'x', '--force']);
  t.is(unknownFlag.code, 2);
  t.regex(unknownFlag.stderr, /--force/);
  const badTimeout = await run(['apply', '-f', 'x', '--wait', '--timeout', 'soon']);
  t.is(badTimeout.code, 2);
  t.regex(badTimeout.stderr, /--timeout: expected a duration/);
  const timeoutAlone = await run(['apply', '-f', 'x', '--timeout', '5s']);
  t.is(timeoutAlone.code, 2);
  t.regex(timeoutAlone.stderr, /--timeout goes with --wait/);
  const badOutput = await run(['apply', '-f', 'x', '-o', 'dot']);
  t.is(badOutput.code, 2);
  t.regex(badOutput.stderr, /apply prints text, json, yaml/);
});

test('apply --wait shows progress and exits 0 once every host has applied', async t => {
  const { run, dir, store } = await cluster(t);
  const file = writeFile(dir, 'demo.yaml', twoHostChain());
  const progress = stderrOf();
  const applied = run(['apply', '-f', file, '--wait', '--timeout', '30s'], progress.options);
  // Play host1 first, then host2, each once netcubectl shows it waits for it.
  const current = await waitFor('chain demo in etcd', () => store.chains.get('demo'));
  await waitFor('netcubectl waiting for both hosts', () => progress.text().includes('0/2 cubes applied'));
  await store.status.putStatus('host1', 'fwd1', { chain: 'demo', version: 1, revision: current.revision, state: 'applied' });
  await waitFor('netcubectl to count host1', () => progress.text().includes('1/2 cubes applied'));
  await store.status.putStatus('host2', 'fwd2', { chain: 'demo', version: 1, revision: current.revision, state: 'applied' });
  const res = await applied;
  t.is(res.code, 0, res.stderr);
  // Not a terminal: one plain line per change.
  t.deepEqual(res.stderr.trim().split('\n'), [
    '0/2 cubes applied; waiting for host1/fwd1, host2/fwd2',
    '1/2 cubes applied; waiting for host2/fwd2',
    '2/2 cubes applied',
  ]);
  t.is(res.stdout, 'chain demo applied as version 1\nchain demo version 1 is applied on every host (2 cubes)\n');
});

test('apply --wait prints the error each host reported, per cube, and exits 1', async t => {
  const { run, dir, store } = await cluster(t);
  const file = writeFile(dir, 'demo.yaml', twoHostChain());
  const applied = run(['apply', '-f', file, '--wait', '--timeout', '30s', '-o', 'json']);
  await waitFor('chain demo in etcd', () => store.chains.get('demo'));
  await reportAll(store, 'demo', { fwd2: 'netdev left does not exist on host2' });
  const res = await applied;
  t.is(res.code, 1);
  t.regex(res.stderr, /chain demo version 1 failed on 1 of 2 cubes:\n {2}host2\/fwd2: netdev left does not exist on host2/);
  const out = JSON.parse(res.stdout);
  t.like(out, { chain: 'demo', version: 1, wait: { converged: false, done: 1, total: 2 } });
  t.deepEqual(out.wait.failures, [{ host: 'host2', cube: 'fwd2', error: 'netdev left does not exist on host2' }]);
});

test('apply --wait times out naming the hosts that did not report', async t => {
  const { run, dir } = await cluster(t);
  const res = await run(['apply', '-f', writeFile(dir, 'demo.yaml', twoHostChain()), '--wait', '--timeout', '1s']);
  t.is(res.code, 1);
  t.regex(res.stderr, /not applied after 1\.0 s: 0 of 2 cubes done; still pending on host1 \(fwd1, not registered: is netcubed running there\?\)/);
});

test('get chains, chain, cubes, hosts and types, in every format', async t => {
  const { run, dir, store } = await cluster(t);
  t.is((await run(['apply', '-f', writeFile(dir, 'demo.yaml', twoHostChain())])).code, 0);
  await reportAll(store, 'demo', { fwd2: 'boom' });
  const lease = await store.hosts.register({ name: 'host1', endpoints: ['unix:/run/netcube/host1/netcubed.sock'], startedAt: new Date().toISOString(), kernel: '6.1.0', features: ['xdp'] }, 10);
  t.teardown(() => lease.close());

  const chains = await run(['get', 'chains']);
  t.is(chains.code, 0, chains.stderr);
  t.regex(chains.stdout, /^NAME +VERSION +CUBES +HOSTS +APPLIED +UPDATED\ndemo +1 +2 +host1, host2 +1\/2 \(1 failed\)/);
  t.like(JSON.parse((await run(['get', 'chains', '-o', 'json'])).stdout)[0], { name: 'demo', version: 1, cubes: 2, applied: 1, errors: 1 });

  const chainYaml = await run(['get', 'chain', 'demo', '-o', 'yaml']);
  t.is(chainYaml.code, 0);
  t.is(parseChain(chainYaml.stdout).spec.cubes[1].name, 'fwd2', 'get chain -o yaml prints an applicable chain');
  t.is(JSON.parse((await run(['get', 'chain', 'demo', '-o', 'json'])).stdout).metadata.name, 'demo');
  const chainText = await run(['get', 'chain', 'demo']);
  t.regex(chainText.stdout, /fwd2 +host2 +nop +tc +left,right +info +error: boom/);
  t.regex(chainText.stdout, /fwd1:right <-> fwd2:left {2}\(via right <-> left\)/);

  const cubes = await run(['get', 'cubes', '--host', 'host1']);
  t.regex(cubes.stdout, /fwd1 +demo v1 +host1 +nop +tc +left,right +applied/);
  t.notRegex(cubes.stdout, /fwd2/);
  const cubesYaml = parseYaml((await run(['get', 'cubes', '-o', 'yaml'])).stdout);
  t.deepEqual(cubesYaml.map((c: { name: string; status: { state: string } }) => [c.name, c.status.state]), [['fwd1', 'applied'], ['fwd2', 'error']]);

  const hosts = await run(['get', 'hosts']);
  t.regex(hosts.stdout, /host1 +unix:\/run\/netcube\/host1\/netcubed\.sock +6\.1\.0 +1 /);
  t.is(JSON.parse((await run(['get', 'hosts', '-o', 'json'])).stdout)[0].name, 'host1');

  const types = await run(['get', 'types']);
  t.regex(types.stdout, /ddosmitigator +transparent +xdp,tc +1 /);
  const typesJson = JSON.parse((await run(['get', 'types', '-o', 'json'])).stdout);
  t.deepEqual(typesJson.map((ty: { name: string }) => ty.name), ['ddosmitigator', 'nop']);
  t.false('objects' in typesJson[0], 'the ELF objects are not dumped');
});

test('get: bad input', async t => {
  const { run } = await cluster(t);
  const none = await run(['get']);
  t.is(none.code, 2);
  t.regex(none.stderr, /what to get: one of chains, chain, hosts, cubes, types/);
  const cube = await run(['get', 'cube', 'x']);
  t.is(cube.code, 2);
  t.regex(cube.stderr, /describe cube NAME/);
  const missing = await run(['get', 'chain', 'nope']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /chain nope does not exist/);
  const badName = await run(['get', 'chain', 'Bad_Name']);
  t.is(badName.code, 1);
  t.regex(badName.stderr, /chain name 'Bad_Name' is invalid/);
  const filter = await run(['get', 'chains', '--host', 'h1']);
  t.is(filter.code, 2);
  const noChain = await run(['get', 'cubes', '--chain', 'nope']);
  t.is(noChain.code, 2);
  t.regex(noChain.stderr, /--chain nope: no such chain/);
  const empty = await run(['get', 'chains']);
  t.is(empty.code, 0);
  t.regex(empty.stdout, /no chains/);
});

test('diff a file against what is applied, and versions against each other', async t => {
  const { run, dir } = await cluster(t);
  const v1 = writeFile(dir, 'v1.yaml', twoHostChain());
  const v2 = writeFile(dir, 'v2.yaml', twoHostChain({ logLevel: 'debug' }));
  const created = await run(['diff', '-f', v1]);
  t.is(created.code, 0, created.stderr);
  t.regex(created.stdout, /^\+ chain demo\n\+ cube fwd1: nop on host1, tc, ports left, right, logLevel info\n/);
  t.is((await run(['apply', '-f', v1])).code, 0);
  t.regex((await run(['diff', '-f', v1])).stdout, /^no changes/);
  const changes = await run(['diff', '-f', v2]);
  t.is(changes.stdout, '~ cube fwd1: logLevel info -> debug\n');
  t.is((await run(['apply', '-f', v2])).code, 0);

  const versions = await run(['diff', 'demo', '--from', '1']);
  t.is(versions.stdout, '~ cube fwd1: logLevel info -> debug\n');
  const json = JSON.parse((await run(['diff', 'demo', '--from', '2', '--to', '1', '-o', 'json'])).stdout);
  t.deepEqual(json.map((c: { op: string; kind: string; id: string }) => [c.op, c.kind, c.id]), [['changed', 'cube', 'fwd1']]);

  t.is((await run(['diff', 'demo', '--from', 'one'])).code, 2);
  t.is((await run(['diff', 'demo'])).code, 2);
  t.is((await run(['diff', '-f', v1, '--from', '1'])).code, 2);
  const noVersion = await run(['diff', 'demo', '--from', '9']);
  t.is(noVersion.code, 1);
  t.regex(noVersion.stderr, /chain demo has no version 9; its versions are 1 to 2/);
});

test('history, rollback and delete, with --wait', async t => {
  const { run, dir, store } = await cluster(t);
  t.is((await run(['apply', '-f', writeFile(dir, 'v1.yaml', twoHostChain())])).code, 0);
  t.is((await run(['apply', '-f', writeFile(dir, 'v2.yaml', twoHostChain({ logLevel: 'debug' }))])).code, 0);

  const rollback = run(['rollback', 'demo', '--to', '1', '--wait', '--timeout', '30s']);
  await waitFor('chain demo at version 3', async () => (await store.chains.get('demo')).version === 3);
  await reportAll(store, 'demo');
  const rolled = await rollback;
  t.is(rolled.code, 0, rolled.stderr);
  t.regex(rolled.stdout, /^chain demo rolled back to version 1 as version 3\nchain demo version 3 is applied on every host \(2 cubes\)\n$/);

  // Deleting waits until the hosts withdraw their reports.
  const removal = stderrOf();
  const deleting = run(['delete', 'chain', 'demo', '--wait', '--timeout', '30s'], removal.options);
  await waitFor('chain demo deleted', async () => !(await store.chains.get('demo').catch(() => undefined)));
  await store.status.deleteStatus('host1', 'fwd1');
  await waitFor('netcubectl to count host1', () => removal.text().includes('1/2 cubes removed'));
  await store.status.deleteStatus('host2', 'fwd2');
  const deleted = await deleting;
  t.is(deleted.code, 0, deleted.stderr);
  t.is(deleted.stdout, 'chain demo deleted (version 4; roll back to 3 to restore it)\nchain demo is removed from every host\n');
  t.regex(deleted.stderr, /^1\/2 cubes removed; waiting for host2\/fwd2\n2\/2 cubes removed\n$/m);

  const history = await run(['history', 'demo']);
  t.is(history.code, 0);
  const rows = history.stdout.trim().split('\n').slice(1).map(l => l.split(/ {2,}/));
  t.deepEqual(rows.map(r => [r[0], r[1], r[3]]), [
    ['1', 'apply', 'created: +2 cubes, +3 links'],
    ['2', 'apply', '~1 cube'],
    ['3', 'rollback to 1', '~1 cube'],
    ['4', 'delete', 'chain deleted'],
  ]);
  const historyJson = JSON.parse((await run(['history', 'demo', '-o', 'json'])).stdout);
  t.deepEqual(historyJson.map((e: { version: number; action: string }) => [e.version, e.action]), [[1, 'apply'], [2, 'apply'], [3, 'apply'], [4, 'delete']]);

  // The deletion is a version too: rolling back to it makes no sense, to 2 restores.
  const toDelete = await run(['rollback', 'demo', '--to', '4']);
  t.is(toDelete.code, 1);
  t.regex(toDelete.stderr, /records its deletion/);
  const restore = await run(['rollback', 'demo', '--to', '2', '-o', 'yaml']);
  t.is(restore.code, 0, restore.stderr);
  t.like(parseYaml(restore.stdout), { chain: 'demo', rolledBackTo: 2, version: 5 });
  t.is((await store.chains.get('demo')).chain.spec.cubes[0].logLevel, 'debug');
});

test('delete, history and rollback: bad input', async t => {
  const { run } = await cluster(t);
  const cube = await run(['delete', 'cube', 'fwd1']);
  t.is(cube.code, 2);
  t.regex(cube.stderr, /only chains are deleted here/);
  t.is((await run(['delete', 'chain'])).code, 2);
  const gone = await run(['delete', 'chain', 'nope']);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /chain nope does not exist/);
  const history = await run(['history', 'nope']);
  t.is(history.code, 1);
  t.regex(history.stderr, /chain nope has no history: it was never applied/);
  const noTo = await run(['rollback', 'demo']);
  t.is(noTo.code, 2);
  t.regex(noTo.stderr, /--to is required/);
  t.is((await run(['rollback', 'demo', '--to', '0'])).code, 2);
});

test('delete --wait times out while a host keeps its cubes', async t => {
  const { run, dir, store } = await cluster(t);
  t.is((await run(['apply', '-f', writeFile(dir, 'v1.yaml', twoHostChain())])).code, 0);
  await reportAll(store, 'demo');
  const res = await run(['delete', 'chain', 'demo', '--wait', '--timeout', '1s']);
  t.is(res.code, 1);
  t.regex(res.stderr, /chain demo is not removed everywhere after 1\.0 s: still on host1 \(fwd1, not registered: is netcubed running there\?\), host2/);
});

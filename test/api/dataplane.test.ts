// TypeService, TableService, LogService and ReplaceMicroCube against a real netcubed,
// with the probe test cube (bpf/testdata/cubes), driven by test runs of its pinned
// programs from the test process.

import * as fs from 'node:fs';
import * as path from 'node:path';
import anyTest, { TestFn } from 'ava';
import { ApiEnv, failsWith, openEnv, probeObjects, runCube, storedChain } from './setup';
import { waitFor } from '../helpers/wait';

const test = anyTest as TestFn<ApiEnv>;

test.before(async (t) => {
  t.context = await openEnv();
});
test.after.always(async (t) => {
  await t.context?.close();
});

/** Probe's nc_micro_1 sets user[1] = user[0] + 1; this copy adds 2 (one immediate patched). */
function patchedProbe(xdp: Buffer): Buffer {
  // r2 = r7; r2 += 1; r3 = r2 (user[1] = user[0] + 1, on its way into the metadata's words)
  const pattern = Buffer.from('bf72000000000000' + '0702000001000000' + 'bf23000000000000', 'hex');
  const at = xdp.indexOf(pattern);
  if (at < 0 || xdp.indexOf(pattern, at + 1) >= 0) throw new Error('the probe object changed: update patchedProbe()');
  const out = Buffer.from(xdp);
  out[at + 8 + 4] = 2;
  return out;
}

test.serial('RegisterType: bad objects are refused precisely, and nothing is registered', async (t) => {
  const { client, store } = t.context;
  const { xdpObject } = probeObjects();
  await failsWith(t, client.registerType({ name: 'probe' }), 'INVALID_ARGUMENT', { field: 'xdp_object' });
  await failsWith(t, client.registerType({ name: 'Probe!', xdpObject }), 'INVALID_ARGUMENT', { field: 'name' });
  await failsWith(t, client.registerType({ name: 'probe', xdpObject: Buffer.from('not an elf at all') }), 'INVALID_ARGUMENT', { field: 'xdp_object', says: ['not a usable BPF ELF object'] });
  await failsWith(t, client.registerType({ name: 'probe', xdpObject, tcObject: xdpObject.subarray(0, 200) }), 'INVALID_ARGUMENT', { field: 'tc_object' });
  await failsWith(t, client.registerType({ name: 'probe', tcObject: xdpObject }), 'INVALID_ARGUMENT', { field: 'tc_object', says: ['expected sched_cls'] });
  await failsWith(t, client.registerType({ name: 'simpleforwarder', xdpObject }), 'ALREADY_EXISTS', { says: ['built in'] });
  await failsWith(t, client.getType({ name: 'probe' }), 'NOT_FOUND');
  t.false((await store.types.listTypes()).some((ty) => ty.name === 'probe'));
});

test.serial('RegisterType, GetType, ListTypes, UnregisterType', async (t) => {
  const { client, store } = t.context;
  const { xdpObject, tcObject } = probeObjects();
  const type = await client.registerType({ name: 'probe', xdpObject, tcObject });
  t.is(type.name, 'probe');
  t.false(type.builtin);
  t.deepEqual(type.modes, ['MODE_XDP', 'MODE_TC']);
  t.deepEqual(type.microcubes, [0, 1]);
  t.deepEqual(type.tables.map((x) => [x.name, x.scope]).sort(), [['probe_actions', 'cube'], ['probe_calls', 'private'], ['probe_host', 'host']]);
  t.is(JSON.parse(type.tables.find((x) => x.name === 'probe_actions')!.valueTypeJson).name, 'probe_action');
  t.deepEqual(await client.registerType({ name: 'probe', xdpObject, tcObject }), type, 'the same objects again are fine');
  await failsWith(t, client.registerType({ name: 'probe', xdpObject: patchedProbe(xdpObject), tcObject }), 'ALREADY_EXISTS', { says: ['unregister it first'] });
  t.deepEqual(await client.getType({ name: 'probe' }), type);
  t.true((await client.listTypes()).types.some((x) => x.name === 'probe' && !x.builtin));
  t.true((await store.types.listTypes()).some((x) => x.name === 'probe'));

  await client.createCube({ name: 'user', type: 'probe', ports: ['a'] });
  await failsWith(t, client.unregisterType({ name: 'probe' }), 'FAILED_PRECONDITION', { says: ['user'] });
  await client.deleteCube({ name: 'user' });
  await client.unregisterType({ name: 'probe' });
  await failsWith(t, client.getType({ name: 'probe' }), 'NOT_FOUND');
  t.false((await store.types.listTypes()).some((x) => x.name === 'probe'));
  await failsWith(t, client.unregisterType({ name: 'probe' }), 'NOT_FOUND');
  await failsWith(t, client.unregisterType({ name: 'nop' }), 'FAILED_PRECONDITION', { says: ['built in'] });
  await client.registerType({ name: 'probe', xdpObject, tcObject });
});

test.serial('tables: JSON and raw round trips, list, batch, delete, bad input', async (t) => {
  const { client } = t.context;
  await client.createCube({ name: 'pr', type: 'probe', ports: ['p0', 'p1'] });
  const tables = (await client.listTables({ cube: 'pr' })).tables;
  t.deepEqual(tables.map((x) => x.name).sort(), ['probe_actions', 'probe_calls', 'probe_host']);
  t.is(tables.find((x) => x.name === 'probe_actions')?.valueSize, 16);
  const table = { cube: 'pr', table: 'probe_actions' };

  // JSON in, raw out.
  await client.putEntry({ table, entry: { keyJson: '1', valueJson: JSON.stringify({ op: 'PROBE_REDIRECT', arg: 7, user0: 0, log: 0 }) } });
  const key1 = Buffer.from([1, 0, 0, 0]);
  const raw = await client.getEntry({ table, entry: { keyRaw: key1 } });
  t.deepEqual(raw.keyRaw, key1);
  t.deepEqual(raw.valueRaw, Buffer.from([2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  // Raw in, JSON out.
  await client.putEntry({ table, entry: { keyRaw: Buffer.from([2, 0, 0, 0]), valueRaw: Buffer.from([5, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0]) } });
  const json = await client.getEntry({ table, entry: { keyJson: '2' } });
  t.is(json.keyJson, '2');
  t.deepEqual(JSON.parse(json.valueJson!), { op: 'PROBE_MARK', arg: 0, user0: 9, log: 1 });

  const written = await client.putEntries({ table, entries: [3, 4, 5].map((k) => ({ keyJson: String(k), valueJson: JSON.stringify({ op: 'PROBE_PASS', arg: k }) })) });
  t.is(written.written, 3);
  const entries = [];
  for await (const e of client.listEntries({ table })) entries.push(e);
  t.is(entries.length, 32, 'an array lists every slot');
  t.deepEqual(JSON.parse(entries[4].valueJson!), { op: 'PROBE_PASS', arg: 4, user0: 0, log: 0 });
  const rawEntries = [];
  for await (const e of client.listEntries({ table, raw: true })) rawEntries.push(e);
  t.deepEqual(rawEntries[1].valueRaw, raw.valueRaw);

  await failsWith(t, client.getEntry({ table, entry: { keyJson: '{' } }), 'INVALID_ARGUMENT', { field: 'entry.key_json', says: ['not JSON'] });
  await failsWith(t, client.getEntry({ table, entry: { keyRaw: Buffer.from([1]) } }), 'INVALID_ARGUMENT', { field: 'entry.key_raw', says: ['1 bytes', '4 bytes'] });
  await failsWith(t, client.putEntry({ table, entry: { keyJson: '1', valueJson: JSON.stringify({ op: 'PROBE_NOPE' }) } }), 'INVALID_ARGUMENT', { field: 'entry.value_json' });
  await failsWith(t, client.putEntry({ table, entry: { keyJson: '1' } }), 'INVALID_ARGUMENT', { field: 'entry.value_json', says: ['give the value'] });
  await failsWith(t, client.putEntries({ table, entries: [{ keyJson: '6', valueJson: '{}' }, { keyJson: '"x"', valueJson: '{}' }] }), 'INVALID_ARGUMENT', { field: 'entries[1].key_json' });
  t.deepEqual(JSON.parse((await client.getEntry({ table, entry: { keyJson: '6' } })).valueJson!), { op: 'PROBE_DROP', arg: 0, user0: 0, log: 0 }, 'a bad batch writes nothing');
  await failsWith(t, client.getEntry({ table: { cube: 'pr', table: 'nope' }, entry: { keyJson: '1' } }), 'NOT_FOUND', { says: ['no table nope'] });
  await failsWith(t, client.getEntry({ table: { cube: 'ghost', table: 'probe_actions' }, entry: { keyJson: '1' } }), 'NOT_FOUND');
  await failsWith(t, client.getEntry({ table: { cube: 'pr', table: '' }, entry: { keyJson: '1' } }), 'INVALID_ARGUMENT', { field: 'table.table' });
  await failsWith(t, client.deleteEntry({ table, entry: { keyJson: '1' } }), 'FAILED_PRECONDITION', { says: ['array'] });
  await failsWith(t, client.getEntry({ table, entry: { keyJson: '99' } }), 'NOT_FOUND');
});

test.serial('StreamLogs: a data-plane log line arrives, filtered by cube and level; cancel ends it', async (t) => {
  const { client } = t.context;
  const table = { cube: 'pr', table: 'probe_actions' };
  await client.putEntry({ table, entry: { keyJson: '0', valueJson: JSON.stringify({ op: 'PROBE_DROP', log: 1, user0: 0x2a }) } });
  const abort = new AbortController();
  const lines: { cube: string; level: string; message: string; cubeId: number }[] = [];
  const other = client.streamLogs({ cubes: ['someone-else'] }, { signal: abort.signal });
  const quiet = client.streamLogs({ cubes: ['pr'], level: 'LOG_LEVEL_ERROR' }, { signal: abort.signal });
  const reading = (async () => {
    for await (const line of client.streamLogs({ cubes: ['pr'], level: 'LOG_LEVEL_INFO' }, { signal: abort.signal })) {
      lines.push(line);
      abort.abort();
    }
  })();
  const elsewhere: unknown[] = [];
  const drain = async (s: AsyncIterable<unknown>) => {
    for await (const l of s) elsewhere.push(l);
  };
  const others = Promise.all([drain(other), drain(quiet)]);
  // The stream subscribes when the call arrives: run packets until a line comes.
  const pr = await client.getCube({ name: 'pr' });
  await waitFor('a log line on the stream', async () => {
    const res = await runCube(t.context, 'pr', 0);
    t.is(res.verdict, 'drop');
    return lines.length > 0;
  }, 5_000, 100);
  await reading;
  await others;
  t.is(lines.length, 1);
  t.is(lines[0].cube, 'pr');
  t.is(lines[0].cubeId, pr.id);
  t.is(lines[0].level, 'LOG_LEVEL_INFO');
  t.is(lines[0].message, 'probe: in-port 0 user 2a from 10.0.0.1');
  t.deepEqual(elsewhere, [], 'other cubes and more severe levels only: nothing');
  await failsWith(t, (async () => {
    for await (const _ of client.streamLogs({ cubes: ['Bad Name'] })) void _;
  })(), 'INVALID_ARGUMENT', { field: 'cubes[0]' });
});

test.serial('ReplaceMicroCube: the new program runs, is kept in the chain, and a recreated cube runs it again', async (t) => {
  const { client, store, hostChain, daemon } = t.context;
  const table = { cube: 'pr', table: 'probe_actions' };
  const callMicro = JSON.stringify({ op: 'PROBE_CALL', arg: 1, user0: 5 });
  await client.putEntry({ table, entry: { keyJson: '0', valueJson: callMicro } });
  let res = await runCube(t.context, 'pr', 0);
  t.is(res.verdict, 'mark');
  t.is(res.md?.user[1], 6);

  const object = patchedProbe(probeObjects().xdpObject);
  await failsWith(t, client.replaceMicroCube({ cube: 'pr', index: 3, object }), 'INVALID_ARGUMENT', { field: 'index' });
  await failsWith(t, client.replaceMicroCube({ cube: 'pr', index: 1 }), 'INVALID_ARGUMENT', { field: 'object' });
  await failsWith(t, client.replaceMicroCube({ cube: 'pr', index: 1, object: Buffer.from('junk') }), 'INVALID_ARGUMENT', { field: 'object' });
  await failsWith(t, client.replaceMicroCube({ cube: 'pr', index: 1, object: probeObjects().tcObject }), 'INVALID_ARGUMENT', { field: 'object', says: ['sched_cls'] });
  await failsWith(t, client.replaceMicroCube({ cube: 'ghost', index: 1, object }), 'NOT_FOUND');
  t.is((await storedChain(store, hostChain))?.chain.spec.cubes.find((c) => c.name === 'pr')?.replacedMicrocubes, undefined);

  const cube = await client.replaceMicroCube({ cube: 'pr', index: 1, object });
  const sha = cube.replacedMicrocubes[1];
  t.regex(sha, /^[0-9a-f]{64}$/);
  t.deepEqual((await storedChain(store, hostChain))?.chain.spec.cubes.find((c) => c.name === 'pr')?.replacedMicrocubes, { 1: sha });
  res = await runCube(t.context, 'pr', 0);
  t.is(res.md?.user[1], 7, 'the replaced micro-cube runs');

  // A restart adopts the cube as it is.
  await daemon.restart();
  await daemon.waitConnected();
  res = await runCube(t.context, 'pr', 0);
  t.is(res.md?.user[1], 7);

  // Pins lost (as after a reboot): the daemon recreates the cube, and replaces its micro-cube again.
  const id = cube.id;
  await daemon.kill();
  fs.rmSync(path.join(daemon.root, 'bpf', 'cubes', `${id}-pr`), { recursive: true, force: true });
  await daemon.restart();
  await daemon.waitConnected();
  const c = daemon.client();
  try {
    await waitFor('cube pr recreated', () => c.getCube({ name: 'pr' }), 10_000, 100);
    await c.putEntry({ table, entry: { keyJson: '0', valueJson: callMicro } });
    await waitFor('the recreated cube to run the replaced micro-cube', async () => (await runCube({ ...t.context, client: c }, 'pr', 0)).md?.user[1] === 7, 5_000, 100);
  } finally {
    c.close();
  }
});

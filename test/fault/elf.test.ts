// Untrusted ELF objects against a real netcubed: objects that crash libbpf, that
// the verifier rejects, or that break the type policy are refused at RegisterType
// with the reason and nothing is stored; a broken type put straight into etcd and
// placed by a chain fails that chain only; a broken object in the host's types
// directory does not stop the daemon from starting. Throughout, the daemon is the
// same process, still answering.

import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplyFailedError, NotFoundError } from '@netcube/api/store';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { failsWith, openEnv, probeObjects, type ApiEnv } from '../api/setup';
import { chain } from '../daemon/setup';
import { crashingObject } from '../helpers/elf';

const object = (dir: string, name: string): Buffer => fs.readFileSync(path.join(DEFAULT_OBJECTS_DIR, dir, `${name}.o`));

async function env(t: ExecutionContext, opts: { args?: string[] } = {}): Promise<ApiEnv> {
  const e = await openEnv(opts);
  t.teardown(() => e.close());
  return e;
}

/** The daemon is the same process as at `pid`, and answers. */
async function alive(t: ExecutionContext, e: ApiEnv, pid: number): Promise<void> {
  t.is(e.daemon.pid, pid);
  t.true(e.daemon.running, 'netcubed is still running');
  t.is((await e.client.getHost()).name, e.daemon.name);
}

async function notStored(t: ExecutionContext, e: ApiEnv, name: string): Promise<void> {
  await t.throwsAsync(e.store.types.getType(name), { instanceOf: NotFoundError });
  t.false((await e.client.listTypes()).types.some((ty) => ty.name === name));
}

test('RegisterType refuses what crashes libbpf, what the verifier rejects, a kprobe and a 16 GiB map, saying why; nothing is stored', async (t) => {
  const e = await env(t);
  const pid = e.daemon.pid!;
  const crashy = await crashingObject();

  await failsWith(t, e.client.registerType({ name: 'crashy', xdpObject: crashy }), 'INVALID_ARGUMENT', { field: 'xdp_object', says: ['libbpf crashed (SIGSEGV) while opening it'] });
  await alive(t, e, pid);
  await notStored(t, e, 'crashy');

  // Refused at registration, not later when a chain places it.
  await failsWith(t, e.client.registerType({ name: 'unverifiable', xdpObject: object('testdata/cubes', 'unverifiable.xdp'), tcObject: object('testdata/cubes', 'unverifiable.tc') }), 'INVALID_ARGUMENT', {
    field: 'xdp_object',
    says: ["the kernel's verifier rejected program nc_entry"],
  });
  await notStored(t, e, 'unverifiable');

  await failsWith(t, e.client.registerType({ name: 'spy', tcObject: object('testdata/cubes', 'kprobe.tc') }), 'INVALID_ARGUMENT', {
    field: 'tc_object',
    says: ['program watch_opens (section "kprobe/do_sys_openat2", a kprobe program) is not one of the cube\'s entry points'],
  });
  await notStored(t, e, 'spy');

  await failsWith(t, e.client.registerType({ name: 'huge', xdpObject: object('testdata/cubes', 'hugemap.xdp') }), 'INVALID_ARGUMENT', {
    field: 'xdp_object',
    says: ['map huge (array, 2147483648 entries of key 4 B and value 8 B) would take 16 GiB of kernel memory, over the limit of 64 MiB per map (--max-map-memory)'],
  });
  await notStored(t, e, 'huge');

  // A micro-cube replacement that crashes libbpf is refused the same way.
  const probe = probeObjects();
  await e.client.registerType({ name: 'probe', ...probe });
  await e.client.createCube({ name: 'p1', type: 'probe', mode: 'MODE_XDP', ports: ['a', 'b'] });
  await failsWith(t, e.client.replaceMicroCube({ cube: 'p1', index: 0, object: crashy }), 'INVALID_ARGUMENT', { field: 'object', says: ['libbpf crashed (SIGSEGV)'] });
  await alive(t, e, pid);
});

test('a broken type put straight into etcd fails the chain that places it, and only that chain', async (t) => {
  const e = await env(t);
  const pid = e.daemon.pid!;
  // Past RegisterType: what anything with etcd access could write.
  await e.store.types.putType({ name: 'crashy', transparent: false, microcubes: 1, modes: ['xdp'], objects: { xdp: await crashingObject() } });
  const bad = await e.store.chains.apply(chain('bad', e.daemon.name, [{ name: 'c1', type: 'crashy' }], []));
  const err = await t.throwsAsync(e.store.status.waitApplied('bad', bad.version, { timeoutMs: 30_000 }), { instanceOf: ApplyFailedError });
  t.regex(err?.message ?? '', /crashy/);
  await alive(t, e, pid);

  const good = await e.store.chains.apply(chain('good', e.daemon.name, [{ name: 'n1', type: 'nop' }], []));
  await e.store.status.waitApplied('good', good.version, { timeoutMs: 30_000 });
  t.truthy(await e.client.getCube({ name: 'n1' }));
  await alive(t, e, pid);
});

test('a broken object in the host\'s types directory: the daemon starts, with every other type', async (t) => {
  const e = await env(t);
  await e.client.registerType({ name: 'probe', ...probeObjects() });
  await e.daemon.kill();
  const types = path.join(e.daemon.root, 'types');
  t.true(fs.existsSync(path.join(types, 'probe.xdp.o')), 'uploads are kept in the types directory');
  fs.writeFileSync(path.join(types, 'crashy.xdp.o'), await crashingObject());
  fs.writeFileSync(path.join(types, 'junk.tc.o'), 'not an object at all');

  await e.daemon.restart();
  const names = (await e.client.listTypes()).types.map((ty) => ty.name);
  t.true(names.includes('probe') && names.includes('nop'), names.join(', '));
  t.false(names.includes('crashy') || names.includes('junk'));
  const log = fs.readFileSync(e.daemon.logFile, 'utf8');
  t.regex(log, /"msg":"cube type refused[^\n]*"type":"crashy"[^\n]*libbpf crashed \(SIGSEGV\)/);
  t.regex(log, /"msg":"cube type refused[^\n]*"type":"junk"[^\n]*it is no ELF file/);
});

test('the host\'s limit on its cubes\' maps (--max-host-memory): a cube past it is refused, naming the limit', async (t) => {
  // nop's maps take about 4 KiB a cube: two fit in 10 KiB, a third does not.
  const e = await env(t, { args: ['--max-host-memory', '10K'] });
  await e.client.createCube({ name: 'n1', type: 'nop', ports: ['a', 'b'] });
  await e.client.createCube({ name: 'n2', type: 'nop', ports: ['a', 'b'] });
  const err = await t.throwsAsync(e.client.createCube({ name: 'n3', type: 'nop', ports: ['a', 'b'] }));
  t.regex(err?.message ?? '', /cube n3 \(type nop\) would take (\d\.\d) KiB of kernel memory for its maps, beside the (\d\.\d) KiB this host's cubes take: over the limit of 10 KiB per host \(--max-host-memory\)/);
  t.deepEqual((await e.client.listCubes({})).cubes.map((c) => c.name).sort(), ['n1', 'n2']);
});

// Untrusted ELF objects, below the daemon: the object inspector (a child process
// running libbpf) against one-byte mutations of a real cube object, some of which
// crash libbpf 1.1, and the type policy (typecheck/policy.ts) on what objects say
// they hold. fast-check draws the mutations; the count is bounded (300), the seed
// fixed, so every run tries the same objects.

import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CollectionSpec } from '../../node-daemon/src/bpf';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { CubeType } from '../../node-daemon/src/runtime/types';
import { inspectObjects } from '../../node-daemon/src/typecheck/inspect';
import { DEFAULT_TYPE_POLICY, formatBytes, hostMemoryProblem, mapBytes, policyProblems } from '../../node-daemon/src/typecheck/policy';
import { checkReport, type ObjectReport } from '../../node-daemon/src/typecheck/report';
import { crashingObject, elfSection, mutate } from '../helpers/elf';

const object = (dir: string, name: string): Buffer => fs.readFileSync(path.join(DEFAULT_OBJECTS_DIR, dir, `${name}.o`));
const NOP = object('cubes', 'nop.xdp');

test('300 one-byte mutations of nop\'s BTF: the inspector reports on each, a crash of libbpf costs only the object it was on', async (t) => {
  const btf = elfSection(NOP, '.BTF');
  const mutation = fc.record({ offset: fc.integer({ min: btf.offset, max: btf.offset + btf.size - 1 }), value: fc.integer({ min: 0, max: 255 }) });
  const seen = { ok: 0, refused: 0, crashed: 0 };
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 50, maxLength: 50 }), async (mutations) => {
      const objects = mutations.map((m) => ({ label: `nop with byte ${m.offset} = ${m.value}`, mode: 'xdp' as const, elf: mutate(NOP, m.offset, m.value) }));
      const results = await inspectObjects(objects, DEFAULT_TYPE_POLICY);
      if (results.length !== objects.length) return false;
      for (const [i, r] of results.entries()) {
        if (r.ok) {
          seen.ok++;
          checkReport(r.report);
          // What the inspector opened without harm opens here too: libbpf's parse
          // is the same for the same bytes, which is what makes the daemon's own
          // open (to load the type) safe once the inspector passed it.
          CollectionSpec.fromBuffer(objects[i].elf, 'checked').close();
        } else {
          if (!r.error.startsWith(`${objects[i].label}: `)) return false;
          if (/crashed \(SIG[A-Z]+\)/.test(r.error)) seen.crashed++;
          else seen.refused++;
        }
      }
      return true;
    }),
    { numRuns: 6, seed: 10, endOnFailure: true },
  );
  t.log(`of 300 mutated objects: ${seen.ok} opened, ${seen.refused} refused by libbpf, ${seen.crashed} crashed libbpf (each in the inspector, not here)`);
  t.is(seen.ok + seen.refused + seen.crashed, 300);
  t.true(seen.ok > 0 && seen.refused > 0);
});

test('an object that crashes libbpf: the inspector says so, names the signal, and goes on with the next', async (t) => {
  const crashy = await crashingObject();
  const [crashed, next] = await inspectObjects(
    [
      { label: 'crashy', mode: 'xdp', elf: crashy },
      { label: 'nop', mode: 'xdp', elf: NOP },
    ],
    DEFAULT_TYPE_POLICY,
  );
  t.deepEqual(crashed, { ok: false, error: 'crashy: libbpf crashed (SIGSEGV) while opening it: the object is malformed' });
  t.true(next.ok, 'a fresh inspector took the object after it');
});

test('a test load: the verifier\'s verdict, with the program and the end of its log', async (t) => {
  const [good, bad] = await inspectObjects(
    [
      { label: 'nop', mode: 'xdp', elf: NOP, testLoad: true },
      { label: 'unverifiable', mode: 'tc', elf: object('testdata/cubes', 'unverifiable.tc'), testLoad: true },
    ],
    DEFAULT_TYPE_POLICY,
  );
  t.true(good.ok && good.verdict?.ok === true, JSON.stringify(good));
  if (!bad.ok) return t.fail(bad.error);
  t.is(bad.verdict?.ok, false);
  t.is(bad.verdict?.program, 'nc_entry');
  t.regex(bad.verdict?.log ?? '', /invalid access to packet|R\d+ invalid mem access|out of range/);
});

test('what breaks the policy is never loaded: a kprobe program, a 16 GiB map', async (t) => {
  const results = await inspectObjects(
    ['kprobe', 'hugemap'].map((name) => ({ label: name, mode: 'xdp' as const, elf: object('testdata/cubes', `${name}.xdp`), testLoad: true })),
    DEFAULT_TYPE_POLICY,
  );
  for (const r of results) {
    if (!r.ok) return t.fail(r.error);
    t.is(r.verdict, undefined, 'no test load was tried');
  }
});

const report = (over: Partial<ObjectReport> = {}): ObjectReport => ({
  programs: [{ name: 'nc_entry', section: 'xdp', type: 'xdp' }],
  maps: [{ name: 'nc_ports', type: 'array', keySize: 4, valueSize: 8, maxEntries: 64, flags: 0, internal: false }],
  constants: { nc_cube_kind: 1 },
  hasCubeId: true,
  ...over,
});

test('the policy names the program, the map, the limit and its value', (t) => {
  t.deepEqual(policyProblems('x', 'xdp', report(), DEFAULT_TYPE_POLICY, 2), []);
  const kprobe = policyProblems('x', 'xdp', report({ programs: [{ name: 'nc_entry', section: 'xdp', type: 'xdp' }, { name: 'spy', section: 'kprobe/x', type: 'kprobe' }] }), DEFAULT_TYPE_POLICY, 2);
  t.is(kprobe.length, 1);
  t.regex(kprobe[0], /^x: program spy \(section "kprobe\/x", a kprobe program\) is not one of the cube's entry points: an object holds only nc_entry, nc_netdev and nc_micro_<n>/);
  const wrongHook = policyProblems('x', 'tc', report(), DEFAULT_TYPE_POLICY, 2);
  t.regex(wrongHook[0], /program nc_entry is a xdp program in section "xdp", expected sched_cls in section "tc": build the tc object with -DNC_HOOK_TC$/);
  // The entry fused with a netdev's (NC_CUBE() builds it) is one of them, in the hook's section only.
  const fused = { name: 'nc_netdev', section: 'xdp', type: 'xdp' };
  t.deepEqual(policyProblems('x', 'xdp', report({ programs: [{ name: 'nc_entry', section: 'xdp', type: 'xdp' }, fused] }), DEFAULT_TYPE_POLICY, 2), []);
  const fusedElsewhere = policyProblems('x', 'xdp', report({ programs: [{ name: 'nc_entry', section: 'xdp', type: 'xdp' }, { ...fused, section: 'xdp.frags' }] }), DEFAULT_TYPE_POLICY, 2);
  t.is(fusedElsewhere.length, 1);
  t.regex(fusedElsewhere[0], /^x: program nc_netdev is a xdp program in section "xdp.frags", expected xdp in section "xdp"/);

  const huge = { name: 'big', type: 'array', keySize: 4, valueSize: 8, maxEntries: 2 ** 31, flags: 0, internal: false };
  const [perMap, perCube] = policyProblems('x', 'xdp', report({ maps: [huge] }), DEFAULT_TYPE_POLICY, 2);
  t.is(perMap, 'x: map big (array, 2147483648 entries of key 4 B and value 8 B) would take 16 GiB of kernel memory, over the limit of 64 MiB per map (--max-map-memory)');
  t.regex(perCube, /the maps of one cube would take 16 GiB .* over the limit of 256 MiB per cube \(--max-cube-memory\)/);

  // Several maps each within the per-map limit, over the per-cube one together.
  const many = Array.from({ length: 5 }, (_, i) => ({ ...huge, name: `t${i}`, maxEntries: 7 * 2 ** 20 }));
  const problems = policyProblems('x', 'xdp', report({ maps: many }), DEFAULT_TYPE_POLICY, 2);
  t.is(problems.length, 1);
  t.regex(problems[0], /would take 280 MiB .* per cube/);

  t.is(hostMemoryProblem('c', 'T', 1024, 2047 * 2 ** 20, DEFAULT_TYPE_POLICY), undefined);
  t.regex(hostMemoryProblem('c', 'T', 2 ** 21, 2047 * 2 ** 20, DEFAULT_TYPE_POLICY)!, /^cube c \(type T\) would take 2.0 MiB .* beside the 2.0 GiB this host.s cubes take: over the limit of 2.0 GiB per host \(--max-host-memory\)$/);
});

test('map sizes as the kernel sizes them: per-CPU values once per CPU, a ring its size, hashes with their bookkeeping', (t) => {
  t.is(mapBytes({ type: 'array', keySize: 4, valueSize: 6, maxEntries: 10 }, 4), 80);
  t.is(mapBytes({ type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 10 }, 4), 320);
  t.is(mapBytes({ type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: 1 << 20 }, 4), 1 << 20);
  t.is(mapBytes({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 10 }, 4), 10 * (8 + 8 + 64));
  t.is(formatBytes(1536), '1.5 KiB');
});

test('every built-in type keeps to the default policy', async (t) => {
  const dir = path.join(DEFAULT_OBJECTS_DIR, 'cubes');
  const names = [...new Set(fs.readdirSync(dir).filter((f) => f.endsWith('.o')).map((f) => f.split('.')[0]))];
  t.true(names.length >= 5);
  for (const name of names) {
    const objects = { xdp: fs.readFileSync(path.join(dir, `${name}.xdp.o`)), tc: fs.readFileSync(path.join(dir, `${name}.tc.o`)) };
    const type = await CubeType.inspect(name, objects, { builtin: true });
    t.true(type.mapBytes < DEFAULT_TYPE_POLICY.maxCubeBytes, `${name}: ${formatBytes(type.mapBytes)}`);
  }
});

import test from 'ava';
import { readFileSync } from 'node:fs';
import * as bpf from '../../node-daemon/src/bpf';
import { emptyFrame, testObject } from './testdata';

test('a const volatile variable set before load is what the program returns', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('variables'));
  t.deepEqual([...spec.variables.keys()].sort(), ['answer', 'bias', 'calls', 'settings']);
  const answer = spec.variables.get('answer')!;
  t.true(answer.constant);
  t.is(answer.section, '.rodata');
  t.is(answer.get(), 7);
  answer.set(40);
  t.is(answer.get(), 40);
  const bias = spec.variables.get('bias')!;
  t.false(bias.constant);
  t.is(bias.section, '.data');
  bias.set(2);

  const coll = await spec.load();
  t.teardown(() => coll.close());
  const run = await coll.program('return_answer').testRun({ data: emptyFrame });
  t.is(run.retval, 42);
  t.deepEqual(run.data, emptyFrame);
  t.true(run.durationNs >= 0);
});

test('a struct variable is set from JSON through its BTF type', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('variables'));
  const settings = spec.variables.get('settings')!;
  t.like(settings.type, { kind: 'struct', name: 'tst_config', size: 24 });
  t.deepEqual(settings.get(), { port: 80, label: 'none', mode: 'TST_MODE_OFF', mac: [0, 0, 0, 0, 0, 0] });
  const value = { port: 1000, label: 'edge', mode: 'TST_MODE_ADD_PORT', mac: [2, 0, 0, 0, 0, 1] };
  settings.set(value);
  t.deepEqual(settings.get(), value);
  t.throws(() => settings.set({ port: 1000, colour: 'red' }), {
    instanceOf: TypeError, message: "settings: struct tst_config has no member 'colour'",
  });

  const coll = await spec.load();
  t.teardown(() => coll.close());
  t.is((await coll.program('return_answer').testRun({ data: emptyFrame })).retval, 7 + 1 + 1000);
});

test('the .bss map of a collection shows what the program wrote', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('variables')).load();
  t.teardown(() => coll.close());
  const program = coll.program('return_answer');
  for (let i = 0; i < 3; i++) await program.testRun({ data: emptyFrame });
  const bss = coll.map('.bss');
  const spec = bpf.CollectionSpec.fromFile(testObject('variables'));
  t.teardown(() => spec.close());
  const calls = spec.variables.get('calls')!;
  const bytes = bss.lookup(Buffer.alloc(4))!;
  t.is(bpf.decode(calls.type, bytes.subarray(calls.offset, calls.offset + calls.size)), 3);
});

test('a spec describes maps, programs and their BTF types', (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('counter'));
  t.teardown(() => spec.close());
  t.is(spec.name, 'counter');
  const declared = [...spec.maps.values()].filter((m) => !m.internal).map((m) => m.name);
  t.deepEqual(declared.sort(), ['flows', 'hits', 'totals']);
  const flows = spec.maps.get('flows')!;
  t.like(flows, { type: 'hash', typeId: 1, keySize: 16, valueSize: 32, maxEntries: 1024, internal: false });
  t.like(flows.keyType, { kind: 'struct', name: 'tst_flow_key', size: 16 });
  t.like(spec.maps.get('totals'), { type: 'array', flags: bpf.MAP_F_MMAPABLE });
  t.like(spec.maps.get('hits'), { type: 'percpu_array', keySize: 4, valueSize: 8 });
  t.like(spec.programs.get('count_packet'), { name: 'count_packet', section: 'xdp', type: 'xdp', autoload: true });

  const variables = bpf.CollectionSpec.fromFile(testObject('variables'));
  t.teardown(() => variables.close());
  t.like(variables.maps.get('.rodata'), { internal: true, type: 'array' });
});

test('load consumes the spec', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('variables'));
  const coll = await spec.load();
  t.teardown(() => coll.close());
  t.true(spec.closed);
  const closed = { instanceOf: bpf.ClosedError, message: "CollectionSpec 'variables' is closed" };
  t.throws(() => spec.variables.get('answer')!.set(1), closed);
  await t.throwsAsync(spec.load(), closed);
});

test('a program with autoload off is not loaded', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('tailcall'));
  spec.programs.get('target')!.autoload = false;
  const coll = await spec.load();
  t.teardown(() => coll.close());
  t.deepEqual([...coll.programs.keys()], ['entry']);
  t.throws(() => coll.program('target'), { instanceOf: RangeError, message: "no program 'target' (programs: entry)" });
});

test('setMaxEntries sizes the map that load creates', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('counter'));
  spec.maps.get('flows')!.setMaxEntries(77);
  const coll = await spec.load();
  t.teardown(() => coll.close());
  t.is(coll.map('flows').maxEntries, 77);
  t.is(coll.map('flows').info().maxEntries, 77);
});

test('fromBuffer loads an object from its ELF bytes', async (t) => {
  const elf = readFileSync(testObject('variables'));
  const spec = bpf.CollectionSpec.fromBuffer(elf, 'uploaded');
  t.is(spec.name, 'uploaded');
  spec.variables.get('answer')!.set(9);
  const coll = await spec.load();
  t.teardown(() => coll.close());
  t.is((await coll.program('return_answer').testRun({ data: emptyFrame })).retval, 10);
});

test('a malformed ELF buffer gives an ElfError', (t) => {
  const notElf = t.throws(() => bpf.CollectionSpec.fromBuffer(Buffer.from('certainly not an ELF object'), 'junk'),
                          { instanceOf: bpf.ElfError });
  t.regex(notElf.message, /^CollectionSpec 'junk': open failed: .*format/i);
  t.is(notElf.op, 'open');
  t.is(notElf.code, 'LIBBPF_ERRNO__FORMAT');

  const elf = readFileSync(testObject('variables'));
  t.throws(() => bpf.CollectionSpec.fromBuffer(elf.subarray(0, 200), 'truncated'), { instanceOf: bpf.ElfError });
  t.throws(() => bpf.CollectionSpec.fromBuffer(Buffer.alloc(0), 'empty'), { instanceOf: bpf.ElfError });
  const corrupt = Buffer.from(elf);
  corrupt.fill(0xff, 64, 4096);
  t.throws(() => bpf.CollectionSpec.fromBuffer(corrupt, 'corrupt'), { instanceOf: bpf.ElfError });
});

test('a missing file gives a NotFoundError', (t) => {
  const error = t.throws(() => bpf.CollectionSpec.fromFile('/nonexistent/x.o'), { instanceOf: bpf.NotFoundError });
  t.is(error.code, 'ENOENT');
});

test('a program the verifier rejects gives a VerifierError with its log', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('reject'));
  const error = await t.throwsAsync(spec.load(), { instanceOf: bpf.VerifierError });
  t.is(error.program, 'read_unchecked');
  t.regex(error.log, /invalid access to packet/);
  t.regex(error.log, /processed \d+ insns/);
  t.regex(error.message, /^CollectionSpec 'reject': the verifier rejected program 'read_unchecked' \(EACCES\):\n/);
  t.regex(error.message, /invalid access to packet/);
  t.is(error.code, 'EACCES');
  t.regex(error.libbpfLog, /read_unchecked/);
  t.true(spec.closed);
});

test('logLevel 2 asks the verifier for every state', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('reject'));
  const error = await t.throwsAsync(spec.load({ logLevel: 2 }), { instanceOf: bpf.VerifierError });
  t.regex(error.log, /invalid access to packet/);
  t.regex(error.log, /from \d+ to \d+|frame\d+|R1=|R1_w=/);
});

test('bad arguments are TypeErrors and RangeErrors naming the argument', async (t) => {
  t.throws(() => bpf.CollectionSpec.fromFile(42 as unknown as string), { instanceOf: TypeError, message: /^path / });
  t.throws(() => bpf.CollectionSpec.fromBuffer('elf' as unknown as Buffer, 'x'), { instanceOf: TypeError, message: /^elf / });
  t.throws(() => bpf.CollectionSpec.fromFile(testObject('counter'), { logSize: 1 }),
           { instanceOf: RangeError, message: /^options\.logSize / });
  const spec = bpf.CollectionSpec.fromFile(testObject('counter'));
  t.teardown(() => spec.close());
  t.throws(() => spec.maps.get('flows')!.setMaxEntries(0), { instanceOf: RangeError, message: /^maxEntries / });
  t.throws(() => { spec.programs.get('count_packet')!.autoload = 1 as unknown as boolean; },
           { instanceOf: TypeError, message: /autoload of program 'count_packet'/ });
  await t.throwsAsync(spec.load({ logLevel: 9 }), { instanceOf: RangeError, message: /^options\.logLevel / });

  const coll = await bpf.CollectionSpec.fromFile(testObject('variables')).load();
  t.teardown(() => coll.close());
  const program = coll.program('return_answer');
  await t.throwsAsync(program.testRun({ data: 'packet' as unknown as Buffer }),
                      { instanceOf: TypeError, message: /^options\.data / });
  await t.throwsAsync(program.testRun({ data: emptyFrame, repeat: -1 }),
                      { instanceOf: RangeError, message: /^options\.repeat / });
  await t.throwsAsync(program.testRun({ data: emptyFrame, batchSize: 8 }),
                      { instanceOf: RangeError, message: /^options\.batchSize needs liveFrames/ });
  await t.throwsAsync(program.testRun({ data: emptyFrame, netns: 'nct-does-not-exist' }),
                      { instanceOf: bpf.NotFoundError, message: /open network namespace/ });
});

test('a closed program throws ClosedError naming it', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('variables')).load();
  const program = coll.program('return_answer');
  coll.close();
  t.true(program.closed);
  const closed = { instanceOf: bpf.ClosedError, message: "Program 'return_answer' is closed" };
  t.throws(() => program.fd, closed);
  t.throws(() => program.info(), closed);
  await t.throwsAsync(program.testRun({ data: emptyFrame }), closed);
  program.close();
});

test('program info comes from the kernel', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('variables')).load();
  t.teardown(() => coll.close());
  const program = coll.program('return_answer');
  const info = program.info();
  t.like(info, { type: 'xdp', id: program.id, name: 'return_answer' });
  t.regex(info.tag, /^[0-9a-f]{16}$/);
  t.is(program.tag, info.tag);
});

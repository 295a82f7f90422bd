import test from 'ava';
import * as bpf from '../../node-daemon/src/bpf';
import { emptyFrame, testObject } from './testdata';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function createMap(t: { teardown(fn: () => void): void }, opts: bpf.CreateMapOptions): bpf.BpfMap {
  const map = bpf.BpfMap.create(opts);
  t.teardown(() => map.close());
  return map;
}

test('hash map: create, update, lookup, delete, iterate', (t) => {
  const map = createMap(t, { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64, name: 'crud' });
  t.like(map, { name: 'crud', type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64, valueBytes: 8 });
  t.is(map.lookup(u32(1)), undefined);
  map.update(u32(1), u64(100));
  map.update(u32(2), u64(200), 'noexist');
  map.update(u32(1), u64(101), 'exist');
  t.deepEqual(map.lookup(u32(1)), u64(101));

  const exists = t.throws(() => map.update(u32(2), u64(0), 'noexist'), { instanceOf: bpf.BpfError });
  t.is(exists.code, 'EEXIST');
  t.regex(exists.message, /^BpfMap 'crud': update failed: .*\(EEXIST\)/);
  t.throws(() => map.update(u32(3), u64(0), 'exist'), { instanceOf: bpf.KeyNotExistError });

  const keys = [...map.keys()].map((k) => k.readUInt32LE()).sort();
  t.deepEqual(keys, [1, 2]);
  const entries = [...map.entries()].map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()] as const);
  t.deepEqual(entries.sort((a, b) => a[0] - b[0]), [[1, 101n], [2, 200n]]);
  t.is(map.nextKey(u32(999))?.length, 4);  // an unknown key restarts the walk

  t.true(map.delete(u32(1)));
  t.false(map.delete(u32(1)));
  t.deepEqual([...map.keys()], [u32(2)]);
  t.like(map.info(), { type: 'hash', name: 'crud', id: map.id, keySize: 4, valueSize: 8, maxEntries: 64 });
});

test('array map: every index exists, nothing can be deleted', (t) => {
  const map = createMap(t, { type: 'array', keySize: 4, valueSize: 4, maxEntries: 8 });
  t.deepEqual(map.lookup(u32(3)), u32(0));
  t.is(map.lookup(u32(8)), undefined);
  map.update(u32(3), u32(33));
  t.deepEqual(map.lookup(u32(3)), u32(33));
  t.is([...map.keys()].length, 8);
  const error = t.throws(() => map.delete(u32(3)), { instanceOf: bpf.BpfError });
  t.is(error.code, 'EINVAL');
  t.throws(() => map.update(u32(9), u32(1)), { instanceOf: bpf.BpfError, message: /E2BIG/ });
});

test('per-CPU maps take and return one 8-byte slot per possible CPU', (t) => {
  for (const type of ['percpu_array', 'percpu_hash'] as const) {
    const map = createMap(t, { type, keySize: 4, valueSize: 4, maxEntries: 4 });
    t.is(map.valueBytes, 8 * map.possibleCpus);
    const value = Buffer.alloc(map.valueBytes);
    for (let cpu = 0; cpu < map.possibleCpus; cpu++) value.writeUInt32LE(cpu + 10, cpu * 8);
    map.update(u32(1), value);
    t.deepEqual(map.lookup(u32(1)), value);
    t.throws(() => map.update(u32(1), u32(1)), {
      instanceOf: RangeError, message: `value of BpfMap #${map.id} is 4 bytes, expected ${map.valueBytes}`,
    });
    const batch = map.lookupBatch();
    t.true(batch.keys.some((k) => k.equals(u32(1))));
    t.true(batch.values.every((v) => v.length === map.valueBytes));
  }
});

test('batch update, lookup and delete on hash and array maps', (t) => {
  const n = 100;
  const keys = Buffer.alloc(4 * n);
  const values = Buffer.alloc(8 * n);
  for (let i = 0; i < n; i++) {
    keys.writeUInt32LE(i, 4 * i);
    values.writeBigUInt64LE(BigInt(i * 1000), 8 * i);
  }
  for (const type of ['hash', 'array'] as const) {
    const map = createMap(t, { type, keySize: 4, valueSize: 8, maxEntries: n });
    t.is(map.updateBatch(keys, values, n), n);
    const all = map.lookupBatch({ chunk: 7 });
    t.is(all.keys.length, n);
    const seen = new Map(all.keys.map((k, i) => [k.readUInt32LE(), all.values[i].readBigUInt64LE()]));
    for (let i = 0; i < n; i++) t.is(seen.get(i), BigInt(i * 1000));
    if (type === 'hash') {
      t.is(map.deleteBatch(keys.subarray(0, 4 * 40), 40), 40);
      t.is(map.lookupBatch().keys.length, n - 40);
      t.is(map.lookup(u32(10)), undefined);
      const missing = t.throws(() => map.deleteBatch(keys.subarray(0, 4), 1), { instanceOf: bpf.BpfError });
      t.is(missing.code, 'ENOENT');
    }
  }
  const map = createMap(t, { type: 'hash', keySize: 4, valueSize: 8, maxEntries: n });
  t.throws(() => map.updateBatch(keys, values, n + 1), {
    instanceOf: RangeError, message: `keys of BpfMap #${map.id} is ${4 * n} bytes, expected ${4 * (n + 1)}`,
  });
});

test('prog array: slot updates switch the tail call, batch falls back to single updates', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('tailcall')).load();
  t.teardown(() => coll.close());
  const entry = coll.program('entry');
  const target = coll.program('target');
  const jumps = coll.map('jump_table');
  const run = async () => (await entry.testRun({ data: emptyFrame })).retval;

  t.is(await run(), 1);
  jumps.setProgram(0, target);
  t.is(await run(), 42);
  t.true(jumps.clearProgram(0));
  t.false(jumps.clearProgram(0));
  t.is(await run(), 1);

  // Prog arrays have no batch operations: these take the per-element paths.
  const fd = u32(target.fd);
  t.is(jumps.updateBatch(Buffer.concat([u32(0), u32(2)]), Buffer.concat([fd, fd]), 2), 2);
  t.is(await run(), 42);
  const slots = jumps.lookupBatch();
  t.deepEqual(slots.keys.map((k) => k.readUInt32LE()), [0, 2]);
  t.deepEqual(slots.values.map((v) => v.readUInt32LE()), [target.id, target.id]);
  t.is(jumps.deleteBatch(Buffer.concat([u32(0), u32(2)]), 2), 2);
  t.is(await run(), 1);

  t.throws(() => jumps.setProgram(4, target), { instanceOf: RangeError, message: /^index must be an integer from 0 to 3/ });
  t.throws(() => jumps.setProgram(0, jumps as unknown as bpf.Program), { instanceOf: TypeError, message: 'program must be a Program' });
  const hash = createMap(t, { type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'plain' });
  t.throws(() => hash.setProgram(0, target), { instanceOf: TypeError, message: "BpfMap 'plain' is a hash map, not a prog_array" });
  target.close();
  t.throws(() => jumps.setProgram(0, target), { instanceOf: bpf.ClosedError, message: "Program 'target' is closed" });
});

test('storeU64Atomic and loadU64 go through the mmap of an mmapable array', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('counter')).load();
  t.teardown(() => coll.close());
  const totals = coll.map('totals');
  const big = (1n << 63n) + 5n;
  totals.storeU64Atomic(1, big);
  t.is(totals.loadU64(1), big);
  t.deepEqual(totals.lookup(u32(1)), u64(big));
  totals.update(u32(2), u64(77));
  t.is(totals.loadU64(2), 77n);

  const program = coll.program('count_packet');
  for (let i = 0; i < 5; i++) await program.testRun({ data: emptyFrame });
  t.is(totals.loadU64(0), 5n);

  t.throws(() => totals.storeU64Atomic(4, 1n), { instanceOf: RangeError, message: /^index must be an integer from 0 to 3/ });
  t.throws(() => totals.storeU64Atomic(0, 1 as unknown as bigint), { instanceOf: TypeError, message: /^value must be a bigint/ });
  t.throws(() => totals.storeU64Atomic(0, -1n), { instanceOf: RangeError });
  t.throws(() => coll.map('flows').loadU64(0), {
    instanceOf: TypeError, message: "BpfMap 'flows' is not a BPF_F_MMAPABLE array of 8-byte words",
  });

  // Values of several words (a global u64 array's section): word i across them.
  const words = bpf.BpfMap.create({ type: 'array', keySize: 4, valueSize: 16, maxEntries: 2, flags: bpf.MAP_F_MMAPABLE, name: 'words' });
  t.teardown(() => words.close());
  words.storeU64Atomic(1, 11n);
  words.storeU64Atomic(2, 22n);
  t.deepEqual(words.lookup(u32(0)), Buffer.concat([u64(0n), u64(11n)]));
  t.deepEqual(words.lookup(u32(1)), Buffer.concat([u64(22n), u64(0n)]));
  t.is(words.loadU64(1), 11n);
  t.throws(() => words.loadU64(4), { instanceOf: RangeError, message: /^index must be an integer from 0 to 3/ });
});

test('the program and user space see the same typed map', async (t) => {
  const spec = bpf.CollectionSpec.fromFile(testObject('counter'));
  const specTypes = { key: spec.maps.get('flows')!.keyType, value: spec.maps.get('flows')!.valueType };
  const coll = await spec.load();
  t.teardown(() => coll.close());
  const flows = coll.map('flows');
  // The kernel's copy of the BTF describes the same types as the object's.
  t.deepEqual(flows.keyType, specTypes.key);
  t.deepEqual(flows.valueType, specTypes.value);

  const key = bpf.encode(flows.keyType!, { proto: 17 });
  flows.update(key, bpf.encode(flows.valueType!, { tag: 'udp', verdict: 'TST_DROP' }));
  await coll.program('count_packet').testRun({ data: emptyFrame });
  await coll.program('count_packet').testRun({ data: Buffer.alloc(100) });
  t.deepEqual(bpf.decode(flows.valueType!, flows.lookup(key)!),
              { packets: 2, bytes: 164, tag: 'udp', verdict: 'TST_DROP' });

  const hits = coll.map('hits');
  const perCpu = hits.lookup(u32(0))!;
  let sum = 0n;
  for (let cpu = 0; cpu < hits.possibleCpus; cpu++) sum += perCpu.readBigUInt64LE(cpu * 8);
  t.is(sum, 2n);
  t.is(createMap(t, { type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 }).keyType, undefined);
});

test('wrong keys and values are rejected before the kernel sees them', (t) => {
  const map = createMap(t, { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, name: 'strict' });
  t.throws(() => map.lookup(Buffer.alloc(3)), { instanceOf: RangeError, message: "key of BpfMap 'strict' is 3 bytes, expected 4" });
  t.throws(() => map.update(u32(1), Buffer.alloc(9)), { instanceOf: RangeError, message: "value of BpfMap 'strict' is 9 bytes, expected 8" });
  t.throws(() => map.delete('abcd' as unknown as Buffer), { instanceOf: TypeError, message: "key of BpfMap 'strict' must be a Buffer, got string" });
  t.throws(() => map.nextKey(null as unknown as Buffer), { instanceOf: TypeError });
  t.throws(() => map.update(u32(1), u64(1), 'always' as bpf.UpdateFlag), { instanceOf: RangeError, message: /^flag must be/ });
  t.throws(() => map.lookupBatch({ chunk: 0 }), { instanceOf: RangeError, message: /^options\.chunk / });
  t.throws(() => bpf.BpfMap.create({ type: 'hashmap' as bpf.MapType, keySize: 4, valueSize: 4, maxEntries: 1 }),
           { instanceOf: RangeError, message: "options.type: unknown map type 'hashmap'" });
  t.throws(() => bpf.BpfMap.create({ type: 'hash', keySize: -1, valueSize: 4, maxEntries: 1 }),
           { instanceOf: RangeError, message: /^options\.keySize / });
  const invalid = t.throws(() => bpf.BpfMap.create({ type: 'hash', keySize: 0, valueSize: 4, maxEntries: 1, name: 'bad' }),
                           { instanceOf: bpf.BpfError });
  t.is(invalid.code, 'EINVAL');
  t.regex(invalid.message, /^BpfMap 'bad': map create failed/);
});

test('operations a map type lacks give NotSupportedError', (t) => {
  const ring = createMap(t, { type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: 4096, name: 'ring' });
  const error = t.throws(() => ring.lookup(Buffer.alloc(0)), { instanceOf: bpf.NotSupportedError });
  t.regex(error.code, /^(ENOTSUPP|EOPNOTSUPP)$/);
});

test('a closed map throws ClosedError naming it', (t) => {
  const map = bpf.BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'gone' });
  map.close();
  map.close();
  const closed = { instanceOf: bpf.ClosedError, message: "BpfMap 'gone' is closed" };
  t.throws(() => map.fd, closed);
  t.throws(() => map.lookup(u32(0)), closed);
  t.throws(() => map.update(u32(0), u32(0)), closed);
  t.throws(() => [...map.keys()], closed);
  t.throws(() => map.lookupBatch(), closed);
  t.throws(() => map.pin('/run/x'), closed);
  t.throws(() => map.keyType, closed);
});

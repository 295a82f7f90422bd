import test from 'ava';
import * as bpf from '../../node-daemon/src/bpf';
import { emptyFrame, testObject } from './testdata';

test('ring buffer records arrive in order, all of them', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('ringbuf')).load();
  t.teardown(() => coll.close());
  const reader = new bpf.RingBufReader(coll.map('events'));
  t.teardown(() => reader.close());
  const n = 20000;
  const seqs: bigint[] = [];
  const all = new Promise<void>((resolve) => {
    reader.on('record', (record) => {
      t.is(record.length, 16);
      t.is(record.readUInt32LE(8), emptyFrame.length);
      if (seqs.push(record.readBigUInt64LE(0)) === n) resolve();
    });
  });
  // The ring holds 1 MiB = 43690 records of 24 bytes: none is dropped even if
  // nothing is consumed during the run.
  const run = await coll.program('produce').testRun({ data: emptyFrame, repeat: n });
  t.is(run.retval, 2 /* XDP_PASS: no reservation failed */);
  await all;
  t.is(seqs.length, n);
  t.true(seqs.every((seq, i) => seq === BigInt(i)));
});

test('a ring buffer reader is an async iterator until closed', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('ringbuf')).load();
  t.teardown(() => coll.close());
  const reader = new bpf.RingBufReader(coll.map('events'));
  const producer = coll.program('produce');
  await producer.testRun({ data: emptyFrame, repeat: 5 });
  const seen: bigint[] = [];
  for await (const record of reader) {
    seen.push(record.readBigUInt64LE(0));
    if (seen.length === 3) break;
  }
  t.deepEqual(seen, [0n, 1n, 2n]);

  // Records 3 and 4 were consumed with the first three and left with that loop.
  const rest: bigint[] = [];
  const second = (async () => {
    for await (const record of reader) {
      if (rest.push(record.readBigUInt64LE(0)) === 2) reader.close();
    }
  })();
  await producer.testRun({ data: emptyFrame, repeat: 2 });
  await second;
  t.true(reader.closed);
  t.deepEqual(rest, [5n, 6n]);
  t.throws(() => reader[Symbol.asyncIterator](), { instanceOf: bpf.ClosedError });
});

test('only a ringbuf map can be read as one', (t) => {
  const map = bpf.BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'plain' });
  t.teardown(() => map.close());
  t.throws(() => new bpf.RingBufReader(map), { instanceOf: TypeError, message: "BpfMap 'plain' is a array map, not a ringbuf" });
  map.close();
  t.throws(() => new bpf.RingBufReader(map), { instanceOf: bpf.ClosedError });
});

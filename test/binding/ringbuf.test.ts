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

/** Records delivered per turn of the event loop (between two setImmediate callbacks), until stop(). */
function perTurn(reader: bpf.RingBufReader): { counts: number[]; stop(): void; total(): number } {
  const counts: number[] = [];
  let current = 0;
  let total = 0;
  let timer: NodeJS.Immediate | undefined;
  const onRecord = (): void => {
    current++;
    total++;
  };
  const turn = (): void => {
    if (current > 0) counts.push(current);
    current = 0;
    timer = setImmediate(turn);
  };
  reader.on('record', onRecord);
  turn();
  return {
    counts,
    total: () => total,
    stop() {
      clearImmediate(timer);
      reader.off('record', onRecord);
    },
  };
}

test('a producer that never pauses cannot hold the event loop: records come in slices of the budget', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('ringbuf')).load();
  t.teardown(() => coll.close());
  const reader = new bpf.RingBufReader(coll.map('events'), { budget: 64 });
  t.teardown(() => reader.close());
  const turns = perTurn(reader);
  let last = -1n;
  reader.on('record', (record) => (last = record.readBigUInt64LE(0)));
  // 400k records from a pool thread while the main thread reads: the ring (1 MiB,
  // 43690 records) is refilled as fast as it is read, for as long as the run lasts.
  await coll.program('produce').testRun({ data: emptyFrame, repeat: 400_000 });
  // The producer numbers the records it could reserve room for: read up to the last.
  const produced = coll.map('.bss').lookup(Buffer.alloc(4))!.readBigUInt64LE(0);
  while (last !== produced - 1n) await new Promise((resolve) => setImmediate(resolve));
  turns.stop();
  t.true(turns.counts.length > 100, `${turns.counts.length} turns of the loop read records`);
  t.true(Math.max(...turns.counts) <= 64, `at most one slice per turn of the loop, got ${Math.max(...turns.counts)}`);
});

test('an async iterator that falls behind holds one slice; the rest waits in the ring, none is lost', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('ringbuf')).load();
  t.teardown(() => coll.close());
  const reader = new bpf.RingBufReader(coll.map('events'), { budget: 100 });
  t.teardown(() => reader.close());
  const iterator = reader[Symbol.asyncIterator]();
  let seen = 0;
  reader.on('record', () => seen++);
  const run = await coll.program('produce').testRun({ data: emptyFrame, repeat: 5_000 });
  t.is(run.retval, 2, 'the ring had room for every record');
  // Many turns of the loop without a next(): the reader stops at one slice.
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
  t.true(reader.paused);
  t.true(seen >= 100 && seen <= 200, `${seen} records taken from the ring while the loop did not read`);
  for (let i = 0; i < 5_000; i++) {
    const { value, done } = await iterator.next();
    t.false(done);
    if (value.readBigUInt64LE(0) !== BigInt(i)) return t.fail(`record ${i} came as ${value.readBigUInt64LE(0)}`);
  }
  await iterator.return!();
  t.false(reader.paused, 'leaving the loop gives the reader back');
});

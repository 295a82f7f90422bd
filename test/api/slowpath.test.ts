// SlowPathService against a real netcubed: packet-ins reach the controller that
// owns the cube with their own metadata and the data plane's timestamp, in
// batches under load; packet-outs enter the data plane in batches, in order; bad
// sessions and packet-outs are refused precisely.

import anyTest, { TestFn } from 'ava';
import { ApiCallError, DaemonMessage } from '@netcube/api/grpc/client';
import { MAX_BATCH } from '../../node-daemon/src/api/slowpath';
import { ApiEnv, frame, openEnv, probeObjects, runCube } from './setup';
import { MAX_QUEUED } from '../../node-daemon/src/api/slowpath';
import { waitFor } from '../helpers/wait';

const test = anyTest as TestFn<ApiEnv>;

test.before(async (t) => {
  t.context = await openEnv();
  const { xdpObject, tcObject } = probeObjects();
  await t.context.client.registerType({ name: 'probe', xdpObject, tcObject });
  await t.context.client.createCube({ name: 'sp', type: 'probe', mode: 'MODE_XDP', ports: ['p0', 'p1'] });
  const put = (port: number, value: object): Promise<unknown> =>
    t.context.client.putEntry({ table: { cube: 'sp', table: 'probe_actions' }, entry: { keyJson: String(port), valueJson: JSON.stringify(value) } });
  await put(0, { op: 'PROBE_CONTROLLER', arg: 7, user0: 0x1234, log: 0 });
  await put(1, { op: 'PROBE_DROP', arg: 0, user0: 0, log: 0 });
});
test.after.always(async (t) => {
  await t.context?.close();
});

/** The next message of `it` that is of `kind`. */
async function next(it: AsyncIterator<DaemonMessage>, kind: DaemonMessage['kind']): Promise<DaemonMessage> {
  for (;;) {
    const m = await it.next();
    if (m.done) throw new Error(`the stream ended before a ${kind}`);
    if (m.value.kind === kind) return m.value;
  }
}

test.serial('a packet-in reaches the controller of its cube type, with its metadata and timestamp', async (t) => {
  const session = t.context.client.openSlowPath({ controller: 'test', types: ['probe'] });
  const it = session[Symbol.asyncIterator]();
  try {
    const welcome = await next(it, 'welcome');
    t.deepEqual(welcome.welcome?.cubes, ['sp']);
    const before = process.hrtime.bigint();
    t.is((await runCube(t.context, 'sp', 0)).verdict, 'drop');
    const after = process.hrtime.bigint();
    // Alone on an idle stream: a batch of one, at once.
    const batch = (await next(it, 'packetIns')).packetIns!.packets;
    t.is(batch.length, 1);
    const pin = batch[0];
    t.like(pin, { cube: 'sp', port: 'p0', reason: 7, user: [0x1234, 0, 0], wireLength: frame.length });
    t.deepEqual(pin.packet, frame);
    // bpf_ktime_get_ns and process.hrtime are the same clock (CLOCK_MONOTONIC).
    const ts = BigInt(pin.timestampNs);
    t.true(ts >= before && ts <= after, `timestamp ${ts} not within [${before}, ${after}]`);
  } finally {
    session.close();
  }
});

test.serial('packet-ins that arrive together leave together, in order, in batches of at most MAX_BATCH', async (t) => {
  const session = t.context.client.openSlowPath({ controller: 'test', cubes: ['sp'] });
  const it = session[Symbol.asyncIterator]();
  try {
    await next(it, 'welcome');
    const COUNT = 2 * MAX_BATCH + 100;
    // One test run, COUNT packets into the ring at once.
    await runCube(t.context, 'sp', 0, COUNT);
    const sizes: number[] = [];
    const stamps: bigint[] = [];
    while (stamps.length < COUNT) {
      const batch = (await next(it, 'packetIns')).packetIns!;
      t.is(batch.dropped, '0');
      sizes.push(batch.packets.length);
      for (const p of batch.packets) stamps.push(BigInt(p.timestampNs));
    }
    t.is(stamps.length, COUNT);
    t.true(stamps.every((ts, i) => i === 0 || ts >= stamps[i - 1]), 'in the order the data plane handed them over');
    t.true(sizes.every((n) => n <= MAX_BATCH), `batches of ${sizes.join(', ')}`);
    t.true(sizes.length < COUNT / 10, `${COUNT} packets in ${sizes.length} messages (${sizes.join(', ')})`);
    t.log(`${COUNT} packet-ins in ${sizes.length} messages: ${sizes.join(', ')}`);
  } finally {
    session.close();
  }
});

test.serial('a controller that reads too slowly loses packet-ins, and is told how many', async (t) => {
  const toController = async (): Promise<number> => Number((await t.context.client.getCube({ name: 'sp' })).ports.find((p) => p.name === 'p0')!.stats!.toController);
  const before = await toController();
  const session = t.context.client.openSlowPath({ controller: 'test', cubes: ['sp'] });
  const it = session[Symbol.asyncIterator]();
  try {
    await next(it, 'welcome');
    // More than the session holds (its queue, and what gRPC buffers), while nothing
    // is read: runs of the cube until that many were handed over, however many runs
    // the cube's slow-path token bucket takes to let them through.
    await waitFor(
      `over ${2 * MAX_QUEUED} packet-ins handed to the slow path`,
      async () => (await runCube(t.context, 'sp', 0, 8_000), (await toController()) - before > 2 * MAX_QUEUED),
      30_000,
      20,
    );
    const handed = (await toController()) - before;
    let received = 0;
    let dropped = 0;
    while (received + dropped < handed) {
      const batch = (await next(it, 'packetIns')).packetIns!;
      received += batch.packets.length;
      dropped += Number(batch.dropped);
    }
    t.log(`${handed} handed to the slow path: ${received} received, ${dropped} dropped for the slow reader`);
    t.true(dropped > 0, 'the session could not hold them all');
    t.is(received + dropped, handed, 'every packet is either received or counted as dropped');
  } finally {
    session.close();
  }
});

test.serial('a batch of packet-outs enters the data plane in order; the bad ones are refused one by one', async (t) => {
  const drops = async (): Promise<bigint> => BigInt((await t.context.client.getCube({ name: 'sp' })).ports.find((p) => p.name === 'p1')!.stats!.drops);
  const before = await drops();
  const session = t.context.client.openSlowPath({ controller: 'test', cubes: ['sp'] });
  const it = session[Symbol.asyncIterator]();
  try {
    await next(it, 'welcome');
    const good = (id: number) => ({ cube: 'sp', port: 'p1', direction: 'DIRECTION_INGRESS' as const, packet: frame, id });
    session.packetOuts([
      good(1),
      { cube: 'nope', port: 'p1', direction: 'DIRECTION_INGRESS', packet: frame, id: 2 },
      good(3),
      { cube: 'sp', port: 'p9', direction: 'DIRECTION_EGRESS', packet: frame, id: 4 },
      { cube: 'sp', port: 'p1', direction: 'DIRECTION_INGRESS', packet: frame.subarray(0, 10), id: 5 },
      good(6),
    ]);
    let err = (await next(it, 'packetOutError')).packetOutError!;
    t.is(err.id, '2');
    t.regex(err.message, /cube nope: no such cube on this host/);
    err = (await next(it, 'packetOutError')).packetOutError!;
    t.is(err.id, '4');
    t.regex(err.message, /has no port p9/);
    err = (await next(it, 'packetOutError')).packetOutError!;
    t.is(err.id, '5');
    t.regex(err.message, /Ethernet frame of 14/);
    await waitFor('the three good ones in the cube', async () => (await drops()) >= before + 3n, 5_000, 20);
    t.is(await drops(), before + 3n, 'the three good ones entered the cube');
    t.true(await session.drained().then(() => true));
  } finally {
    session.close();
  }
});

test.serial('a session must start with hello', async (t) => {
  const session = t.context.client.openSlowPath({ controller: 'test' });
  const err = await t.throwsAsync(async () => {
    for await (const m of session) void m;
  }, { instanceOf: ApiCallError });
  t.is(err?.codeName, 'INVALID_ARGUMENT');
  t.regex(err?.message ?? '', /name at least one cube type or cube/);
});

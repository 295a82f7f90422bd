// SlowPathService against a real netcubed: packet-ins reach the controller that
// owns the cube with their own metadata; packet-outs enter the data plane; bad
// sessions and packet-outs are refused precisely.

import anyTest, { TestFn } from 'ava';
import { ApiCallError, DaemonMessage } from '../../node-daemon/src/api/client';
import { ApiEnv, frame, openEnv, probeObjects, runCube } from './setup';

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

test.serial('a packet-in reaches the controller of its cube type, with its metadata', async (t) => {
  const session = t.context.client.openSlowPath({ controller: 'test', types: ['probe'] });
  const it = session[Symbol.asyncIterator]();
  try {
    const welcome = await next(it, 'welcome');
    t.deepEqual(welcome.welcome?.cubes, ['sp']);
    t.is((await runCube(t.context, 'sp', 0)).verdict, 'drop');
    const pin = (await next(it, 'packetIn')).packetIn!;
    t.like(pin, { cube: 'sp', port: 'p0', reason: 7, user: [0x1234, 0, 0], wireLength: frame.length, seq: '1' });
    t.deepEqual(pin.packet, frame);
  } finally {
    session.close();
  }
});

test.serial('a packet-out enters the cube through the port it names', async (t) => {
  const portStats = async (): Promise<bigint> => BigInt((await t.context.client.getCube({ name: 'sp' })).ports.find((p) => p.name === 'p1')!.stats!.drops);
  const before = await portStats();
  const session = t.context.client.openSlowPath({ controller: 'test', cubes: ['sp'] });
  const it = session[Symbol.asyncIterator]();
  try {
    await next(it, 'welcome');
    session.packetOut({ cube: 'sp', port: 'p1', direction: 'DIRECTION_INGRESS', packet: frame, id: 1 });
    for (let i = 0; i < 100 && (await portStats()) === before; i++) await new Promise((r) => setTimeout(r, 20));
    t.is(await portStats(), before + 1n);
    session.packetOut({ cube: 'nope', port: 'p1', direction: 'DIRECTION_INGRESS', packet: frame, id: 2 });
    const err = (await next(it, 'packetOutError')).packetOutError!;
    t.is(err.id, '2');
    t.regex(err.message, /cube nope: no such cube on this host/);
    session.packetOut({ cube: 'sp', port: 'p9', direction: 'DIRECTION_EGRESS', packet: frame, id: 3 });
    t.regex((await next(it, 'packetOutError')).packetOutError!.message, /has no port p9/);
    session.packetOut({ cube: 'sp', port: 'p1', direction: 'DIRECTION_INGRESS', packet: frame.subarray(0, 10), id: 4 });
    t.regex((await next(it, 'packetOutError')).packetOutError!.message, /Ethernet frame of 14/);
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

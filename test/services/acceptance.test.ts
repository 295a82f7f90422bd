// The acceptance test of the remote services (issue 5): pods on two hosts talk
// through bridge cubes (same host) and router cubes (across hosts, the routers linked
// by a veth between the hosts); the routers' control plane runs in a namespace of
// its own and reaches the daemons over TCP with mutual TLS. It answers every ARP for
// the routers' addresses, resolves next hops, answers pings to the routers.
// Killing it leaves established flows running; restarted, it resyncs. Killing a
// daemon (kill -9) leaves the data plane running; restarted, the service
// reconnects and resyncs. See testbed.ts for the topology.

import anyTest, { type TestFn } from 'ava';
import { ApiCallError, NetcubeClient } from '@netcube/api/grpc/client';
import { derivedMac } from '@netcube/sdk/codec';

import { TwoHosts, type PodName } from './testbed';
import { linkCounters, tcpTransfer } from '../helpers/traffic';
import { waitFor } from '../helpers/wait';

// ava hands each test a shallow copy of the context: the testbed rides in it whole.
const test = anyTest as TestFn<{ bed: TwoHosts }>;

test.before(async (t) => {
  t.context = { bed: await TwoHosts.open('tc') };
});
test.after.always(async (t) => {
  // A failed before hook leaves no testbed: open() removed what it had built.
  await t.context.bed?.close();
});
test.afterEach.always((t) => {
  const { bed } = t.context;
  if (!t.passed && bed) {
    t.log(`router service log:\n${bed.router.logTail(80)}`);
    t.log(`bridge service log:\n${bed.bridge.logTail(30)}`);
    for (const h of Object.values(bed.hosts)) t.log(`netcubed ${h.name} log:\n${h.daemon.logTail(30)}`);
  }
});

/** Pings `count` times, 10 a second; resolves with how many answers came back. */
async function ping(bed: TwoHosts, from: PodName, to: string, count: number, extra: string[] = []): Promise<{ sent: number; received: number; out: string }> {
  const r = await bed.pods[from].ns.exec('ping', ['-n', '-c', String(count), '-i', '0.1', '-W', '2', ...extra, to], { timeoutMs: 60_000 }).catch((err: Error) => ({ stdout: err.message }));
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), out: r.stdout };
}

/** tcpTransfer between two pods of the testbed. */
const transfer = (bed: TwoHosts, from: PodName, to: PodName, bytes: number, opts: Parameters<typeof tcpTransfer>[4] = {}) =>
  tcpTransfer(bed.pods[from].ns, bed.pods[to].ns, bed.pods[to].address, bytes, opts);

const daemonClient = (bed: TwoHosts, h: 'a' | 'b'): NetcubeClient => bed.hosts[h].daemon.client();

async function tableEntries(client: NetcubeClient, cube: string, table: string): Promise<{ key: unknown; value: unknown }[]> {
  const out = [];
  for await (const e of client.listEntries({ table: { cube, table } })) out.push({ key: JSON.parse(e.keyJson!), value: JSON.parse(e.valueJson!) });
  return out;
}

async function hostOf(bed: TwoHosts, host: string) {
  return (await bed.routerApi.getService()).hosts.find((h) => h.host === host);
}

test.serial('the services lead and reach both daemons over TCP with TLS', async (t) => {
  const { bed } = t.context;
  for (const api of [bed.routerApi, bed.bridgeApi]) {
    const info = await api.getService();
    t.true(info.leader);
    t.deepEqual(
      info.hosts.map((h) => [h.host, h.endpoint, h.connected, h.exactClock]).sort(),
      [
        [bed.hosts.a.name, bed.hosts.a.endpoint, true, true],
        [bed.hosts.b.name, bed.hosts.b.endpoint, true, true],
      ],
    );
  }
  // The daemons know the controller too.
  for (const h of Object.values(bed.hosts)) t.true(h.daemon.logTail(200).includes('"controller connected"'));
});

test.serial('pods on one host: ping and a TCP transfer through the bridge', async (t) => {
  const { bed } = t.context;
  const p = await ping(bed, 'a1', bed.pods.a2.address, 5);
  t.is(p.received, 5, p.out);
  const { sent, received } = await transfer(bed, 'a1', 'a2', 4 << 20);
  t.deepEqual(received, sent);
  // The bridge learnt both pods; its service shows the FDB with MACs formatted.
  const state = (await bed.bridgeApi.getState('br-a')) as { fdb: { mac: string; port: string }[] };
  t.like(state.fdb.find((e) => e.mac === bed.pods.a1.mac), { port: 'p1' });
  t.like(state.fdb.find((e) => e.mac === bed.pods.a2.mac), { port: 'p2' });
});

test.serial('pods across hosts: ARP answered by the remote control plane, ping and TCP through the routers', async (t) => {
  const { bed } = t.context;
  const before = await hostOf(bed, bed.hosts.a.name);
  const p = await ping(bed, 'a1', bed.pods.b1.address, 5);
  t.is(p.received, 5, p.out);
  // a1 learnt its gateway's MAC from an ARP reply, and only the router's control plane makes those.
  t.is(await bed.neighbourOf('a1', '10.1.0.1'), derivedMac('rt-a/lan'));
  t.is(await bed.neighbourOf('b1', '10.2.0.1'), derivedMac('rt-b/lan'));
  const after = await hostOf(bed, bed.hosts.a.name);
  t.true(Number(after!.packetsIn) > Number(before!.packetsIn) && Number(after!.packetsOut) > Number(before!.packetsOut), 'packets went through the slow path');
  // Each router resolved its next hops; the service shows them.
  const a = (await bed.routerApi.getState('rt-a')) as { neighbours: { address: string; mac: string; port: string }[] };
  t.like(a.neighbours.find((n) => n.address === '10.0.0.2'), { mac: derivedMac('rt-b/wan'), port: 'wan' });
  t.like(a.neighbours.find((n) => n.address === bed.pods.a1.address), { mac: bed.pods.a1.mac, port: 'lan' });
  const b = (await bed.routerApi.getState('rt-b')) as { neighbours: { address: string; mac: string }[] };
  t.like(b.neighbours.find((n) => n.address === bed.pods.b1.address), { mac: bed.pods.b1.mac });

  const { sent, received } = await transfer(bed, 'a1', 'b1', 8 << 20);
  t.deepEqual(received, sent);
  const back = await transfer(bed, 'b2', 'a2', 2 << 20, { port: 5002 });
  t.deepEqual(back.received, back.sent);
});

test.serial('the routers answer pings to their own addresses, and say when a TTL runs out', async (t) => {
  const { bed } = t.context;
  for (const address of ['10.1.0.1', '10.0.0.1', '10.0.0.2', '10.2.0.1']) {
    const p = await ping(bed, 'a1', address, 3);
    t.is(p.received, 3, `${address}: ${p.out}`);
  }
  const ttl = await ping(bed, 'a1', bed.pods.b1.address, 1, ['-t', '1']);
  t.regex(ttl.out, /From 10\.1\.0\.1 icmp_seq=1 Time to live exceeded/);
  const ttl2 = await ping(bed, 'a1', bed.pods.b1.address, 1, ['-t', '2']);
  t.regex(ttl2.out, /From 10\.0\.0\.2 icmp_seq=1 Time to live exceeded/);
});

test.serial('the router control plane killed: established flows go on; restarted, it resyncs and resolves again', async (t) => {
  const { bed } = t.context;
  // A paced transfer and a ping stream, both across the hosts, established, then over the kill.
  t.is((await ping(bed, 'b2', bed.pods.a2.address, 3)).received, 3, 'the flow is established');
  const pinging = ping(bed, 'b2', bed.pods.a2.address, 40);
  const { sent, received } = await transfer(bed, 'a1', 'b1', 3 << 20, {
    chunk: 64 << 10,
    everyMs: 50,
    during: async () => {
      // Killed once the transfer is under way: b1 has received a hundred of its packets.
      const base = (await linkCounters(bed.pods.b1.ns, 'eth0')).rxPackets;
      await waitFor('the transfer under way', async () => (await linkCounters(bed.pods.b1.ns, 'eth0')).rxPackets >= base + 100, 10_000, 20);
      await bed.router.kill();
    },
  });
  t.deepEqual(received, sent, 'the transfer went through');
  const p = await pinging;
  t.is(p.received, p.sent, `no ping lost: ${p.out}`);
  t.false(bed.router.running);

  // Meanwhile the tables drift: a router address and the neighbours go.
  const a = daemonClient(bed, 'a');
  const b = daemonClient(bed, 'b');
  t.teardown(() => [a, b].forEach((c) => c.close()));
  await a.deleteEntry({ table: { cube: 'rt-a', table: 'local_addrs' }, entry: { keyJson: JSON.stringify('10.1.0.1') } });
  for (const { key } of await tableEntries(b, 'rt-b', 'neighbours')) await b.deleteEntry({ table: { cube: 'rt-b', table: 'neighbours' }, entry: { keyJson: JSON.stringify(key) } });
  // Without its control plane, rt-b cannot resolve b1 again.
  t.is((await ping(bed, 'a1', bed.pods.b1.address, 2)).received, 0);

  await bed.router.restart();
  await bed.ready();
  t.deepEqual(await tableEntries(a, 'rt-a', 'local_addrs').then((es) => es.map((e) => e.key).sort()), ['10.1.0.1', '10.0.0.1'].sort(), 'tables rewritten');
  const pg = await ping(bed, 'a1', '10.1.0.1', 2);
  t.is(pg.received, 2, `the gateway answers again: ${pg.out}`);
  const pb = await ping(bed, 'a1', bed.pods.b1.address, 3);
  t.is(pb.received, 3, `pending ARP resolved again: ${pb.out}`);
  t.true((await tableEntries(b, 'rt-b', 'neighbours')).length >= 2);
});

test.serial('a daemon killed (kill -9): its data plane forwards on; restarted, the service reconnects and resyncs', async (t) => {
  const { bed } = t.context;
  const hostB = bed.hosts.b;
  const before = (await hostOf(bed, hostB.name))!;
  t.is((await ping(bed, 'a2', bed.pods.b2.address, 3)).received, 3, 'the flow is established');
  const base = (await linkCounters(bed.pods.b2.ns, 'eth0')).rxPackets;
  const pinging = ping(bed, 'a2', bed.pods.b2.address, 30);
  await waitFor('the pings under way', async () => (await linkCounters(bed.pods.b2.ns, 'eth0')).rxPackets >= base + 3, 10_000, 20);
  await hostB.daemon.kill();
  await waitFor('the service to see host b gone', async () => !(await hostOf(bed, hostB.name))!.connected, 10_000);
  const p = await pinging;
  t.is(p.received, p.sent, `no ping lost while netcubed was down: ${p.out}`);

  await hostB.daemon.restart();
  const after = await waitFor(
    'the service to reconnect and resync host b',
    async () => {
      const h = (await hostOf(bed, hostB.name))!;
      return h.connected && Number(h.resyncs) > Number(before.resyncs) ? h : undefined;
    },
    30_000,
  );
  t.is(Number(after.connects), Number(before.connects) + 1);
  t.is(after.endpoint, hostB.endpoint);
  await bed.ready();

  // The slow path works through the new daemon: forget the neighbours, and they come back by ARP.
  const b = daemonClient(bed, 'b');
  t.teardown(() => b.close());
  for (const { key } of await tableEntries(b, 'rt-b', 'neighbours')) await b.deleteEntry({ table: { cube: 'rt-b', table: 'neighbours' }, entry: { keyJson: JSON.stringify(key) } });
  const pb = await ping(bed, 'a2', bed.pods.b2.address, 3);
  t.is(pb.received, 3, pb.out);
  const { sent, received } = await transfer(bed, 'b1', 'a1', 2 << 20, { port: 5003 });
  t.deepEqual(received, sent);
});

test.serial('a network cut between the control plane and a host: found, reconnected after it, resynced', async (t) => {
  const { bed } = t.context;
  const hostB = bed.hosts.b;
  const before = (await hostOf(bed, hostB.name))!;
  t.true(before.connected);
  // No reset announces a cut: the service finds it by its health checks.
  await bed.ctl.exec('ip', ['link', 'set', 'dev', 'mb', 'down']);
  try {
    await waitFor('the service to notice the cut', async () => !(await hostOf(bed, hostB.name))!.connected, 20_000, 250);
    const p = await ping(bed, 'a1', bed.pods.b1.address, 5);
    t.is(p.received, 5, `the data plane does not need its control plane for known flows: ${p.out}`);
  } finally {
    await bed.ctl.exec('ip', ['link', 'set', 'dev', 'mb', 'up']);
  }
  const after = await waitFor(
    'reconnected and resynced',
    async () => {
      const h = (await hostOf(bed, hostB.name))!;
      return h.connected && Number(h.resyncs) > Number(before.resyncs) ? h : undefined;
    },
    30_000,
    250,
  );
  t.true(Number(after.connects) > Number(before.connects));
  t.not(after.lastError, '', 'the last failure is shown');
  // The new session gets the packets: ARP works through it.
  const b = daemonClient(bed, 'b');
  t.teardown(() => b.close());
  for (const { key } of await tableEntries(b, 'rt-b', 'neighbours')) await b.deleteEntry({ table: { cube: 'rt-b', table: 'neighbours' }, entry: { keyJson: JSON.stringify(key) } });
  t.is((await ping(bed, 'a1', bed.pods.b1.address, 3)).received, 3);
});

test.serial('a follower replica takes over when the leader dies, and serves the same flows', async (t) => {
  const { bed } = t.context;
  const { ServiceProcess } = await import('./helpers.js');
  const tls = { ca: bed.certs.ca, ...bed.certs.service('router') };
  const second = await ServiceProcess.start({ service: 'router', etcd: bed.etcd.endpoints, name: 'router-2', netns: bed.ctl, etcdBridged: true, tls });
  t.teardown(() => second.cleanup());
  const api2 = second.client();
  t.teardown(() => api2.close());
  await waitFor('router-2 to follow', async () => (await api2.getService()).leaderReplica === 'router-1');
  await bed.router.kill();
  await waitFor('router-2 to lead', async () => (await api2.getService()).leader, 15_000);
  await waitFor('router-2 to have every cube ready', async () => (await api2.listCubes()).every((c) => c.ready), 20_000);
  const b = daemonClient(bed, 'b');
  t.teardown(() => b.close());
  for (const { key } of await tableEntries(b, 'rt-b', 'neighbours')) await b.deleteEntry({ table: { cube: 'rt-b', table: 'neighbours' }, entry: { keyJson: JSON.stringify(key) } });
  const p = await ping(bed, 'a1', bed.pods.b1.address, 3);
  t.is(p.received, 3, p.out);
  // Back to the usual replica for whatever comes next.
  await bed.router.restart();
  const err = await t.throwsAsync(bed.routerApi.getState('rt-a'), { instanceOf: ApiCallError });
  t.true(err === undefined || ['FAILED_PRECONDITION', 'UNAVAILABLE'].includes(err.codeName));
});

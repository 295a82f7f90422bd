// The services with the data plane in XDP mode, where a bridge cannot copy a frame:
// every broadcast and unknown unicast goes to the bridge's control plane, which
// floods it with packet-outs. Same testbed as the acceptance test (testbed.ts);
// also the services' aging: the bridge's FDB and the router's neighbours.

import anyTest, { type TestFn } from 'ava';
import type { NetcubeClient } from '@netcube/api/grpc/client';

import { TwoHosts, type PodName } from './testbed';
import { tcpTransfer } from '../helpers/traffic';
import { waitFor } from '../helpers/wait';

const test = anyTest as TestFn<{ bed: TwoHosts }>;

test.before(async (t) => {
  t.context = { bed: await TwoHosts.open('xdp') };
});
test.after.always(async (t) => {
  await t.context.bed?.close();
});
test.afterEach.always((t) => {
  const { bed } = t.context;
  if (!t.passed && bed) {
    t.log(`bridge service log:\n${bed.bridge.logTail(60)}`);
    t.log(`router service log:\n${bed.router.logTail(40)}`);
  }
});

async function ping(bed: TwoHosts, from: PodName, to: string, count: number): Promise<{ received: number; out: string }> {
  const r = await bed.pods[from].ns.exec('ping', ['-n', '-c', String(count), '-i', '0.1', '-W', '2', to], { timeoutMs: 60_000 }).catch((err: Error) => ({ stdout: err.message }));
  return { received: Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0), out: r.stdout };
}

async function fdb(client: NetcubeClient, cube: string): Promise<unknown[]> {
  const out = [];
  for await (const e of client.listEntries({ table: { cube, table: 'fdb' } })) out.push(JSON.parse(e.keyJson!));
  return out;
}

test.serial('pods on one host: the bridge\'s control plane floods what XDP cannot', async (t) => {
  const { bed } = t.context;
  const before = (await bed.bridgeApi.getService()).hosts.find((h) => h.host === bed.hosts.a.name)!;
  const p = await ping(bed, 'a1', bed.pods.a2.address, 5);
  t.is(p.received, 5, p.out);
  const after = (await bed.bridgeApi.getService()).hosts.find((h) => h.host === bed.hosts.a.name)!;
  t.true(Number(after.packetsIn) > Number(before.packetsIn), 'floods went through the control plane');
  t.true(Number(after.packetsOut) >= 2 * (Number(after.packetsIn) - Number(before.packetsIn)), 'each flooded to both other ports');
  const state = (await bed.bridgeApi.getState('br-a')) as { fdb: { mac: string; port: string; vlan: number }[] };
  t.like(state.fdb.find((e) => e.mac === bed.pods.a1.mac), { port: 'p1', vlan: 0 });
  t.like(state.fdb.find((e) => e.mac === bed.pods.a2.mac), { port: 'p2', vlan: 0 });
});

test.serial('pods across hosts: ARP through the bridge\'s and the router\'s control planes, then ping and TCP', async (t) => {
  const { bed } = t.context;
  const p = await ping(bed, 'a2', bed.pods.b1.address, 5);
  t.is(p.received, 5, p.out);
  const { sent, received } = await tcpTransfer(bed.pods.a2.ns, bed.pods.b1.ns, bed.pods.b1.address, 2 << 20);
  t.deepEqual(received, sent);
});

test.serial('aging: the bridge forgets MACs not seen for agingSeconds; traffic teaches them again', async (t) => {
  const { bed } = t.context;
  const client = bed.hosts.a.daemon.client();
  t.teardown(() => client.close());
  await ping(bed, 'a1', bed.pods.a2.address, 2);
  t.true((await fdb(client, 'br-a')).length >= 2);
  await bed.bridgeApi.setConfig({ cube: 'br-a', config: { agingSeconds: 2 } });
  await waitFor('the FDB aged out', async () => (await fdb(client, 'br-a')).length === 0, 10_000);
  const p = await ping(bed, 'a1', bed.pods.a2.address, 3);
  t.is(p.received, 3, p.out);
  t.true((await fdb(client, 'br-a')).length >= 2);
  await bed.bridgeApi.setConfig({ cube: 'br-a', config: {} });
});

test.serial('aging: the router asks neighbours again after the timeout, keeps those that answer, forgets the gone', async (t) => {
  const { bed } = t.context;
  await ping(bed, 'b1', bed.pods.b2.address, 1);
  t.is((await ping(bed, 'a1', bed.pods.b1.address, 2)).received, 2);
  t.is((await ping(bed, 'a1', bed.pods.b2.address, 2)).received, 2);
  const neighbours = async () => ((await bed.routerApi.getState('rt-b')) as { neighbours: { address: string; ageSeconds: number }[] }).neighbours;
  t.truthy((await neighbours()).find((n) => n.address === bed.pods.b2.address));
  // b2 goes away; b1 stays and answers.
  await bed.pods.b2.ns.exec('ip', ['link', 'set', 'dev', 'eth0', 'down']);
  await bed.routerApi.setConfig({
    cube: 'rt-b',
    config: {
      ports: { lan: { address: '10.2.0.1/24' }, wan: { address: '10.0.0.2/30' } },
      routes: [{ prefix: '10.1.0.0/24', nexthop: '10.0.0.1', port: 'wan' }],
      neighbourTimeoutSeconds: 2,
    },
  });
  await waitFor('b2 forgotten', async () => !(await neighbours()).some((n) => n.address === bed.pods.b2.address), 20_000, 250);
  const b1 = (await neighbours()).find((n) => n.address === bed.pods.b1.address);
  t.truthy(b1, 'b1 answered and stays');
  t.true(b1!.ageSeconds < 4, `b1 confirmed ${b1!.ageSeconds} s ago`);
  await bed.pods.b2.ns.exec('ip', ['link', 'set', 'dev', 'eth0', 'up']);
  await bed.pods.b2.ns.exec('ip', ['route', 'replace', 'default', 'via', '10.2.0.1']);
  t.is((await ping(bed, 'a1', bed.pods.b2.address, 3)).received, 3, 'b2 resolved again once back');
});

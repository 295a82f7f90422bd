// The NAT service end to end (issue 14): pods behind a router whose outside port
// has a nat cube stacked on it, programmed by netcube-nat (and the router by
// netcube-router), with real traffic to an "outside" namespace that has no route
// to the pods: what reaches them came back translated. Ping, TCP and UDP; ICMP
// errors; port forwarding in; masquerade following the port's address; 10,000
// parallel UDP flows from one pod on distinct ports; expiry freeing ports and
// the expired flows collected; the NAT table kept over netcubed's kill -9 and the
// service's restart.
//
//   pod n1 (10.1.1.11) ── n1 ┐
//   pod n2 (10.1.2.11) ── n2 ┤ rt (router) wan ─[nat]─ wan ══ eth0 outside (172.16.0.2/24)
//                             host      10.1.x.1 | 172.16.0.1

import { spawn } from 'node:child_process';
import anyTest, { type TestFn } from 'ava';
import type { JsonObject } from '@netcube/api/chain';
import { ApiCallError } from '@netcube/api/grpc/client';
import type { ServiceClient } from '@netcube/sdk';
import type { Netns } from '../helpers/netns';
import { tcpTransfer } from '../helpers/traffic';
import { waitFor } from '../helpers/wait';
import { netcubectl } from '../cli/run';
import { CatalogBed, logOnFailure, type Pod, type SocketsProcess } from './catalog-bed';

interface Context {
  bed: CatalogBed;
  n1: Pod;
  n2: Pod;
  outside: Pod;
  outsideServers: SocketsProcess;
  n2Servers: SocketsProcess;
  router: ServiceClient;
}
const test = anyTest as TestFn<Context>;

const NAT_ADDRESS = '172.16.0.1';
const BASE = {
  snat: [{ from: '10.1.0.0/16', masquerade: true }],
  dnat: [{ address: NAT_ADDRESS, protocol: 'tcp', port: 8080, to: '10.1.2.11', toPort: 5001 }],
};

function chain(host: string, wan: string, nat: unknown, tableSizes?: Record<string, number>): string {
  return `apiVersion: netcube/v1
kind: Chain
metadata: { name: edge }
spec:
  cubes:
    - name: rt
      host: ${host}
      type: router
      mode: tc
      ports: [p1, p2, wan]
      params:
        ports:
          p1: { address: 10.1.1.1/24 }
          p2: { address: 10.1.2.1/24 }
          wan: { address: ${wan}/24 }
    - { name: nat, host: ${host}, type: nat, mode: tc, params: ${JSON.stringify(nat)}${tableSizes ? `, tableSizes: ${JSON.stringify(tableSizes)}` : ''} }
  links:
    - { from: rt:p1, to: netdev:n1 }
    - { from: rt:p2, to: netdev:n2 }
    - { from: rt:wan, to: netdev:wan }
  attachments:
    - { cube: nat, to: rt:wan, direction: both }
`;
}

interface Translation {
  protocol: string;
  inside: string;
  outside: string;
  peer: string;
}
interface NatState {
  masquerade?: { ipv4?: string };
  counters: Record<string, number>;
  flows: number;
  translations: Translation[];
}

/** The nat service's config API (a restart in a test replaces it). */
const natApi = (bed: CatalogBed): ServiceClient => bed.services.get('nat-1')!.api;
const state = async (bed: CatalogBed): Promise<NatState> => (await natApi(bed).getState('nat')) as unknown as NatState;
const portOf = (end: string): number => Number(end.slice(end.lastIndexOf(':') + 1));
const addressOf = (end: string): string => end.slice(0, end.lastIndexOf(':'));

/** Sets the nat's config and waits until its rules are in its tables (SNAT rules counted). */
async function setNat(t: { context: Context }, config: object, snatRules: number): Promise<void> {
  const { bed } = t.context;
  const nat = natApi(bed);
  await nat.setConfig({ cube: 'nat', config: config as JsonObject });
  const c = bed.daemon.client();
  try {
    await waitFor('the NAT rules written', async () => {
      const rules = [];
      for await (const e of c.listEntries({ table: { cube: 'nat', table: 'nat_snat_rules' } })) rules.push(e);
      const cubes = await nat.listCubes();
      return rules.length === snatRules && cubes.every((x) => x.ready && !x.problem);
    });
  } finally {
    c.close();
  }
}

/**
 * The IPv4 sources of the frames `ns` receives on eth0, counted by a packet socket
 * (python: node has none) until stop().
 */
async function capture(ns: Netns): Promise<{ stop(): Promise<Record<string, number>> }> {
  const script = [
    'import json, select, socket, sys',
    's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)',
    's.bind(("eth0", 0))',
    'seen = {}',
    'def take(data, addr):',
    '    if addr[2] != socket.PACKET_OUTGOING:',
    '        src = socket.inet_ntoa(data[26:30])',
    '        seen[src] = seen.get(src, 0) + 1',
    'print("ready", flush=True)',
    'while sys.stdin not in select.select([s, sys.stdin], [], [])[0]:',
    '    take(*s.recvfrom(65535))',
    's.setblocking(False)',
    'try:',
    '    while True: take(*s.recvfrom(65535))',
    'except BlockingIOError:',
    '    pass',
    'print(json.dumps(seen), flush=True)',
  ].join('\n');
  const child = spawn('ip', ['netns', 'exec', ns.name, 'python3', '-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor('the capture ready', () => {
    if (child.exitCode !== null) throw new Error(`capture exited: ${err}`);
    return out.startsWith('ready\n');
  });
  return {
    async stop() {
      child.stdin.end();
      await exited;
      return JSON.parse(out.split('\n')[1]) as Record<string, number>;
    },
  };
}

/** Peers the outside's servers saw on `port` (TCP or UDP), from line `from` of their output on. */
const peersOn = (servers: SocketsProcess, proto: 'tcp' | 'udp', port: number, from = 0): string[] =>
  servers.lines.slice(from).filter((l) => l[proto] === port).map((l) => l.peer as string);

/** The distinct peers of `port` from line `from` on, once there are `count` (their lines come on their own time). */
const distinctPeers = (servers: SocketsProcess, proto: 'tcp' | 'udp', port: number, from: number, count: number): Promise<string[]> =>
  waitFor(`${count} peers on ${proto} ${port}`, () => {
    const peers = [...new Set(peersOn(servers, proto, port, from))];
    return peers.length >= count ? peers : undefined;
  });

test.before(async (t) => {
  const bed = await CatalogBed.open();
  t.context = { bed } as Context;
  const n1 = await bed.pod('n1', '10.1.1.11/24', '10.1.1.1');
  const n2 = await bed.pod('n2', '10.1.2.11/24', '10.1.2.1');
  // The outside has no route to the pods: only what comes from the NAT address gets answers.
  const outside = await bed.pod('wan', '172.16.0.2/24');
  const outsideServers = await bed.background(outside.ns, ['serve', 'outside', '7000', '7000,7001']);
  const n2Servers = await bed.background(n2.ns, ['serve', 'n2', '5001', '-']);
  await outsideServers.line('servers ready', (l) => l.ready === true);
  await n2Servers.line('servers ready', (l) => l.ready === true);
  await bed.apply(chain(bed.hostName, NAT_ADDRESS, BASE));
  const router = await bed.service('router');
  const nat = await bed.service('nat');
  await bed.ready(router.api, 1);
  await bed.ready(nat.api, 1);
  t.context = { bed, n1, n2, outside, outsideServers, n2Servers, router: router.api };
});
test.after.always(async (t) => {
  await t.context.bed?.close();
});
test.afterEach.always((t) => logOnFailure(t));

test.serial('pods reach the outside through the NAT (ping, TCP, UDP), and the outside sees only the NAT address', async (t) => {
  const { bed, n1, n2, outside, outsideServers } = t.context;
  const cap = await capture(outside.ns);
  let sources: Record<string, number> = {};
  try {
    await n1.ns.exec('ping', ['-n', '-c', '3', '-i', '0.1', '-W', '2', outside.address]);
    t.like(await bed.sockets(n1.ns, ['connect', outside.address, 7000, 3000]), { result: 'greeting', greeting: 'outside' });
    const { sent, received } = await tcpTransfer(n1.ns, outside.ns, outside.address, 4 << 20, { port: 5002 });
    t.deepEqual(received, sent, 'a TCP transfer through the NAT');
    t.like(await bed.sockets(n2.ns, ['udp', outside.address, 7000, 5, 3000]), { sent: 5, echoed: 5 });
  } finally {
    sources = await cap.stop();
  }
  t.deepEqual(Object.keys(sources), [NAT_ADDRESS], `the outside received from: ${JSON.stringify(sources)}`);
  t.true(sources[NAT_ADDRESS] > 3 + 5, 'the capture saw the traffic');
  const peers = [...(await distinctPeers(outsideServers, 'tcp', 7000, 0, 1)), ...(await distinctPeers(outsideServers, 'udp', 7000, 0, 1))];
  t.true(peers.every((p) => addressOf(p) === NAT_ADDRESS), peers.join(' '));

  // The NAT table, through the service: each pod's flows and what they became.
  const s = await state(t.context.bed);
  t.deepEqual(s.masquerade, { ipv4: NAT_ADDRESS });
  const udpFlow = s.translations.find((x) => x.protocol === 'udp' && x.inside.startsWith('10.1.2.11:') && x.peer === '172.16.0.2:7000');
  t.truthy(udpFlow, JSON.stringify(s.translations));
  t.is(addressOf(udpFlow!.outside), NAT_ADDRESS);
  t.true(peersOn(outsideServers, 'udp', 7000).includes(udpFlow!.outside), 'the outside saw the translated end');
  t.truthy(s.translations.find((x) => x.protocol === 'icmp' && x.inside.startsWith('10.1.1.11 id')));
  t.true(s.counters.newSnat >= 4);
  // The same through netcubectl: the service's view, and the table itself with addresses as text.
  const shown = await netcubectl(['state', 'nat', '-o', 'json'], { etcd: bed.etcd.endpoints });
  t.is(shown.code, 0, shown.stderr);
  t.truthy((JSON.parse(shown.stdout) as NatState).translations.find((x) => x.inside === udpFlow!.inside && x.outside === udpFlow!.outside));
  const dump = await netcubectl(['table', 'dump', 'nat', 'nat_sessions', '-o', 'json'], { etcd: bed.etcd.endpoints });
  t.is(dump.code, 0, dump.stderr);
  const sessions = JSON.parse(dump.stdout) as { key: { saddr: string; sport: number }; value: { addr: string; port: number } }[];
  t.truthy(sessions.find((e) => e.key.saddr === '::ffff:10.1.2.11' && `${e.value.addr.slice(7)}:${e.value.port}` === udpFlow!.outside));
});

test.serial('an ICMP error about a translated flow reaches the pod translated', async (t) => {
  const { bed, n1, outside } = t.context;
  // Nothing listens on UDP 7999 outside: its port unreachable, sent to the NAT
  // address about the translated datagram, must reach the pod's socket.
  t.like(await bed.sockets(n1.ns, ['udp', outside.address, 7999, 1, 3000]), { echoed: 0, error: 'ECONNREFUSED' });
  t.true((await state(t.context.bed)).counters.icmpErrors >= 1);
});

test.serial('port forwarding: the outside reaches a pod\'s server through the NAT address', async (t) => {
  const { bed, outside, n2Servers } = t.context;
  const from = n2Servers.lines.length;
  t.like(await bed.sockets(outside.ns, ['connect', NAT_ADDRESS, 8080, 3000]), { result: 'greeting', greeting: 'n2' });
  const peer = (await n2Servers.line('the connection at n2', (l) => l.tcp === 5001, from)).peer as string;
  t.is(addressOf(peer), outside.address, 'the pod sees the outside\'s own address (DNAT only)');
  t.like(await bed.sockets(outside.ns, ['connect', NAT_ADDRESS, 8081, 1500]), { result: 'timeout' }, 'a port not forwarded goes nowhere');
  t.true((await state(t.context.bed)).counters.newDnat >= 1);
});

test.serial('masquerade takes the address of the port it leaves by, and follows it', async (t) => {
  const { bed, n1, outside, outsideServers } = t.context;
  // The router's outside port gets another address, in the chain.
  await bed.apply(chain(bed.hostName, '172.16.0.3', BASE));
  await waitFor('the nat masquerading as the new address', async () => (await state(t.context.bed)).masquerade?.ipv4 === '172.16.0.3', 20_000);
  await waitFor('the router on its new address', async () => {
    const rt = (await t.context.router.getState('rt')) as { ports?: { address?: string }[] };
    return JSON.stringify(rt).includes('172.16.0.3');
  });
  const from = outsideServers.lines.length;
  t.like(await bed.sockets(n1.ns, ['udp', outside.address, 7001, 2, 3000]), { echoed: 2 });
  t.deepEqual((await distinctPeers(outsideServers, 'udp', 7001, from, 1)).map(addressOf), ['172.16.0.3']);
  await bed.apply(chain(bed.hostName, NAT_ADDRESS, BASE));
  await waitFor('the nat masquerading as the first address again', async () => (await state(t.context.bed)).masquerade?.ipv4 === NAT_ADDRESS, 20_000);
});

test.serial('sizing the NAT tables in the chain loads the nat anew, and the service writes its config into the new cube', async (t) => {
  const { bed, n1, outside } = t.context;
  const c = bed.daemon.client();
  t.teardown(() => c.close());
  const before = await c.getCube({ name: 'nat' });
  await bed.apply(chain(bed.hostName, NAT_ADDRESS, BASE, { nat_ct: 4096, nat_sessions: 8192 }));
  await waitFor('the nat loaded anew with its tables sized, and the service ready on it', async () => {
    const cube = await c.getCube({ name: 'nat' });
    if (cube.id === before.id || cube.tableSizes.nat_ct !== 4096) return false;
    const rules = [];
    for await (const e of c.listEntries({ table: { cube: 'nat', table: 'nat_snat_rules' } })) rules.push(e);
    return rules.length === 1 && (await natApi(bed).listCubes()).every((x) => x.ready && !x.problem);
  });
  const sizes = new Map((await c.listTables({ cube: 'nat' })).tables.map((x) => [x.name, x.maxEntries]));
  t.deepEqual([sizes.get('nat_ct'), sizes.get('nat_sessions'), sizes.get('nat_dnat_rules')], [4096, 8192, 4096]);
  t.like(await bed.sockets(n1.ns, ['udp', outside.address, 7001, 2, 3000]), { echoed: 2 }, 'translated through the new cube');

  // Back to the sizes the nat was built with, for the tests after this one.
  await bed.apply(chain(bed.hostName, NAT_ADDRESS, BASE));
  await waitFor('the nat at its built sizes, and the service ready on it', async () => {
    const cube = await c.getCube({ name: 'nat' });
    if (Object.keys(cube.tableSizes).length > 0) return false;
    const rules = [];
    for await (const e of c.listEntries({ table: { cube: 'nat', table: 'nat_snat_rules' } })) rules.push(e);
    return rules.length === 1 && (await natApi(bed).listCubes()).every((x) => x.ready && !x.problem);
  });
  t.like(await bed.sockets(n1.ns, ['udp', outside.address, 7001, 2, 3000]), { echoed: 2 });
});

test.serial('a bad config is refused, naming the field', async (t) => {
  const nat = natApi(t.context.bed);
  for (const [config, field] of [
    [{ snat: [{ from: '10.1.0.0/16' }] }, 'config.snat[0]'],
    [{ snat: [{ from: '10.1.0.1/16', masquerade: true }] }, 'config.snat[0].from'],
    [{ snat: [{ from: '10.1.0.0/16', to: '172.16.0.9', ports: '0-100' }] }, 'config.snat[0].ports'],
    [{ dnat: [{ address: NAT_ADDRESS, protocol: 'tcp', port: '80-90', to: '10.1.2.11', toPort: 8080 }] }, 'config.dnat[0].toPort'],
    [{ dnat: [{ address: NAT_ADDRESS, protocol: 'tcp', to: '10.1.2.11' }] }, 'config.dnat[0].port'],
  ] as const) {
    const err = await t.throwsAsync(nat.setConfig({ cube: 'nat', config: config as unknown as JsonObject }), { instanceOf: ApiCallError });
    t.is(err?.codeName, 'INVALID_ARGUMENT');
    t.true(err?.message.includes(`${field}:`), err?.message);
  }
});

test.serial('10,000 parallel UDP flows from one pod get 10,000 distinct ports', async (t) => {
  const { bed, n1, outside, outsideServers } = t.context;
  const FLOWS = 10_000;
  const from = outsideServers.lines.length;
  const r = await bed.sockets<{ echoed: number; errors: number }>(n1.ns, ['flows', outside.address, 7000, FLOWS, 60_000], 120_000);
  t.is(r.echoed, FLOWS, 'every flow got its answer back');
  const seen = await distinctPeers(outsideServers, 'udp', 7000, from, FLOWS);
  t.is(seen.length, FLOWS, 'the outside saw as many distinct sources');
  t.true(seen.every((p) => addressOf(p) === NAT_ADDRESS));
  const s = await state(t.context.bed);
  const mine = s.translations.filter((x) => x.protocol === 'udp' && x.inside.startsWith('10.1.1.11:') && x.peer === '172.16.0.2:7000' && addressOf(x.outside) === NAT_ADDRESS);
  t.true(mine.length >= FLOWS);
  t.is(new Set(mine.map((x) => portOf(x.outside))).size, mine.length, 'no two flows share an outside port');
  t.true(seen.every((p) => mine.some((x) => x.outside === p)), 'the NAT table has every port the outside saw');
});

test.serial('an expired flow frees its port, and the service collects its entries', async (t) => {
  const { bed, n2, outside, outsideServers } = t.context;
  // n2 gets four ports; flows live 2 s without packets.
  await setNat(t, { ...BASE, snat: [{ from: '10.1.2.0/24', masquerade: true, ports: '40000-40003' }, ...BASE.snat], conntrack: { udp: 2, udpStream: 2 } }, 2);
  const from = outsideServers.lines.length;
  // Five flows at once: four get the four ports, the fifth none.
  // (For 1.5 s: before the four expire, 2 s after their last packet.)
  t.like(await bed.sockets(n2.ns, ['flows', outside.address, 7001, 5, 1500]), { echoed: 4 });
  const ports = (await distinctPeers(outsideServers, 'udp', 7001, from, 4)).map(portOf).sort();
  t.deepEqual(ports, [40000, 40001, 40002, 40003]);
  t.true((await state(t.context.bed)).counters.noPort >= 1, 'the fifth flow found no port');
  // Expired, their sessions go from the NAT table.
  const n2Flows = async () => (await state(t.context.bed)).translations.filter((x) => x.inside.startsWith('10.1.2.11:') && x.peer === '172.16.0.2:7001');
  await waitFor('the expired flows collected', async () => (await n2Flows()).length === 0, 30_000, 1000);
  // Their ports are free again.
  const again = outsideServers.lines.length;
  t.like(await bed.sockets(n2.ns, ['flows', outside.address, 7001, 4, 3000]), { echoed: 4 });
  t.deepEqual((await distinctPeers(outsideServers, 'udp', 7001, again, 4)).map(portOf).sort(), [40000, 40001, 40002, 40003]);
  await setNat(t, BASE, 1);
});

test.serial('netcubed killed (kill -9) and the service restarted: the NAT table stays, flows go on', async (t) => {
  const { bed, n1, outside } = t.context;
  const hold = await bed.background(n1.ns, ['hold', outside.address, 7000, 4]);
  await hold.line('connections held', (l) => Array.isArray(l.greetings));
  t.deepEqual(hold.lines[0].greetings, ['outside', 'outside', 'outside', 'outside']);
  const probe = async (): Promise<boolean[]> => {
    const from = hold.lines.length;
    hold.send('probe 2000');
    return (await hold.line('probe answers', (l) => Array.isArray(l.answered), from)).answered as boolean[];
  };
  const locals = hold.lines[0].locals as string[];
  const tcpFlows = async () =>
    (await state(t.context.bed)).translations
      .filter((x) => x.protocol === 'tcp' && locals.includes(x.inside))
      .map((x) => `${x.inside} ${x.outside}`)
      .sort();
  const before = await tcpFlows();
  t.is(before.length, 4);

  await bed.daemon.kill();
  t.deepEqual(await probe(), [true, true, true, true], 'held connections answered while netcubed was down');
  await bed.daemon.restart();
  await bed.ready(natApi(bed), 1);
  t.deepEqual(await probe(), [true, true, true, true]);
  t.deepEqual(await tcpFlows(), before, 'the same translations after the daemon\'s restart');

  const nat = bed.services.get('nat-1')!;
  await nat.process.kill();
  t.deepEqual(await probe(), [true, true, true, true], 'held connections answered while the service was down');
  await nat.process.restart();
  nat.api.close();
  nat.api = nat.process.client();
  await bed.ready(nat.api, 1);
  t.deepEqual(await probe(), [true, true, true, true]);
  t.deepEqual(await tcpFlows(), before, 'the same translations after the service\'s restart');
  hold.send('exit');
});

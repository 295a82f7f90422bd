// netcubectl's gRPC commands against real daemons: two namespace-hosts on a test
// etcd, a client namespace at each end, and a chain across them that the tests put
// traffic through. describe, topology, table, logs and types, their outputs and bad
// input; --wait against real hosts, also when one reports an error; TLS to a daemon
// reached over TCP.

import { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import anyTest, { ExecutionContext, TestFn } from 'ava';
import { parse as parseYaml } from 'yaml';
import { Store } from '@netcube/api/store';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { certificates } from '../helpers/certs';
import { NetcubedProcess } from '../helpers/daemon';
import { EtcdCluster } from '../helpers/etcd';
import { createVethPair, Netns, newNetns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';
import { netcubectl, RunOptions, scratch, writeFile } from './run';

interface Env {
  etcd: EtcdCluster;
  store: Store;
  hosts: [NetcubedProcess, NetcubedProcess];
  clients: [Netns, Netns];
  run(args: string[], options?: RunOptions): ReturnType<typeof netcubectl>;
}

const test = anyTest as TestFn<Env>;
const closers: (() => Promise<unknown> | unknown)[] = [];

test.before(async t => {
  const etcd = await EtcdCluster.start();
  closers.push(() => etcd.stop());
  const namespaces: Netns[] = [];
  for (let i = 0; i < 4; i++) {
    const ns = await newNetns();
    closers.push(() => ns.delete());
    namespaces.push(ns);
  }
  const [clientA, h1, h2, clientB] = namespaces;
  // clientA eth0 --- left h1 right --- left h2 right --- eth0 clientB
  await createVethPair(clientA, h1, ['eth0', 'left'], ['10.99.0.1', '']);
  await createVethPair(h1, h2, ['right', 'left'], null);
  await createVethPair(h2, clientB, ['right', 'eth0'], ['', '10.99.0.2']);
  const hosts: NetcubedProcess[] = [];
  for (const netns of [h1, h2]) {
    const d = await NetcubedProcess.start({ netns, etcd: etcd.endpoints });
    closers.push(() => d.cleanup());
    await d.waitConnected();
    hosts.push(d);
  }
  const store = await Store.connect({ endpoints: etcd.endpoints });
  closers.push(() => store.close());
  t.context = {
    etcd,
    store,
    hosts: hosts as [NetcubedProcess, NetcubedProcess],
    clients: [clientA, clientB],
    run: (args, options = {}) => netcubectl(args, { etcd: etcd.endpoints, ...options }),
  };
});

test.after.always(async () => {
  for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
});

const PROBE = join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes');

/** p1 (a probe) on the first host, fwd2 (a nop) guarded by a DDoS mitigator on the second. */
function chain(h1: string, h2: string): string {
  return `apiVersion: netcube/v1
kind: Chain
metadata:
  name: cli
spec:
  cubes:
    - {name: p1, host: ${h1}, type: probe, mode: tc, ports: [a, b]}
    - {name: fwd2, host: ${h2}, type: nop, mode: tc, ports: [left, right]}
    - {name: guard, host: ${h2}, type: ddosmitigator, mode: tc, tableSizes: {blacklist_dst_v6: 1024}}
  links:
    - {from: netdev:left, to: p1:a}
    - {from: p1:b, to: fwd2:left, via: {from: right, to: left}}
    - {from: fwd2:right, to: netdev:right}
  attachments:
    - {cube: guard, to: fwd2:left, direction: both}
`;
}

test.serial('types register, apply --wait on real hosts, table put, and traffic through the chain', async t => {
  const { run, hosts, clients } = t.context;
  const registered = await run(['types', 'register', 'probe', '--xdp', join(PROBE, 'probe.xdp.o'), '--tc', join(PROBE, 'probe.tc.o')]);
  t.is(registered.code, 0, registered.stderr);
  t.regex(registered.stdout, /^cube type probe registered: standard, modes xdp, tc, micro-cubes 0, 1, tables probe_actions \(cube\)/);
  const again = await run(['types', 'register', 'probe', '--tc', join(PROBE, 'probe.tc.o'), '--xdp', join(PROBE, 'probe.xdp.o'), '-o', 'json']);
  t.is(again.code, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { name: 'probe', transparent: false, modes: ['xdp', 'tc'] });

  const file = writeFile(scratch(t), 'cli.yaml', chain(hosts[0].name, hosts[1].name));
  const applied = await run(['apply', '-f', file, '--wait', '--timeout', '60s']);
  t.is(applied.code, 0, applied.stderr);
  t.regex(applied.stdout, /chain cli version 1 is applied on every host \(3 cubes\)/);
  t.regex(applied.stderr, /3\/3 cubes applied\n$/);

  // The probe forwards a -> b and b -> a once told to, and logs each packet.
  for (const [port, out] of [[0, 1], [1, 0]]) {
    const put = await run(['table', 'put', 'p1', 'probe_actions', String(port), JSON.stringify({ op: 'PROBE_REDIRECT', arg: out, log: 1 })]);
    t.is(put.code, 0, put.stderr);
    t.is(put.stdout, `p1 probe_actions: put ${port}\n`);
  }
  await clients[0].ping('10.99.0.2', 5);
});

test.serial('describe cube shows ports, peers, counters and status; describe host the daemon', async t => {
  const { run, hosts } = t.context;
  const text = await run(['describe', 'cube', 'fwd2']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, new RegExp(`^Cube: +fwd2\\nHost: +${hosts[1].name}\\nChain: +cli \\(version 1\\)\\nType: +nop \\(standard, tc mode\\)`));
  t.regex(text.stdout, /Status: +applied, reported /);
  t.regex(text.stdout, /\n {2}left +0 +netdev:left +[1-9]\d* +\d+ +[1-9]\d* /);

  const json = JSON.parse((await run(['describe', 'cube', 'fwd2', '-o', 'json'])).stdout);
  t.is(json.host, hosts[1].name);
  t.is(json.status.state, 'applied');
  t.deepEqual(json.ports.map((p: { name: string; peer: string }) => [p.name, p.peer]), [['left', 'netdev:left'], ['right', 'netdev:right']]);
  t.true(Number(json.ports[0].stats.rxPackets) >= 5);

  const guard = parseYaml((await run(['describe', 'cube', 'guard', '-o', 'yaml'])).stdout);
  t.like(guard, { name: 'guard', transparent: true, attachment: { target: 'fwd2:left', direction: 'both', position: 0 } });
  const guardText = await run(['describe', 'cube', 'guard']);
  t.regex(guardText.stdout, /Stacked on: fwd2:left, both, layer 0/);
  // Its chain sizes one of its tables: the cube says so, and the kernel's map has that size.
  t.deepEqual(guard.tableSizes, { blacklist_dst_v6: 1024 });
  t.regex(guardText.stdout, /\nTables: +sized by its chain: blacklist_dst_v6 1024\n/);
  const tables = JSON.parse((await run(['table', 'list', 'guard', '-o', 'json'])).stdout) as { name: string; maxEntries: number }[];
  t.deepEqual(tables.map((x) => [x.name, x.maxEntries]), [['blacklist_v4', 65536], ['blacklist_v6', 65536], ['blacklist_dst_v4', 65536], ['blacklist_dst_v6', 1024]]);

  const host = await run(['describe', 'host', hosts[0].name]);
  t.is(host.code, 0, host.stderr);
  t.regex(host.stdout, new RegExp(`^Host: +${hosts[0].name}\\nReached at: unix:${hosts[0].socket}`));
  t.regex(host.stdout, /etcd: +connected/);
  t.is(JSON.parse((await run(['describe', 'host', hosts[0].name, '-o', 'json'])).stdout).storeConnected, true);

  const missing = await run(['describe', 'cube', 'nope']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /no chain has a cube named nope \(cubes: fwd2, guard, p1\)/);
  const wrongHost = await run(['describe', 'cube', 'fwd2', '--host', hosts[0].name]);
  t.is(wrongHost.code, 1);
  t.regex(wrongHost.stderr, new RegExp(`host ${hosts[0].name}: .*fwd2`));
  const noHost = await run(['describe', 'host', 'nowhere']);
  t.is(noHost.code, 1);
  t.regex(noHost.stderr, /host nowhere is not registered in etcd \(registered hosts: /);
  t.is((await run(['describe', 'chain', 'cli'])).code, 2);
});

test.serial('topology as a tree, JSON, YAML and Graphviz', async t => {
  const { run, hosts } = t.context;
  const [h1, h2] = hosts.map(h => h.name);
  const text = await run(['topology']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, new RegExp(`^${h1} {2}\\(unix:`, 'm'));
  t.regex(text.stdout, /├── cube p1 {2}probe, tc, chain cli\n│ {3}├── port a {2}<-> netdev:left +rx [1-9]/);
  t.regex(text.stdout, new RegExp(`netdev right +<-> p1:b  ==> ${h2} netdev:left`));
  t.regex(text.stdout, /stack: guard \(both\)/);

  const json = JSON.parse((await run(['topology', '-o', 'json'])).stdout);
  t.deepEqual(json.hosts.map((h: { host: string }) => h.host), [h1, h2]);
  t.deepEqual(json.cables, [{ chain: 'cli', a: { host: h1, netdev: 'right' }, b: { host: h2, netdev: 'left' } }]);
  t.deepEqual(json.hosts[1].topology.stacks, [{ target: 'fwd2:left', layers: [{ cube: 'guard', direction: 'both' }] }]);
  // The same document as YAML; counters may move between the two runs (a stray
  // IPv6 packet of the namespaces), so they are left out of the comparison.
  t.deepEqual(withoutStats(parseYaml((await run(['topology', '-o', 'yaml'])).stdout)), withoutStats(json));

  const only = JSON.parse((await run(['topology', '--host', h2, '-o', 'json'])).stdout);
  t.deepEqual(only.hosts.map((h: { host: string }) => h.host), [h2]);

  const dot = (await run(['topology', '-o', 'dot'])).stdout;
  checkDot(t, dot);
  t.regex(dot, new RegExp(`subgraph "cluster_${h1}"`));
  t.regex(dot, new RegExp(`"${h1}/cube/p1" \\[shape=Mrecord, label="\\{ p1\\\\nprobe, tc \\| \\{ <a> a \\| <b> b \\} \\}"\\]`));
  t.regex(dot, new RegExp(`"${h2}/cube/guard" -> "${h2}/cube/fwd2":"left" \\[style=dashed`));
  t.regex(dot, new RegExp(`"${h1}/netdev/right" -> "${h2}/netdev/left" \\[dir=both`));

  const bad = await run(['topology', '--host', 'nowhere']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /host nowhere is neither registered nor used by a chain/);
});

/** Enough of DOT's grammar to catch broken output: statements, balanced braces and quotes. */
function checkDot(t: ExecutionContext<Env>, dot: string): void {
  t.regex(dot, /^digraph netcube \{\n/);
  t.regex(dot, /\n\}\n$/);
  let depth = 0;
  for (const line of dot.split('\n').slice(1, -2)) {
    const unquoted = line.replace(/"(?:[^"\\]|\\.)*"/g, 'ID');
    t.false(unquoted.includes('"'), `unbalanced quote: ${line}`);
    depth += (unquoted.match(/\{/g) ?? []).length - (unquoted.match(/\}/g) ?? []).length;
    t.true(depth >= 0, line);
    t.regex(unquoted.trim(), /^(subgraph ID \{|\}|[a-z]+=\S+;|(node|edge) \[.*\];|ID(:ID)? (-> ID(:ID)? )?\[.*\];)$/, line);
  }
  t.is(depth, 0);
}

test.serial('table list, dump, get, delete, as JSON and as raw bytes', async t => {
  const { run } = t.context;
  const list = await run(['table', 'list', 'p1']);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /probe_actions +cube +array +4 B +16 B +\d+\n/);
  const listed = JSON.parse((await run(['table', 'list', 'p1', '-o', 'json'])).stdout);
  t.like(listed.find((x: { name: string }) => x.name === 'probe_actions'), { scope: 'cube', keyType: { name: '__u32' } });

  const dump = JSON.parse((await run(['table', 'dump', 'p1', 'probe_actions', '-o', 'json'])).stdout);
  const slots = listed.find((x: { name: string }) => x.name === 'probe_actions').maxEntries;
  t.is(dump.length, slots, 'an array has every entry');
  t.deepEqual(dump[0], { key: 0, value: { op: 'PROBE_REDIRECT', arg: 1, user0: 0, log: 1 } });
  const text = await run(['table', 'dump', 'p1', 'probe_actions']);
  t.regex(text.stdout, /^KEY +VALUE\n0 +\{"op":"PROBE_REDIRECT","arg":1,"user0":0,"log":1\}\n/);
  t.true(text.stdout.endsWith(`(${slots} entries)\n`));

  const get = await run(['table', 'get', 'p1', 'probe_actions', '1']);
  t.is(get.stdout, '{"op":"PROBE_REDIRECT","arg":0,"user0":0,"log":1}\n');
  const raw = await run(['table', 'get', 'p1', 'probe_actions', '01000000', '--raw']);
  t.is(raw.code, 0, raw.stderr);
  t.is(raw.stdout, '02000000000000000000000001000000\n');
  const rawDump = JSON.parse((await run(['table', 'dump', 'p1', 'probe_actions', '--raw', '-o', 'json'])).stdout);
  t.deepEqual(rawDump[0], { key: '00000000', value: '02000000010000000000000001000000' });

  // The DDoS mitigator's blacklist: a hash, so entries come and go.
  const key = '0a:00:00:09'; // 10.0.0.9 in network order
  t.is((await run(['table', 'put', 'guard', 'blacklist_v4', key, '0000000000000000', '--raw'])).code, 0);
  // Its key is a typed field (nc_ipv4_t): shown and taken as an address.
  t.deepEqual(JSON.parse((await run(['table', 'dump', 'guard', 'blacklist_v4', '-o', 'json'])).stdout), [{ key: '10.0.0.9', value: 0 }]);
  t.regex((await run(['table', 'dump', 'guard', 'blacklist_v4'])).stdout, /^10\.0\.0\.9 +0$/m);
  const del = await run(['table', 'delete', 'guard', 'blacklist_v4', '10.0.0.9']);
  t.is(del.code, 0, del.stderr);
  t.is(del.stdout, 'guard blacklist_v4: deleted 10.0.0.9\n');
  const gone = await run(['table', 'get', 'guard', 'blacklist_v4', '"10.0.0.9"']);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /has no entry with key "10\.0\.0\.9"/);
  const notAddress = await run(['table', 'put', 'guard', 'blacklist_v4', '167772169', '0']);
  t.is(notAddress.code, 1);
  t.regex(notAddress.stderr, /expected an IPv4 address like '10\.0\.0\.1', got 167772169/);

  const notJson = await run(['table', 'put', 'p1', 'probe_actions', '0', '{op: drop}']);
  t.is(notJson.code, 2);
  t.regex(notJson.stderr, /VALUE "\{op: drop\}" is not JSON/);
  const notHex = await run(['table', 'get', 'p1', 'probe_actions', 'xyz', '--raw']);
  t.is(notHex.code, 2);
  t.regex(notHex.stderr, /is not hex bytes/);
  const badValue = await run(['table', 'put', 'p1', 'probe_actions', '0', '{"op":"PROBE_FLY"}']);
  t.is(badValue.code, 1);
  t.regex(badValue.stderr, /PROBE_FLY/);
  const noTable = await run(['table', 'dump', 'p1', 'nope']);
  t.is(noTable.code, 1);
  t.regex(noTable.stderr, /has no table nope; its tables: /);
  t.is((await run(['table', 'dump', 'p1'])).code, 2);
  t.is((await run(['table', 'frob', 'p1'])).code, 2);
});

test.serial('logs prints the lines waiting on the hosts; -f follows until interrupted', async t => {
  const { run, clients } = t.context;
  await clients[0].ping('10.99.0.2', 2);
  const waiting = await run(['logs', 'p1']);
  t.is(waiting.code, 0, waiting.stderr);
  t.regex(waiting.stdout, /^\[ *\d+\.\d{6}\] \S+ p1 info: probe: in-port [01] user 0 from 10\.0\.0\.1$/m);

  // Follow: lines arriving after the start, as JSON, until SIGINT.
  let child: ChildProcess | undefined;
  let out = '';
  const following = netcubectl(['logs', '-f', '--level', 'info', '-o', 'json'], {
    etcd: t.context.etcd.endpoints,
    spawned: c => {
      child = c;
      c.stdout!.on('data', chunk => (out += chunk));
    },
  });
  const count = () => out.split('\n').filter(l => l.includes('"cube":"p1"')).length;
  // It follows once the lines of a ping reach it; then three more pings, two lines each.
  await waitFor('netcubectl logs -f following', async () => (await clients[0].ping('10.99.0.2', 1), count() > 0), 30_000, 200);
  const before = count();
  await clients[0].ping('10.99.0.2', 3);
  await waitFor('the lines of three more pings', () => count() >= before + 6);
  child!.kill('SIGINT');
  const followed = await following;
  t.is(followed.code, 0, followed.stderr);
  const lines = followed.stdout.trim().split('\n').map(l => JSON.parse(l));
  t.true(lines.length >= 6, followed.stdout);
  t.like(lines[0], { cube: 'p1', level: 'info' });

  const level = await run(['logs', '--level', 'loud']);
  t.is(level.code, 2);
  t.regex(level.stderr, /--level: one of error, warn, info, debug, trace/);
  t.is((await run(['logs', '-o', 'yaml'])).code, 2);
  t.is((await run(['logs', 'nope'])).code, 1);
});

test.serial('apply --wait prints the error a real host reports, per cube', async t => {
  const { run, hosts } = t.context;
  const broken = `apiVersion: netcube/v1
kind: Chain
metadata:
  name: broken
spec:
  cubes:
    - {name: lost, host: ${hosts[1].name}, type: nop, mode: tc, ports: [a, b]}
  links:
    - {from: netdev:nosuch0, to: lost:a}
`;
  const res = await run(['apply', '-f', '-', '--wait', '--timeout', '60s'], { input: broken });
  t.is(res.code, 1, res.stdout);
  t.regex(res.stderr, new RegExp(`chain broken version 1 failed on 1 of 1 cubes:\\n  ${hosts[1].name}/lost: .*nosuch0`));
  t.regex((await run(['get', 'cubes', '--chain', 'broken'])).stdout, /lost .* error: .*nosuch0/);
  // The other chain is untouched.
  t.regex((await run(['get', 'chains'])).stdout, /cli +1 +3 +.* 3\/3/);
  const deleted = await run(['delete', 'chain', 'broken', '--wait']);
  t.is(deleted.code, 0, deleted.stderr);
});

test.serial('delete --wait removes the chain from the hosts; types unregister', async t => {
  const { run, hosts } = t.context;
  const inUse = await run(['types', 'unregister', 'probe']);
  t.is(inUse.code, 1);
  t.regex(inUse.stderr, /cube type probe is used by chain cli/);

  const deleted = await run(['delete', 'chain', 'cli', '--wait', '--timeout', '60s']);
  t.is(deleted.code, 0, deleted.stderr);
  t.regex(deleted.stderr, /3\/3 cubes removed\n$/);
  const topology = JSON.parse((await run(['topology', '-o', 'json'])).stdout);
  t.deepEqual(topology.hosts.map((h: { topology: { cubes: unknown[] } }) => h.topology.cubes), [[], []]);
  t.true(hosts.every(h => h.running));

  const unregistered = await run(['types', 'unregister', 'probe', '--host', hosts[1].name]);
  t.is(unregistered.code, 0, unregistered.stderr);
  t.is(unregistered.stdout, 'cube type probe unregistered\n');
  const builtin = await run(['types', 'unregister', 'nop']);
  t.is(builtin.code, 1);
  t.regex(builtin.stderr, /built in/);
  t.is((await run(['types', 'register', 'x'])).code, 2);
  t.is((await run(['types', 'register', 'x', '--tc', '/nonexistent.o'])).code, 2);
  t.is((await run(['types', 'list'])).code, 2);
});

test.serial('a daemon reached over TCP needs the TLS flags', async t => {
  const { run, etcd, store } = t.context;
  const certs = certificates(t);
  const daemon = await NetcubedProcess.start({ etcd: etcd.endpoints, listen: '127.0.0.1:0', tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca } });
  t.teardown(() => daemon.cleanup());
  await daemon.waitConnected();
  // A host whose only endpoint is TCP, as one on another machine registers.
  const lease = await store.hosts.register({ name: 'remote', endpoints: [daemon.tcpEndpoint!], startedAt: new Date().toISOString(), kernel: 'x', features: [] }, 10);
  t.teardown(() => lease.close());

  const ok = await run(['describe', 'host', 'remote', '--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, new RegExp(`^Host: +${daemon.name}\\nReached at: ${daemon.tcpEndpoint!.replace(/\./g, '\\.')}\\n`));

  const noCa = await run(['describe', 'host', 'remote', '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey]);
  t.is(noCa.code, 1);
  t.regex(noCa.stderr, /cannot reach netcubed of host remote at 127\.0\.0\.1:\d+/);
  const stranger = await run(['describe', 'host', 'remote', '--tls-ca', certs.ca, '--tls-cert', certs.strangerCert, '--tls-key', certs.strangerKey]);
  t.is(stranger.code, 1);
  const missing = await run(['describe', 'host', 'remote', '--tls-ca', `${certs.dir}/nope.pem`]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--tls-ca .*nope\.pem: no such file/);
});

/** `doc` with every `stats` member removed, at any depth. */
function withoutStats(doc: unknown): unknown {
  if (Array.isArray(doc)) return doc.map(withoutStats);
  if (doc === null || typeof doc !== 'object') return doc;
  return Object.fromEntries(Object.entries(doc).filter(([k]) => k !== 'stats').map(([k, v]) => [k, withoutStats(v)]));
}

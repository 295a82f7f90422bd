// netcubectl capture against a real daemon: a packetcapture cube stacked on a nop
// forwarder's port between two client namespaces, real UDP between them, and the
// pcapng files read back by Debian's tcpdump, compared byte for byte with what
// tcpdump itself captured on the receiver's interface. Beside it a plain
// forwarder's chain, with no capture cube, captured on a port and on a netdev
// through the daemon's own transient cube, which goes when the capture ends (and
// when netcubed is killed during one).

import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import anyTest, { ExecutionContext, TestFn } from 'ava';
import { NetcubedProcess } from '../helpers/daemon';
import { EtcdCluster } from '../helpers/etcd';
import { createVethPair, Netns, newNetns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';
import { netcubectl, RunOptions, scratch, writeFile } from './run';

interface Env {
  host: NetcubedProcess;
  clients: [Netns, Netns];
  /** Either side of the plain forwarder. */
  plainClients: [Netns, Netns];
  run(args: string[], options?: RunOptions): ReturnType<typeof netcubectl>;
}

const test = anyTest as TestFn<Env>;
const closers: (() => Promise<unknown> | unknown)[] = [];
const PORT = 7777;
const FILTER = `udp and dst port ${PORT}`;

test.before(async t => {
  const etcd = await EtcdCluster.start();
  closers.push(() => etcd.stop());
  const namespaces: Netns[] = [];
  for (let i = 0; i < 5; i++) {
    const ns = await newNetns();
    closers.push(() => ns.delete());
    namespaces.push(ns);
  }
  const [clientA, h1, clientB, clientC, clientD] = namespaces;
  // clientA eth0 --- left [cap on fwd:left, fwd] right --- eth0 clientB
  await createVethPair(clientA, h1, ['eth0', 'left'], ['10.98.0.1', '']);
  await createVethPair(h1, clientB, ['right', 'eth0'], ['', '10.98.0.2']);
  // clientC eth0 --- left2 [plain] right2 --- eth0 clientD: no capture cube
  await createVethPair(clientC, h1, ['eth0', 'left2'], ['10.97.0.1', '']);
  await createVethPair(h1, clientD, ['right2', 'eth0'], ['', '10.97.0.2']);
  const host = await NetcubedProcess.start({ netns: h1, etcd: etcd.endpoints });
  closers.push(() => host.cleanup());
  await host.waitConnected();
  const run = (args: string[], options: RunOptions = {}) => netcubectl(args, { etcd: etcd.endpoints, ...options });
  const dir = mkdtempSync(join(tmpdir(), 'nct-cli-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeFile(dir, 'capture.yaml', `apiVersion: netcube/v1
kind: Chain
metadata:
  name: capture
spec:
  cubes:
    - {name: fwd, host: ${host.name}, type: nop, mode: tc, ports: [left, right]}
    - {name: cap, host: ${host.name}, type: packetcapture, mode: tc}
  links:
    - {from: netdev:left, to: fwd:left}
    - {from: fwd:right, to: netdev:right}
  attachments:
    - {cube: cap, to: fwd:left, direction: both}
`);
  const plain = writeFile(dir, 'plain.yaml', plainChain(host.name, 'info'));
  for (const chain of [file, plain]) {
    const applied = await run(['apply', '-f', chain, '--wait', '--timeout', '60s']);
    if (applied.code !== 0) throw new Error(applied.stderr);
  }
  // Neighbours resolved before any capture: the filter keeps ARP out anyway.
  await clientA.ping('10.98.0.2', 1);
  await clientC.ping('10.97.0.2', 1);
  t.context = { host, clients: [clientA, clientB], plainClients: [clientC, clientD], run };
});

/** The plain forwarder's chain: a nop between left2 and right2, no capture cube. */
function plainChain(host: string, logLevel: string): string {
  return `apiVersion: netcube/v1
kind: Chain
metadata:
  name: plain
spec:
  cubes:
    - {name: plain, host: ${host}, type: nop, mode: tc, ports: [left, right], logLevel: ${logLevel}}
  links:
    - {from: netdev:left2, to: plain:left}
    - {from: plain:right, to: netdev:right2}
`;
}

test.after.always(async () => {
  for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
});

/** A child process whose stderr is watched; `ready` resolves when it prints `marker`. */
function watched(child: ChildProcess, marker: RegExp): { ready: Promise<void>; done: Promise<{ code: number | null; stderr: string }> } {
  let stderr = '';
  let ready!: () => void;
  const readyPromise = new Promise<void>(resolve => (ready = resolve));
  child.stderr!.on('data', chunk => {
    stderr += chunk;
    if (marker.test(stderr)) ready();
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', code => resolve({ code, stderr }));
  });
  return { ready: Promise.race([readyPromise, done.then(r => Promise.reject(new Error(`ended before it was ready: ${r.stderr}`)))]), done };
}

function netcubectlChild(t: ExecutionContext<Env>, args: string[]): ChildProcess {
  let child!: ChildProcess;
  void t.context.run(args, { spawned: c => (child = c), timeoutMs: 60_000 });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return child;
}

/** Sends `count` datagrams "netcube-capture-<i>", one after the other, from `netns` to `to` (clientA to clientB unless said). */
async function sendDatagrams(netns: Netns, count: number, to = '10.98.0.2'): Promise<void> {
  const script = `const s = require('dgram').createSocket('udp4');
let i = 0;
const next = () => (i === ${count} ? s.close() : s.send('netcube-capture-' + i++, ${PORT}, '${to}', next));
next();`;
  await netns.exec(process.execPath, ['-e', script]);
}

/** Debian's tcpdump on `netns`'s eth0, writing `count` packets the filter takes to `file`: what the receiver got. */
function receiverTcpdump(t: ExecutionContext<Env>, netns: Netns, count: number, file: string): ReturnType<typeof watched> {
  const tcpdump = spawn('ip', ['netns', 'exec', netns.name, 'tcpdump', '-i', 'eth0', '-nn', '-U', '-c', String(count), '-w', file, FILTER], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.teardown(() => {
    if (tcpdump.exitCode === null) tcpdump.kill('SIGKILL');
  });
  return watched(tcpdump, /listening on/);
}

interface Read {
  /** Seconds since the epoch, as tcpdump -tt prints them. */
  time: number;
  summary: string;
  bytes: Buffer;
}

/** The packets of a capture file (or of `input` with file `-`) as Debian's tcpdump reads them (-xx: from the Ethernet header). */
async function tcpdumpRead(file: string, input?: Buffer): Promise<Read[]> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('tcpdump', ['-r', file, '-nn', '-tt', '-xx'], { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    child.stdin?.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', c => (stdout += c));
    child.stderr!.on('data', c => (stderr += c));
    child.on('error', reject);
    child.on('close', code => (code === 0 ? resolve(stdout) : reject(new Error(`tcpdump -r ${file}: exit ${code}: ${stderr}`))));
  });
  const packets: Read[] = [];
  for (const line of out.split('\n')) {
    const hex = /^\s+0x[0-9a-f]+:\s+((?:[0-9a-f]{2,4}\s?)+)/.exec(line);
    if (hex) {
      const last = packets[packets.length - 1];
      last.bytes = Buffer.concat([last.bytes, Buffer.from(hex[1].replace(/\s/g, ''), 'hex')]);
    } else if (line.trim()) {
      const [time, ...rest] = line.split(' ');
      packets.push({ time: Number(time), summary: rest.join(' '), bytes: Buffer.alloc(0) });
    }
  }
  return packets;
}

test.serial('capture -c writes a pcapng that tcpdump reads: every packet, byte for byte, in order, timestamps in order', async t => {
  const { clients } = t.context;
  const dir = scratch(t);
  const ours = join(dir, 'cap.pcapng');
  const reference = join(dir, 'reference.pcap');
  const count = 10;

  const receiver = receiverTcpdump(t, clients[1], count, reference);
  const capture = watched(netcubectlChild(t, ['capture', 'cap', '-c', String(count), '--filter', FILTER, '-w', ours]), /capturing on/);
  await Promise.all([receiver.ready, capture.ready]);

  const before = Date.now() / 1000;
  await sendDatagrams(clients[0], count);
  const [captured, received] = await Promise.all([capture.done, receiver.done]);
  const after = Date.now() / 1000;
  t.is(captured.code, 0, captured.stderr);
  t.regex(captured.stderr, new RegExp(`${count} packets written; not copied: 0 over the rate, 0 for a full ring`));
  t.is(received.code, 0, received.stderr);

  const [read, want] = await Promise.all([tcpdumpRead(ours), tcpdumpRead(reference)]);
  t.is(read.length, count);
  t.deepEqual(read.map(p => p.bytes.toString('hex')), want.map(p => p.bytes.toString('hex')), 'the frames the receiver got, byte for byte, in order');
  read.forEach((p, i) => {
    t.regex(p.summary, new RegExp(`IP 10\\.98\\.0\\.1\\.\\d+ > 10\\.98\\.0\\.2\\.${PORT}: UDP, length ${`netcube-capture-${i}`.length}`));
    t.true(p.bytes.includes(Buffer.from(`netcube-capture-${i}`)), `packet ${i} in its place`);
    if (i > 0) t.true(p.time >= read[i - 1].time, 'timestamps in order');
  });
  // The data plane's clock on the wall clock: within the sending, to the offset's millisecond.
  t.true(read[0].time >= before - 0.002 && read[count - 1].time <= after + 0.002, `${read[0].time} .. ${read[count - 1].time} within ${before} .. ${after}`);
});

test.serial('Ctrl-C ends a capture cleanly: the file is valid and holds what came, and the cube is free again', async t => {
  const { clients } = t.context;
  const file = join(scratch(t), 'interrupted.pcapng');
  const child = netcubectlChild(t, ['capture', 'cap', '--filter', FILTER, '-w', file]);
  const capture = watched(child, /capturing on/);
  await capture.ready;
  await sendDatagrams(clients[0], 3);
  // Header (28 + 48 bytes) and three packet blocks on disk.
  await waitFor('three packets in the file', () => existsSync(file) && statSync(file).size >= 76 + 3 * 96);
  child.kill('SIGINT');
  const ended = await capture.done;
  t.is(ended.code, 0, ended.stderr);
  t.regex(ended.stderr, /3 packets written/);
  const read = await tcpdumpRead(file);
  t.deepEqual(read.map(p => p.bytes.includes(Buffer.from(`netcube-capture-${read.indexOf(p)}`))), [true, true, true]);
});

test.serial('capture -w - writes the pcapng to stdout, which tcpdump -r - reads', async t => {
  const { clients } = t.context;
  const chunks: Buffer[] = [];
  let child!: ChildProcess;
  const done = t.context.run(['capture', 'cap', '-c', '3', '--filter', FILTER, '-w', '-'], {
    spawned: c => {
      child = c;
      c.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
    },
  });
  await watched(child, /capturing on/).ready;
  await sendDatagrams(clients[0], 3);
  const ended = await done;
  t.is(ended.code, 0, ended.stderr);
  const read = await tcpdumpRead('-', Buffer.concat(chunks));
  t.deepEqual(read.map((p, i) => p.bytes.includes(Buffer.from(`netcube-capture-${i}`))), [true, true, true]);
});

/** The direction (epb_flags bits 0-1) of each enhanced packet block of a pcapng file, read here: tcpdump does not print it. */
function directions(file: string): string[] {
  const b = readFileSync(file);
  const out: string[] = [];
  for (let at = 0; at < b.length; at += b.readUInt32LE(at + 4)) {
    if (b.readUInt32LE(at) !== 6) continue;
    let opt = at + 28 + ((b.readUInt32LE(at + 20) + 3) & ~3);
    while (b.readUInt16LE(opt) !== 0 && b.readUInt16LE(opt) !== 2) opt += 4 + ((b.readUInt16LE(opt + 2) + 3) & ~3);
    out.push(b.readUInt16LE(opt) === 2 ? ['?', 'in', 'out', '?'][b.readUInt32LE(opt + 4) & 3] : 'none');
  }
  return out;
}

test.serial('each packet carries its direction: a ping going in, its reply going out', async t => {
  const { clients } = t.context;
  const file = join(scratch(t), 'ping.pcapng');
  const capture = watched(netcubectlChild(t, ['capture', 'cap', '--filter', 'icmp and host 10.98.0.2', '-c', '4', '-w', file]), /capturing on/);
  await capture.ready;
  await clients[0].ping('10.98.0.2', 2);
  const result = await capture.done;
  t.is(result.code, 0, result.stderr);
  t.deepEqual(directions(file), ['in', 'out', 'in', 'out']);
  t.deepEqual((await tcpdumpRead(file)).map(p => /ICMP echo (request|reply)/.exec(p.summary)?.[1]), ['request', 'reply', 'request', 'reply']);
});

test.serial('past --rate packets are not copied, and the count of them reaches the user', async t => {
  const { clients } = t.context;
  const file = join(scratch(t), 'rate.pcapng');
  // One packet a second, in bursts of one: the first datagram is copied, the next
  // nine are over the rate; the second packet comes once a token has refilled.
  const capture = watched(netcubectlChild(t, ['capture', 'cap', '--rate', '1', '-c', '2', '--filter', FILTER, '-w', file]), /capturing on/);
  await capture.ready;
  await sendDatagrams(clients[0], 10);
  let ended = false;
  const done = capture.done.finally(() => (ended = true));
  while (!ended) await sendDatagrams(clients[0], 1);
  const result = await done;
  t.is(result.code, 0, result.stderr);
  const over = /2 packets written; not copied: (\d+) over the rate, 0 for a full ring/.exec(result.stderr);
  t.truthy(over, result.stderr);
  t.true(Number(over![1]) >= 9, over![0]);
  t.is((await tcpdumpRead(file)).length, 2);
});

test.serial('a capture of a cube that copies nothing, and bad filters, fail with what to do', async t => {
  const { run } = t.context;
  const dir = scratch(t);
  const wrongType = await run(['capture', 'fwd', '-w', join(dir, 'x.pcapng')]);
  t.not(wrongType.code, 0);
  t.regex(wrongType.stderr, /cube fwd is a nop, not a packetcapture: name one of its ports \(fwd:left, fwd:right\) to capture there/);

  const badAddress = await run(['capture', 'cap', '--filter', 'host 10.1.2.300', '-w', join(dir, 'y.pcapng')]);
  t.not(badAddress.code, 0);
  t.regex(badAddress.stderr, /filter\.addresses\[0\]\.prefix/);

  const badTerm = await run(['capture', 'cap', '--filter', 'udp or tcp', '-w', join(dir, 'z.pcapng')]);
  t.is(badTerm.code, 2, badTerm.stderr);
  t.regex(badTerm.stderr, /--filter "udp or tcp": expected "and" before "or"/);

  const tooMany = await run(['capture', 'cap', '--filter', 'port 1 and port 2 and port 3', '-w', join(dir, 'w.pcapng')]);
  t.not(tooMany.code, 0);
  t.regex(tooMany.stderr, /filter\.ports.*at most 2 ports, got 3/);
});

/** The cubes the daemon runs now, by its GetTopology, with the stacks they are in. */
async function runningCubes(host: NetcubedProcess): Promise<{ cubes: string[]; stacks: string[] }> {
  const client = host.client();
  try {
    const topology = await client.getTopology();
    const where = (e: (typeof topology.stacks)[number]['target']) => (e?.netdev ? `netdev:${e.netdev}` : `${e?.port?.cube}:${e?.port?.port}`);
    return {
      cubes: topology.cubes.map(c => c.name).sort(),
      stacks: topology.stacks.flatMap(s => s.layers.map(l => `${l.cube}@${where(s.target)}`)).sort(),
    };
  } finally {
    client.close();
  }
}

/** The cubes pinned in the daemon's bpffs (directories `<id>-<name>`). */
function pinnedCubes(host: NetcubedProcess): string[] {
  return readdirSync(join(host.root, 'bpf', 'cubes'))
    .map(d => d.replace(/^\d+-/, ''))
    .sort();
}

const CHAIN_CUBES = ['cap', 'fwd', 'plain'];

test.serial('capture CUBE:PORT on a plain forwarder: a transient capture cube on the port, every packet byte for byte, gone at the end', async t => {
  const { host, plainClients } = t.context;
  const dir = scratch(t);
  const ours = join(dir, 'port.pcapng');
  const reference = join(dir, 'reference.pcap');
  const count = 8;

  const receiver = receiverTcpdump(t, plainClients[1], count, reference);
  const capture = watched(netcubectlChild(t, ['capture', 'plain:left', '-c', String(count), '--filter', FILTER, '-w', ours]), /capturing on/);
  await Promise.all([receiver.ready, capture.ready]);
  // While it runs: the daemon's own cube, outermost on the port, pinned.
  const during = await runningCubes(host);
  t.deepEqual(during.cubes, [...CHAIN_CUBES, 'capture-1'].sort());
  t.true(during.stacks.includes('capture-1@plain:left'), during.stacks.join(' '));
  t.true(pinnedCubes(host).includes('capture-1'));
  // A change of the chain meanwhile: the reconciler applies it and keeps the capture's cube.
  const changed = writeFile(dir, 'plain-debug.yaml', plainChain(host.name, 'debug'));
  const applied = await t.context.run(['apply', '-f', changed, '--wait', '--timeout', '60s']);
  t.is(applied.code, 0, applied.stderr);
  t.deepEqual(await runningCubes(host), during, 'the capture cube kept through the apply');

  await sendDatagrams(plainClients[0], count, '10.97.0.2');
  const [captured, received] = await Promise.all([capture.done, receiver.done]);
  t.is(captured.code, 0, captured.stderr);
  t.regex(captured.stderr, new RegExp(`capturing on ${host.name} plain:left \\(tc,`));
  t.regex(captured.stderr, new RegExp(`${count} packets written; not copied: 0 over the rate, 0 for a full ring`));
  t.is(received.code, 0, received.stderr);
  const [read, want] = await Promise.all([tcpdumpRead(ours), tcpdumpRead(reference)]);
  t.is(read.length, count);
  t.deepEqual(read.map(p => p.bytes.toString('hex')), want.map(p => p.bytes.toString('hex')), 'the frames the receiver got, byte for byte, in order');
  t.deepEqual(directions(ours), new Array(count).fill('in'), 'into the port, from the link');

  // The stream ends after the cube is gone: nothing of it is left.
  t.deepEqual(await runningCubes(host), { cubes: CHAIN_CUBES, stacks: ['cap@fwd:left'] });
  t.deepEqual(pinnedCubes(host), CHAIN_CUBES);
});

test.serial('capture NETDEV: what crosses the wire, a ping out and its reply in; Ctrl-C removes the transient cube', async t => {
  const { host, plainClients, run } = t.context;
  const file = join(scratch(t), 'netdev.pcapng');
  const child = netcubectlChild(t, ['capture', 'right2', '--filter', 'icmp and host 10.97.0.2', '-w', file]);
  const capture = watched(child, /capturing on/);
  await capture.ready;
  t.true((await runningCubes(host)).stacks.includes('capture-1@netdev:right2'));
  await plainClients[0].ping('10.97.0.2', 2);
  // Header (28 + 48 bytes) and four packet blocks of at least 98 bytes on disk.
  await waitFor('four packets in the file', () => existsSync(file) && statSync(file).size >= 76 + 4 * 128);
  child.kill('SIGINT');
  const ended = await capture.done;
  t.is(ended.code, 0, ended.stderr);
  t.regex(ended.stderr, new RegExp(`capturing on ${host.name} right2 \\(tc,`));
  t.deepEqual(directions(file), ['out', 'in', 'out', 'in'], 'the request out of the netdev to the wire, the reply in from it');
  t.deepEqual((await tcpdumpRead(file)).map(p => /ICMP echo (request|reply)/.exec(p.summary)?.[1]), ['request', 'reply', 'request', 'reply']);
  // Cancelled by the client: the daemon removes its cube once it sees the stream end.
  await waitFor('the transient cube removed', async () => (await runningCubes(host)).cubes.join() === CHAIN_CUBES.join());
  t.deepEqual((await runningCubes(host)).stacks, ['cap@fwd:left']);
  t.deepEqual(pinnedCubes(host), CHAIN_CUBES);
  // The netdev's own --host, and the same capture again: the target is free.
  const again = await run(['capture', 'right2', '--host', host.name, '--filter', 'icmp and host 10.97.0.2', '-c', '2', '-w', join(scratch(t), 'again.pcapng')], {
    spawned: c => void watched(c, /capturing on/).ready.then(() => plainClients[0].ping('10.97.0.2', 1)).catch(() => undefined),
  });
  t.is(again.code, 0, again.stderr);
});

test.serial('two captures at once on different targets; a second one on the same target is refused', async t => {
  const { host, plainClients, run } = t.context;
  const dir = scratch(t);
  const onPort = watched(netcubectlChild(t, ['capture', 'plain:left', '-c', '3', '--filter', FILTER, '-w', join(dir, 'port.pcapng')]), /capturing on/);
  await onPort.ready;
  const onNetdev = watched(netcubectlChild(t, ['capture', 'right2', '-c', '3', '--filter', FILTER, '-w', join(dir, 'netdev.pcapng')]), /capturing on/);
  await onNetdev.ready;
  t.deepEqual((await runningCubes(host)).stacks, ['cap@fwd:left', 'capture-1@plain:left', 'capture-2@netdev:right2']);

  const twice = await run(['capture', 'plain:left', '-w', join(dir, 'twice.pcapng')]);
  t.not(twice.code, 0);
  t.regex(twice.stderr, /plain:left has capture-1 of another session stacked already: one session at a time on it/);

  await sendDatagrams(plainClients[0], 3, '10.97.0.2');
  const [a, b] = await Promise.all([onPort.done, onNetdev.done]);
  t.is(a.code, 0, a.stderr);
  t.is(b.code, 0, b.stderr);
  for (const f of ['port.pcapng', 'netdev.pcapng'])
    t.deepEqual((await tcpdumpRead(join(dir, f))).map((p, i) => p.bytes.includes(Buffer.from(`netcube-capture-${i}`))), [true, true, true], f);
  t.deepEqual(directions(join(dir, 'port.pcapng')), ['in', 'in', 'in']);
  t.deepEqual(directions(join(dir, 'netdev.pcapng')), ['out', 'out', 'out']);
  t.deepEqual(pinnedCubes(host), CHAIN_CUBES);
});

test.serial('netcubed killed during a capture removes the transient cube when it starts again', async t => {
  const { host, plainClients, run } = t.context;
  const dir = scratch(t);
  const capture = watched(netcubectlChild(t, ['capture', 'plain:right', '--filter', FILTER, '-w', join(dir, 'killed.pcapng')]), /capturing on/);
  await capture.ready;
  t.true(pinnedCubes(host).includes('capture-1'));
  await host.restart();
  t.regex(host.logTail(400), /"transientRemoved":\["capture-1"\]/, 'removed as the runtime opened, before any chain was read');
  const ended = await capture.done;
  t.not(ended.code, 0, 'the capture ends with its daemon');
  t.deepEqual(await runningCubes(host), { cubes: CHAIN_CUBES, stacks: ['cap@fwd:left'] });
  t.deepEqual(pinnedCubes(host), CHAIN_CUBES);
  // The restarted daemon captures there again, and the forwarder still forwards.
  await host.waitConnected();
  const again = await run(['capture', 'plain:right', '--filter', FILTER, '-c', '2', '-w', join(dir, 'again.pcapng')], {
    spawned: c => void watched(c, /capturing on/).ready.then(() => sendDatagrams(plainClients[0], 2, '10.97.0.2')).catch(() => undefined),
  });
  t.is(again.code, 0, again.stderr);
  t.deepEqual(directions(join(dir, 'again.pcapng')), ['out', 'out'], 'out of the port, to the link');
});

test.serial('a capture on an unknown cube, port or netdev fails naming what to fix', async t => {
  const { host, run } = t.context;
  const dir = scratch(t);
  const cases: [string[], RegExp][] = [
    [['plain:nope'], /cube plain has no port "nope" \(its ports: left, right\)/],
    [['nosuch:left'], /no chain has a cube named nosuch/],
    [['nosuch'], /no chain has a cube or uses a netdev named nosuch .*give a packetcapture cube, CUBE:PORT, or a netdev/],
    [['eth9', '--host', host.name], /the chains of this host use no netdev named eth9 \(they use: left, left2, right, right2\)/],
    [['cap:left'], /cube cap is transparent \(type packetcapture\) and has no ports: name the port or netdev it is stacked on instead/],
    [['plain:left', '--host', 'elsewhere'], /--host elsewhere: cube plain runs on host/],
  ];
  for (const [target, message] of cases) {
    const result = await run(['capture', ...target, '-w', join(dir, 'x.pcapng')]);
    t.not(result.code, 0, target.join(' '));
    t.regex(result.stderr, message, target.join(' '));
  }
  t.deepEqual(pinnedCubes(host), CHAIN_CUBES, 'nothing stacked by a refused capture');
});

test.serial('a capture whose port goes with its chain ends, saying why, and leaves nothing behind', async t => {
  const { host, run } = t.context;
  const file = join(scratch(t), 'gone.pcapng');
  const capture = watched(netcubectlChild(t, ['capture', 'plain:left', '-w', file]), /capturing on/);
  await capture.ready;
  const deleted = await run(['delete', 'chain', 'plain', '--wait', '--timeout', '60s']);
  t.is(deleted.code, 0, deleted.stderr);
  const ended = await capture.done;
  t.not(ended.code, 0);
  t.regex(ended.stderr, /capture on plain:left stopped: capture-1 on plain:left was removed: plain:left is gone from this host's chains/);
  t.deepEqual(await tcpdumpRead(file), [], 'a valid file, with what came (nothing)');
  t.deepEqual(await runningCubes(host), { cubes: ['cap', 'fwd'], stacks: ['cap@fwd:left'] });
  t.deepEqual(pinnedCubes(host), ['cap', 'fwd']);
});

test.serial('netcubed stopped during a capture removes the transient cube before it exits', async t => {
  const { host, run } = t.context;
  const capture = watched(netcubectlChild(t, ['capture', 'fwd:right', '-w', join(scratch(t), 'stopped.pcapng')]), /capturing on/);
  await capture.ready;
  t.true(pinnedCubes(host).includes('capture-1'));
  await host.stop();
  await capture.done;
  t.deepEqual(pinnedCubes(host).filter(name => name.startsWith('capture-')), [], 'nothing left in bpffs by the stopped daemon');
  await host.restart();
  t.regex(host.logTail(400), /"transientRemoved":\[\]/, 'nothing left for the next daemon to remove');
  await host.waitConnected();
  const again = await run(['capture', 'cap', '-c', '1', '--filter', FILTER, '-w', join(scratch(t), 'after.pcapng')], {
    spawned: c => void watched(c, /capturing on/).ready.then(() => sendDatagrams(t.context.clients[0], 1)).catch(() => undefined),
  });
  t.is(again.code, 0, again.stderr);
});

// netcubectl capture against a real daemon: a packetcapture cube stacked on a nop
// forwarder's port between two client namespaces, real UDP between them, and the
// pcapng files read back by Debian's tcpdump, compared byte for byte with what
// tcpdump itself captured on the receiver's interface.

import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
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
  for (let i = 0; i < 3; i++) {
    const ns = await newNetns();
    closers.push(() => ns.delete());
    namespaces.push(ns);
  }
  const [clientA, h1, clientB] = namespaces;
  // clientA eth0 --- left [cap on fwd:left, fwd] right --- eth0 clientB
  await createVethPair(clientA, h1, ['eth0', 'left'], ['10.98.0.1', '']);
  await createVethPair(h1, clientB, ['right', 'eth0'], ['', '10.98.0.2']);
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
  const applied = await run(['apply', '-f', file, '--wait', '--timeout', '60s']);
  if (applied.code !== 0) throw new Error(applied.stderr);
  // Neighbours resolved before any capture: the filter keeps ARP out anyway.
  await clientA.ping('10.98.0.2', 1);
  t.context = { host, clients: [clientA, clientB], run };
});

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

/** Sends `count` datagrams "netcube-capture-<i>", one after the other, from clientA. */
async function sendDatagrams(netns: Netns, count: number): Promise<void> {
  const script = `const s = require('dgram').createSocket('udp4');
let i = 0;
const next = () => (i === ${count} ? s.close() : s.send('netcube-capture-' + i++, ${PORT}, '10.98.0.2', next));
next();`;
  await netns.exec(process.execPath, ['-e', script]);
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

  const tcpdump = spawn('ip', ['netns', 'exec', clients[1].name, 'tcpdump', '-i', 'eth0', '-nn', '-U', '-c', String(count), '-w', reference, FILTER], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.teardown(() => {
    if (tcpdump.exitCode === null) tcpdump.kill('SIGKILL');
  });
  const receiver = watched(tcpdump, /listening on/);
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
  t.regex(wrongType.stderr, /cube fwd is a nop, not a packetcapture: stack a packetcapture cube/);

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

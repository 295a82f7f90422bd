// The slow path under load, end to end through a real netcubed: packet and
// metadata travel together in both directions, in order, and a controller that
// stops reading costs counted drops, not the daemon's memory.
//
// The subject is the probe test cube (bpf/testdata/cubes/probe.bpf.c), registered
// at run time, whose port `a` hands every packet to the control plane with its
// metadata words as they came. The daemon runs in the test's namespace (so its
// metrics and /proc are at hand) and keeps its netdevs in a namespace of their own
// (--netns).

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { NetcubeClient } from '@netcube/api/grpc/client';
import { Logger } from '@netcube/api/log';
import { defineService, startService, type Cube } from '@netcube/sdk';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { startDaemon, type NetcubedProcess } from '../helpers/daemon';
import { freePorts, startEtcd } from '../helpers/etcd';
import { createNetns, createVethPair } from '../helpers/netns';
import { createGenerator, streamFrame } from '../helpers/traffic';
import { applyChain } from './helpers';
import { waitFor } from '../helpers/wait';

const REASON = 7;

interface Env {
  daemon: NetcubedProcess;
  client: NetcubeClient;
  etcd: string[];
  metrics: string;
  sender: Awaited<ReturnType<typeof createNetns>>;
}

async function open(t: ExecutionContext, mode: 'xdp' | 'tc'): Promise<Env> {
  const etcd = await startEtcd(t);
  const host = await createNetns(t);
  const sender = await createNetns(t);
  for (const ns of [host, sender]) await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  await createVethPair(sender, host, ['gen0', 'in0'], null);
  const [port] = await freePorts(1);
  const metrics = `127.0.0.1:${port}`;
  const daemon = await startDaemon(t, { etcd: etcd.endpoints, args: ['--netns', host.path, '--metrics', metrics] });
  await daemon.waitConnected();
  const client = daemon.client();
  t.teardown(() => client.close());
  const dir = path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes');
  await client.registerType({ name: 'probe', xdpObject: fs.readFileSync(path.join(dir, 'probe.xdp.o')), tcObject: fs.readFileSync(path.join(dir, 'probe.tc.o')) });
  const { Store } = await import('@netcube/api/store');
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  await applyChain(
    store,
    `apiVersion: netcube/v1
kind: Chain
metadata: { name: slow }
spec:
  cubes:
    - { name: pr, host: ${daemon.name}, type: probe, mode: ${mode}, ports: [a, b] }
  links:
    - { from: pr:a, to: netdev:in0 }
`,
  );
  await waitFor('the cube on its host', () => client.getCube({ name: 'pr' }));
  return { daemon, client, etcd: etcd.endpoints, metrics, sender };
}

async function scrape(address: string): Promise<Map<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get(`http://${address}/metrics`, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  return new Map(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]),
  );
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** The metadata words a packet-out of sequence number `i` carries, also written in its payload. */
const wordsOf = (i: number): number[] => [i, (i ^ 0xa5a5a5a5) >>> 0, ((Math.imul(i, 2654435761) ^ 0x5eed) >>> 0)];

function numbered(i: number, port: string): Buffer {
  const payload = Buffer.alloc(4 + 12 + 2 + (i % 200));
  payload.write('SEQ!', 0);
  wordsOf(i).forEach((w, k) => payload.writeUInt32BE(w, 4 + 4 * k));
  payload.write(port.padEnd(2, '-'), 16);
  return ethernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', payload: ipv4({ src: '10.9.0.1', dst: '10.9.0.2', payload: udp({ sport: 7, dport: 7, payload }) }) });
}

/** What a packet says about itself: its sequence number, the words it should come with, its port. */
function claims(frame: Buffer): { i: number; words: number[]; port: string } | undefined {
  const at = frame.indexOf('SEQ!');
  if (at < 0) return undefined;
  return { i: frame.readUInt32BE(at + 4), words: [0, 1, 2].map((k) => frame.readUInt32BE(at + 4 + 4 * k)), port: frame.toString('utf8', at + 16, at + 18).replace(/-+$/, '') };
}

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: 10k packet-ins with concurrent packet-outs, every one paired with its own metadata`, async (t) => {
    const env = await open(t, mode);
    const TOTAL = 10_000;
    const WINDOW = 512;
    const seen = new Uint8Array(TOTAL);
    const mismatches: string[] = [];
    let received = 0;
    let last = -1;
    let reordered = 0;
    const echo = defineService({
      type: 'probe',
      config: { proto: 'google/protobuf/empty.proto', message: 'google.protobuf.Empty' },
      // Both ports hand everything to the control plane, each with its own reason.
      staticTables: (cube) => ({
        probe_actions: [
          { key: cube.port('a').index, value: { op: 'PROBE_CONTROLLER', arg: REASON } },
          { key: cube.port('b').index, value: { op: 'PROBE_CONTROLLER', arg: REASON + 1 } },
        ],
      }),
      packetIn(_cube, pkt) {
        const c = claims(pkt.frame);
        if (!c || c.i >= TOTAL) return;
        received++;
        if (c.i < last) reordered++;
        last = c.i;
        if (seen[c.i]++) mismatches.push(`#${c.i} twice`);
        if (pkt.user.join() !== c.words.join()) mismatches.push(`#${c.i} came with words ${pkt.user.join()} instead of ${c.words.join()}`);
        if (pkt.port.name !== c.port || pkt.reason !== (c.port === 'a' ? REASON : REASON + 1)) mismatches.push(`#${c.i} came in on ${pkt.port.name} (reason ${pkt.reason}), sent into ${c.port}`);
        if (pkt.frame.length !== pkt.wireLength) mismatches.push(`#${c.i} cut: ${pkt.frame.length} of ${pkt.wireLength} bytes`);
      },
    });
    const svc = await startService(echo, { etcd: env.etcd, replica: 'echo', leaseTtl: 2, log: new Logger('warn', {}, () => undefined) });
    t.teardown(() => svc.close());
    const cube = await waitFor('the cube ready', () => {
      const c = svc.controller?.cubes.get('pr');
      return c?.ready ? (c as Cube) : undefined;
    });
    const before = await scrape(env.metrics);

    // Packet-outs go in while packet-ins come back: at most WINDOW in flight.
    const started = Date.now();
    for (let i = 0; i < TOTAL; i++) {
      if (i - received >= WINDOW) await waitFor('packet-ins to catch up', () => i - received < WINDOW / 2, 10_000, 1);
      const port = i % 3 === 0 ? 'b' : 'a';
      cube.packetOut(port, 'ingress', numbered(i, port), wordsOf(i));
    }
    await waitFor(`all ${TOTAL} packet-ins (have ${received})`, () => received >= TOTAL, 20_000, 10);
    const seconds = (Date.now() - started) / 1000;
    t.log(`${TOTAL} packet-out/packet-in round trips in ${seconds.toFixed(2)} s (${Math.round(TOTAL / seconds)}/s)`);
    t.deepEqual(mismatches.slice(0, 10), []);
    t.is(received, TOTAL);
    t.is(seen.filter((n) => n !== 1).length, 0, 'each exactly once');
    t.is(reordered, 0, 'in the order they were sent: one stream each way');

    const after = await scrape(env.metrics);
    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    t.is(delta('netcube_slowpath_packets_total{cube="pr",outcome="delivered"}'), TOTAL);
    t.is(delta('netcube_slowpath_packets_total{cube="pr",outcome="queue_full"}'), 0);
    t.is(delta('netcube_packet_outs_total{outcome="sent"}'), TOTAL);
  });
}

test('a controller that stops reading: drops are counted, the daemon\'s memory stays bounded', async (t) => {
  const env = await open(t, 'xdp');
  // A bare slow-path session: say hello, read the welcome, then never read again.
  const stream = env.client.openSlowPath({ controller: 'stalled', types: ['probe'] });
  t.teardown(() => stream.close());
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  t.is(first.value?.kind, 'welcome');
  await env.client.putEntry({ table: { cube: 'pr', table: 'probe_actions' }, entry: { keyJson: JSON.stringify((await env.client.getCube({ name: 'pr' })).ports.find((p) => p.name === 'a')!.index), valueJson: JSON.stringify({ op: 'PROBE_CONTROLLER', arg: REASON }) } });

  const pid = env.daemon.pid!;
  const baseline = rssKb(pid);
  const before = await scrape(env.metrics);
  // Big frames, so that a daemon that queued them would show it. Three rounds of
  // flood: a queue without bound grows with every round, a bounded one levels off
  // (what does grow is garbage the collector has not taken back yet).
  const generator = await createGenerator(t, env.sender, 'gen0', [streamFrame({ payload: 1400 })]);
  const peaks: number[] = [];
  let sent = 0;
  for (let round = 0; round < 3; round++) {
    let peak = 0;
    const started = Date.now();
    while (Date.now() - started < 4_000) {
      await generator.send(8_192, { perRun: 4_096 });
      sent += 8_192;
      peak = Math.max(peak, rssKb(pid));
    }
    peaks.push(peak);
  }
  const after = await scrape(env.metrics);
  const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  const delivered = delta('netcube_slowpath_packets_total{cube="pr",outcome="delivered"}');
  const queueFull = delta('netcube_slowpath_packets_total{cube="pr",outcome="queue_full"}');
  const ringFull = delta('netcube_dataplane_errors_total{cause="pkt_full"}');
  const rateLimited = delta('netcube_dataplane_errors_total{cause="pkt_rate"}');
  const toController = delta('netcube_port_to_controller_total{cube="pr",port="a"}');
  t.log(`sent ${sent} frames of 1442 bytes in 12 s: ${toController} to the controller, ${delivered} queued for it, ${queueFull} dropped (queue full), ${ringFull} dropped (ring full), ${rateLimited} dropped (rate limit); RSS ${baseline} kB before, at most ${peaks.join(', ')} kB in each 4 s round`);
  t.true(queueFull > 0, 'the stalled session\'s queue filled, and what did not fit was counted');
  t.true(delivered < 20_000, `the daemon held on to a bounded number of packets: ${delivered}`);
  t.true(queueFull + ringFull + rateLimited > sent / 2, 'most of the flood was dropped, and counted');
  t.true(peaks[2] - peaks[0] < 64 * 1024, `RSS kept growing: ${peaks.join(' -> ')} kB`);
  t.true(peaks[2] - baseline < 256 * 1024, `RSS grew by ${peaks[2] - baseline} kB`);
  // The daemon still answers.
  t.is((await env.client.getHost()).name, env.daemon.name);
});

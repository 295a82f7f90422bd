// The slow path under load, end to end through a real netcubed: packet and
// metadata travel together in both directions, in order, and a controller that
// stops reading costs counted drops, not the daemon's memory.
//
// The subject is the probe test cube (bpf/testdata/cubes/probe.bpf.c), registered
// at run time, whose port `a` hands every packet to the control plane with its
// metadata words as they came. The daemon runs in the test's namespace (so its
// metrics and /proc are at hand) and keeps its netdevs in a namespace of their own
// (--netns).

import test from 'ava';
import { Logger } from '@netcube/api/log';
import { MAX_QUEUED } from '../../node-daemon/src/api/slowpath';
import { defineService, startService, type Cube } from '@netcube/sdk';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import { floodProbe, openProbeHost, probeToController, scrape } from '../helpers/slowpath';
import { waitFor } from '../helpers/wait';

const REASON = 7;

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
    const env = await openProbeHost(t, mode);
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
    const svc = await startService(echo, { etcd: env.etcd, replica: 'echo', log: new Logger('warn', {}, () => undefined) });
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
  const env = await openProbeHost(t, 'xdp');
  // A bare slow-path session: say hello, read the welcome, then never read again.
  const stream = env.client.openSlowPath({ controller: 'stalled', types: ['probe'] });
  t.teardown(() => stream.close());
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  t.is(first.value?.kind, 'welcome');
  await probeToController(env, REASON);

  // Big frames, so that a daemon that queued them would show it: 12 s of flood.
  const f = await floodProbe(t, env, 12_000);
  t.log(`sent ${f.sent} frames of 1442 bytes in 12 s; ${f.arrived} reached the cube: ${f.toController} to the controller (${f.delivered} queued for it, ${f.drops.queue_full} dropped: queue full), ${f.drops.ring_full} dropped (ring full), ${f.drops.cube_rate} dropped (cube rate), ${f.drops.held} dropped (held: no room); RSS ${f.baselineKb} kB before, ${f.peakKb} kB at most`);
  // Frames the veths dropped under load never reach the cube: the accounting starts there.
  t.true(f.arrived > 0 && f.arrived <= f.sent, `${f.arrived} of ${f.sent} frames reached the cube`);
  t.is(f.toController + f.drops.ring_full + f.drops.cube_rate + f.drops.held, f.arrived, 'every frame that reached the cube went to the ring or was dropped, and counted');
  t.true(f.drops.queue_full > 0, 'the stalled session\'s queue filled, and what did not fit was counted');
  // Its queue, and what gRPC holds before the stream's flow control stops the writes.
  t.true(f.delivered < MAX_QUEUED + 16_384, `the daemon held on to a bounded number of packets: ${f.delivered}`);
  t.true(f.peakKb - f.baselineKb < 128 * 1024, `RSS grew by ${f.peakKb - f.baselineKb} kB`);
  // The daemon still answers.
  t.is((await env.client.getHost()).name, env.daemon.name);

  // Reading again, the controller drains its queue; once half of it is free the
  // data plane lets the cube go, and new packets reach the controller.
  t.is((await scrape(env.metrics)).get('netcube_slowpath_held_cubes'), 1, 'the cube was held while the queue was full');
  let read = 0;
  while (read < f.delivered) {
    const m = await it.next();
    if (m.done) break;
    read += m.value.packetIns?.packets.length ?? 0;
  }
  t.is(read, f.delivered, 'every packet the daemon queued reached the controller');
  t.is((await scrape(env.metrics)).get('netcube_slowpath_held_cubes'), 0, 'let go once the queue had room');
  const more = await floodProbe(t, env, 500);
  t.true(more.delivered > 0, `after the queue drained, ${more.delivered} new packets were queued for the controller`);
});

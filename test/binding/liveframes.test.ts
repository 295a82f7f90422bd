import test from 'ava';
import * as os from 'node:os';
import * as bpf from '../../node-daemon/src/bpf';
import { allowedCpus } from '../helpers/cpus';
import { createNetns, createVethPair } from '../helpers/netns';
import { testObject } from './testdata';
import { waitFor } from '../helpers/wait';

/** An Ethernet + IPv4 + ICMP echo request frame from 10.99.0.1 to 10.99.0.2. */
function echoRequest(): Buffer {
  const frame = Buffer.alloc(14 + 20 + 8 + 32);
  frame.fill(0xff, 0, 6);                                  // broadcast: any receiver takes it
  Buffer.from([0x02, 0, 0, 0, 0, 1]).copy(frame, 6);
  frame.writeUInt16BE(0x0800, 12);
  frame[14] = 0x45;                                        // IPv4, 20-byte header
  frame.writeUInt16BE(frame.length - 14, 16);
  frame[22] = 64;                                          // TTL
  frame[23] = 1;                                           // ICMP
  Buffer.from([10, 99, 0, 1, 10, 99, 0, 2]).copy(frame, 26);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += frame.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  frame.writeUInt16BE(~sum & 0xffff, 24);
  frame[34] = 8;                                           // echo request
  return frame;
}

/** struct xdp_md for a live-frames run: the frame spans the data, arriving on `ifindex`. */
function xdpContext(frameLength: number, ifindex: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frameLength, 4);   // data_end
  ctx.writeUInt32LE(ifindex, 12);      // ingress_ifindex
  return ctx;
}

test('an XDP live-frames test run in a namespace transmits frames the peer XDP counter sees', async (t) => {
  const a = await createNetns(t);
  const b = await createNetns(t);
  const [aEnd, bEnd] = await createVethPair(a, b);

  const counter = await bpf.CollectionSpec.fromFile(testObject('xdp_counter')).load();
  t.teardown(() => counter.close());
  // Frames XDP-transmitted into a veth are received by its peer only if the peer runs XDP.
  const link = await bpf.attachXdp({ program: counter.program('xdp_count_icmp'), ifname: bEnd.ifname, netns: b.name });
  t.teardown(() => link.close());

  const tx = await bpf.CollectionSpec.fromFile(testObject('xdp_tx')).load();
  t.teardown(() => tx.close());
  const frame = echoRequest();
  const frames = 200;
  const run = await tx.program('xdp_tx').testRun({
    data: frame,
    ctx: xdpContext(frame.length, await bpf.ifindex(aEnd.ifname, a.name)),
    liveFrames: true,
    repeat: frames,
    batchSize: 16,
    netns: a.name,
  });
  t.is(run.data.length, 0);

  const key = Buffer.alloc(4);
  key.writeUInt32LE(8);
  const requests = () => Number(counter.map('icmp_types').lookup(key)!.readBigUInt64LE());
  await waitFor(`${frames} echo requests counted`, () => requests() >= frames, 5000, 10);
  t.is(requests(), frames);
});

test('live frames are for XDP programs only', async (t) => {
  const tc = await bpf.CollectionSpec.fromFile(testObject('tc_counter')).load();
  t.teardown(() => tc.close());
  await t.throwsAsync(tc.program('tc_count_icmp').testRun({ data: echoRequest(), liveFrames: true }), {
    instanceOf: RangeError,
    message: "options.liveFrames: Program 'tc_count_icmp' is a sched_cls program; live frames are XDP only",
  });
});

test('a test run pinned to a CPU runs there, in a namespace or not', async (t) => {
  const a = await createNetns(t);
  const coll = await bpf.CollectionSpec.fromFile(testObject('xdp_cpu')).load();
  t.teardown(() => coll.close());
  const program = coll.program('xdp_cpu');
  for (let round = 0; round < 3; round++) {
    for (const cpu of allowedCpus()) {
      for (const netns of [undefined, a.name]) {
        const run = await program.testRun({ data: Buffer.alloc(64), cpu, netns });
        t.is(run.data.readUInt32LE(0), cpu, `asked for CPU ${cpu}${netns ? ' in a namespace' : ''}`);
      }
    }
  }
  const cpus = os.cpus().length;
  await t.throwsAsync(program.testRun({ data: Buffer.alloc(64), cpu: cpus }), {
    instanceOf: RangeError,
    message: `options.cpu must be an integer from 0 to ${cpus - 1}, got ${cpus}`,
  });
});

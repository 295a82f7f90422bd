// Alone in its file: ava runs a file's tests concurrently, and other tests'
// fds would blur the count.
import test from 'ava';
import { readdirSync, readlinkSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import * as bpf from '../../node-daemon/src/bpf';
import { emptyFrame, testObject } from './testdata';

/** What each open fd is; the one readdir itself had open is gone by then. */
function fds(): Map<string, string> {
  const open = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      open.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // readdir's own, closed
    }
  }
  return open;
}

/** The kernel's types kept for CO-RE relocation (native/btf.cc): one memfd per set of type names, for the process. */
const isKernelBtf = (link: string): boolean => link.startsWith('/memfd:netcube-kernel-btf');

function openFds(): string[] {
  return [...fds()].filter(([, link]) => !isKernelBtf(link)).map(([fd]) => fd).sort();
}

const kernelBtfFds = (): number => [...fds().values()].filter(isKernelBtf).length;

async function loadRunClose(): Promise<void> {
  const coll = await bpf.CollectionSpec.fromFile(testObject('counter')).load();
  await coll.program('count_packet').testRun({ data: emptyFrame });
  coll.map('totals').loadU64(0);
  coll.close();
}

test.serial('loading and closing 200 objects leaves no file descriptor behind', async (t) => {
  await loadRunClose();  // libuv and libbpf set up what they keep for the process
  const before = openFds();
  const kernelBtf = kernelBtfFds();
  for (let i = 0; i < 200; i++) await loadRunClose();
  for (let i = 0; i < 20; i++) bpf.CollectionSpec.fromFile(testObject('counter')).close();
  for (let i = 0; i < 20; i++) await t.throwsAsync(bpf.CollectionSpec.fromFile(testObject('reject')).load());
  t.deepEqual(openFds(), before);
  t.true(kernelBtfFds() <= kernelBtf + 1, 'the kernel\'s types for one more object kept once, not per load');
});

test.serial('handles nobody closed are closed when collected', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const before = openFds();
  (() => {
    for (let i = 0; i < 50; i++) bpf.BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 1 });
  })();
  t.true(openFds().length >= before.length + 50);
  for (let i = 0; i < 10 && openFds().length > before.length; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.deepEqual(openFds(), before);
});

test.serial('handles of an environment that ends unclosed are closed by its cleanup hook', async (t) => {
  const before = openFds();
  // A worker thread is its own Node environment; it ends without closing anything.
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const bpf = require(workerData.binding);
    (async () => {
      const maps = [];
      for (let i = 0; i < 20; i++) maps.push(bpf.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 }));
      const coll = await bpf.CollectionSpec.fromFile(workerData.object).load();
      const reader = new bpf.RingBufReader(coll.map('events'));
      reader.on('record', () => {});
      const spec = bpf.CollectionSpec.fromFile(workerData.object);
      parentPort.postMessage(require('node:fs').readdirSync('/proc/self/fd').length);
      globalThis.keep = { maps, coll, reader, spec };
    })();
  `, { eval: true, workerData: { binding: require.resolve('../../node-daemon/src/bpf'), object: testObject('ringbuf') } });
  const inWorker = await new Promise<number>((resolve, reject) => worker.once('message', resolve).once('error', reject));
  t.true(inWorker >= before.length + 20);
  await worker.terminate();
  t.deepEqual(openFds(), before);
});

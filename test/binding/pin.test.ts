import test from 'ava';
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import * as path from 'node:path';
import * as bpf from '../../node-daemon/src/bpf';
import { mountBpffs } from '../helpers/bpffs';
import { emptyFrame, testObject } from './testdata';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

test('pinned maps and programs survive closing everything and reopen by path', async (t) => {
  const fs = await mountBpffs(t);
  const coll = await bpf.CollectionSpec.fromFile(testObject('tailcall')).load();
  const jumps = coll.map('jump_table');
  jumps.setProgram(0, coll.program('target'));
  const ids = { jumps: jumps.id, entry: coll.program('entry').id, target: coll.program('target').id };
  jumps.pin(path.join(fs, 'jumps'));
  coll.program('entry').pin(path.join(fs, 'entry'));
  coll.close();

  // Only the pins hold the map, the entry program and (through the slot) the target now.
  const entry = bpf.Program.openPinned(path.join(fs, 'entry'));
  const reopened = bpf.BpfMap.openPinned(path.join(fs, 'jumps'));
  t.teardown(() => {
    entry.close();
    reopened.close();
  });
  t.like(entry, { id: ids.entry, type: 'xdp', name: 'entry' });
  t.like(reopened, { id: ids.jumps, type: 'prog_array', name: 'jump_table', keySize: 4, maxEntries: 4 });
  t.is(reopened.lookup(u32(0))!.readUInt32LE(), ids.target);
  t.is((await entry.testRun({ data: emptyFrame })).retval, 42);

  t.throws(() => bpf.Program.openPinned(path.join(fs, 'jumps')), {
    instanceOf: TypeError, message: 'the object is a BPF map, not a program',
  });
  t.throws(() => bpf.BpfMap.openPinned(path.join(fs, 'entry')), { instanceOf: TypeError, message: /not a map/ });
  const missing = t.throws(() => bpf.BpfMap.openPinned(path.join(fs, 'nothing')), { instanceOf: bpf.NotFoundError });
  t.is(missing.code, 'ENOENT');
  const taken = t.throws(() => entry.pin(path.join(fs, 'jumps')), { instanceOf: bpf.BpfError });
  t.is(taken.code, 'EEXIST');
});

test('a MapSpec pin path makes the next load reuse the pinned map and its data', async (t) => {
  const fs = await mountBpffs(t);
  const pinPath = path.join(fs, 'flows');
  const load = async () => {
    const spec = bpf.CollectionSpec.fromFile(testObject('counter'));
    spec.maps.get('flows')!.pinPath = pinPath;
    t.is(spec.maps.get('flows')!.pinPath, pinPath);
    return spec.load();
  };
  const first = await load();
  t.true(existsSync(pinPath));
  const flows = first.map('flows');
  const key = bpf.encode(flows.keyType!, { proto: 17 });
  flows.update(key, Buffer.alloc(flows.valueSize));
  await first.program('count_packet').testRun({ data: emptyFrame });
  const id = flows.id;
  first.close();

  const second = await load();
  t.teardown(() => second.close());
  t.is(second.map('flows').id, id);
  await second.program('count_packet').testRun({ data: emptyFrame });
  t.like(bpf.decode(flows.valueType!, second.map('flows').lookup(key)!), { packets: 2 });
  await unlink(pinPath);
});

test('replaceWith loads the programs against an existing map', async (t) => {
  const shared = bpf.BpfMap.create({ type: 'hash', keySize: 16, valueSize: 32, maxEntries: 16, name: 'shared' });
  t.teardown(() => shared.close());
  const spec = bpf.CollectionSpec.fromFile(testObject('counter'));
  const flowsSpec = spec.maps.get('flows')!;
  const key = bpf.encode(flowsSpec.keyType!, { proto: 17 });
  shared.update(key, Buffer.alloc(32));
  flowsSpec.replaceWith(shared);
  const coll = await spec.load();
  t.teardown(() => coll.close());
  t.is(coll.map('flows').id, shared.id);
  await coll.program('count_packet').testRun({ data: emptyFrame });
  t.like(bpf.decode(flowsSpec.valueType!, shared.lookup(key)!), { packets: 1, bytes: 64 });

  const other = bpf.CollectionSpec.fromFile(testObject('counter'));
  t.teardown(() => other.close());
  t.throws(() => other.maps.get('hits')!.replaceWith(shared), {
    instanceOf: TypeError,
    message: "BpfMap 'shared' (hash 16/32) cannot replace map 'hits' (percpu_array 4/8): type and key/value sizes differ",
  });
});

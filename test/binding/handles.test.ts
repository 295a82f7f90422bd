// The native handles, one class per kind (native/fd_handle.h): each carries its
// kind's type tag, so the raw addon refuses a handle of another kind where it needs
// a map or a program, whatever the TypeScript above it let through.

import test from 'ava';
import * as bpf from '../../node-daemon/src/bpf';
import { native } from '../../node-daemon/src/bpf/addon';
import { mapHandle } from '../../node-daemon/src/bpf/map';
import { programHandle } from '../../node-daemon/src/bpf/program';
import { testObject } from './testdata';

test('a map handle where a program is needed, and the other way round, is a TypeError naming the kind', async (t) => {
  const coll = await bpf.CollectionSpec.fromFile(testObject('ringbuf')).load();
  t.teardown(() => coll.close());
  const map = mapHandle(coll.map('events'));
  const program = programHandle(coll.program('produce'));
  t.throws(() => new native.RingBuffer(program as never, 'test', () => undefined, () => undefined), { instanceOf: TypeError, message: 'expected a native map handle' });
  t.throws(() => native.xdpAttach(map as never, 'lo', null, 'generic'), { instanceOf: TypeError, message: 'expected a native program handle' });
  t.throws(() => native.xdpAttach({ fd: program.fd } as never, 'lo', null, 'generic'), { instanceOf: TypeError, message: 'expected a native program handle' });
  // The right kinds still work.
  const reader = new native.RingBuffer(map, 'test', () => undefined, () => undefined);
  reader.close();
  t.is(map.info().kind, 'map');
  t.is(program.info().kind, 'program');
});

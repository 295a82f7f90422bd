import test from 'ava';
import * as bpf from '../../node-daemon/src/bpf';

test('synchronizeRcu resolves, also when called concurrently', async (t) => {
  t.deepEqual(await Promise.all([bpf.synchronizeRcu(), bpf.synchronizeRcu(), bpf.synchronizeRcu()]),
              [undefined, undefined, undefined]);
});

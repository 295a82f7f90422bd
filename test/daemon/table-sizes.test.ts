// A chain sizes a cube's tables (tableSizes) through a real netcubed and etcd: the
// kernel's map has the size; netcubed killed with -9 and restarted adopts the
// cube with its table as it was; a new size loads the cube anew (logged); a size
// over the host's memory per map fails the chain on that host, naming the field
// and the limit, and changes nothing there.

import * as path from 'node:path';
import test from 'ava';
import { BpfMap } from '../../node-daemon/src/bpf';
import { pinName } from '../../node-daemon/src/runtime/host';
import type { Chain } from '@netcube/api/chain';
import { ApplyFailedError } from '@netcube/api/store';
import { startEtcd } from '../helpers/etcd';
import { applyAndWait, chain, isPass, logMark, openHost, pinnedCubes, waitLog } from './setup';

/** A nat cube, detached, whose chain sizes its conntrack table. */
function sized(host: string, natCt: number): Chain {
  const c = chain('sized', host, [{ name: 'nat1', type: 'nat', ports: [] }], []);
  c.spec.cubes[0].tableSizes = { nat_ct: natCt };
  return c;
}

/** The size of a cube's pinned table, as the kernel reports it. */
function pinnedSize(bpffs: string, cube: string, table: string): number {
  const id = pinnedCubes(bpffs)[cube];
  const m = BpfMap.openPinned(path.join(bpffs, 'cubes', pinName(`${id}-${cube}`), 'maps', table));
  try {
    return m.maxEntries;
  } finally {
    m.close();
  }
}

test('tableSizes from etcd: the kernel has them; kill -9 keeps them; a new size reloads the cube; one over the host limit fails and changes nothing', async (t) => {
  t.timeout(180_000);
  const etcd = await startEtcd(t);
  const h = await openHost(t, { etcd });
  const host = h.daemon.name;

  await applyAndWait(h.store, sized(host, 64));
  t.is(pinnedSize(h.bpffs, 'nat1', 'nat_ct'), 64);
  t.is(pinnedSize(h.bpffs, 'nat1', 'nat_sessions'), 65536, 'a table the chain does not size keeps its own');
  t.deepEqual((await h.client.getCube({ name: 'nat1' })).tableSizes, { nat_ct: 64 });
  const id = pinnedCubes(h.bpffs).nat1;

  // kill -9 and a restart: the cube is adopted as it is, nothing to change.
  let mark = logMark(h.daemon);
  await h.daemon.kill();
  await h.daemon.restart();
  const pass = await waitLog(h.daemon, isPass, { from: mark });
  t.is(pass.msg, 'reconciled, nothing to change', JSON.stringify(pass));
  t.is(pinnedCubes(h.bpffs).nat1, id, 'adopted, not reloaded');
  t.is(pinnedSize(h.bpffs, 'nat1', 'nat_ct'), 64);

  // A new size: the cube is loaded anew, and the log says its tables start empty.
  mark = logMark(h.daemon);
  await applyAndWait(h.store, sized(host, 128));
  const warned = await waitLog(h.daemon, (l) => l.msg === 'table sizes changed: cubes loaded anew, their tables start empty', { from: mark });
  t.deepEqual(warned.cubes, ['nat1']);
  t.not(pinnedCubes(h.bpffs).nat1, id);
  t.is(pinnedSize(h.bpffs, 'nat1', 'nat_ct'), 128);
  const resizedId = pinnedCubes(h.bpffs).nat1;

  // Within the chain format's range, over this host's 64 MiB a map: the chain is
  // stored (etcd does not know the host's limit), the host refuses it.
  const error = await t.throwsAsync(applyAndWait(h.store, sized(host, 16_777_216)), { instanceOf: ApplyFailedError });
  t.regex(error?.message ?? '', /cube nat1, tableSizes\.nat_ct: 16777216 entries \(lru_hash, key 40 B, value 16 B\) would take 1\.9 GiB of kernel memory, over this host's limit of 64 MiB per map \(--max-map-memory\): give it at most 559240 entries/);
  t.is(pinnedCubes(h.bpffs).nat1, resizedId, 'the cube is left as it was');
  t.is(pinnedSize(h.bpffs, 'nat1', 'nat_ct'), 128);
});

// A cube runtime for the benchmarks (code outside ava) on a testbed's host
// namespace, in a fresh directory under /run; its destroy() removes it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unmountBpffs } from '../../node-daemon/src/runtime/host';
import { Runtime } from '../../node-daemon/src/runtime/runtime';
import type { Testbed } from '../helpers/testbed';

export async function openBenchRuntime(bed: Pick<Testbed, 'host'>): Promise<Runtime> {
  const root = fs.mkdtempSync('/run/nct-bench-');
  try {
    return await Runtime.open({ root, netns: bed.host.path });
  } catch (err) {
    unmountBpffs(path.join(root, 'bpf'));
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

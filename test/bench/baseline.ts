// The hand-written baselines of bpf/baseline: each keeps its forwarding in one
// array map, out_ifindex, from ingress ifindex to the ifindex to send to.
import * as path from 'node:path';
import { CollectionSpec, ifindex, type Collection } from '../../node-daemon/src/bpf';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';

/** bpf/baseline/<name>.bpf.c loaded, forwarding each pair's first interface (in `netns`) to its second. */
export async function loadBaseline(name: string, netns: string, pairs: [string, string][]): Promise<Collection> {
  const coll = await CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'baseline', `${name}.o`)).load();
  try {
    for (const [from, to] of pairs) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(await ifindex(from, netns));
      const value = Buffer.alloc(4);
      value.writeUInt32LE(await ifindex(to, netns));
      coll.map('out_ifindex').update(key, value);
    }
    return coll;
  } catch (err) {
    coll.close();
    throw err;
  }
}

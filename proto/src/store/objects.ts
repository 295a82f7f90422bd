// ELF objects kept by their content: what a chain's replaced micro-cubes
// (replacedMicrocubes: index -> sha256) name, so a chain version stays small and a
// host that recreates the cube fetches the object again. An object is written once
// and never changes; the same bytes again are the same key.

import { createHash } from 'node:crypto';
import { absent, decode, deleteOp, Etcd, getOp, prefixOp, prefixUnchangedSince, putOp } from './etcd';
import { CorruptValueError, NotFoundError, ValidationError } from './errors';
import { CHAIN_HISTORY_PREFIX, CHAINS_PREFIX, objectKey } from './keys';

// etcd refuses requests over 1.5 MiB by default (--max-request-bytes); base64 adds a third.
const MAX_OBJECT_BYTES = 1024 * 1024;

interface ObjectValue {
  sha256: string;
  object: string; // base64
  storedAt: string;
}

/** The name an object is stored under: sha256 of its bytes, in hex. */
export function objectDigest(object: Buffer): string {
  return createHash('sha256').update(object).digest('hex');
}

export class Objects {
  constructor(private readonly etcd: Etcd) {}

  /** Stores `object` (once) and returns its sha256; `created` when etcd did not hold it before. */
  async put(object: Buffer): Promise<{ sha256: string; created: boolean }> {
    if (!Buffer.isBuffer(object) || object.length === 0) throw new ValidationError('the object is empty: upload the .o that clang -target bpf produced');
    if (object.length > MAX_OBJECT_BYTES) {
      throw new ValidationError(`the object is ${object.length} bytes, over the ${MAX_OBJECT_BYTES} netcube keeps in etcd: strip debug sections other than BTF (llvm-strip -g)`);
    }
    const sha256 = objectDigest(object);
    const value: ObjectValue = { sha256, object: object.toString('base64'), storedAt: new Date().toISOString() };
    // Same key, same bytes: one already there (a retry, another host) is kept as it is.
    const { succeeded } = await this.etcd.write(`store object ${sha256}`, [absent(objectKey(sha256))], [putOp(objectKey(sha256), value)]);
    return { sha256, created: succeeded };
  }

  /**
   * Removes an object no chain names (current or in its history), as after a change
   * that stored it and then failed: unless a chain came to name it meanwhile.
   */
  async removeUnused(sha256: string): Promise<boolean> {
    const { ranges, revision } = await this.etcd.read(`read what names object ${sha256}`, [prefixOp(CHAINS_PREFIX), prefixOp(CHAIN_HISTORY_PREFIX)]);
    if (ranges.some((kvs) => kvs.some((kv) => kv.value.includes(sha256)))) return false;
    const { succeeded } = await this.etcd.write(
      `remove object ${sha256}`,
      [prefixUnchangedSince(CHAINS_PREFIX, revision), prefixUnchangedSince(CHAIN_HISTORY_PREFIX, revision)],
      [deleteOp(objectKey(sha256))],
    );
    return succeeded;
  }

  async get(sha256: string): Promise<Buffer> {
    const { ranges } = await this.etcd.read(`read object ${sha256}`, [getOp(objectKey(sha256))]);
    const kv = ranges[0][0];
    if (!kv) throw new NotFoundError(`object ${sha256} is not in etcd: replace the micro-cube again with its object`);
    const value = decode<ObjectValue>(kv);
    const object = Buffer.from(typeof value?.object === 'string' ? value.object : '', 'base64');
    if (objectDigest(object) !== sha256) {
      throw new CorruptValueError(`object ${sha256} in etcd does not match its sha256: it was not written by netcube; delete it with etcdctl and replace the micro-cube again`, kv.key);
    }
    return object;
  }
}

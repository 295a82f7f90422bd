// What the store tests share: stores and raw etcd clients closed in teardown, the
// fixture types registered.

import type { ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { PrefixWatch, Store, StoreOptions } from '@netcube/api/store';
import { TYPES } from '../chain/fixtures';
import { hostCheck } from '../../node-daemon/src/chain';

export async function connect(t: ExecutionContext, endpoints: string[], options: Partial<StoreOptions> = {}): Promise<Store> {
  const store = await Store.connect({ endpoints, hostCheck, ...options });
  t.teardown(() => store.close());
  return store;
}

/** A plain etcd client, to look at keys without going through the store. */
export function rawClient(t: ExecutionContext, endpoints: string[]): Etcd3 {
  const client = new Etcd3({ hosts: endpoints });
  t.teardown(() => client.close());
  return client;
}

export async function currentRevision(client: Etcd3): Promise<number> {
  const res = await client.kv.range({ key: Buffer.from('/'), count_only: true });
  return Number(res.header.revision);
}

/** Enough of an ELF object for the registry: its magic number and a tag. */
export function elf(tag: string): Buffer {
  return Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.from(tag)]);
}

export async function registerTypes(store: Store): Promise<void> {
  for (const type of TYPES) {
    const objects = Object.fromEntries(type.modes.map(mode => [mode, elf(`${type.name}.${mode}`)]));
    await store.types.putType({ ...type, objects });
  }
}

/** Every put and delete a watch emits, as `put demo v3` / `delete demo`. */
export function record<T>(watch: PrefixWatch<T>, describe: (value: T) => string): string[] {
  const events: string[] = [];
  watch.on('put', e => events.push(`put ${e.name} ${describe(e.value)}`));
  watch.on('delete', e => events.push(`delete ${e.name}`));
  return events;
}

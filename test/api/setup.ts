// What the API tests share: a host (a namespace) with a real netcubed on a test etcd,
// a client, the chain as etcd holds it, and checks of a failed call's status.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { ApiCallError, NetcubeClient } from '@netcube/api/grpc/client';
import { Store, StoredChain } from '@netcube/api/store';
import { ethernet, ipv4, udp } from '@netcube/sdk/packet';
import { defaultChainName } from '../../node-daemon/src/api/chain-edit';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { BpfMap, Program } from '../../node-daemon/src/bpf';
import { entering, runProgram } from '../helpers/dataplane';
import { NetcubedProcess } from '../helpers/daemon';
import { EtcdCluster } from '../helpers/etcd';
import { Netns, newNetns } from '../helpers/netns';
import { hostCheck } from '../../node-daemon/src/chain';

export interface ApiEnv {
  etcd: EtcdCluster;
  netns: Netns;
  daemon: NetcubedProcess;
  client: NetcubeClient;
  store: Store;
  /** The host's own chain: host-<name>. */
  hostChain: string;
  close(): Promise<void>;
}

/** For test.before: etcd, a namespace, netcubed in it (connected, with `args`), a client and a store; close() in test.after.always. */
export async function openEnv(opts: { args?: string[] } = {}): Promise<ApiEnv> {
  const closers: (() => Promise<void> | void)[] = [];
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    const etcd = await EtcdCluster.start();
    closers.push(() => etcd.stop());
    const netns = await newNetns();
    closers.push(() => netns.delete());
    const daemon = await NetcubedProcess.start({ netns, etcd: etcd.endpoints, args: opts.args });
    closers.push(() => daemon.cleanup());
    await daemon.waitConnected();
    const client = daemon.client();
    closers.push(() => client.close());
    const store = await Store.connect({ endpoints: etcd.endpoints, hostCheck });
    closers.push(() => store.close());
    return { etcd, netns, daemon, client, store, hostChain: defaultChainName(daemon.name), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The chain as etcd holds it now, or undefined. */
export async function storedChain(store: Store, name: string): Promise<StoredChain | undefined> {
  return (await store.chains.list()).find((c) => c.name === name);
}

/** Asserts that `call` fails with `code` and, for INVALID_ARGUMENT, a message that starts with `field`. */
export async function failsWith(t: ExecutionContext, call: Promise<unknown>, code: keyof typeof grpc.status, opts: { field?: string; says?: string[] } = {}): Promise<ApiCallError> {
  const err = await t.throwsAsync(call, { instanceOf: ApiCallError });
  if (!err) throw new Error('the call did not fail');
  t.is(err.codeName, code, err.message);
  if (opts.field) {
    t.is(err.field, opts.field, err.message);
    t.true(err.details.startsWith(`${opts.field}: `), err.details);
  }
  for (const words of opts.says ?? []) t.true(err.details.includes(words), `"${err.details}" does not say "${words}"`);
  return err;
}

/** The objects of the probe test cube type (bpf/testdata/cubes). */
export function probeObjects(): { xdpObject: Buffer; tcObject: Buffer } {
  const dir = path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes');
  return { xdpObject: fs.readFileSync(path.join(dir, 'probe.xdp.o')), tcObject: fs.readFileSync(path.join(dir, 'probe.tc.o')) };
}

export const frame = ethernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', payload: udp({ sport: 1, dport: 2, payload: Buffer.from('hi') }) }) });

/** Runs cube `name`'s entry program once (or `repeat` times in one go), as a packet entering at `inPort`, through its pin. */
export async function runCube(env: ApiEnv, name: string, inPort: number, repeat?: number): Promise<Awaited<ReturnType<typeof runProgram>>> {
  const cube = await env.client.getCube({ name });
  const dir = path.join(env.daemon.root, 'bpf', 'cubes', `${cube.id}-${name}`);
  const prog = Program.openPinned(path.join(dir, 'progs', 'nc_entry'));
  const genMap = BpfMap.openPinned(path.join(env.daemon.root, 'bpf', 'host', 'gen'));
  try {
    const gen = Number(genMap.loadU64(0) & 1n);
    return await runProgram(prog, 'xdp', frame, entering(inPort, cube.id, gen), { repeat });
  } finally {
    prog.close();
    genMap.close();
  }
}


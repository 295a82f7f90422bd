// What the daemon acceptance tests share: a host (the testbed's middle namespace)
// running a real netcubed against a test etcd, chains written for it, and ways to
// look at the kernel state the daemon must produce: its pins under <root>/bpf,
// what runs on each netdev, a cube's settings and peer words read from the pinned
// maps, and the daemon's structured log.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { NetcubeClient } from '@netcube/api/grpc/client';
import type { Chain, CubeMode, LogLevel } from '@netcube/api/chain';
import { Store } from '@netcube/api/store';
import { BpfMap, Program } from '../../node-daemon/src/bpf';
import { LOG_LEVELS, MAX_PORTS, decodePeer, portWord, type Peer } from '../../node-daemon/src/runtime/abi';
import { pinName } from '../../node-daemon/src/runtime/host';
import { programName } from '../../node-daemon/src/runtime/types';
import { NetcubedProcess, startDaemon } from '../helpers/daemon';
import type { EtcdCluster } from '../helpers/etcd';
import { createTestbed, type Testbed } from '../helpers/testbed';
import { hostCheck } from '../../node-daemon/src/chain';
import { waitFor } from '../helpers/wait';

export interface Host {
  bed: Testbed;
  daemon: NetcubedProcess;
  /** A store of the test's own, straight to etcd. */
  store: Store;
  client: NetcubeClient;
  /** The daemon's bpffs. */
  bpffs: string;
  /** Extra veth pairs in the host namespace, without traffic: x0-x1, x2-x3 ... */
  spares: string[];
}

export interface HostOptions {
  etcd: EtcdCluster;
  /** What the daemon is told to reach etcd at; default the cluster's endpoints. */
  daemonEtcd?: string[];
  /** Ways out of the testbed; default 1. */
  outs?: number;
  /** Spare veth pairs in the host namespace; default 0. */
  sparePairs?: number;
  /** More netcubed arguments. */
  args?: string[];
  /** Wait until the daemon reached etcd; default true. */
  connected?: boolean;
}

/** A testbed whose host runs netcubed; everything goes in the test's teardown. */
export async function openHost(t: ExecutionContext, opts: HostOptions): Promise<Host> {
  const bed = await createTestbed(t, { mode: 'xdp', outs: opts.outs ?? 1 });
  const spares: string[] = [];
  for (let i = 0; i < (opts.sparePairs ?? 0); i++) {
    const [a, b] = [`x${2 * i}`, `x${2 * i + 1}`];
    await bed.host.exec('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    for (const n of [a, b]) await bed.host.exec('ip', ['link', 'set', n, 'up']);
    spares.push(a, b);
  }
  const store = await Store.connect({ endpoints: opts.etcd.endpoints, hostCheck });
  t.teardown(() => store.close());
  const daemon = await startDaemon(t, { netns: bed.host, etcd: opts.daemonEtcd ?? opts.etcd.endpoints, args: opts.args });
  if (opts.connected ?? true) await daemon.waitConnected();
  const client = daemon.client();
  t.teardown(() => client.close());
  return { bed, daemon, store, client, bpffs: path.join(daemon.root, 'bpf'), spares };
}

// ---------------------------------------------------------------- chains

export interface CubeDef {
  name: string;
  type?: string;
  mode?: CubeMode;
  /** Default p0, p1 (none for transparent types). */
  ports?: string[];
  logLevel?: LogLevel;
}

/** A chain of `cubes` on `host`, linked as `links` says (`[from, to]`), with transparent `attachments`. */
export function chain(name: string, host: string, cubes: CubeDef[], links: [string, string][], attachments: Chain['spec']['attachments'] = []): Chain {
  return {
    apiVersion: 'netcube/v1',
    kind: 'Chain',
    metadata: { name },
    spec: {
      cubes: cubes.map((c) => ({
        name: c.name,
        host,
        type: c.type ?? 'nop',
        mode: c.mode ?? 'xdp',
        ports: c.ports ?? (attachments.some((a) => a.cube === c.name) ? [] : ['p0', 'p1']),
        logLevel: c.logLevel ?? 'info',
        params: {},
      })),
      links: links.map(([from, to]) => ({ from, to })),
      attachments,
    },
  };
}

/** netdev:from -> cubes[0] -> ... -> cubes[n-1] -> netdev:to, through ports p0 and p1. */
export function lineChain(name: string, host: string, cubes: (string | CubeDef)[], from: string, to: string): Chain {
  const defs = cubes.map((c) => (typeof c === 'string' ? { name: c } : c));
  const links: [string, string][] = [];
  defs.forEach((c, i) => links.push([i === 0 ? `netdev:${from}` : `${defs[i - 1].name}:p1`, `${c.name}:p0`]));
  links.push([`${defs[defs.length - 1].name}:p1`, `netdev:${to}`]);
  return chain(name, host, defs, links);
}

/** Applies `c` in etcd and waits until its host reports every cube of it applied. */
export async function applyAndWait(store: Store, c: Chain, timeoutMs = 60_000): Promise<{ version: number; revision: number }> {
  const r = await store.chains.apply(c);
  await store.status.waitApplied(c.metadata.name, r.version, { timeoutMs });
  return r;
}

/** The status entries in etcd about `chainName`, by cube. */
export async function statusOf(store: Store, chainName: string): Promise<Record<string, { host: string; state: string; version: number; revision: number }>> {
  const out: Record<string, { host: string; state: string; version: number; revision: number }> = {};
  for (const s of await store.status.listStatus(chainName)) out[s.cube] = { host: s.host, state: s.state, version: s.version, revision: s.revision };
  return out;
}

// ---------------------------------------------------------------- kernel state

const unpin = (name: string): string => name.replace(/%2e/g, '.').replace(/%25/g, '%');

/** The cubes pinned under a daemon's bpffs: name -> data-plane id. */
export function pinnedCubes(bpffs: string): Record<string, number> {
  const dir = path.join(bpffs, 'cubes');
  const out: Record<string, number> = {};
  for (const entry of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const m = /^(\d+)-(.*)$/.exec(unpin(entry));
    if (m) out[m[2]] = Number(m[1]);
    else out[`?${entry}`] = -1;
  }
  return out;
}

/** The netdev entries pinned under a daemon's bpffs, as `<ifname>.<mode>`, sorted. */
export function pinnedNetdevs(bpffs: string): string[] {
  const dir = path.join(bpffs, 'netdevs');
  return (fs.existsSync(dir) ? fs.readdirSync(dir) : []).map(unpin).sort();
}

function cubeDir(bpffs: string, cube: string): string {
  const id = pinnedCubes(bpffs)[cube];
  if (id === undefined) throw new Error(`cube ${cube} is not pinned under ${bpffs}`);
  return path.join(bpffs, 'cubes', pinName(`${id}-${cube}`));
}

function withPinned<T, H extends { close(): void }>(open: () => H, use: (h: H) => T): T {
  const h = open();
  try {
    return use(h);
  } finally {
    h.close();
  }
}

/** The kernel id of a pinned program: a cube's micro-cube, or a netdev's entry. */
export function cubeProgramId(bpffs: string, cube: string, index = 0): number {
  return withPinned(() => Program.openPinned(path.join(cubeDir(bpffs, cube), 'progs', programName(index))), (p) => p.id);
}

export function entryProgramId(bpffs: string, ifname: string, mode: CubeMode = 'xdp'): number {
  return withPinned(() => Program.openPinned(path.join(bpffs, 'netdevs', pinName(`${ifname}.${mode}`), 'prog')), (p) => p.id);
}

/** A cube's log level as its data plane reads it: nc_cfg, from the pinned map. */
export function pinnedLogLevel(bpffs: string, cube: string): LogLevel {
  return withPinned(
    () => BpfMap.openPinned(path.join(cubeDir(bpffs, cube), 'maps', 'nc_cfg')),
    (m) => LOG_LEVELS[m.lookup(Buffer.alloc(4))!.readUInt32LE(0)],
  );
}

/** The host's current generation, from the pinned gen map. */
export function currentGeneration(bpffs: string): number {
  return withPinned(() => BpfMap.openPinned(path.join(bpffs, 'host', 'gen')), (m) => Number(m.loadU64(0) & 1n));
}

/** The peer of port `index` of a cube, as packets see it now (current generation). */
export function pinnedPeer(bpffs: string, cube: string, index: number): Peer {
  if (index >= MAX_PORTS) throw new RangeError(`index: at most ${MAX_PORTS - 1}`);
  const gen = currentGeneration(bpffs);
  return withPinned(() => BpfMap.openPinned(path.join(cubeDir(bpffs, cube), 'maps', 'nc_ports')), (m) => decodePeer(m.loadU64(portWord(gen, index))));
}

// ---------------------------------------------------------------- the daemon's log

export interface LogLine {
  time: string;
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** The daemon's structured log lines, from line `from` on (the log file outlives restarts). */
export function logLines(d: NetcubedProcess, from = 0): LogLine[] {
  let text: string;
  try {
    text = fs.readFileSync(d.logFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .slice(from)
    .flatMap((l) => {
      if (!l.startsWith('{')) return [];
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
}

/** How many lines the log has: a mark to read only what comes after. */
export function logMark(d: NetcubedProcess): number {
  try {
    return fs.readFileSync(d.logFile, 'utf8').split('\n').length - 1;
  } catch {
    return 0;
  }
}

/** Waits for the first line from `from` on that `match` accepts. */
export async function waitLog(d: NetcubedProcess, match: (l: LogLine) => boolean, opts: { from?: number; timeoutMs?: number } = {}): Promise<LogLine> {
  return waitFor(`a log line of netcubed ${d.name}; its log:\n${d.logTail(30)}`, () => logLines(d, opts.from).find(match), opts.timeoutMs ?? 30_000);
}

/** Lines a reconcile pass logs. */
export const isPass = (l: LogLine): boolean => l.msg === 'reconciled' || l.msg === 'reconciled, nothing to change';

// ---------------------------------------------------------------- traffic

/** Waits until the sinks together have `expected` frames, or stop moving for `quietMs`; returns their count. */
export async function settle(bed: Testbed, expected: number, quietMs = 300): Promise<number> {
  let last = bed.received();
  let since = Date.now();
  while (last < expected && Date.now() - since < quietMs) {
    await sleep(5);
    const now = bed.received();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

/** Sends `frames` frames into the host's in0 and returns how many each sink got of them. */
export async function sendThrough(bed: Testbed, frames: number): Promise<number[]> {
  const before = bed.sinks.map((s) => s.frames);
  const total = bed.received();
  await bed.generator.send(frames, { perRun: Math.min(frames, 4096), delivered: bed.received });
  await settle(bed, total + frames);
  return bed.sinks.map((s, i) => s.frames - before[i]);
}

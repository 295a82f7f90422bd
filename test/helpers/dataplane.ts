// Running cubes on packets through BPF_PROG_TEST_RUN, and opening a throwaway cube
// runtime for a test. Metadata goes in and comes out as the data plane keeps it:
// in front of the frame under XDP, in skb->cb under TC.
import { mkdtemp } from 'node:fs/promises';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { BpfMap, CollectionSpec, Program, RingBufReader, type Collection } from '../../node-daemon/src/bpf';
import { ERRORS, MD_SIZE, Metadata, PacketRecord, decodeMetadata, decodePacketRecord, encodeMetadata } from '../../node-daemon/src/runtime/abi';
import { unmountBpffs } from '../../node-daemon/src/runtime/host';
import { DEFAULT_OBJECTS_DIR, Runtime, RuntimeOptions } from '../../node-daemon/src/runtime/runtime';
import { Mode } from '../../node-daemon/src/runtime/topology';
import { CubeType, HOST_MAPS, NETDEV_PEER_MAP, NETDEV_PROGRAM, NETDEV_PROGS_MAP } from '../../node-daemon/src/runtime/types';
import * as fs from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Netns, createNetns } from './netns';

const execFileAsync = promisify(execFile);

/** Verdicts by name, per hook; `mark` is what the probe test cube returns to stop a run. */
export type Verdict = 'aborted' | 'drop' | 'pass' | 'tx' | 'redirect' | 'mark' | 'ok' | 'shot';
const VERDICTS: Record<Mode, Record<number, Verdict>> = {
  xdp: { 0: 'aborted', 1: 'drop', 2: 'pass', 3: 'mark', 4: 'redirect' },
  tc: { 0: 'pass', 2: 'drop', 3: 'mark', 7: 'redirect' },
};

export interface RunResult {
  verdict: Verdict | `unknown(${number})`;
  frame: Buffer;
  /** The metadata the packet left with; undefined when it carried none. */
  md?: Metadata;
  durationNs: number;
  /** CPU time of the whole test-run call (see TestRunResult.cpuNs). */
  cpuNs: number;
}

const SKB_SIZE = 192;
const SKB_CB = 48;
const XDP_MD_SIZE = 24;

/**
 * Runs `program` (an XDP or TC cube program) once on `frame`, entering with `md`
 * (none when omitted). `md` may also be raw bytes: under XDP the metadata area
 * in front of the frame (a multiple of 4, at most 32), under TC skb->cb.
 */
export async function runProgram(program: Program, mode: Mode, frame: Buffer, md?: Metadata | Buffer, opts: { repeat?: number; ifindex?: number; netns?: string; cpu?: number } = {}): Promise<RunResult> {
  const raw = md === undefined ? Buffer.alloc(0) : Buffer.isBuffer(md) ? md : encodeMetadata(md);
  if (mode === 'xdp') {
    const meta = raw;
    const ctx = Buffer.alloc(XDP_MD_SIZE);
    ctx.writeUInt32LE(meta.length, 0); // data: the frame starts after the metadata
    ctx.writeUInt32LE(meta.length + frame.length, 4); // data_end
    ctx.writeUInt32LE(0, 8); // data_meta
    ctx.writeUInt32LE(opts.ifindex ?? 0, 12);
    const res = await program.testRun({ data: Buffer.concat([meta, frame]), ctx, repeat: opts.repeat, netns: opts.netns, cpu: opts.cpu });
    const metaLen = res.ctx ? res.ctx.readUInt32LE(0) : 0;
    return {
      verdict: VERDICTS.xdp[res.retval] ?? `unknown(${res.retval})`,
      frame: res.data.subarray(metaLen),
      md: metaLen === MD_SIZE ? decodeMetadata(res.data.subarray(0, metaLen)) : undefined,
      durationNs: res.durationNs,
      cpuNs: res.cpuNs,
    };
  }
  const ctx = Buffer.alloc(SKB_SIZE);
  raw.copy(ctx, SKB_CB, 0, Math.min(raw.length, 20));
  if (opts.ifindex) ctx.writeUInt32LE(opts.ifindex, 40);
  const res = await program.testRun({ data: frame, ctx, repeat: opts.repeat, netns: opts.netns, cpu: opts.cpu });
  return {
    verdict: VERDICTS.tc[res.retval] ?? `unknown(${res.retval})`,
    frame: res.data,
    md: res.ctx ? decodeMetadata(res.ctx.subarray(SKB_CB, SKB_CB + MD_SIZE)) : undefined,
    durationNs: res.durationNs,
    cpuNs: res.cpuNs,
  };
}

/** Metadata of a packet entering a cube at port `inPort`. */
export function entering(inPort: number, cubeId: number, gen = 0): Metadata {
  return { inPort, cubeId, reason: 0, flags: gen, user: [0, 0, 0] };
}

/** A cube runtime in a fresh directory under /run, destroyed in the test's teardown. */
export async function openRuntime(t: ExecutionContext, opts: Partial<RuntimeOptions> = {}): Promise<Runtime> {
  const root = await mkdtemp('/run/nct-rt-');
  let rt: Runtime;
  try {
    rt = await Runtime.open({ root, ...opts });
  } catch (err) {
    // Open may have mounted the bpffs before it failed.
    unmountBpffs(path.join(root, 'bpf'));
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
  t.teardown(() => rt.destroy());
  return rt;
}

/**
 * A runtime on a root of its own that the test can kill and open again, as a
 * daemon killed with -9 and restarted: `reopen()` closes the one open (its data
 * plane stays pinned) and opens the next on the same root. The teardown removes
 * what the last one left.
 */
export async function reopenableRuntime(t: ExecutionContext, opts: Partial<RuntimeOptions> = {}): Promise<{ root: string; rt: Runtime; reopen(): Promise<Runtime> }> {
  const root = await mkdtemp('/run/nct-rt-');
  const open = (): Promise<Runtime> => Runtime.open({ root, ...opts });
  let current: Runtime | undefined = await open();
  t.teardown(async () => {
    current?.close();
    await (await open()).destroy();
  });
  return {
    root,
    rt: current,
    async reopen() {
      current?.close();
      current = undefined;
      return (current = await open());
    },
  };
}

/** The objects of test-only cube type `name` (bpf/testdata/cubes/<name>.bpf.c). */
export function testCubeObjects(name: string): Record<Mode, Buffer> {
  const dir = path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes');
  return {
    xdp: fs.readFileSync(path.join(dir, `${name}.xdp.o`)),
    tc: fs.readFileSync(path.join(dir, `${name}.tc.o`)),
  };
}

const inspected = new Map<string, Promise<CubeType>>();

/**
 * Registers test-only cube type `name` with a runtime. The objects are inspected
 * (in a child process, as RegisterType does) once per test file, not once per
 * fixture: that is a node started per call, and files build hundreds of fixtures.
 */
export async function registerTestType(rt: Runtime, name: string): Promise<CubeType> {
  let type = inspected.get(name);
  if (!type) {
    type = CubeType.inspect(name, testCubeObjects(name));
    inspected.set(name, type);
    type.catch(() => inspected.delete(name));
  }
  return rt.addType(await type);
}

/**
 * The test-only cube types of bpf/testdata/cubes, registered with a runtime:
 * probe (does what its table says, for the helper tests) and relay (a two-port
 * forwarder in two micro-cubes, for replacing one under traffic).
 */
export async function registerTestTypes(rt: Runtime): Promise<void> {
  for (const name of ['probe', 'relay']) await registerTestType(rt, name);
}

/** Every pin under a runtime's bpffs, as paths relative to it, sorted. */
export function pins(rt: Runtime): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(rt.layout.bpffs, p));
    }
  };
  walk(rt.layout.bpffs);
  return out.filter((p) => !/^(maps|progs)\.debug$/.test(p)).sort();
}

/** The program netcube attached to netdev `ifname`, as pinned: its first cube's entry, fused with the netdev's. */
export function netdevEntry(rt: Runtime, ifname: string, mode: Mode): Program {
  return Program.openPinned(path.join(rt.layout.netdev(ifname, mode), 'prog'));
}

/**
 * The netdev entry without a cube (framework/netdev.bpf.c), loaded on the maps of
 * `ifname`'s entry: the way packets take while the netdev's first cube changes,
 * a tail call into it (the fused flag of the netdev's word means nothing to it).
 * Its program is `nc_netdev`; close the collection.
 */
export async function unfusedEntry(rt: Runtime, ifname: string, mode: Mode): Promise<Collection> {
  const spec = CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'framework', `netdev.${mode}.o`));
  const pinned = (name: string) => BpfMap.openPinned(path.join(rt.layout.netdev(ifname, mode), name));
  const peer = pinned('peer');
  const progs = pinned('progs');
  try {
    for (const name of HOST_MAPS) spec.maps.get(name)!.replaceWith(rt.host.framework(name, mode));
    spec.maps.get(NETDEV_PEER_MAP)!.replaceWith(peer);
    spec.maps.get(NETDEV_PROGS_MAP)!.replaceWith(progs);
    const coll = await spec.load();
    coll.program(NETDEV_PROGRAM);
    return coll;
  } finally {
    peer.close();
    progs.close();
  }
}

/** The programs in a cube's micro-cube slots (nc_micro), by index; 0 for empty. */
export function microSlots(rt: Runtime, cube: string): number[] {
  const micro = BpfMap.openPinned(path.join(rt.cube(cube).dir, 'maps', 'nc_micro'));
  try {
    return Array.from({ length: micro.maxEntries }, (_, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      return micro.lookup(key)?.readUInt32LE(0) ?? 0;
    });
  } finally {
    micro.close();
  }
}

/** The filled slots of a runtime's host prog arrays (every cube's entry): `<mode>:<slot>` -> program id. */
export function filledSlots(rt: Runtime): Record<string, number> {
  const out: Record<string, number> = {};
  for (const mode of ['xdp', 'tc'] as const) {
    const progs = rt.host.progs[mode];
    for (const key of progs.keys()) {
      const id = progs.lookup(key);
      if (id) out[`${mode}:${key.readUInt32LE(0)}`] = id.readUInt32LE(0);
    }
  }
  return out;
}

/** What runs on a netdev: its XDP program's id (0: none) and its TC ingress filters' programs. */
export async function attachments(netns: string, ifname: string): Promise<{ xdp: number; tcIngress: number[] }> {
  const run = async (cmd: string, args: string[]): Promise<string> =>
    (await execFileAsync('ip', ['netns', 'exec', netns, cmd, ...args])).stdout;
  const [link] = JSON.parse(await run('ip', ['-j', 'link', 'show', 'dev', ifname])) as { xdp?: { prog?: { id: number } } }[];
  const filters = JSON.parse((await run('tc', ['-j', 'filter', 'show', 'dev', ifname, 'ingress'])) || '[]') as { options?: { prog?: { id: number } } }[];
  return { xdp: link.xdp?.prog?.id ?? 0, tcIngress: filters.flatMap((f) => (f.options?.prog ? [f.options.prog.id] : [])) };
}

/**
 * A namespace for a runtime's netdevs, with `pairs` veth pairs inside it
 * (n0-n1, n2-n3 ...), up and silent; removed in the test's teardown.
 */
export async function createHostNetns(t: ExecutionContext, pairs = 1): Promise<Netns> {
  const ns = await createNetns(t);
  // No IPv6 and no addresses: the veths send nothing of their own into netcube,
  // so its counters count only the test's packets.
  await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  for (let i = 0; i < pairs; i++) {
    await ns.exec('ip', ['link', 'add', `n${2 * i}`, 'type', 'veth', 'peer', 'name', `n${2 * i + 1}`]);
    for (const n of [2 * i, 2 * i + 1]) await ns.exec('ip', ['link', 'set', `n${n}`, 'up']);
  }
  return ns;
}

/** The host's framework error counters by name, leaving out the zeros. */
export function errors(rt: Runtime): Record<string, number> {
  const out: Record<string, number> = {};
  rt.host.errorCounts().forEach((n, i) => {
    if (n !== 0n) out[ERRORS[i] ?? `error${i}`] = Number(n);
  });
  return out;
}

/**
 * The records waiting in a ring buffer, in ring order: what the data plane
 * submitted and nobody consumed. Waits (up to 5 s) for at least `least` of them,
 * then a few more turns of the event loop for any beyond.
 */
export async function records(ring: BpfMap, least: number): Promise<Buffer[]> {
  const reader = new RingBufReader(ring);
  const out: Buffer[] = [];
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  try {
    reader.on('record', (r: Buffer) => out.push(r));
    // The reader consumes in the poll phase of the loop, when the ring's epoll fd
    // is readable, which it is at once for records already there.
    const deadline = Date.now() + 5000;
    while (out.length < least && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
    for (let i = 0; i < 5; i++) await turn();
    return out;
  } finally {
    reader.close();
  }
}

/** When this module was loaded: before any packet a test sends. */
const loaded = process.hrtime.bigint();

/**
 * The slow-path records waiting in a packet ring (see records), decoded. Each
 * one's timestamp must be a time of the data plane's clock (CLOCK_MONOTONIC, as
 * process.hrtime) between `since` and now; it is then left out, so that a test
 * compares the rest exactly.
 */
export async function packetRecords(t: ExecutionContext, ring: BpfMap, least: number, since = loaded): Promise<Omit<PacketRecord, 'tsNs'>[]> {
  const recs = (await records(ring, least)).map(decodePacketRecord);
  const now = process.hrtime.bigint();
  return recs.map(({ tsNs, ...rest }) => {
    t.true(tsNs >= since && tsNs <= now, `record stamped ${tsNs}, not within [${since}, ${now}]`);
    return rest;
  });
}

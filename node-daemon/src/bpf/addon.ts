// The raw native addon (node-daemon/native), typed. Only the modules of this
// folder use it; they check every argument before it gets here.
import * as path from 'node:path';
import type { BtfType } from '@netcube/api/btf';
import { fromNative, type NativeFailure } from './errors';

/**
 * What every native handle on a kernel fd has (native/fd_handle.h): one class
 * per kind, each closed by close(), GC or environment teardown.
 */
interface FdHandle {
  readonly fd: number;
  close(): void;
  setLabel(label: string): void;
}

export type MapNativeInfo = { kind: 'map'; type: string; id: number; name: string; keySize: number; valueSize: number;
                              maxEntries: number; flags: number; btfId: number };
export type ProgramNativeInfo = { kind: 'program'; type: string; id: number; name: string; tag: string; btfId: number;
                                  runTimeNs: number; runCount: number };
export type LinkNativeInfo = { kind: 'link'; type: string; id: number; programId: number; ifindex?: number };

/** native/map.cc */
export interface MapHandle extends FdHandle {
  info(): MapNativeInfo;
  pin(path: string): void;
  lookupBatch(chunk: number): { count: number; keys: Buffer; values: Buffer };
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number, flags: number): number;
  deleteBatch(keys: Uint8Array, count: number): number;
  storeU64(index: number, value: bigint): void;
  loadU64(index: number): bigint;
  btfTypes(): { key?: BtfType; value?: BtfType };
}

/** native/program.cc */
export interface ProgramHandle extends FdHandle {
  info(): ProgramNativeInfo;
  pin(path: string): void;
  testRun(data: Uint8Array, ctx: Uint8Array | null, dataSizeOut: number, ctxSizeOut: number, repeat: number,
          liveFrames: boolean, batchSize: number, netns: string | null, cpu: number | null)
    : Promise<{ retval: number; durationNs: number; cpuNs: number; data: Buffer; ctx?: Buffer }>;
  code(): { xlated: Buffer; jited: Buffer; jitedFuncLens: number[]; jitedKsyms: bigint[] };
}

/** native/link.cc */
export interface LinkHandle extends FdHandle {
  info(): LinkNativeInfo;
  pin(path: string): void;
  update(program: ProgramHandle): void;
  detach(): void;
}

/** native/socket.cc: a packet socket. */
export type SocketHandle = FdHandle;

/** What a pinned object opens as: a map, a program or a link, as it is. */
export type PinnedHandle = MapHandle | ProgramHandle | LinkHandle;

export interface ObjectDescription {
  name: string;
  maps: { name: string; type: string; typeId: number; keySize: number; valueSize: number; maxEntries: number;
          flags: number; internal: boolean; keyType?: BtfType; valueType?: BtfType }[];
  programs: { name: string; section: string; type: string; autoload: boolean }[];
  variables: { name: string; section: string; offset: number; size: number; type: BtfType }[];
}

export interface NativeObject {
  describe(): ObjectDescription;
  initialValue(map: string): Buffer | undefined;
  setInitialValue(map: string, offset: number, bytes: Uint8Array): void;
  setPinPath(map: string, path: string | null): void;
  reuseMap(map: string, handle: MapHandle): void;
  setMaxEntries(map: string, maxEntries: number): void;
  setAutoload(program: string, autoload: boolean): void;
  load(logLevel: number): Promise<{ maps: { name: string; handle: MapHandle }[];
                                   programs: { name: string; handle: ProgramHandle }[] }>;
  close(): void;
}

/** A ring buffer map read in slices on the loop (ringbuf.cc). */
export interface NativeRingBuffer {
  /** Watches the ring, taking at most `budget` records per wake-up. */
  resume(budget: number): void;
  pause(): void;
  close(): void;
}

export interface TcResult { ifindex: number; priority: number; handle: number; programId: number }
type Direction = 'ingress' | 'egress';

interface Addon {
  init(makeError: (failure: NativeFailure) => Error): { mapTypes: string[]; programTypes: string[]; possibleCpus: number };
  mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags: number): MapHandle;
  objGet(path: string): PinnedHandle;
  synchronizeRcu(): Promise<void>;
  // Per-element map operations take the fd of an open map handle (see map.cc).
  mapLookup(fd: number, key: Uint8Array, valueOut: Uint8Array, label: string): boolean;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags: number, label: string): void;
  mapDelete(fd: number, key: Uint8Array, label: string): boolean;
  mapNextKey(fd: number, key: Uint8Array | null, nextOut: Uint8Array, label: string): boolean;
  packetSocket(ifname: string, netns: string | null): Promise<{ handle: SocketHandle; ifindex: number }>;
  packetSend(fd: number, frame: Uint8Array, label: string): boolean;
  ifindex(ifname: string, netns: string | null): Promise<number>;
  xdpAttach(program: ProgramHandle, ifname: string, netns: string | null, mode: 'native' | 'generic')
    : Promise<{ handle: LinkHandle; ifindex: number }>;
  tcAttach(program: ProgramHandle, replace: boolean, iface: string | number, netns: string | null, direction: Direction,
           priority: number, handle: number): Promise<TcResult>;
  tcDetach(iface: string | number, netns: string | null, direction: Direction, priority: number, handle: number)
    : Promise<void>;
  tcQuery(iface: string | number, netns: string | null, direction: Direction, priority: number, handle: number)
    : Promise<TcResult | null>;
  /** SO_PEERCRED of a connected unix socket (see peercred.cc). */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  BpfObject: new (source: string | Uint8Array, name: string, logSize: number) => NativeObject;
  RingBuffer: new (map: MapHandle, label: string, onRecords: (records: Buffer[]) => void,
                   onError: (error: Error) => void) => NativeRingBuffer;
}

// build/js/node-daemon/src/bpf -> node-daemon/build/Release
const addonPath = path.resolve(__dirname, '../../../../../node-daemon/build/Release/netcube_bpf.node');

export const native: Addon = require(addonPath);

const facts = native.init(fromNative);

/** Map and program type names as libbpf spells them, indexed by their kernel enum value. */
export const mapTypeNames: readonly string[] = facts.mapTypes;
export const programTypeNames: readonly string[] = facts.programTypes;
/** CPUs a per-CPU map has a value slot for. */
export const possibleCpus: number = facts.possibleCpus;

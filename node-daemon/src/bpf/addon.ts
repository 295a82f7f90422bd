// The raw native addon (node-daemon/native), typed. Only the modules of this
// folder use it; they check every argument before it gets here.
import * as path from 'node:path';
import { fromNative, type NativeFailure } from './errors';
import type { BtfType } from './btf';

/** An fd the kernel gave us (map, program or link), closed by close(), GC or environment teardown. */
export interface FdHandle {
  readonly fd: number;
  close(): void;
  setLabel(label: string): void;
  info(): NativeInfo;
  pin(path: string): void;
  lookupBatch(chunk: number): { count: number; keys: Buffer; values: Buffer };
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number, flags: number): number;
  deleteBatch(keys: Uint8Array, count: number): number;
  storeU64(index: number, value: bigint): void;
  loadU64(index: number): bigint;
  btfTypes(): { key?: BtfType; value?: BtfType };
  testRun(data: Uint8Array, ctx: Uint8Array | null, dataSizeOut: number, ctxSizeOut: number, repeat: number,
          liveFrames: boolean, batchSize: number, netns: string | null, cpu: number | null)
    : Promise<{ retval: number; durationNs: number; cpuNs: number; data: Buffer; ctx?: Buffer }>;
  linkUpdate(program: FdHandle): void;
  linkDetach(): void;
}

export type NativeInfo =
  | { kind: 'map'; type: string; id: number; name: string; keySize: number; valueSize: number;
      maxEntries: number; flags: number; btfId: number }
  | { kind: 'program'; type: string; id: number; name: string; tag: string; btfId: number;
      runTimeNs: number; runCount: number }
  | { kind: 'link'; type: string; id: number; programId: number; ifindex?: number }
  | { kind: 'other' | '' };

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
  reuseMap(map: string, handle: FdHandle): void;
  setMaxEntries(map: string, maxEntries: number): void;
  setAutoload(program: string, autoload: boolean): void;
  load(logLevel: number): Promise<{ maps: { name: string; handle: FdHandle }[];
                                   programs: { name: string; handle: FdHandle }[] }>;
  close(): void;
}

export interface TcResult { ifindex: number; priority: number; handle: number; programId: number }
type Direction = 'ingress' | 'egress';

interface Addon {
  init(makeError: (failure: NativeFailure) => Error): { mapTypes: string[]; programTypes: string[]; possibleCpus: number };
  mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags: number): FdHandle;
  objGet(path: string): FdHandle;
  synchronizeRcu(): Promise<void>;
  programCode(fd: number, label: string): { xlated: Buffer; jited: Buffer; jitedFuncLens: number[]; jitedKsyms: bigint[] };
  // Per-element map operations take the fd of an open map handle (see handle.cc).
  mapLookup(fd: number, key: Uint8Array, valueOut: Uint8Array, label: string): boolean;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags: number, label: string): void;
  mapDelete(fd: number, key: Uint8Array, label: string): boolean;
  mapNextKey(fd: number, key: Uint8Array | null, nextOut: Uint8Array, label: string): boolean;
  packetSocket(ifname: string, netns: string | null): Promise<{ handle: FdHandle; ifindex: number }>;
  packetSend(fd: number, frame: Uint8Array, label: string): boolean;
  ifindex(ifname: string, netns: string | null): Promise<number>;
  xdpAttach(program: FdHandle, ifname: string, netns: string | null, mode: 'native' | 'generic')
    : Promise<{ handle: FdHandle; ifindex: number }>;
  tcAttach(program: FdHandle, replace: boolean, iface: string | number, netns: string | null, direction: Direction,
           priority: number, handle: number): Promise<TcResult>;
  tcDetach(iface: string | number, netns: string | null, direction: Direction, priority: number, handle: number)
    : Promise<void>;
  tcQuery(iface: string | number, netns: string | null, direction: Direction, priority: number, handle: number)
    : Promise<TcResult | null>;
  BpfObject: new (source: string | Uint8Array, name: string, logSize: number) => NativeObject;
  RingBuffer: new (map: FdHandle, label: string, onRecords: (records: Buffer[]) => void,
                   onError: (error: Error) => void) => { resume(): void; pause(): void; close(): void };
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

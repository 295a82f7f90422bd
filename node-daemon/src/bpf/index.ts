// The libbpf binding: specs, collections, maps, programs, links, ring buffers,
// BTF codec and errors. See README.md.
export { decode, encode, typeName, type BtfMember, type BtfType } from '@netcube/api/btf';
export {
  BatchError, BpfError, ClosedError, ElfError, KeyNotExistError, NotFoundError, NotSupportedError, VerifierError, errnoName,
} from './errors';
export { attachTc, TcFilter, type TcAttachOptions, type TcDirection, type TcFindOptions } from './links/tc';
export { attachXdp, XdpLink, type XdpAttachOptions, type XdpMode } from './links/xdp';
export { BpfMap, MAP_F_MMAPABLE, type CreateMapOptions, type MapInfo, type MapType, type UpdateFlag } from './map';
export { ifindex } from './netns';
export { Program, type ProgramCode, type ProgramInfo, type ProgType, type TestRunOptions, type TestRunResult } from './program';
export { synchronizeRcu } from './rcu';
export { DEFAULT_RING_BUDGET, RingBufReader, type RingBufReaderOptions } from './ringbuf';
export {
  Collection, CollectionSpec, MapSpec, ProgramSpec, VariableSpec, type LoadOptions, type OpenOptions,
} from './spec';
export { PacketSocket } from './packet-socket';

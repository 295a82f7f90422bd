// Program: a loaded BPF program, through our own fd. Test runs
// (BPF_PROG_TEST_RUN) run off the event loop; with `netns` they run from a
// thread inside that namespace, where the ctx's ifindexes resolve.
import * as os from 'node:os';
import { native, type PinnedHandle, type ProgramHandle } from './addon';
import { ClosedError } from './errors';
import { checkBuffer, checkIndex, checkOptions, checkPath, netnsPath } from './validate';

/** Program types as libbpf names them (libbpf_bpf_prog_type_str). */
export type ProgType =
  | 'socket_filter' | 'kprobe' | 'sched_cls' | 'sched_act' | 'tracepoint' | 'xdp' | 'perf_event' | 'cgroup_skb'
  | 'cgroup_sock' | 'lwt_in' | 'lwt_out' | 'lwt_xmit' | 'sock_ops' | 'sk_skb' | 'cgroup_device' | 'sk_msg'
  | 'raw_tracepoint' | 'cgroup_sock_addr' | 'lwt_seg6local' | 'lirc_mode2' | 'sk_reuseport' | 'flow_dissector'
  | 'cgroup_sysctl' | 'raw_tracepoint_writable' | 'cgroup_sockopt' | 'tracing' | 'struct_ops' | 'ext' | 'lsm'
  | 'sk_lookup' | 'syscall';

export interface ProgramInfo {
  type: ProgType;
  id: number;
  name: string;       // as the kernel keeps it: at most 15 characters
  tag: string;        // hex
  btfId: number;
  runTimeNs: number;  // with kernel.bpf_stats_enabled
  runCount: number;
}

export interface TestRunOptions {
  /** The packet (or other input) the program runs on. */
  data: Uint8Array;
  /** The context (xdp_md, __sk_buff ...), for program types that take one. */
  ctx?: Uint8Array;
  /** Room for the output packet; default data.length + 256 (XDP may grow the packet by its headroom). */
  dataSizeOut?: number;
  /** Room for the output context; default ctx.length. */
  ctxSizeOut?: number;
  /** Runs (live frames: frames sent); default 1. */
  repeat?: number;
  /** XDP only: BPF_F_TEST_XDP_LIVE_FRAMES, the verdicts really transmit (XDP_TX, XDP_REDIRECT). */
  liveFrames?: boolean;
  /** Live frames per batch, 1 to 256; default the kernel's (64). */
  batchSize?: number;
  /** Run from a thread in this network namespace (a name under /run/netns, or a path). */
  netns?: string;
  /**
   * Run from a thread pinned to this CPU. (The kernel's own BPF_F_TEST_RUN_ON_CPU
   * is for raw tracepoints only.) With live frames it is also the CPU whose
   * softirqs carry the frames on: the NAPI of every veth they enter is scheduled there.
   */
  cpu?: number;
}

export interface TestRunResult {
  retval: number;
  /** The packet after the run; empty for live frames, which are sent instead. */
  data: Buffer;
  ctx?: Buffer;
  /** Average duration of one run, as the kernel measures it: whole nanoseconds. */
  durationNs: number;
  /**
   * CPU time the calling thread spent in the whole test-run call
   * (CLOCK_THREAD_CPUTIME_ID): divided by the runs, the cost of one to a fraction
   * of a nanosecond, without the time the thread was preempted. It includes the
   * call's own setup, a few microseconds.
   */
  cpuNs: number;
}

/** What the kernel made of a loaded program (BPF_OBJ_GET_INFO_BY_FD; root only). */
export interface ProgramCode {
  /** Its instructions after the verifier rewrote them (struct bpf_insn, 8 bytes each). */
  xlated: Buffer;
  /** The machine code the JIT emitted, as it is in memory now (jumps patched since included). */
  jited: Buffer;
  /** Length of each function's code in `jited`, in order (one without bpf-to-bpf calls). */
  jitedFuncLens: number[];
  /** Kernel address of each function's code. */
  jitedKsyms: bigint[];
}

// XDP programs can grow a packet by at most the 256-byte headroom in front.
const xdpHeadroom = 256;
// TEST_XDP_MAX_BATCH in the kernel.
const maxLiveBatch = 256;

let handleOf: (program: Program) => ProgramHandle;

export class Program {
  readonly name: string;
  readonly type: ProgType;
  readonly id: number;
  readonly tag: string;
  #handle: ProgramHandle | undefined;
  #label: string;

  static {
    handleOf = (program) => program.#live();
  }

  /** @internal Wraps a native handle; use openPinned() or a Collection. */
  constructor(handle: PinnedHandle, name?: string) {
    const info = handle.info();
    if (info.kind !== 'program') {
      handle.close();
      throw new TypeError(`${name ?? 'the object'} is a BPF ${info.kind}, not a program`);
    }
    this.#handle = handle as ProgramHandle;
    this.name = name ?? info.name;
    this.type = info.type as ProgType;
    this.id = info.id;
    this.tag = info.tag;
    this.#label = `Program '${this.name}'`;
    handle.setLabel(this.#label);
  }

  static openPinned(path: string): Program {
    checkPath(path, 'path');
    return new Program(native.objGet(path));
  }

  get fd(): number {
    return this.#live().fd;
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  info(): ProgramInfo {
    const { kind: _, ...rest } = this.#live().info();
    return { ...rest, type: rest.type as ProgType };
  }

  testRun(opts: TestRunOptions): Promise<TestRunResult> {
    try {
      const handle = this.#live();
      checkOptions(opts);
      checkBuffer(opts.data, 'options.data');
      if (opts.ctx !== undefined) checkBuffer(opts.ctx, 'options.ctx');
      const liveFrames = opts.liveFrames ?? false;
      if (typeof liveFrames !== 'boolean') throw new TypeError('options.liveFrames must be a boolean');
      if (liveFrames && this.type !== 'xdp') {
        throw new RangeError(`options.liveFrames: ${this.#label} is a ${this.type} program; live frames are XDP only`);
      }
      if (!liveFrames && opts.batchSize !== undefined) throw new RangeError('options.batchSize needs liveFrames');
      const dataSizeOut = opts.dataSizeOut ?? opts.data.length + xdpHeadroom;
      const ctxSizeOut = opts.ctxSizeOut ?? opts.ctx?.length ?? 0;
      const repeat = opts.repeat ?? 1;
      const batchSize = opts.batchSize ?? 0;
      checkIndex(dataSizeOut, 'options.dataSizeOut', 0, 0x7fffffff);
      checkIndex(ctxSizeOut, 'options.ctxSizeOut', 0, 0x7fffffff);
      checkIndex(repeat, 'options.repeat', 1, 0x7fffffff);
      if (opts.batchSize !== undefined) checkIndex(batchSize, 'options.batchSize', 1, maxLiveBatch);
      if (opts.cpu !== undefined) checkIndex(opts.cpu, 'options.cpu', 0, os.cpus().length - 1);
      const netns = netnsPath(opts.netns, 'options.netns');
      return handle.testRun(opts.data, opts.ctx ?? null, dataSizeOut, ctxSizeOut, repeat, liveFrames, batchSize, netns,
                            opts.cpu ?? null);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The program's code as the kernel holds it. */
  code(): ProgramCode {
    return this.#live().code();
  }

  pin(path: string): void {
    const handle = this.#live();
    checkPath(path, 'path');
    handle.pin(path);
  }

  close(): void {
    this.#handle?.close();
    this.#handle = undefined;
  }

  toString(): string {
    return this.#label;
  }

  #live(): ProgramHandle {
    const handle = this.#handle;
    if (handle === undefined) throw new ClosedError(this.#label);
    return handle;
  }
}

/** @internal The native handle of an open program, for the other modules of the binding. */
export function programHandle(program: Program, name = 'program'): ProgramHandle {
  if (!(program instanceof Program)) throw new TypeError(`${name} must be a Program`);
  return handleOf(program);
}

// TC attachment: a cls_bpf filter in direct-action mode on the clsact qdisc of
// an interface (created when missing, shared with other filters). A filter is
// not an fd: it lives until detached or until its interface goes, and is
// found again by interface, direction, priority and handle.
import { native, type TcResult } from '../addon';
import { programHandle, type Program } from '../program';
import { checkIfname, checkIndex, checkOptions, netnsPath } from '../validate';

export type TcDirection = 'ingress' | 'egress';

export interface TcAttachOptions {
  program: Program;
  ifname: string;
  /** The interface's network namespace: a name under /run/netns, or a path. */
  netns?: string;
  direction: TcDirection;
  /** 1 to 65535; default: the kernel picks one. */
  priority?: number;
  /** Default: the kernel picks one. */
  handle?: number;
}

export interface TcFindOptions {
  ifname: string;
  netns?: string;
  direction: TcDirection;
  priority: number;
  handle: number;
}

export async function attachTc(opts: TcAttachOptions): Promise<TcFilter> {
  checkOptions(opts);
  const program = programHandle(opts.program, 'options.program');
  checkIfname(opts.ifname, 'options.ifname');
  const direction = checkDirection(opts.direction);
  const priority = opts.priority ?? 0;
  const handle = opts.handle ?? 0;
  if (opts.priority !== undefined) checkIndex(priority, 'options.priority', 1, 0xffff);
  if (opts.handle !== undefined) checkIndex(handle, 'options.handle', 1, 0xffffffff);
  const netns = netnsPath(opts.netns, 'options.netns');
  const result = await native.tcAttach(program, false, opts.ifname, netns, direction, priority, handle);
  return new TcFilter(opts.ifname, netns, direction, result);
}

export class TcFilter {
  readonly ifname: string;
  readonly ifindex: number;
  readonly direction: TcDirection;
  readonly priority: number;
  readonly handle: number;
  #netns: string | null;
  #programId: number;

  /** The filter at that interface, direction, priority and handle; undefined when there is none. */
  static async find(opts: TcFindOptions): Promise<TcFilter | undefined> {
    checkOptions(opts);
    checkIfname(opts.ifname, 'options.ifname');
    const direction = checkDirection(opts.direction);
    checkIndex(opts.priority, 'options.priority', 1, 0xffff);
    checkIndex(opts.handle, 'options.handle', 1, 0xffffffff);
    const netns = netnsPath(opts.netns, 'options.netns');
    const result = await native.tcQuery(opts.ifname, netns, direction, opts.priority, opts.handle);
    return result === null ? undefined : new TcFilter(opts.ifname, netns, direction, result);
  }

  /** @internal */
  constructor(ifname: string, netns: string | null, direction: TcDirection, result: TcResult) {
    this.ifname = ifname;
    this.#netns = netns;
    this.direction = direction;
    this.ifindex = result.ifindex;
    this.priority = result.priority;
    this.handle = result.handle;
    this.#programId = result.programId;
  }

  /** The program the filter ran when attached, found or last updated through this object. */
  get programId(): number {
    return this.#programId;
  }

  /** Replaces the filter's program in place (BPF_TC_F_REPLACE on the same priority and handle): atomic. */
  async update(program: Program): Promise<void> {
    const result = await native.tcAttach(programHandle(program), true, this.ifindex, this.#netns, this.direction,
                                         this.priority, this.handle);
    this.#programId = result.programId;
  }

  async detach(): Promise<void> {
    await native.tcDetach(this.ifindex, this.#netns, this.direction, this.priority, this.handle);
  }

  toString(): string {
    return `TcFilter ${this.direction} ${this.ifname} priority ${this.priority} handle ${this.handle}`;
  }
}

function checkDirection(value: unknown): TcDirection {
  if (value !== 'ingress' && value !== 'egress') {
    throw new RangeError(`options.direction must be 'ingress' or 'egress', got ${String(value)}`);
  }
  return value;
}

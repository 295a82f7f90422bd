// XDP attachment as a bpf_link (BPF_LINK_CREATE, BPF_XDP): it can be pinned to
// outlive its process, and its program swapped atomically (bpf_link_update).
import { native, type LinkHandle, type PinnedHandle } from '../addon';
import { ClosedError } from '../errors';
import { programHandle, type Program } from '../program';
import { checkIfname, checkOptions, checkPath, netnsPath } from '../validate';

export type XdpMode = 'native' | 'generic';

export interface XdpAttachOptions {
  program: Program;
  ifname: string;
  /** The interface's network namespace: a name under /run/netns, or a path. */
  netns?: string;
  /** 'native' (driver mode, the default) fails where the driver has no XDP; 'generic' works everywhere, slower. */
  mode?: XdpMode;
}

export async function attachXdp(opts: XdpAttachOptions): Promise<XdpLink> {
  checkOptions(opts);
  const program = programHandle(opts.program, 'options.program');
  checkIfname(opts.ifname, 'options.ifname');
  const mode = opts.mode ?? 'native';
  if (mode !== 'native' && mode !== 'generic') {
    throw new RangeError(`options.mode must be 'native' or 'generic', got ${String(mode)}`);
  }
  const { handle } = await native.xdpAttach(program, opts.ifname, netnsPath(opts.netns, 'options.netns'), mode);
  return new XdpLink(handle);
}

export class XdpLink {
  readonly id: number;
  readonly ifindex: number;
  #handle: LinkHandle | undefined;
  #label: string;

  /** A link pinned by pin(), possibly by an earlier process. */
  static openPinned(path: string): XdpLink {
    checkPath(path, 'path');
    return new XdpLink(native.objGet(path));
  }

  /** @internal */
  constructor(handle: PinnedHandle) {
    const info = handle.info();
    if (info.kind !== 'link' || info.ifindex === undefined) {
      handle.close();
      throw new TypeError('the object is not an XDP link');
    }
    this.#handle = handle as LinkHandle;
    this.id = info.id;
    this.ifindex = info.ifindex;
    this.#label = `XdpLink ${this.id} (ifindex ${this.ifindex})`;
    handle.setLabel(this.#label);
  }

  get fd(): number {
    return this.#live().fd;
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  /** The program the link runs now (it changes with update(), also from other processes). */
  get programId(): number {
    return this.#live().info().programId;
  }

  /** Swaps the link's program atomically: every packet sees either the old or the new one. */
  update(program: Program): void {
    this.#live().update(programHandle(program));
  }

  pin(path: string): void {
    const handle = this.#live();
    checkPath(path, 'path');
    handle.pin(path);
  }

  /**
   * Takes the program off the interface now, whoever else holds the link, and
   * closes our fd. The link's pins stay (defunct) until removed.
   */
  detach(): void {
    this.#live().detach();
    this.close();
  }

  /**
   * Closes our fd; the program stays attached while the link is pinned or open
   * elsewhere. A pin's reference goes an RCU grace period after its unlink, so
   * to take the program off at once, detach().
   */
  close(): void {
    this.#handle?.close();
    this.#handle = undefined;
  }

  toString(): string {
    return this.#label;
  }

  #live(): LinkHandle {
    const handle = this.#handle;
    if (handle === undefined) throw new ClosedError(this.#label);
    return handle;
  }
}

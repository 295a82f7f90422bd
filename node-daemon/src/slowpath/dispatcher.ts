// Where a slow-path packet goes.
//
// The data plane's nc_to_controller writes packet and metadata as one record into
// the host's packet ring. The dispatcher reads that ring continuously (so it never
// fills because of one slow controller), finds the controller session that owns
// the packet's cube — one naming the cube, else one naming its type, among those
// whose identity may control that type; the latest session wins, as a new leader
// replaces an old one — and hands it the packet. No
// session, or a session whose bounded queue is full: the packet is dropped and
// counted. Packet-outs come back through the session and go to the runtime.
//
// What a flood costs is bounded at every step. Per cube, the data plane's token
// bucket (Runtime's slowPath rate) drops what a cube sends past its rate before it
// reaches the ring. Per host, the ring is read a slice of `budget` records per
// wake-up of the event loop, so the daemon's other work (gRPC, etcd, its lease)
// runs between slices, and at most `hostRate` records a second; what the host
// does not read waits in the ring, and what does not fit there the data plane
// drops. Each controller session holds a bounded queue, and all of them together
// at most MAX_HELD_PACKETS. A cube whose packet found its controller's queue full
// (or the host's bound reached) is held: the data plane drops what it sends
// (pkt_held) until the controller has room again (half its queue free), so a
// stalled controller costs the daemon nothing, and the other cubes' packets go on
// through the ring. Every drop is counted by its cause (metrics:
// netcube_slowpath_drops_total).

import { RingBufReader } from '../bpf';
import { PacketRecord, decodePacketRecord } from '../runtime/abi';
import { InvalidArgumentError, NotFoundError } from '../runtime/errors';
import { Cube } from '../runtime/cube';
import { Runtime } from '../runtime/runtime';

export interface PacketIn {
  cube: string;
  port: string;
  reason: number;
  user: number[];
  packet: Buffer;
  wireLength: number;
  /** The data plane's clock when it handed the packet over (bpf_ktime_get_ns). */
  timestampNs: bigint;
}

export interface PacketOutRequest {
  cube: string;
  port: string;
  direction: 'ingress' | 'egress';
  packet: Buffer;
  user?: number[];
}

/** A controller as the dispatcher sees it: what it controls, and where its packets go. */
export interface ControllerSession {
  readonly name: string;
  readonly types: ReadonlySet<string>;
  readonly cubes: ReadonlySet<string>;
  /** Whether its identity may control cubes of `type` (a cube's name may come back with another type). */
  mayControl(type: string): boolean;
  /** Queues a packet for the controller; false when its queue is full. */
  deliver(p: PacketIn): boolean;
  /** Whether its queue has room again (half of it free), for the cubes held because it was full. */
  hasRoom(): boolean;
}

export type Outcome = 'delivered' | 'no_controller' | 'queue_full' | 'unknown_cube';

/** How much of the host's packet ring the daemon reads. */
export interface SlowPathBudget {
  /** Records read per wake-up of the event loop. */
  budget: number;
  /** Records read per second, for every cube of the host together. */
  hostRate: number;
}

/**
 * Packet-ins all controller sessions of a host may hold together, waiting to be
 * sent: four sessions' worth (api/slowpath.ts MAX_QUEUED), about 24 MB of
 * full-size packets, however many sessions stop reading.
 */
export const MAX_HELD_PACKETS = 16_384;

/**
 * A slice of 256 records is well under a millisecond of work; 200k records a
 * second is twice what one cube may send by default (Runtime's slowPath rate), so
 * one flooding cube leaves room for the others, and it is about a core's worth.
 */
export const DEFAULT_SLOW_PATH_BUDGET: SlowPathBudget = { budget: 256, hostRate: 200_000 };

export class SlowPath {
  private reader?: RingBufReader;
  private readonly sessions: ControllerSession[] = [];
  /** Data-plane cube id -> name, checked against the runtime on every use. */
  private readonly names = new Map<number, string>();
  /** Packet-in outcomes per cube. */
  readonly counts = new Map<string, Record<Outcome, number>>();
  readonly packetOuts = { sent: 0, dropped: 0, refused: 0 };
  /** Packet-ins the sessions hold (queued, not yet sent), against MAX_HELD_PACKETS. */
  private held = 0;
  /** Cubes whose slow path is held (Runtime.holdSlowPath), by the session that had no room for their packets. */
  private readonly heldCubes = new Map<string, ControllerSession>();

  constructor(
    private readonly runtime: Runtime,
    readonly limits: SlowPathBudget = DEFAULT_SLOW_PATH_BUDGET,
  ) {}

  /** Starts draining the packet ring. */
  start(): void {
    if (!this.reader) this.runtime.releaseSlowPaths();
    this.reader ??= new RingBufReader(this.runtime.host.pktRing, { budget: this.limits.budget, ratePerSecond: this.limits.hostRate }).on('record', (buf: Buffer) =>
      this.dispatch(decodePacketRecord(buf)),
    );
  }

  /** Records read from the ring, and how often the host rate made the reader wait. */
  get ringStats(): { records: number; rateWaits: number } {
    return this.reader?.stats ?? { records: 0, rateWaits: 0 };
  }

  /** Takes room for one packet-in a session will hold; false when every session together holds the most they may. */
  hold(): boolean {
    if (this.held >= MAX_HELD_PACKETS) return false;
    this.held++;
    return true;
  }

  /** Gives back the room of `n` packet-ins a session sent or dropped. */
  release(n: number): void {
    this.held = Math.max(0, this.held - n);
    this.letGo();
  }

  /** Cubes whose slow path the data plane holds now. */
  get heldCubeNames(): string[] {
    return [...this.heldCubes.keys()];
  }

  /** Lets go of the cubes whose controller has room again, while the host has; of every one with `all`. */
  private letGo(all = false): void {
    if (this.heldCubes.size === 0) return;
    const hostRoom = this.held <= MAX_HELD_PACKETS / 2;
    for (const [cube, session] of this.heldCubes) {
      if (!all && !(hostRoom && session.hasRoom())) continue;
      this.heldCubes.delete(cube);
      this.runtime.holdSlowPath(cube, false);
    }
  }

  get heldPackets(): number {
    return this.held;
  }

  /** Adds a session; returns the function that removes it. */
  attach(session: ControllerSession): () => void {
    this.sessions.push(session);
    // Who owns which cube may change: held cubes go to their new owner, full or not.
    this.letGo(true);
    return () => {
      const i = this.sessions.indexOf(session);
      if (i >= 0) this.sessions.splice(i, 1);
      this.letGo(true);
    };
  }

  /** The cubes of this host that `session` would receive packets of now. */
  cubesOf(session: ControllerSession): string[] {
    return this.runtime.cubeNames().filter((c) => this.owner(c) === session);
  }

  private owner(cube: string): ControllerSession | undefined {
    const type = this.runtime.cube(cube).type.name;
    const s = this.sessions;
    for (let i = s.length - 1; i >= 0; i--) if (s[i].cubes.has(cube) && s[i].mayControl(type)) return s[i];
    for (let i = s.length - 1; i >= 0; i--) if (s[i].types.has(type) && s[i].mayControl(type)) return s[i];
    return undefined;
  }

  private count(cube: string, outcome: Outcome): void {
    let c = this.counts.get(cube);
    if (!c) this.counts.set(cube, (c = { delivered: 0, no_controller: 0, queue_full: 0, unknown_cube: 0 }));
    c[outcome]++;
  }

  /** The live cube with data-plane id `id`: a lookup per packet, so remembered while it holds. */
  private cubeById(id: number): Cube | undefined {
    const known = this.names.get(id);
    if (known !== undefined) {
      const cube = this.liveCube(known);
      if (cube?.id === id) return cube;
    }
    const name = this.runtime.cubeNameById(id);
    if (name === undefined) {
      this.names.delete(id);
      return undefined;
    }
    this.names.set(id, name);
    return this.liveCube(name);
  }

  private liveCube(name: string): Cube | undefined {
    try {
      return this.runtime.cube(name);
    } catch {
      return undefined;
    }
  }

  private dispatch(rec: PacketRecord): void {
    const c = this.cubeById(rec.cubeId);
    if (!c) return this.count(`#${rec.cubeId}`, 'unknown_cube');
    const cube = c.name;
    let port: string | undefined;
    if (c.transparent) port = ['ingress', 'egress'][rec.inPort];
    else for (const [name, index] of c.ports) if (index === rec.inPort) port = name;
    const session = this.owner(cube);
    if (!session) return this.count(cube, 'no_controller');
    const ok = session.deliver({ cube, port: port ?? String(rec.inPort), reason: rec.reason, user: rec.user, packet: rec.packet, wireLength: rec.wireLen, timestampNs: rec.tsNs });
    this.count(cube, ok ? 'delivered' : 'queue_full');
    if (!ok && !this.heldCubes.has(cube)) {
      this.heldCubes.set(cube, session);
      this.runtime.holdSlowPath(cube, true);
    }
  }

  /**
   * Sends a controller's packet into the data plane, only into cubes it controls;
   * synchronous, so a batch goes out in order without yielding. Packet-out must be
   * prepared (Runtime.preparePacketOut) — see whenPacketOutReady().
   */
  packetOut(session: ControllerSession, p: PacketOutRequest): void {
    let owner: ControllerSession | undefined;
    try {
      owner = this.owner(p.cube);
    } catch (err) {
      this.packetOuts.refused++;
      if (err instanceof NotFoundError) throw new NotFoundError(`packet-out to cube ${p.cube}: no such cube on this host`);
      throw err;
    }
    if (owner !== session) {
      this.packetOuts.refused++;
      throw new InvalidArgumentError('cube', `packet-out to cube ${p.cube}: controller ${session.name} does not control it${owner ? ` (${owner.name} does)` : ''}`);
    }
    let sent: boolean;
    try {
      sent = this.runtime.sendPacket({ cube: p.cube, port: p.port, direction: p.direction, frame: p.packet, user: p.user });
    } catch (err) {
      this.packetOuts.refused++;
      throw err;
    }
    if (sent) this.packetOuts.sent++;
    else this.packetOuts.dropped++;
  }

  /**
   * Undefined when packet-outs can be sent now (the steady state); else a promise
   * that settles once the runtime has tried to set packet-out up (the inject veth
   * the daemon prepares at start may not be there yet).
   */
  whenPacketOutReady(): Promise<void> | undefined {
    if (this.runtime.packetOutReady) return undefined;
    return this.runtime.preparePacketOut().catch(() => undefined);
  }

  close(): void {
    this.reader?.close();
    this.reader = undefined;
  }
}

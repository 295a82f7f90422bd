// The host-wide part of the data plane: the daemon's own bpffs, where everything
// is pinned, and the maps every cube shares (generation, ring buffers, error
// counters, host-scope tables), with the prog arrays where packet-out finds each
// cube's entry.
//
// Layout under the runtime's root directory (tmpfs, e.g. /run/netcube/<host>):
//   state.json                        runtime metadata (state.ts)
//   types/<type>.<mode>.o             uploaded cube types
//   entries/<id>-<cube>.o             the object a cube's replaced entry came from
//   bpf/                              our bpffs mount
//     host/{progs_xdp,progs_tc,gen,log_rb,pkt_rb,errors}
//     host/tables/<table>             host-scope tables
//     cubes/<id>-<cube>/{maps,progs}  each cube's maps and programs
//     netdevs/<ifname>.<mode>/{prog,peer,progs,link}  netdev entries
//   (bpffs refuses dots in names: pinName() spells them %2e)

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfMap, MapType } from '../bpf';
import { ERR_MAX, PROG_SLOTS } from './abi';
import { InvalidArgumentError } from './errors';
import { Mode } from './topology';

const BPF_F_MMAPABLE = 1 << 10;

export interface HostMapSizes {
  /** Bytes of the data-plane log ring buffer (a power of two). */
  logRingBytes: number;
  /** Bytes of the slow-path ring buffer (a power of two). */
  pktRingBytes: number;
}

export const DEFAULT_SIZES: HostMapSizes = { logRingBytes: 1 << 22, pktRingBytes: 1 << 24 };

function isBpffs(dir: string): boolean {
  const target = fs.realpathSync(dir);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => {
      const [before, after] = line.split(' - ');
      return after?.startsWith('bpf ') && before.split(' ')[4] === target;
    });
}

/**
 * Mounts a bpffs at `dir` unless one is there, root's alone (a bpffs is 1777 by
 * default: anyone could pin there). A mount made inside a private mount namespace
 * (as `ip netns exec` creates) dies with the daemon and takes the pins with it;
 * start netcubed with `nsenter --net=...` instead, or mount beforehand.
 */
export function mountBpffs(dir: string): { mounted: boolean } {
  fs.mkdirSync(dir, { recursive: true });
  const mounted = !isBpffs(dir);
  if (mounted) execFileSync('mount', ['-t', 'bpf', '-o', 'mode=0700', 'bpf', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  fs.chmodSync(dir, 0o700);
  return { mounted };
}

export function unmountBpffs(dir: string): void {
  if (fs.existsSync(dir) && isBpffs(dir)) execFileSync('umount', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class HostLayout {
  constructor(readonly root: string) {}
  get bpffs(): string {
    return path.join(this.root, 'bpf');
  }
  get state(): string {
    return path.join(this.root, 'state.json');
  }
  get uploads(): string {
    return path.join(this.root, 'types');
  }
  hostMap(name: string): string {
    return path.join(this.bpffs, 'host', name);
  }
  hostTable(name: string): string {
    return path.join(this.bpffs, 'host', 'tables', name);
  }
  /** A cube's pins; the id keeps a replaced cube and its successor apart. */
  cube(name: string, id: number): string {
    return path.join(this.bpffs, 'cubes', pinName(`${id}-${name}`));
  }
  /** The object a cube's entry was replaced from (replaceMicroCube), to fuse it with netdevs after a restart. */
  entryObject(name: string, id: number): string {
    return path.join(this.root, 'entries', `${id}-${name}.o`);
  }
  /** A netdev entry's pins; `key` is the entry's `<ifname>.<mode>`. */
  netdev(ifname: string, mode: Mode): string {
    return path.join(this.bpffs, 'netdevs', pinName(`${ifname}.${mode}`));
  }
}

/**
 * A name as bpffs allows it. The kernel refuses (EPERM) any name with a dot in
 * it, and cube names ("web.v2") and interface names ("eth0.100") may have one:
 * '.' becomes '%2e' (and '%' itself '%25', so that names stay apart).
 */
export function pinName(name: string): string {
  return name.replace(/%/g, '%25').replace(/\./g, '%2e');
}

interface MapDef {
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
}

/** The maps shared by every cube on the host, created once and pinned. */
export class HostMaps {
  private constructor(
    readonly progs: Readonly<Record<Mode, BpfMap>>,
    readonly gen: BpfMap,
    readonly logRing: BpfMap,
    readonly pktRing: BpfMap,
    readonly errors: BpfMap,
    /** Whether the maps were found pinned (an earlier daemon's) rather than created. */
    readonly adopted: boolean,
  ) {}

  /** Opens the pinned host maps, or creates and pins those that are missing. */
  static open(layout: HostLayout, sizes: HostMapSizes): HostMaps {
    fs.mkdirSync(path.join(layout.bpffs, 'host', 'tables'), { recursive: true });
    let adopted = true;
    const open = (pin: string, def: MapDef): BpfMap => {
      const file = layout.hostMap(pin);
      if (fs.existsSync(file)) {
        const m = BpfMap.openPinned(file);
        if (m.type === def.type && m.keySize === def.keySize && m.valueSize === def.valueSize && m.maxEntries === def.maxEntries) return m;
        // A different netcube version left it: nothing can use it safely.
        m.close();
        fs.rmSync(file);
      }
      adopted = false;
      const m = BpfMap.create({ ...def, name: `nc_${pin}`.slice(0, 15) });
      m.pin(file);
      return m;
    };
    const progs = {
      xdp: open('progs_xdp', { type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: PROG_SLOTS }),
      tc: open('progs_tc', { type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: PROG_SLOTS }),
    };
    const gen = open('gen', { type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, flags: BPF_F_MMAPABLE });
    const logRing = open('log_rb', { type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: sizes.logRingBytes });
    const pktRing = open('pkt_rb', { type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: sizes.pktRingBytes });
    const errors = open('errors', { type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: ERR_MAX });
    return new HostMaps(progs, gen, logRing, pktRing, errors, adopted);
  }

  /** The host's instance of framework map `name` for a program of `mode` (nc_progs: packet-out's). */
  framework(name: string, mode: Mode): BpfMap {
    switch (name) {
      case 'nc_progs':
        return this.progs[mode];
      case '.data.nc_gen':
        return this.gen;
      case 'nc_log_rb':
        return this.logRing;
      case 'nc_pkt_rb':
        return this.pktRing;
      case 'nc_errors':
        return this.errors;
    }
    throw new InvalidArgumentError('map', `${name} is not a host-wide framework map`);
  }

  get currentGen(): number {
    return Number(this.gen.loadU64(0) & 1n);
  }

  set currentGen(gen: number) {
    this.gen.storeU64Atomic(0, BigInt(gen));
  }

  /** Framework error counters, summed over CPUs. */
  errorCounts(): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < ERR_MAX; i++) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      const v = this.errors.lookup(key);
      let sum = 0n;
      for (let off = 0; v && off < v.length; off += 8) sum += v.readBigUInt64LE(off);
      out.push(sum);
    }
    return out;
  }

  close(): void {
    for (const m of [this.progs.xdp, this.progs.tc, this.gen, this.logRing, this.pktRing, this.errors]) m.close();
  }
}

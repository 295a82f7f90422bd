// Network namespaces and veth pairs for tests. Every namespace is named
// `nct-<pid>-<n>`, so parallel test processes never collide, and is deleted
// in the test's teardown (which ava runs also when the test fails) or, should
// the process die first, at its exit.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { orphans } from './orphans';

const execFileAsync = promisify(execFile);
const live = new Set<string>();
let created = 0;

// Namespaces of workers killed outright (no teardown, no exit handler) are swept.
let named: string[] = [];
try {
  named = readdirSync('/run/netns');
} catch {
  // No namespace exists yet.
}
for (const name of orphans(named, /^nct-(\d+)-\d+$/)) {
  try {
    execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
  } catch {
    // Deleted by another sweeping worker meanwhile.
  }
}

process.on('exit', () => {
  for (const name of live) {
    try {
      execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
});

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export class Netns {
  /** As `ip netns` knows it; the binding's `netns` options take it as is. */
  readonly name: string;
  /** The namespace file, /run/netns/<name>. */
  readonly path: string;

  constructor(name: string) {
    this.name = name;
    this.path = `/run/netns/${name}`;
  }

  /** Runs a command inside the namespace (`ip netns exec`); rejects with its output when it fails. */
  async exec(command: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<CommandResult> {
    try {
      return await execFileAsync('ip', ['netns', 'exec', this.name, command, ...args],
                                 { timeout: opts.timeoutMs ?? 30_000 });
    } catch (error) {
      const e = error as Error & { stdout?: string; stderr?: string };
      throw new Error(`in ${this.name}: ${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  }

  /** Pings `address` `count` times, fast; rejects unless every echo got its reply. */
  async ping(address: string, count: number): Promise<void> {
    await this.exec('ping', ['-q', '-n', '-c', String(count), '-i', '0.01', '-W', '2', address]);
  }

  async delete(): Promise<void> {
    if (!live.delete(this.name)) return;
    await execFileAsync('ip', ['netns', 'delete', this.name]);
  }
}

/** A fresh namespace with loopback up, deleted in the test's teardown. */
export async function createNetns(t: ExecutionContext): Promise<Netns> {
  const ns = await newNetns();
  t.teardown(() => ns.delete());
  return ns;
}

/**
 * A fresh namespace with loopback up, for code that is not an ava test (the
 * benchmarks): the caller deletes it, or process exit does.
 */
export async function newNetns(): Promise<Netns> {
  const ns = new Netns(`nct-${process.pid}-${++created}`);
  await execFileAsync('ip', ['netns', 'add', ns.name]);
  live.add(ns.name);
  await ns.exec('ip', ['link', 'set', 'lo', 'up']);
  return ns;
}

export interface VethEnd {
  netns: Netns;
  ifname: string;
  /** IPv4 address without prefix length. */
  address: string;
}

/**
 * A veth pair from `a` to `b`, created directly inside the two namespaces (so
 * the names cannot clash with anything outside them), addressed in
 * 10.99.0.0/24 (or as `addresses` says; null for none: `address` is then '')
 * and up. It goes away with its namespaces.
 */
export async function createVethPair(a: Netns, b: Netns, ifnames: [string, string] = ['veth0', 'veth1'],
                                     addresses: [string, string] | null = ['10.99.0.1', '10.99.0.2'])
  : Promise<[VethEnd, VethEnd]> {
  await execFileAsync('ip', ['link', 'add', ifnames[0], 'netns', a.name, 'type', 'veth',
                             'peer', 'name', ifnames[1], 'netns', b.name]);
  const ends: [VethEnd, VethEnd] = [
    { netns: a, ifname: ifnames[0], address: addresses?.[0] ?? '' },
    { netns: b, ifname: ifnames[1], address: addresses?.[1] ?? '' },
  ];
  for (const end of ends) {
    if (end.address) await end.netns.exec('ip', ['addr', 'add', `${end.address}/24`, 'dev', end.ifname]);
    await end.netns.exec('ip', ['link', 'set', end.ifname, 'up']);
  }
  return ends;
}

/** One L2 segment: a Linux bridge (br0) in a namespace of its own, as a switch. */
export interface Segment {
  netns: Netns;
  /** Plugs `ns` into the segment by a veth, its end there named `ifname` with `address` (/24), up. */
  attach(ns: Netns, ifname: string, address: string): Promise<void>;
}

export async function createSegment(t: ExecutionContext): Promise<Segment> {
  const netns = await createNetns(t);
  await netns.exec('ip', ['link', 'add', 'br0', 'type', 'bridge']);
  await netns.exec('ip', ['link', 'set', 'br0', 'up']);
  let ports = 0;
  return {
    netns,
    async attach(ns, ifname, address) {
      const port = `p${ports++}`;
      await createVethPair(ns, netns, [ifname, port], [address, '']);
      await netns.exec('ip', ['link', 'set', port, 'master', 'br0']);
    },
  };
}

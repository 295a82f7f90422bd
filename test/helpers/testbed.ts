// The three-namespace testbed of the integration tests and the live benchmarks:
//
//   sender                 host (netcube's netdevs)                receivers
//   gen0 ---- veth ---- in0      [cubes]      outN ---- veth ---- sinkN
//   Generator (xdp_tx)      netdev entry ... redirect           Sink (xdp_sink)
//
// The runtime under test opens with `netns: host.path`, so every netdev it
// touches lives in a namespace the test made. Everything goes away with the
// namespaces.

import type { ExecutionContext } from 'ava';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { Netns, createVethPair, newNetns } from './netns';
import { Generator, Sink, attachXdpPass, linkDrops, streamFrame } from './traffic';

export interface Testbed {
  sender: Netns;
  host: Netns;
  receiver: Netns;
  /** The host's netdevs: where the stream comes in, and the ways out (out0, out1 ...). */
  in: string;
  outs: string[];
  generator: Generator;
  /** One per way out, in the order of `outs`. */
  sinks: Sink[];
  /** Every veth end, for linkDrops(). */
  links: { netns: Netns; ifname: string }[];
  /** Stream frames received at all sinks. */
  received(): number;
  /** Drops and errors any veth counted (empty when none). */
  drops(): ReturnType<typeof linkDrops>;
  close(): Promise<void>;
}

export interface TestbedOptions {
  /**
   * The hook netcube will use on the host. For 'tc', in0 gets an XDP program
   * that passes everything, for the NAPI the generator's frames need (netcube's
   * XDP entry gives it in 'xdp').
   */
  mode: Mode;
  /** Ways out; default 1. */
  outs?: number;
  /** What the generator sends, one template per batch; default one streamFrame(). */
  frames?: Buffer[];
}

/** A testbed for code that is not an ava test; close() removes it. */
export async function openTestbed(opts: TestbedOptions): Promise<Testbed> {
  const namespaces: Netns[] = [];
  const closers: (() => void)[] = [];
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) c();
    for (const ns of namespaces) await ns.delete();
  };
  try {
    for (let i = 0; i < 3; i++) {
      const ns = await newNetns();
      namespaces.push(ns);
      // No IPv6 (and no IPv4 addresses): the veths send nothing of their own, so
      // every frame on the wire is the generator's and every counter is exact.
      await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    const [sender, host, receiver] = namespaces;
    const outs = Array.from({ length: opts.outs ?? 1 }, (_, i) => `out${i}`);
    await createVethPair(sender, host, ['gen0', 'in0'], null);
    const links = [{ netns: sender, ifname: 'gen0' }, { netns: host, ifname: 'in0' }];
    for (const [i, out] of outs.entries()) {
      await createVethPair(host, receiver, [out, `sink${i}`], null);
      links.push({ netns: host, ifname: out }, { netns: receiver, ifname: `sink${i}` });
    }
    if (opts.mode === 'tc') closers.push((await attachXdpPass(host, 'in0')).close);
    const sinks: Sink[] = [];
    for (const i of outs.keys()) {
      const sink = await Sink.attach(receiver, `sink${i}`);
      closers.push(() => sink.close());
      sinks.push(sink);
    }
    const generator = await Generator.open(sender, 'gen0', opts.frames ?? [streamFrame()]);
    closers.push(() => generator.close());
    return {
      sender,
      host,
      receiver,
      in: 'in0',
      outs,
      generator,
      sinks,
      links,
      received: () => sinks.reduce((n, s) => n + s.frames, 0),
      drops: () => linkDrops(links),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A testbed removed in the test's teardown. */
export async function createTestbed(t: ExecutionContext, opts: TestbedOptions): Promise<Testbed> {
  // The namespaces are also deleted at exit, should the test process die first.
  const bed = await openTestbed(opts);
  t.teardown(() => bed.close());
  return bed;
}

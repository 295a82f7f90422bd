// Delivery into pods with bpf_redirect_peer. Under TC a cube port linked to a
// pod's veth (its other end in the pod's namespace) hands packets straight to the
// pod's stack; the runtime marks exactly those peer words — not where the peer path
// would skip something (an XDP program on the pod's end, a qdisc on the host's) or
// is not allowed (both ends on the host, XDP mode) — and traffic between pods
// through a TC bridge still flows: ping, and a TCP transfer checked end to end.
//
//   pod1 eth0 ── pa1 ┐                       ┌ hx0 ── hx1   (both ends on the host)
//   pod2 eth0 ── pa2 ┤ br (bridge, TC)       ├ pq4 ── eth0 pod4 (a qdisc on pq4)
//   pod5 eth0 ── px5 ┤ p1 p2 p3 p4 p5 ───────┘        (pod5: an XDP program on its eth0)
//   pod3 eth0 ── pc3 ── fx (simpleforwarder, XDP)
//
// The proof that the peer path is taken: a packet bpf_redirect sends out of pa2
// counts as transmitted there; one that bpf_redirect_peer puts into pod2 does not.

import test from 'ava';
import { decodePeer, type Peer } from '../../node-daemon/src/runtime/abi';
import { describeNetdevs } from '../../node-daemon/src/runtime/netdev';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import { openRuntime } from '../helpers/dataplane';
import { createNetns, createVethPair, type Netns } from '../helpers/netns';
import { attachXdpPass, linkCounters, tcpTransfer } from '../helpers/traffic';


function peerOf(rt: Runtime, cube: string, port: string): Peer {
  const c = rt.cube(cube);
  return decodePeer(c.word(rt.host.currentGen, c.ports.get(port)!));
}

test('tc: words to pods\' veths use bpf_redirect_peer, and pods talk through a TC bridge', async (t) => {
  const host = await createNetns(t);
  // Quiet links, here as in the pods: the host's own veths (hx1 is bridged through hx0)
  // would flood IPv6 autoconfiguration out of pa2 while the pings are counted.
  const quiet = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
  await host.exec('sysctl', ['-q', '-w', ...quiet]);
  const pods: Netns[] = [];
  const hostEnds = ['pa1', 'pa2', 'pc3', 'pq4', 'px5'];
  for (const [i, dev] of hostEnds.entries()) {
    const pod = await createNetns(t);
    await pod.exec('sysctl', ['-q', '-w', ...quiet]);
    await createVethPair(pod, host, ['eth0', dev], [`10.98.0.${i + 1}`, '']);
    pods.push(pod);
  }
  await host.exec('tc', ['qdisc', 'add', 'dev', 'pq4', 'root', 'pfifo']);
  const xdp = await attachXdpPass(pods[4], 'eth0');
  t.teardown(() => xdp.close());
  await host.exec('ip', ['link', 'add', 'hx0', 'type', 'veth', 'peer', 'name', 'hx1']);
  for (const dev of ['hx0', 'hx1']) await host.exec('ip', ['link', 'set', 'dev', dev, 'up']);

  const info = await describeNetdevs(host.path);
  t.like(info.get('pa1'), { kind: 'veth', qdisc: 'noqueue' });
  t.truthy(info.get('pa1')?.peer, 'the other end of pa1 is elsewhere');
  t.like(info.get('hx0'), { kind: 'veth', peer: undefined });
  t.like(info.get('lo'), { kind: undefined, peer: undefined });

  const rt = await openRuntime(t, { netns: host.path });
  await rt.apply({
    cubes: [
      { name: 'br', type: 'bridge', mode: 'tc', ports: ['p1', 'p2', 'p3', 'p4', 'p5'], logLevel: 'info' },
      { name: 'fx', type: 'simpleforwarder', mode: 'xdp', ports: ['q1', 'q2'], logLevel: 'info' },
    ],
    links: [
      { a: { cube: 'br', port: 'p1' }, b: { netdev: 'pa1' } },
      { a: { cube: 'br', port: 'p2' }, b: { netdev: 'pa2' } },
      { a: { cube: 'br', port: 'p3' }, b: { netdev: 'hx0' } },
      { a: { cube: 'br', port: 'p4' }, b: { netdev: 'pq4' } },
      { a: { cube: 'br', port: 'p5' }, b: { netdev: 'px5' } },
      { a: { cube: 'fx', port: 'q1' }, b: { netdev: 'pc3' } },
    ],
    stacks: [],
  });
  const ifindex = (name: string): number => info.get(name)!.ifindex;
  t.deepEqual(peerOf(rt, 'br', 'p1'), { kind: 'netdev', ifindex: ifindex('pa1'), redirectPeer: true }, 'TC, other end in pod1');
  t.deepEqual(peerOf(rt, 'br', 'p2'), { kind: 'netdev', ifindex: ifindex('pa2'), redirectPeer: true }, 'TC, other end in pod2');
  t.deepEqual(peerOf(rt, 'br', 'p3'), { kind: 'netdev', ifindex: ifindex('hx0') }, 'TC, but both ends on the host: bpf_redirect_peer would drop');
  t.deepEqual(peerOf(rt, 'br', 'p4'), { kind: 'netdev', ifindex: ifindex('pq4') }, 'TC, but the peer path would skip the qdisc on pq4');
  t.deepEqual(peerOf(rt, 'br', 'p5'), { kind: 'netdev', ifindex: ifindex('px5') }, "TC, but the peer path would skip pod5's XDP program");
  t.deepEqual(peerOf(rt, 'fx', 'q1'), { kind: 'netdev', ifindex: ifindex('pc3') }, 'XDP: unchanged');

  const txBefore = (await linkCounters(host, 'pa2')).txPackets;
  const rxBefore = (await linkCounters(pods[1], 'eth0')).rxPackets;
  await pods[0].ping('10.98.0.2', 20);
  const txAfter = (await linkCounters(host, 'pa2')).txPackets;
  const rxAfter = (await linkCounters(pods[1], 'eth0')).rxPackets;
  t.true(rxAfter - rxBefore >= 20, `pod2 received ${rxAfter - rxBefore} packets`);
  // Only floods (the ARP request, copied out with bpf_clone_redirect) leave through pa2 itself.
  t.true(txAfter - txBefore < 5, `${txAfter - txBefore} packets were transmitted out of pa2 rather than put into pod2`);
  t.log(`20 pings: pod2 received ${rxAfter - rxBefore} packets, ${txAfter - txBefore} of them transmitted out of pa2`);

  // TCP both ways through the bridge, every byte checked.
  const bytes = 8 << 20;
  const { sent, received } = await tcpTransfer(pods[0], pods[1], '10.98.0.2', bytes);
  t.is(sent.bytes, bytes);
  t.deepEqual(received, sent);
});

test('tc: a pod moved into the host makes its word plain again on the next apply', async (t) => {
  const host = await createNetns(t);
  const pod = await createNetns(t);
  await createVethPair(pod, host, ['eth0', 'pa1'], null);
  const rt = await openRuntime(t, { netns: host.path });
  const topology = {
    cubes: [{ name: 'br', type: 'bridge', mode: 'tc' as const, ports: ['p1'], logLevel: 'info' as const }],
    links: [{ a: { cube: 'br', port: 'p1' }, b: { netdev: 'pa1' } }],
    stacks: [],
  };
  await rt.apply(topology);
  t.true((peerOf(rt, 'br', 'p1') as { redirectPeer?: true }).redirectPeer);
  await pod.exec('ip', ['link', 'set', 'dev', 'eth0', 'netns', host.name]);
  await rt.apply({ ...topology, cubes: [{ ...topology.cubes[0], logLevel: 'debug' }] });
  t.deepEqual(peerOf(rt, 'br', 'p1'), { kind: 'netdev', ifindex: (await describeNetdevs(host.path)).get('pa1')!.ifindex });
});

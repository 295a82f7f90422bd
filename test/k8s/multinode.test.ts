// The provider on several nodes (test/helpers/kube-cluster.ts): namespace-nodes on
// one segment, each with its netcubed and the node agent keeping its VXLAN netdev in
// step with the Nodes, one etcd, one controller, the catalog's services in process,
// pods added by netcube-cni. Real traffic (test/services/sockets.ts) between pods on
// one node and across nodes, over the kernel's VXLAN; a node's kernel to pods and a
// pod to its node; pod → ClusterIP reaching backends on every node; NodePort
// (Cluster) from outside to backends on every node; NetworkPolicy across nodes; a
// Node removed from the API.
// A connection that must not get through is a connect attempt bounded in time, after
// the data plane was seen programmed.

import test from 'ava';
import type { JsonObject } from '@netcube/api/chain';
import { FLOOD_MAC, VXLAN_OVERHEAD } from '@netcube/k8s';
import { runSockets, SocketsProcess } from '../services/catalog-bed';
import { fdbOf, kubeCluster, SETTINGS, type ClusterPod, type KubeCluster } from '../helpers/kube-cluster';
import { loadManifests, type KubeObject } from '../helpers/kube-manifests';
import { createNetns, type Netns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const objects = loadManifests('multinode.yaml');
const [denyPolicy, clientsPolicy, prodPolicy, egressPolicy] = loadManifests('multinode-policies.yaml');
const VIP = '10.96.0.40';
/** A connect attempt that must fail waits this long for an answer. */
const REFUSED_WITHIN_MS = 2_000;

const connect = (from: { netns: Netns }, host: string, port: number, ms = 5_000) => runSockets<{ result: string; greeting?: string }>(from.netns, ['connect', host, port, ms]);

/** Pod `name` serving TCP 8080 (greeting with its name) and UDP 5353; stopped in the test's teardown. */
async function serve(t: { teardown(fn: () => unknown): void }, pod: ClusterPod): Promise<SocketsProcess> {
  const server = new SocketsProcess(pod.netns, ['serve', pod.name, '8080', '5353']);
  t.teardown(() => server.stop());
  await server.line(`${pod.name}'s servers listening`, (l) => l.ready === true);
  return server;
}

/** The routes the controller gave node `node`'s router, as `prefix via nexthop`. */
async function routerRoutes(bed: KubeCluster, node: string): Promise<string[]> {
  const n = bed.nodes.get(node)!.model.names;
  const chain = await bed.store.chains.get(n.chain);
  const router = chain.chain.spec.cubes.find((c) => c.name === n.router)!;
  return ((router.params as JsonObject).routes as { prefix: string; nexthop: string }[]).map((r) => `${r.prefix} via ${r.nexthop}`);
}

test.serial('two nodes: the agent makes each VXLAN netdev and its table from the Nodes; pods talk on one node and across (ping, TCP, UDP), a node\'s kernel with pods; a Node removed takes its entries and routes away', async (t) => {
  t.timeout(300_000);
  const bed = await kubeCluster(t, objects.filter((o) => o.kind !== 'Node' || o.metadata.name !== 'n3'), ['n1', 'n2']);
  const [n1, n2] = ['n1', 'n2'].map((n) => bed.nodes.get(n)!);

  // The netdev as the agent made it: on the uplink, from the node's address, the uplink's MTU less VXLAN's.
  for (const [node, other] of [[n1, n2], [n2, n1]]) {
    await waitFor(`${node.name}'s forwarding table`, async () => (await fdbOf(node).catch(() => [])).length === 2);
    const [link] = JSON.parse((await node.netns.exec('ip', ['-j', '-d', 'link', 'show', 'dev', SETTINGS.vxlanNetdev])).stdout);
    const uplink = JSON.parse((await node.netns.exec('ip', ['-j', 'link', 'show', 'dev', 'eth0'])).stdout)[0];
    t.like(link.linkinfo.info_data, { id: 42, port: 4789, local: node.model.address, link: 'eth0', learning: false }, node.name);
    t.is(link.mtu, uplink.mtu - VXLAN_OVERHEAD);
    t.true(link.flags.includes('UP'));
    t.deepEqual(await fdbOf(node), [`${FLOOD_MAC} ${other.model.address}`, `${other.model.vxlanMac} ${other.model.address}`].sort(), `${node.name} forwards to ${other.name} only`);
  }

  const [echo1, client1, echo2, client2] = await Promise.all(['echo-1', 'client-1', 'echo-2', 'client-2'].map((p) => bed.addPod(p)));
  for (const pod of [echo1, echo2]) await serve(t, pod);
  // The router service resolves the other node's router on its own time: the first answer across.
  await waitFor('client-1 reaching echo-2 across the nodes', async () => (await connect(client1, echo2.address, 8080)).result === 'greeting', 60_000, 100);

  for (const [from, to, where] of [[client1, echo1, 'on n1'], [client1, echo2, 'n1 → n2'], [client2, echo1, 'n2 → n1'], [client2, echo2, 'on n2']] as const) {
    await t.notThrowsAsync(from.netns.ping(to.address, 5), `ping ${where}`);
    const tcp = await connect(from, to.address, 8080);
    t.deepEqual([tcp.result, tcp.greeting], ['greeting', to.name], `TCP ${where}`);
    const udp = await runSockets<{ echoed: number }>(from.netns, ['udp', to.address, 5353, 5, 5_000]);
    t.is(udp.echoed, 5, `UDP ${where}`);
  }
  // A packet of the pods' full MTU (1450, as cni-config sets it) crosses unfragmented: the overlay's MTU fits it.
  t.is(JSON.parse((await client1.netns.exec('ip', ['-j', 'link', 'show', 'dev', 'eth0'])).stdout)[0].mtu, 1450);
  await t.notThrowsAsync(client1.netns.exec('ping', ['-q', '-n', '-c', '3', '-i', '0.05', '-W', '2', '-M', 'do', '-s', String(1450 - 28), echo2.address]), 'full-size packets n1 → n2');
  // The node's kernel (kubelet's probes) reaches its pods and the other node's, through its host link; a pod reaches its own node's address.
  await t.notThrowsAsync(n1.netns.ping(client1.address, 2), 'n1\'s kernel → a pod of n1');
  await t.notThrowsAsync(n1.netns.ping(echo2.address, 2), 'n1\'s kernel → a pod of n2');
  const probe = await connect(n1, echo2.address, 8080);
  t.deepEqual([probe.result, probe.greeting], ['greeting', 'echo-2'], 'TCP from n1\'s kernel to a pod of n2');
  await t.notThrowsAsync(client2.netns.ping(n2.model.address, 2), 'a pod of n2 → its node\'s address');
  // The traffic across went through the VXLAN netdevs.
  const stats = JSON.parse((await n1.netns.exec('ip', ['-j', '-s', 'link', 'show', 'dev', SETTINGS.vxlanNetdev])).stdout)[0].stats64;
  t.true(stats.tx.packets >= 15 && stats.rx.packets >= 15, JSON.stringify(stats));

  // Node n2 leaves the cluster: n1's table and router forget it.
  t.true((await routerRoutes(bed, 'n1')).includes(`10.244.2.0/24 via ${n2.model.vxlanAddress.split('/')[0]}`));
  bed.api.delete('Node', 'n2');
  await waitFor('n2\'s entries gone from n1\'s table', async () => (await fdbOf(n1)).length === 0);
  await waitFor('n2\'s pod range gone from n1\'s router', async () => !(await routerRoutes(bed, 'n1')).some((r) => r.startsWith('10.244.2.0/24')));
  t.is((await runSockets<{ echoed: number }>(client1.netns, ['udp', echo2.address, 5353, 1, REFUSED_WITHIN_MS])).echoed, 0, 'n2\'s pods out of reach');
  // It comes back at another address: the entries follow it.
  const moved = structuredClone(objects.find((o) => o.kind === 'Node' && o.metadata.name === 'n2')!) as KubeObject & { status: { addresses: { type: string; address: string }[] } };
  moved.status.addresses[0].address = '10.0.0.22';
  bed.api.apply(moved);
  await waitFor('n2 back in n1\'s table at its new address', async () => (await fdbOf(n1)).join() === [`${FLOOD_MAC} 10.0.0.22`, `${n2.model.vxlanMac} 10.0.0.22`].sort().join());
  t.false(bed.lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

test.serial('three nodes: pod → ClusterIP reaches the backends on every node, balanced, and so does NodePort (Cluster) from outside; NetworkPolicy across nodes by podSelector and port, by namespaceSelector, and egress', async (t) => {
  t.timeout(400_000);
  const bed = await kubeCluster(t, objects, ['n1', 'n2', 'n3']);
  // Two pods or more on each node, all at once, as the kubelets would.
  const [echo1, echo2, echo3, client1, client2, client3, auditor] = await Promise.all([...['echo-1', 'echo-2', 'echo-3', 'client-1', 'client-2', 'client-3'].map((n) => bed.addPod(n)), bed.addPod('auditor', 'prod')]);
  const servers = new Map<string, SocketsProcess>();
  for (const pod of [echo1, echo2, echo3, client3]) servers.set(pod.name, await serve(t, pod));
  for (const node of bed.nodes.values()) await waitFor(`${node.name}'s forwarding table`, async () => (await fdbOf(node).catch(() => [])).length === 4);

  await waitFor('client-1 reaching the echo Service', async () => (await connect(client1, VIP, 80)).result === 'greeting', 60_000, 100);
  await waitFor('client-1 reaching echo-3', async () => (await connect(client1, echo3.address, 8080)).result === 'greeting', 60_000, 100);
  await waitFor('client-1 reaching echo-2', async () => (await connect(client1, echo2.address, 8080)).result === 'greeting', 60_000, 100);
  const tcp = await runSockets<{ greetings: Record<string, number>; failed: number }>(client1.netns, ['conns', VIP, 80, 60, 3]);
  t.is(tcp.failed, 0);
  t.deepEqual(Object.keys(tcp.greetings).sort(), ['echo-1', 'echo-2', 'echo-3'], 'the backends on every node answered');
  // Balanced: 60 connections over 3 backends, none with fewer than 5 (a fair split gives each 20).
  for (const [name, count] of Object.entries(tcp.greetings)) t.true(count >= 5, `${name}: ${count} of 60 (${JSON.stringify(tcp.greetings)})`);
  for (const name of ['echo-2', 'echo-3']) {
    t.true(servers.get(name)!.lines.some((l) => l.tcp === 8080 && String(l.peer).startsWith(`${client1.address}:`)), `${name}, on another node, saw client-1's own address`);
  }
  const udp = await runSockets<{ flows: number; echoed: number }>(client3.netns, ['flows', VIP, 53, 30, 20_000]);
  t.is(udp.echoed, 30, 'every UDP flow from n3 echoed');
  for (const name of ['echo-1', 'echo-2', 'echo-3']) t.true(servers.get(name)!.lines.some((l) => l.udp === 5353 && String(l.peer).startsWith(`${client3.address}:`)), `${name} answered UDP`);

  // NodePort 30040 (externalTrafficPolicy Cluster) at n1's address, from a namespace on the nodes' segment:
  // the backends on the other nodes answer too, and see the address n1 gives NodePort traffic it sends them.
  const outside = await createNetns(t);
  await bed.segment.attach(outside, 'eth0', '10.0.0.100');
  const n1 = echo1.node.model;
  await waitFor('the outside reaching NodePort 30040 at n1', async () => (await connect({ netns: outside }, n1.address, 30040)).result === 'greeting', 60_000, 100);
  const nodePort = await runSockets<{ greetings: Record<string, number>; failed: number }>(outside, ['conns', n1.address, 30040, 30, 3]);
  t.is(nodePort.failed, 0);
  t.deepEqual(Object.keys(nodePort.greetings).sort(), ['echo-1', 'echo-2', 'echo-3'], 'NodePort at n1 reaches the backends on every node');
  for (const name of ['echo-2', 'echo-3']) {
    t.true(servers.get(name)!.lines.some((l) => l.tcp === 8080 && String(l.peer).startsWith(`${n1.clusterSnatAddress}:`)), `${name} saw n1's cluster SNAT address ${n1.clusterSnatAddress}`);
  }

  // NetworkPolicy: echo-2 (on n2) isolated, then opened, checked from every node.
  const firewallOf = (pod: ClusterPod) => pod.node.model.names.firewall(pod.port);
  const programmed = (pod: ClusterPod) => {
    const state = bed.services.firewall.controller?.cubes.get(firewallOf(pod))?.state as { programmed?: string } | undefined;
    return state?.programmed ? (JSON.parse(state.programmed) as { egress?: { defaultAction: string; rules?: { src?: string; dport?: string }[] }; ingress?: { defaultAction: string; rules?: { dst?: string; dport?: string }[] } }) : undefined;
  };
  bed.api.apply(denyPolicy);
  await waitFor('echo-2\'s firewall switched to default-deny', () => programmed(echo2)?.egress?.defaultAction === 'drop', 60_000);
  for (const from of [client1, client2, client3, auditor]) t.is((await connect(from, echo2.address, 8080, REFUSED_WITHIN_MS)).result, 'timeout', `${from.name} (${from.node.name}) kept out of echo-2`);
  t.is((await connect(echo2, client3.address, 8080)).result, 'greeting', 'echo-2 still connects out (to client-3 on n3), and the answers come in');
  t.is((await connect(echo2.node, echo2.address, 8080)).result, 'greeting', 'echo-2\'s own node (kubelet\'s probes) still let in');

  bed.api.apply(clientsPolicy);
  await waitFor('echo-2\'s firewall letting the clients in', () => programmed(echo2)?.egress?.rules?.some((r) => r.src === `${client3.address}/32` && r.dport === '8080'), 60_000);
  for (const from of [client1, client2, client3]) t.is((await connect(from, echo2.address, 8080)).result, 'greeting', `${from.name} (${from.node.name}) let in on the TCP echo port`);
  t.is((await runSockets<{ echoed: number }>(client1.netns, ['udp', echo2.address, 5353, 1, REFUSED_WITHIN_MS])).echoed, 0, 'not on the UDP port');
  t.is((await connect(auditor, echo2.address, 8080, REFUSED_WITHIN_MS)).result, 'timeout', 'prod\'s auditor still kept out');

  bed.api.apply(prodPolicy);
  await waitFor('echo-2\'s firewall letting prod in', () => programmed(echo2)?.egress?.rules?.some((r) => r.src === `${auditor.address}/32`), 60_000);
  t.is((await connect(auditor, echo2.address, 8080)).result, 'greeting', 'prod\'s auditor (n3) let in by its namespace');
  t.is((await runSockets<{ echoed: number }>(auditor.netns, ['udp', echo2.address, 5353, 1, 5_000])).echoed, 1, 'on every port');

  // Egress: the clients may reach the echo pods on TCP 8080 only.
  bed.api.apply(egressPolicy);
  await waitFor('client-1\'s firewall switched to egress isolation', () => programmed(client1)?.ingress?.defaultAction === 'drop', 60_000);
  t.is((await connect(client1, echo3.address, 8080)).result, 'greeting', 'client-1 (n1) reaches echo-3 (n3) on TCP 8080');
  t.is((await connect(client1, client3.address, 8080, REFUSED_WITHIN_MS)).result, 'timeout', 'client-1 kept from client-3 (n3)');
  t.is((await runSockets<{ echoed: number }>(client1.netns, ['udp', echo3.address, 5353, 1, REFUSED_WITHIN_MS])).echoed, 0, 'and from echo-3\'s UDP port');
  t.false(bed.lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

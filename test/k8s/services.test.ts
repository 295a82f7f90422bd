// The catalog's services driven by the controller, with real traffic on one node:
// the echo Service of manifests/echo.yaml (three backends, TCP and UDP) reached by
// its ClusterIP through the node's chain, whose lbrp netcube-lbrp programs from the
// chain and the config the controller writes; an EndpointSlice change that keeps
// established flows; and the NetworkPolicies of manifests/echo-policies.yaml as the
// firewalls netcube-firewall programs on the echo pods' ports. Pods are added by
// netcube-cni as a runtime calls it; the services run in process; traffic is real
// sockets (test/services/sockets.ts) in the pods' namespaces. A connection that must
// not get through is a connect attempt bounded in time, after the data plane was
// seen programmed.

import test, { type ExecutionContext } from 'ava';
import type { JsonObject } from '@netcube/api/chain';
import { nodeNames } from '@netcube/k8s';
import { hostVethName } from '@netcube/k8s/cni';
import { runSockets, SocketsProcess } from '../services/catalog-bed';
import { attachment, cni } from '../helpers/cni';
import { loadManifests, type KubeObject } from '../helpers/kube-manifests';
import { cniConfig, kubeNode, NODE, startNodeServices } from '../helpers/kube-node';
import { createNetns, type Netns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const echo = loadManifests('echo.yaml');
const objects = [...loadManifests('cluster.yaml').filter((o) => (o.kind === 'Node' && o.metadata.name === NODE) || o.kind === 'Namespace'), ...echo];
const [denyPolicy, allowPolicy] = loadManifests('echo-policies.yaml');
const VIP = '10.96.0.30';
const BACKENDS = ['echo-1', 'echo-2', 'echo-3'];
const PODS = [...BACKENDS, 'caller', 'stranger'];
const names = nodeNames(NODE);
/** A connect attempt that must fail waits this long for an answer. */
const REFUSED_WITHIN_MS = 2_000;

interface Pod {
  netns: Netns;
  address: string;
  port: string;
  server?: SocketsProcess;
}

/** Node n1 with the services, the five pods added by CNI, and echo servers (TCP 8080, UDP 5353) in the backends. */
async function echoBed(t: ExecutionContext) {
  const bed = await kubeNode(t, objects);
  const services = await startNodeServices(t, bed);
  const { conf } = cniConfig(t, bed);
  const pods = new Map<string, Pod>();
  // All at once, as a kubelet would; each pod asks host-local for the address the manifests give it (CNI_ARGS IP=).
  await Promise.all(
    PODS.map(async (name, i) => {
      const netns = await createNetns(t);
      const id = `bbbb000${i + 1}`;
      const manifest = echo.find((o) => o.kind === 'Pod' && o.metadata.name === name) as KubeObject & { status: { podIP: string } };
      const env = attachment(netns, id, name);
      // ADD returns once the data plane forwards for the pod: the controller placed its port, netcube-lbrp routes its address.
      const add = await cni(bed.node, 'ADD', { ...conf, readyTimeoutSeconds: 120 }, { ...env, CNI_ARGS: `${env.CNI_ARGS};IP=${manifest.status.podIP}` });
      if (add.code !== 0) throw new Error(`ADD of ${name}: ${JSON.stringify(add.out)}`);
      const address = String((add.out.ips as { address: string }[])[0].address).split('/')[0];
      if (address !== manifest.status.podIP) throw new Error(`host-local leased ${address} to ${name}, echo.yaml says ${manifest.status.podIP}`);
      pods.set(name, { netns, address, port: hostVethName(id, 'eth0') });
    }),
  );
  for (const name of BACKENDS) {
    const pod = pods.get(name)!;
    pod.server = new SocketsProcess(pod.netns, ['serve', name, '8080', '5353']);
    t.teardown(() => pod.server!.stop());
    await pod.server.line(`${name}'s servers listening`, (l) => l.ready === true);
  }
  return { ...bed, services, pods };
}

/** One connection's outcome; one that must get through has time to, even on a busy machine. */
const connect = (from: Pod, host: string, port: number, ms = 5_000) => runSockets<{ result: string; greeting?: string }>(from.netns, ['connect', host, port, ms]);

/** The addresses of the backends lb_backends of the pods' lbrp holds on netcubed (each once). */
async function lbBackends(bed: Awaited<ReturnType<typeof echoBed>>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of bed.netcubed.listEntries({ table: { cube: names.pods, table: 'lb_backends' } })) {
    const value = JSON.parse(e.valueJson!) as { addr: string; port: number };
    if (value.port !== 0) out.push(value.addr.replace(/^::ffff:/, ''));
  }
  return [...new Set(out)].sort();
}

test.serial('pod → ClusterIP reaches every backend (TCP, UDP) through the chain and netcube-lbrp; an EndpointSlice change keeps established flows, new ones go to the rest', async (t) => {
  t.timeout(300_000);
  const bed = await echoBed(t);
  const caller = bed.pods.get('caller')!;
  // The router service programs its cube on its own time: the first connection that gets through.
  await waitFor('caller reaching the echo Service', async () => (await connect(caller, VIP, 80)).result === 'greeting', 60_000, 100);

  const tcp = await runSockets<{ greetings: Record<string, number>; failed: number }>(caller.netns, ['conns', VIP, 80, 30, 3]);
  t.is(tcp.failed, 0);
  t.deepEqual(Object.keys(tcp.greetings).sort(), BACKENDS, 'every backend answered');
  for (const name of BACKENDS) {
    t.true(
      bed.pods.get(name)!.server!.lines.some((l) => l.tcp === 8080 && String(l.peer).startsWith(`${caller.address}:`)),
      `${name} saw the caller's own address (the client's address kept)`,
    );
  }
  const udp = await runSockets<{ flows: number; echoed: number }>(caller.netns, ['flows', VIP, 53, 30, 20_000]);
  t.is(udp.echoed, 30, 'every UDP flow echoed');
  for (const name of BACKENDS) t.true(bed.pods.get(name)!.server!.lines.some((l) => l.udp === 5353), `${name} answered UDP`);

  // The node's own processes reach the ClusterIP too (its host link routes the Service range into the chain).
  const fromNode = await runSockets<{ greetings: Record<string, number>; failed: number }>(bed.node, ['conns', VIP, 80, 12, 3]);
  t.is(fromNode.failed, 0);
  t.true(Object.keys(fromNode.greetings).every((g) => BACKENDS.includes(g)) && Object.keys(fromNode.greetings).length >= 2, `from the node: ${JSON.stringify(fromNode.greetings)}`);

  // Connections held open across the change; the backend removed is not the first one's.
  const holder = new SocketsProcess(caller.netns, ['hold', VIP, '80', '6']);
  t.teardown(() => holder.stop());
  const held = (await holder.line('six connections held', (l) => Array.isArray(l.greetings))).greetings as string[];
  t.true(held.every((g) => BACKENDS.includes(g)), JSON.stringify(held));
  const removed = BACKENDS.find((b) => b !== held[0])!;
  const remaining = BACKENDS.filter((b) => b !== removed);
  const { version } = await bed.store.chains.get(names.chain);

  const slice = structuredClone(bed.api.get('EndpointSlice', 'echo-x7k2p', 'default')!) as KubeObject & { endpoints: { targetRef: { name: string } }[] };
  slice.endpoints = slice.endpoints.filter((e) => e.targetRef.name !== removed);
  bed.api.apply(slice);
  const removedAddress = bed.pods.get(removed)!.address;
  await waitFor(`${removed} gone from the pods' lbrp on netcubed`, async () => {
    const backends = await lbBackends(bed);
    return backends.length > 0 && !backends.includes(removedAddress);
  });
  t.deepEqual(await lbBackends(bed), remaining.map((n) => bed.pods.get(n)!.address).sort());
  t.is((await bed.store.chains.get(names.chain)).version, version, 'the chain not rewritten: the change went as the service\'s config');
  // The lbrps' services and frontends are their config records (the chain holds neither).
  const configs = await bed.store.serviceConfigs.list('lbrp');
  t.deepEqual(configs.map((c) => [c.cube, c.chain, c.setBy]).sort(), [[names.nodePorts, names.chain, 'service-k8s'], [names.pods, names.chain, 'service-k8s']]);
  const services = (configs.find((c) => c.cube === names.pods)!.params as JsonObject).services as { vip: string; protocol: string; backends: unknown[] }[];
  t.deepEqual(services.filter((s) => s.vip === VIP).map((s) => `${s.protocol}: ${s.backends.length} backends`), ['tcp: 2 backends', 'udp: 2 backends']);

  const from = holder.lines.length;
  holder.send('probe 5000');
  const answered = (await holder.line('the held connections probed', (l) => Array.isArray(l.answered), from)).answered as boolean[];
  held.forEach((backend, i) => {
    if (backend !== removed) t.true(answered[i], `held connection ${i} to ${backend} still answers`);
  });
  const after = await runSockets<{ greetings: Record<string, number>; failed: number }>(caller.netns, ['conns', VIP, 80, 30, 3]);
  t.is(after.failed, 0);
  t.deepEqual(Object.keys(after.greetings).sort(), remaining, `new connections to the remaining backends only, not ${removed}`);
  t.false(bed.lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

test.serial('NetworkPolicy: default-deny ingress on the echo pods, then the caller let in on the TCP echo port; checked with traffic both ways', async (t) => {
  t.timeout(300_000);
  const bed = await echoBed(t);
  const [caller, stranger, echo1] = ['caller', 'stranger', 'echo-1'].map((n) => bed.pods.get(n)!);
  const firewall = names.firewall(echo1.port);
  /** What netcube-firewall has switched echo-1's firewall to (its rules in force), once it has. */
  const programmed = () => {
    const state = bed.services.firewall.controller?.cubes.get(firewall)?.state as { programmed?: string } | undefined;
    return state?.programmed ? (JSON.parse(state.programmed) as { egress?: { defaultAction: string; rules?: { src?: string; dport?: string }[] } }) : undefined;
  };
  for (const [name, pod] of [['caller', caller], ['stranger', stranger]] as const) {
    pod.server = new SocketsProcess(pod.netns, ['serve', name, '8080', '-']);
    t.teardown(() => pod.server!.stop());
    await pod.server.line('server listening', (l) => l.ready === true);
  }
  // Open before any policy, both ways.
  await waitFor('caller reaching echo-1', async () => (await connect(caller, echo1.address, 8080)).result === 'greeting', 60_000, 100);
  t.is((await connect(stranger, echo1.address, 8080)).result, 'greeting');

  bed.api.apply(denyPolicy);
  await waitFor('echo-1\'s firewall switched to default-deny', () => programmed()?.egress?.defaultAction === 'drop', 60_000);
  const deniedFrom = echo1.server!.lines.length;
  for (const pod of [caller, stranger]) t.is((await connect(pod, echo1.address, 8080, REFUSED_WITHIN_MS)).result, 'timeout', 'nothing gets in');
  t.is((await connect(caller, VIP, 80, REFUSED_WITHIN_MS)).result, 'timeout', 'nor through the ClusterIP');
  // Isolated for ingress only: echo-1 still connects out, and the answers come back in.
  t.is((await connect(echo1, caller.address, 8080)).result, 'greeting');
  const { version } = await bed.store.chains.get(names.chain);

  bed.api.apply(allowPolicy);
  await waitFor('echo-1\'s firewall letting the caller in', () => programmed()?.egress?.rules?.some((r) => r.src === `${caller.address}/32` && r.dport === '8080'), 60_000);
  t.is((await connect(caller, echo1.address, 8080)).result, 'greeting', 'the caller gets in on the TCP echo port');
  t.is((await connect(caller, VIP, 80)).result, 'greeting', 'and through the ClusterIP');
  const udp = await runSockets<{ echoed: number }>(caller.netns, ['udp', echo1.address, 5353, 1, REFUSED_WITHIN_MS]);
  t.is(udp.echoed, 0, 'not on the UDP port, which no rule lets in');
  t.is((await connect(stranger, echo1.address, 8080, REFUSED_WITHIN_MS)).result, 'timeout', 'the stranger stays out');
  t.is((await connect(stranger, VIP, 80, REFUSED_WITHIN_MS)).result, 'timeout', 'also through the ClusterIP');
  t.false(
    echo1.server!.lines.slice(deniedFrom).some((l) => String(l.peer).startsWith(`${stranger.address}:`)),
    'echo-1 accepted no connection of the stranger since the deny',
  );
  t.is((await connect(echo1, stranger.address, 8080)).result, 'greeting', 'echo-1 still reaches the stranger');
  t.is((await bed.store.chains.get(names.chain)).version, version, 'the rules went as the firewall\'s config, the chain not rewritten');
  t.deepEqual((await bed.store.serviceConfigs.list('firewall')).map((c) => c.cube).sort(), BACKENDS.map((n) => names.firewall(bed.pods.get(n)!.port)).sort());

  // The policies gone: the firewalls and their config go too, and everything gets in again.
  bed.api.delete('NetworkPolicy', 'echo-from-caller', 'default');
  bed.api.delete('NetworkPolicy', 'echo-deny', 'default');
  await waitFor('the firewalls\' config deleted', async () => (await bed.store.serviceConfigs.list('firewall')).length === 0);
  await waitFor('the stranger reaching echo-1 again', async () => (await connect(stranger, echo1.address, 8080)).result === 'greeting', 60_000, 100);
  t.false(bed.lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

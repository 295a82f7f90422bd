// The node agent (netcube-k8s node): what a node's VXLAN netdev and forwarding table
// must hold, and its host link (pure), and the agent itself against the scripted API server and a real
// kernel in a namespace of the test's own: it converges from whatever the kernel has
// (a netdev made wrong, stale entries), follows Nodes added, moved and removed, does
// nothing on a restart that finds everything right, and never deletes a netdev of
// another kind that holds its name. Its command line as deploy runs it.

import test, { type ExecutionContext } from 'ava';
import { Logger } from '@netcube/api/log';
import {
  DEFAULT_SETTINGS,
  DEFAULT_VXLAN,
  desiredFdb,
  fdbChanges,
  FLOOD_MAC,
  hostLinkCommands,
  hostLinkSpec,
  Iproute,
  KubeSource,
  linkChange,
  loadKubeConfig,
  NodeAgent,
  nodeModel,
  parseNodeAgentFlags,
  Problems,
  vxlanSpec,
  type IpLink,
  type KubeNode,
  type NodeModel,
} from '@netcube/k8s';
import { KubeApiServer, kubeconfig } from '../helpers/kube-apiserver';
import { loadManifests, type KubeObject } from '../helpers/kube-manifests';
import { createNetns, createVethPair } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const nodes = loadManifests('multinode.yaml').filter((o) => o.kind === 'Node');
const models = nodes.map((n) => nodeModel(n as KubeNode, DEFAULT_SETTINGS, new Problems())!) as NodeModel[];
const [m1, m2, m3] = models;
const NETDEV = DEFAULT_SETTINGS.vxlanNetdev;

test('the table holds, per other node, its flood entry and its router\'s MAC, towards its address', (t) => {
  t.deepEqual(
    desiredFdb('n1', models),
    [
      { mac: FLOOD_MAC, dst: '10.0.0.12' },
      { mac: FLOOD_MAC, dst: '10.0.0.13' },
      { mac: m2.vxlanMac, dst: '10.0.0.12' },
      { mac: m3.vxlanMac, dst: '10.0.0.13' },
    ].sort((a, b) => (`${a.mac} ${a.dst}` < `${b.mac} ${b.dst}` ? -1 : 1)),
  );
  t.deepEqual(desiredFdb('n1', [m1]), [], 'alone, nothing');
  const { add, remove } = fdbChanges(
    [
      { mac: FLOOD_MAC, dst: '10.0.0.12' },
      { mac: FLOOD_MAC, dst: '10.0.0.99' },
      { mac: m2.vxlanMac.toUpperCase(), dst: '10.0.0.12' },
      { mac: 'aa:bb:cc:dd:ee:ff' }, // no remote: not a forwarding entry of the table
    ],
    desiredFdb('n1', models),
  );
  t.deepEqual(remove, [{ mac: FLOOD_MAC, dst: '10.0.0.99' }]);
  t.deepEqual(add.map((e) => `${e.mac} ${e.dst}`).sort(), [`${FLOOD_MAC} 10.0.0.13`, `${m3.vxlanMac} 10.0.0.13`].sort());
});

test('the netdev: made when absent, made anew when the kernel cannot change it in place, adjusted, or refused when it is not VXLAN', (t) => {
  const spec = vxlanSpec(m1, { name: NETDEV, ...DEFAULT_VXLAN, uplinkMtu: 1500 });
  t.deepEqual(spec, { name: NETDEV, vni: 42, port: 4789, local: '10.0.0.11', uplink: 'eth0', mtu: 1450 });
  const link = (data: object, mtu = 1450, flags = ['UP']): IpLink => ({ ifname: NETDEV, mtu, flags, linkinfo: { info_kind: 'vxlan', info_data: { id: 42, port: 4789, local: '10.0.0.11', link: 'eth0', learning: false, ...data } } });
  t.deepEqual(linkChange(undefined, spec), { kind: 'create' });
  t.deepEqual(linkChange(link({}), spec), { kind: 'none' });
  t.deepEqual(linkChange(link({ id: 7, learning: true }), spec), { kind: 'recreate', why: 'VNI 7, not 42, learning on' });
  t.deepEqual(linkChange(link({ local: '10.0.0.99' }), spec), { kind: 'recreate', why: 'local address 10.0.0.99, not 10.0.0.11' });
  t.deepEqual(linkChange(link({}, 1500, []), spec), { kind: 'adjust', mtu: 1450, setUp: true });
  t.throws(() => linkChange({ ifname: NETDEV, mtu: 1500, flags: [], linkinfo: { info_kind: 'veth' } }, spec), { message: /netdev ncvx0 exists and is a veth netdev: remove it, or give .* another --vxlan-netdev/ });
});

test('the host link: the veth pair made when absent or half there, adjusted, its address and routes put right; a netdev of another kind refused', (t) => {
  const spec = hostLinkSpec(m1, DEFAULT_SETTINGS, 1450);
  t.deepEqual(spec, {
    kernel: 'nchost',
    chain: 'nchost-c',
    address: '10.244.1.253/32',
    routes: [
      { prefix: '10.244.0.0/16', via: '10.244.1.1' },
      { prefix: '10.96.0.0/12', via: '10.244.1.1' },
    ],
    mtu: 1450,
  });
  const made = [
    ['link', 'add', 'nchost', 'type', 'veth', 'peer', 'name', 'nchost-c'],
    ['link', 'set', 'dev', 'nchost', 'mtu', '1450', 'up'],
    ['link', 'set', 'dev', 'nchost-c', 'mtu', '1450', 'up'],
    ['addr', 'add', '10.244.1.253/32', 'dev', 'nchost'],
    ['route', 'replace', '10.244.0.0/16', 'via', '10.244.1.1', 'dev', 'nchost', 'onlink'],
    ['route', 'replace', '10.96.0.0/12', 'via', '10.244.1.1', 'dev', 'nchost', 'onlink'],
  ];
  t.deepEqual(hostLinkCommands({ addresses: [], routes: [] }, spec), made);
  const veth = (ifname: string, mtu = 1450, up = true): IpLink => ({ ifname, mtu, flags: up ? ['UP'] : [], linkinfo: { info_kind: 'veth' } });
  t.deepEqual(hostLinkCommands({ kernel: veth('nchost'), addresses: ['10.244.1.253/32'], routes: [] }, spec), [['link', 'delete', 'dev', 'nchost'], ...made], 'its peer gone: made anew');
  const right = { kernel: veth('nchost'), chain: veth('nchost-c'), addresses: ['10.244.1.253/32'], routes: [{ dst: '10.244.0.0/16', gateway: '10.244.1.1' }, { dst: '10.96.0.0/12', gateway: '10.244.1.1' }] };
  t.deepEqual(hostLinkCommands(right, spec), []);
  t.deepEqual(hostLinkCommands({ ...right, chain: veth('nchost-c', 1500, false), addresses: ['10.244.9.253/32'], routes: [right.routes[1], { dst: '10.245.0.0/16', gateway: '10.245.9.1' }] }, spec), [
    ['link', 'set', 'dev', 'nchost-c', 'mtu', '1450', 'up'],
    ['addr', 'del', '10.244.9.253/32', 'dev', 'nchost'],
    ['addr', 'add', '10.244.1.253/32', 'dev', 'nchost'],
    ['route', 'del', '10.245.0.0/16', 'dev', 'nchost'],
    ['route', 'replace', '10.244.0.0/16', 'via', '10.244.1.1', 'dev', 'nchost', 'onlink'],
  ]);
  t.throws(() => hostLinkCommands({ ...right, kernel: { ifname: 'nchost', mtu: 1500, flags: [], linkinfo: { info_kind: 'bridge' } } }, spec), { message: /netdev nchost exists and is a bridge netdev: remove it/ });
});

test('netcube-k8s node\'s command line', (t) => {
  const flags = parseNodeAgentFlags(['--node', 'n1', '--vxlan-vni', '7', '--netns', '/run/netns/x', '--cluster-cidr', '10.8.0.0/16'], {});
  t.like(flags, { node: 'n1', vxlan: { vni: 7, port: 4789 }, netns: '/run/netns/x', settings: { clusterCidr: '10.8.0.0/16', vxlanNetdev: NETDEV } });
  t.like(parseNodeAgentFlags([], { NODE_NAME: 'n2' }), { node: 'n2', vxlan: DEFAULT_VXLAN });
  t.throws(() => parseNodeAgentFlags([], {}), { message: /--node: give the node's name/ });
  t.throws(() => parseNodeAgentFlags(['--node', 'n1', '--vxlan-vni', '16777216'], {}), { message: '--vxlan-vni: an integer from 1 to 16777215, got "16777216"' });
  t.throws(() => parseNodeAgentFlags(['--node', 'n1', '--vxlan-port', 'x'], {}), { message: /--vxlan-port: an integer from 1 to 65535/ });
  t.throws(() => parseNodeAgentFlags(['--node', 'n1', '--netns', 'x'], {}), { message: /--netns: the namespace's file/ });
  t.throws(() => parseNodeAgentFlags(['--node', 'n1', '--etcd', '127.0.0.1:2379'], {}), { message: /--etcd: the node agent reads the Kubernetes API only/ });
  t.is(parseNodeAgentFlags(['--help'], {}), 'help');
});

/** Node n1 as a namespace with its uplink, the API server with `objects`; the agent started on request. */
async function agentBed(t: ExecutionContext, objects: readonly KubeObject[]) {
  const node = await createNetns(t);
  const peer = await createNetns(t);
  await createVethPair(node, peer, ['eth0', 'eth0'], [m1.address, '']);
  const api = await KubeApiServer.start(objects);
  t.teardown(() => api.stop());
  const config = kubeconfig(t);
  const lines: string[] = [];
  const log = new Logger('debug', {}, (l) => lines.push(l));
  t.teardown(() => {
    if (!t.passed) t.log(lines.slice(-30).join(''));
  });
  const iproute = new Iproute(node.path);
  const start = async (): Promise<NodeAgent> => {
    const source = new KubeSource(loadKubeConfig({ kubeconfig: config, master: api.url }), { log, retryMs: 20, retryMaxMs: 200, resources: ['nodes'] });
    const agent = new NodeAgent({ node: 'n1', source, settings: DEFAULT_SETTINGS, vxlan: DEFAULT_VXLAN, iproute, log, resyncMs: 60_000 });
    t.teardown(() => agent.close());
    await agent.start();
    return agent;
  };
  const fdb = async () => (await iproute.fdb(NETDEV)).filter((e) => e.dst).map((e) => `${e.mac} ${e.dst}`).sort();
  return { node, api, lines, iproute, start, fdb };
}

const entries = (...ms: NodeModel[]) => ms.flatMap((m) => [`${FLOOD_MAC} ${m.address}`, `${m.vxlanMac} ${m.address}`]).sort();

test('the agent converges from what the kernel has, follows Nodes added, moved and removed, and a restart changes nothing', async (t) => {
  const bed = await agentBed(t, nodes.filter((n) => n.metadata.name !== 'n3'));
  // Left by someone else: the wrong VNI, learning on, an entry of no node.
  await bed.node.exec('ip', ['link', 'add', NETDEV, 'type', 'vxlan', 'id', '7', 'dstport', '4789', 'dev', 'eth0']);
  await bed.node.exec('bridge', ['fdb', 'append', FLOOD_MAC, 'dev', NETDEV, 'dst', '10.0.0.99']);
  const agent = await bed.start();
  await waitFor('n1\'s table of n2', async () => (await bed.fdb().catch(() => [])).join() === entries(m2).join());
  const link = (await bed.iproute.link(NETDEV))!;
  t.like(link.linkinfo!.info_data, { id: 42, port: 4789, local: m1.address, link: 'eth0', learning: false });
  t.is(link.mtu, 1450);
  t.true(bed.lines.some((l) => l.includes('VXLAN netdev made anew') && l.includes('VNI 7, not 42')));
  // The host link, as host-link.ts says.
  await waitFor('the host link', async () => (await bed.iproute.routes('nchost').catch(() => [])).length > 0);
  t.deepEqual(await bed.iproute.addresses('nchost'), [`${m1.hostAddress}/32`]);
  t.deepEqual((await bed.iproute.routes('nchost')).map((r) => `${r.dst} via ${r.gateway}`).sort(), [DEFAULT_SETTINGS.clusterCidr, DEFAULT_SETTINGS.serviceCidr].map((c) => `${c} via ${m1.gateway}`).sort());
  t.is((await bed.iproute.link('nchost-c'))?.mtu, 1450);

  bed.api.apply(nodes.find((n) => n.metadata.name === 'n3')!);
  await waitFor('n3 added', async () => (await bed.fdb()).join() === entries(m2, m3).join());
  const moved = structuredClone(nodes.find((n) => n.metadata.name === 'n2')!) as KubeObject & { status: { addresses: { address: string }[] } };
  moved.status.addresses[0].address = '10.0.0.22';
  bed.api.apply(moved);
  await waitFor('n2 moved', async () => (await bed.fdb()).join() === [...entries(m3), `${FLOOD_MAC} 10.0.0.22`, `${m2.vxlanMac} 10.0.0.22`].sort().join());
  bed.api.delete('Node', 'n3');
  await waitFor('n3 removed', async () => (await bed.fdb()).join() === [`${FLOOD_MAC} 10.0.0.22`, `${m2.vxlanMac} 10.0.0.22`].sort().join());

  // A restart finds everything right: it changes nothing.
  await agent.close();
  const from = bed.lines.length;
  const again = await bed.start();
  await waitFor('the restarted agent\'s first pass', () => again.passes >= 1);
  t.deepEqual(bed.lines.slice(from).filter((l) => /made|adjusted|entry (added|removed)/.test(l)), []);
  t.false(bed.lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

test('a netdev of another kind under the VXLAN netdev\'s name is left alone, with an error that says what to do', async (t) => {
  const bed = await agentBed(t, nodes);
  await bed.node.exec('ip', ['link', 'add', NETDEV, 'type', 'veth', 'peer', 'name', 'other']);
  await bed.start();
  await waitFor('the error logged', () => bed.lines.some((l) => l.includes('"level":"error"') && l.includes(`netdev ${NETDEV} exists and is a veth netdev`)));
  t.is((await bed.iproute.link(NETDEV))?.linkinfo?.info_kind, 'veth', 'still the veth');
  t.pass();
});

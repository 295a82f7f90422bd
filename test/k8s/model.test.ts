// The controller's model (remote-services/k8s/src/model): a cluster from the
// manifests in test/k8s/manifests, with the pod ports netcube-cni would record,
// as chains; each chain is checked by the same validator netcubectl and netcubed
// run (format, names, links, loops, the tail-call limit). Pure: no kernel.

import test from 'ava';
import { typeCatalog, validateChain, type Chain, type CubeSpec } from '@netcube/api/chain';
import { clusterChains, DEFAULT_SETTINGS, DISPATCHER_TYPE, MAX_PODS_PER_NODE, nodeNames, subtract, vxlanMac, type ClusterState, type FirewallConfig } from '@netcube/k8s/model';
import { hostCheck } from '../../node-daemon/src/chain';
import { clusterState, loadManifests, podPortOf, type KubeObject } from '../helpers/kube-manifests';

const TYPES = typeCatalog([
  { name: 'lbrp', transparent: false, microcubes: 1, modes: ['xdp', 'tc'] },
  { name: 'router', transparent: false, microcubes: 1, modes: ['xdp', 'tc'] },
  { name: 'nat', transparent: true, microcubes: 1, modes: ['xdp', 'tc'] },
  { name: 'firewall', transparent: true, microcubes: 1, modes: ['xdp', 'tc'] },
  { name: DISPATCHER_TYPE, transparent: false, microcubes: 1, modes: ['tc'] },
]);

const objects = loadManifests('cluster.yaml', 'policies.yaml');
const PORTS: [string, string, string][] = [
  ['default', 'web-1', 'nc00000000001'],
  ['default', 'client', 'nc00000000002'],
  ['default', 'web-2', 'nc00000000003'],
  ['prod', 'db', 'nc00000000004'],
  ['other', 'probe', 'nc00000000005'],
];
const podPorts = (objs: readonly KubeObject[] = objects) => PORTS.map(([ns, name, netdev], i) => podPortOf(objs, ns, name, netdev, 100 + i));

function build(state: ClusterState = clusterState(objects, podPorts())) {
  const result = clusterChains(state, DEFAULT_SETTINGS);
  const all = [...result.chains.values()];
  for (const chain of all) validateChain(chain, { types: TYPES, otherChains: all.filter((c) => c !== chain), hostCheck });
  return result;
}

const cubeOf = (chain: Chain, name: string): CubeSpec => {
  const c = chain.spec.cubes.find((k) => k.name === name);
  if (!c) throw new Error(`no cube ${name} in chain ${chain.metadata.name}`);
  return c;
};
const linked = (chain: Chain, a: string, b: string) => chain.spec.links.some((l) => (l.from === a && l.to === b) || (l.from === b && l.to === a));

test('one chain per node, in the NetSoft layout, that the chain validator and the host check accept', (t) => {
  const { chains, problems } = build();
  t.deepEqual(problems, []);
  t.deepEqual([...chains.keys()], ['n1', 'n2']);
  const n1 = chains.get('n1')!;
  const n = nodeNames('n1');
  t.is(n1.metadata.name, 'k8s-n1');
  t.true(n1.spec.cubes.every((c) => c.host === 'n1' && c.mode === 'tc'));
  // pods' veths -> pods lbrp -> router -> NodePort lbrp -> dispatcher -> uplink; router -> VXLAN.
  t.deepEqual(cubeOf(n1, n.pods).ports, ['up', 'host', 'nc00000000001', 'nc00000000002']);
  t.true(linked(n1, 'netdev:nc00000000001', `${n.pods}:nc00000000001`));
  t.true(linked(n1, 'netdev:nchost-c', `${n.pods}:host`), "the node's kernel, as a pod");
  t.true(linked(n1, `${n.pods}:up`, `${n.router}:pods`));
  t.true(linked(n1, `${n.router}:vxlan`, 'netdev:ncvx0'));
  t.true(linked(n1, `${n.router}:node`, `${n.nodePorts}:rt`));
  t.true(linked(n1, `${n.nodePorts}:ext`, `${n.dispatcher}:int`));
  t.true(linked(n1, `${n.dispatcher}:ext`, 'netdev:eth0'));
  t.true(linked(chains.get('n2')!, `${nodeNames('n2').dispatcher}:ext`, 'netdev:ens3'), "a Node's netcube.io/uplink names its uplink");
  t.deepEqual(n1.spec.attachments.map((a) => a.to), [`${n.pods}:nc00000000001`, `${n.pods}:nc00000000002`], "only pods' firewalls are stacked");
  // Each pod's address behind its own port, the node's host address behind its kernel's; answers to unknown hosts nowhere.
  t.deepEqual(cubeOf(n1, n.pods).params.frontends, { host: { hosts: ['10.244.1.253', '10.0.0.11'] }, nc00000000001: { hosts: ['10.244.1.10'] }, nc00000000002: { hosts: ['10.244.1.11'] } });
  t.false('defaultFrontend' in cubeOf(n1, n.pods).params);
});

test('without the edge (the dispatcher type not registered): pods, router and VXLAN only, and the problem said once', (t) => {
  const state = clusterState(objects, podPorts());
  const { chains, problems } = clusterChains(state, DEFAULT_SETTINGS, { edge: false });
  const all = [...chains.values()];
  for (const chain of all) validateChain(chain, { types: TYPES, otherChains: all.filter((c) => c !== chain), hostCheck });
  const n = nodeNames('n1');
  const n1 = chains.get('n1')!;
  t.deepEqual(n1.spec.cubes.map((c) => c.name).filter((c) => !c.includes('-fw-')), [n.pods, n.router]);
  t.false(n1.spec.links.some((l) => l.from.startsWith(`${n.router}:node`) || l.to.startsWith(`${n.router}:node`)));
  t.deepEqual(cubeOf(n1, n.pods).params, cubeOf(clusterChains(state, DEFAULT_SETTINGS).chains.get('n1')!, n.pods).params);
  t.deepEqual(problems, [{ object: 'cluster', message: `NodePort services and pod → outside masquerade are off: cube type ${DISPATCHER_TYPE} is not registered` }]);
});

test("the router: the pods' gateway, the VXLAN overlay, a route per other node, the node's own address to its kernel, the rest towards the dispatcher", (t) => {
  const { chains } = build();
  const router = cubeOf(chains.get('n1')!, nodeNames('n1').router);
  t.deepEqual(router.params, {
    ports: {
      pods: { address: '10.244.1.1/24' },
      vxlan: { address: '100.64.0.2/16', mac: vxlanMac('n1') },
      node: { address: '169.254.1.2/30', mac: (router.params.ports as Record<string, { mac: string }>).node.mac },
    },
    routes: [
      { prefix: '10.244.2.0/24', nexthop: '100.64.0.3', port: 'vxlan' },
      { prefix: '10.0.0.11/32', nexthop: '10.244.1.253', port: 'pods' },
      { prefix: '10.244.1.254/32', nexthop: '169.254.1.1', port: 'node' },
      { prefix: '0.0.0.0/0', nexthop: '169.254.1.1', port: 'node' },
    ],
  });
  t.not(vxlanMac('n1'), vxlanMac('n2'));
});

test('Services: every ClusterIP on every node; NodePorts at each node address, Local to its own ready endpoints', (t) => {
  const { chains } = build();
  const web = { vip: '10.96.0.10', port: 80, protocol: 'tcp', backends: [{ address: '10.244.1.10', port: 8080 }, { address: '10.244.2.10', port: 8080 }] };
  for (const node of ['n1', 'n2']) {
    const services = cubeOf(chains.get(node)!, nodeNames(node).pods).params.services as { vip: string }[];
    t.deepEqual(services.find((s) => s.vip === '10.96.0.10'), web, node);
    t.deepEqual(
      services.map((s) => s.vip),
      ['10.96.0.10', '10.96.0.11', '10.96.0.12', '10.96.0.20'],
    );
    // web-2 is not ready: no new flows for it, on any node.
    t.deepEqual(services.find((s) => s.vip === '10.96.0.12'), { vip: '10.96.0.12', port: 80, protocol: 'tcp', backends: [{ address: '10.244.1.10', port: 8080 }], affinitySeconds: 10800 });
  }
  const np1 = cubeOf(chains.get('n1')!, nodeNames('n1').nodePorts).params;
  t.deepEqual(np1, {
    backendPort: 'rt',
    defaultFrontend: 'ext',
    services: [
      { vip: '10.0.0.11', port: 30080, protocol: 'tcp', backends: web.backends },
      { vip: '10.0.0.11', port: 30081, protocol: 'tcp', backends: [{ address: '10.244.1.10', port: 8080 }], affinitySeconds: 10800 },
    ],
  });
  const np2 = cubeOf(chains.get('n2')!, nodeNames('n2').nodePorts).params.services as { port: number; backends: unknown[] }[];
  t.deepEqual(np2.find((s) => s.port === 30081)?.backends, [], 'Local with no ready endpoint on the node: the lbrp refuses');
  t.deepEqual(cubeOf(chains.get('n1')!, nodeNames('n1').dispatcher).params, {
    uplinkPort: 'ext',
    nodeAddress: '10.0.0.11',
    clusterCidr: '10.244.0.0/16',
    masqueradePorts: '61000-65535',
    clusterSnatAddress: '10.244.1.254',
    gateway: '169.254.1.1',
    routerMac: (cubeOf(chains.get('n1')!, nodeNames('n1').router).params.ports as Record<string, { mac: string }>).node.mac,
    nodePorts: [
      { protocol: 'tcp', port: 30080, cluster: true },
      { protocol: 'tcp', port: 30081, cluster: false },
    ],
  });
});

test("NetworkPolicy: a firewall on each isolated pod's port; podSelector, namespaceSelector, ipBlock with except, named ports", (t) => {
  const { chains } = build();
  const firewall = (node: string, port: string): FirewallConfig | undefined => {
    const chain = chains.get(node)!;
    const name = nodeNames(node).firewall(port);
    const cube = chain.spec.cubes.find((c) => c.name === name);
    if (!cube) return undefined;
    t.deepEqual(chain.spec.attachments.find((a) => a.cube === name), { cube: name, to: `${nodeNames(node).pods}:${port}`, direction: 'both' });
    return cube.params as unknown as FirewallConfig;
  };
  // web-1: default-deny (its node's kernel, kubelet's probes, always let in), then the client on its port named http (8080), and all of namespace prod.
  t.deepEqual(firewall('n1', 'nc00000000001'), {
    ingress: { defaultAction: 'accept' },
    egress: {
      defaultAction: 'drop',
      acceptEstablished: true,
      rules: [
        { action: 'accept', src: '10.244.1.253/32' },
        { action: 'accept', src: '10.244.1.11/32', protocol: 'tcp', dport: '8080' },
        { action: 'accept', src: '10.244.2.11/32' },
      ],
    },
  });
  // The client: isolated both ways (default-deny selects every pod of default).
  const client = firewall('n1', 'nc00000000002')!;
  t.deepEqual(client.egress, { defaultAction: 'drop', acceptEstablished: true, rules: [{ action: 'accept', src: '10.244.1.253/32' }] });
  t.deepEqual(client.ingress.rules, [
    { action: 'accept', dst: '10.244.1.10/32', protocol: 'tcp', dport: '8080' },
    { action: 'accept', dst: '10.244.2.10/32', protocol: 'tcp', dport: '8080' },
    ...['192.168.0.0/24', '192.168.2.0/23', '192.168.4.0/22', '192.168.8.0/21', '192.168.16.0/20', '192.168.32.0/19', '192.168.64.0/18', '192.168.128.0/17'].map((dst) => ({ action: 'accept', dst })),
    // ClusterIPs whose every endpoint the rules allow; not the db's.
    { action: 'accept', dst: '10.96.0.10/32', protocol: 'tcp', dport: '80' },
    { action: 'accept', dst: '10.96.0.11/32', protocol: 'tcp', dport: '80' },
    { action: 'accept', dst: '10.96.0.12/32', protocol: 'tcp', dport: '80' },
  ]);
  // db in prod: default's web pods on its port named sql; namespaceSelector and podSelector together.
  t.deepEqual(firewall('n2', 'nc00000000004')?.egress.rules, [
    { action: 'accept', src: '10.244.2.253/32' },
    { action: 'accept', src: '10.244.1.10/32', protocol: 'tcp', dport: '5432' },
    { action: 'accept', src: '10.244.2.10/32', protocol: 'tcp', dport: '5432' },
  ]);
  t.is(firewall('n2', 'nc00000000005'), undefined, 'no policy selects the probe: no firewall');
});

test('pod ports a host may not claim are left out, each with its problem; the oldest record of an address wins', (t) => {
  const ports = podPorts();
  const state = clusterState(objects, [
    ...ports,
    { ...ports[0], netdev: 'nc0000000000a', host: 'n2', revision: 200 }, // web-1 is bound to n1
    { ...ports[2], netdev: 'nc0000000000b', namespace: 'default', pod: 'ghost', revision: 201 },
    { ...ports[2], netdev: 'nc0000000000c', addresses: ['10.244.1.99/24'], revision: 202 }, // n1's range, on n2
    { ...ports[3], netdev: 'nc0000000000d', pod: 'db', addresses: ['10.244.2.10/24'], revision: 203 }, // web-2's address
    { ...ports[0], netdev: 'nc0000000000e', host: 'n3', revision: 204 },
  ]);
  const { chains, problems } = build(state);
  t.deepEqual(
    problems.map((p) => p.object),
    ['pod port n2/nc0000000000a', 'pod port n2/nc0000000000b', 'pod port n2/nc0000000000c', 'pod port n2/nc0000000000d', 'pod port n3/nc0000000000e'],
  );
  t.regex(problems[0].message, /bound to node n1, not to n2/);
  t.regex(problems[1].message, /default\/ghost does not exist/);
  t.regex(problems[2].message, /not one of node n2's pod addresses/);
  t.regex(problems[3].message, /is pod port n2\/nc00000000003's already|has a port already/);
  t.regex(problems[4].message, /host n3 is not a Node/);
  t.deepEqual(cubeOf(chains.get('n2')!, nodeNames('n2').pods).ports, ['up', 'host', 'nc00000000003', 'nc00000000004', 'nc00000000005']);
});

test('a node without a pod range gets no chain, and no other node routes to it; names fit cube names', (t) => {
  const extra: KubeObject[] = [
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n3' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.13' }] } },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-4.rack2.example.com' }, spec: { podCIDR: '10.244.4.0/24' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.14' }] } },
  ];
  const { chains, problems } = build(clusterState([...objects, ...extra], podPorts()));
  t.deepEqual(problems.map((p) => `${p.object}: ${p.message}`), ['Node n3: has no IPv4 spec.podCIDR: start kube-controller-manager with --allocate-node-cidrs (or set it)']);
  t.deepEqual([...chains.keys()], ['n1', 'n2', 'node-4.rack2.example.com']);
  t.regex(chains.get('node-4.rack2.example.com')!.metadata.name, /^k8s-node-4-rack2-example-com-[0-9a-f]{6}$/);
  const routes = cubeOf(chains.get('n1')!, nodeNames('n1').router).params.routes as { prefix: string }[];
  t.deepEqual(routes.map((r) => r.prefix), ['10.244.2.0/24', '10.244.4.0/24', '10.0.0.11/32', '10.244.1.254/32', '0.0.0.0/0']);
});

test(`a node holds ${MAX_PODS_PER_NODE} pods' ports; the rest are problems`, (t) => {
  const many: KubeObject[] = Array.from({ length: MAX_PODS_PER_NODE + 2 }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p${i}`, namespace: 'other' },
    spec: { nodeName: 'n1', containers: [] },
    status: { phase: 'Running', podIP: `10.244.1.${20 + i}` },
  }));
  const objs = [...objects.filter((o) => o.kind !== 'Pod'), ...many];
  const ports = many.map((p, i) => podPortOf(objs, 'other', p.metadata.name, `nc${String(i).padStart(11, '0')}`, i + 1));
  const { chains, problems } = build(clusterState(objs, ports));
  t.is(cubeOf(chains.get('n1')!, nodeNames('n1').pods).ports.length, MAX_PODS_PER_NODE + 2);
  t.is(problems.length, 2);
  t.regex(problems[0].message, new RegExp(`netcube places ${MAX_PODS_PER_NODE} per node`));
});

test('ipBlock except: the block less its holes, as the fewest prefixes', (t) => {
  t.deepEqual(subtract('10.0.0.0/8', []), ['10.0.0.0/8']);
  t.deepEqual(subtract('10.0.0.0/30', ['10.0.0.1/32']), ['10.0.0.0/32', '10.0.0.2/31']);
  t.deepEqual(subtract('10.0.0.0/24', ['10.0.0.0/25', '10.0.0.128/25']), []);
  t.deepEqual(subtract('0.0.0.0/0', ['128.0.0.0/1']), ['0.0.0.0/1']);
  t.throws(() => subtract('10.0.0.0/24', ['10.0.1.0/25']), { message: /except\[0\] 10.0.1.0\/25 is not inside 10.0.0.0\/24/ });
});

// The controller (remote-services/k8s/src/controller.ts) end to end on one node:
// the scripted API server (test/helpers/kube-apiserver.ts) serving the manifests'
// node n1, a real etcd, and a real netcubed in a namespace the test makes as n1.
// Pod ports are recorded as netcube-cni records them (the veth made by the test):
// a port goes into the node's chain once the API has its pod, and netcubed puts
// it on the pods' cube; the pod deleted, it goes; changes missed while the watches
// were down past a compaction (410 Gone) are found by the relist; the Node
// deleted, its chain goes.

import test from 'ava';
import { DEFAULT_SETTINGS, nodeNames } from '@netcube/k8s';
import { parseControllerFlags } from '@netcube/k8s/main';
import { loadManifests, podPortOf } from '../helpers/kube-manifests';
import { kubeNode, podPortsOn } from '../helpers/kube-node';
import { createNetns, createVethPair } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const all = loadManifests('cluster.yaml');
// Node n1, its namespace and its two pods: no other node, whose chain would name a host no netcubed runs.
const objects = all.filter((o) => (o.kind === 'Node' && o.metadata.name === 'n1') || o.kind === 'Namespace' || (o.kind === 'Pod' && ['web-1', 'client'].includes(o.metadata.name as string)));
const pod = (name: string) => objects.find((o) => o.kind === 'Pod' && o.metadata.name === name)!;
const PORTS = { 'web-1': 'nc00000000001', client: 'nc00000000002' } as const;

test('pods on the API and their ports in etcd become ports of the node\'s chain on netcubed; removed, they go; a relist after 410 converges', async (t) => {
  // web-1 is on the API and its port recorded; client's port is recorded before the API has the pod.
  const { node, netcubed, store, api, controller, lines } = await kubeNode(t, objects.filter((o) => o !== pod('client')), async (store) => {
    // netcubed published its built-in types, k8sdispatcher among them: a cluster without it (an older netcubed) has no edge.
    await store.types.deleteType('k8sdispatcher');
    for (const [name, netdev] of Object.entries(PORTS)) {
      const { host, revision: _, ...value } = podPortOf(objects, 'default', name, netdev, 0);
      await store.podPorts.put(host, value);
    }
  });
  for (const port of Object.values(PORTS)) await createVethPair(node, await createNetns(t), [port, 'eth0'], null);
  const names = nodeNames('n1');
  const portsAre = (what: string, want: string[]) => waitFor(what, async () => JSON.stringify(await podPortsOn(netcubed)) === JSON.stringify(want));

  await portsAre('web-1\'s port on netcubed', [PORTS['web-1']]);
  const { chain } = await store.chains.get(names.chain);
  t.deepEqual(chain.spec.cubes.map((c) => c.type).sort(), ['lbrp', 'router'], 'no edge: the dispatcher type is not registered');
  t.true(lines.some((l) => l.includes('left out of the chains') && l.includes('k8sdispatcher is not registered')));
  t.true(lines.some((l) => l.includes('left out of the chains') && l.includes('pod default/client does not exist')), 'the record of a pod the API does not have is left out, and said why');

  api.apply(pod('client'));
  await portsAre('client\'s port, once the API has the pod', [PORTS['web-1'], PORTS.client]);

  api.delete('Pod', 'web-1', 'default');
  await portsAre('web-1\'s port gone with its pod', [PORTS.client]);

  // Watches down; meanwhile client goes, web-1 comes back, and history is compacted: the resumed watches get 410 and list.
  await waitFor('every watch open', () => api.openWatches === 6);
  api.closeWatches();
  api.delete('Pod', 'client', 'default');
  api.apply(pod('web-1'));
  api.compact();
  api.closeWatches();
  await portsAre('the relisted state', [PORTS['web-1']]);
  t.true(api.requests.some((r) => r.kind === 'Pod' && r.outcome === 'gone'), 'the pods watch got 410');

  api.delete('Node', 'n1');
  await waitFor('the chain of the deleted node gone', async () => (await store.chains.list()).every((c) => c.name !== names.chain));
  await waitFor('its cubes gone from netcubed', async () => (await podPortsOn(netcubed)) === undefined);
  t.true(controller.isLeader);
  t.false(lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

test('netcube-k8s flags: the Kubernetes ones as kube components name them, etcd and TLS as every service; mistakes named', (t) => {
  const flags = parseControllerFlags(['--kubeconfig', '/k', '--master=http://api:8080', '--resync-period', '1m30s', '--cluster-cidr', '10.8.0.0/16', '--service-cluster-ip-range=10.100.0.1/16', '--etcd', 'a:2379,b:2379', '--name', 'ctl-1', '--uplink=ens3'], {});
  t.like(flags, {
    kube: { kubeconfig: '/k', master: 'http://api:8080' },
    settings: { ...DEFAULT_SETTINGS, clusterCidr: '10.8.0.0/16', serviceCidr: '10.100.0.0/16', uplink: 'ens3' },
    resyncMs: 90_000,
    etcd: ['a:2379', 'b:2379'],
    replica: 'ctl-1',
  });
  t.is(parseControllerFlags(['-h'], {}), 'help');
  t.throws(() => parseControllerFlags(['--resync-period', '10'], {}), { message: /--resync-period: a duration such as 30s, 5m or 1h30m, got "10"/ });
  t.throws(() => parseControllerFlags(['--resync', '10'], {}), { message: /--resync: netcube-k8s has --resync-period instead/ });
  t.throws(() => parseControllerFlags(['--listen', 'unix:/x'], {}), { message: /no config API/ });
  t.throws(() => parseControllerFlags(['--kubeconfg', '/k'], {}), { message: /kubeconfg/ });
  t.throws(() => parseControllerFlags(['--master'], {}), { message: /--master needs a value/ });
  t.throws(() => parseControllerFlags(['--service-cluster-ip-range', '10.96.0.0'], {}), { message: /--service-cluster-ip-range.*expected address\/prefix-length/ });
  t.throws(() => parseControllerFlags(['--service-cluster-ip-range', 'fd00::/108'], {}), { message: /--service-cluster-ip-range: an IPv4 range/ });
});

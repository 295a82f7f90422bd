// The controller (remote-services/k8s/src/controller.ts) end to end on one node:
// the scripted API server (test/helpers/kube-apiserver.ts) serving the manifests'
// node n1, a real etcd, and a real netcubed in a namespace the test makes as n1.
// Pod ports are recorded as netcube-cni records them (the veth made by the test):
// a port goes into the node's chain once the API has its pod, and netcubed puts
// it on the pods' cube; the pod deleted, it goes; changes missed while the watches
// were down past a compaction (410 Gone) are found by the relist; the Node
// deleted, its chain goes.

import test from 'ava';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import { Controller, DEFAULT_SETTINGS, KubeSource, loadKubeConfig, nodeNames } from '@netcube/k8s';
import { parseControllerFlags } from '@netcube/k8s/main';
import { startDaemon } from '../helpers/daemon';
import { startEtcd } from '../helpers/etcd';
import { KubeApiServer, kubeconfig } from '../helpers/kube-apiserver';
import { loadManifests, podPortOf } from '../helpers/kube-manifests';
import { createNetns, createVethPair } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const all = loadManifests('cluster.yaml');
// Node n1, its namespace and its two pods: no other node, whose chain would name a host no netcubed runs.
const objects = all.filter((o) => (o.kind === 'Node' && o.metadata.name === 'n1') || o.kind === 'Namespace' || (o.kind === 'Pod' && ['web-1', 'client'].includes(o.metadata.name as string)));
const pod = (name: string) => objects.find((o) => o.kind === 'Pod' && o.metadata.name === name)!;
const PORTS = { 'web-1': 'nc00000000001', client: 'nc00000000002' } as const;

test('pods on the API and their ports in etcd become ports of the node\'s chain on netcubed; removed, they go; a relist after 410 converges', async (t) => {
  const etcd = await startEtcd(t);
  const node = await createNetns(t);
  // The node's VXLAN netdev, which the router's overlay port is linked to.
  await node.exec('ip', ['link', 'add', DEFAULT_SETTINGS.vxlanNetdev, 'type', 'vxlan', 'id', '42', 'dstport', '4789', 'nolearning']);
  await node.exec('ip', ['link', 'set', DEFAULT_SETTINGS.vxlanNetdev, 'up']);
  for (const port of Object.values(PORTS)) await createVethPair(node, await createNetns(t), [port, 'eth0'], null);
  const daemon = await startDaemon(t, { netns: node, name: 'n1', etcd: etcd.endpoints });
  await daemon.waitConnected();
  const netcubed = daemon.client();
  t.teardown(() => netcubed.close());
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());

  // web-1 is on the API and its port recorded; client's port is recorded before the API has the pod.
  const api = await KubeApiServer.start(objects.filter((o) => o !== pod('client')));
  t.teardown(() => api.stop());
  for (const [name, netdev] of Object.entries(PORTS)) {
    const { host, revision: _, ...value } = podPortOf(objects, 'default', name, netdev, 0);
    await store.podPorts.put(host, value);
  }

  const lines: string[] = [];
  const log = new Logger('debug', {}, (l) => lines.push(l));
  t.teardown(() => {
    if (!t.passed) t.log(lines.slice(-40).join(''));
  });
  const source = new KubeSource(loadKubeConfig({ kubeconfig: kubeconfig(t), master: api.url }), { log, retryMs: 20, retryMaxMs: 200 });
  const controller = new Controller({ store, source, settings: DEFAULT_SETTINGS, log, resyncMs: 60_000, leaseTtlSeconds: 2, replica: 'test' });
  t.teardown(() => controller.close());
  await controller.start();

  const names = nodeNames('n1');
  /** The pods' cube's ports on netcubed that lead to a pod's veth. */
  const podPorts = async () => {
    try {
      const cube = await netcubed.getCube({ name: names.pods });
      return cube.ports.filter((p) => p.peer?.netdev === p.name).map((p) => p.name).sort();
    } catch {
      return undefined;
    }
  };
  const portsAre = (what: string, want: string[]) => waitFor(what, async () => JSON.stringify(await podPorts()) === JSON.stringify(want));

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
  await waitFor('its cubes gone from netcubed', async () => (await podPorts()) === undefined);
  t.true(controller.isLeader);
  t.false(lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

test('netcube-k8s flags: the Kubernetes ones as kube components name them, etcd and TLS as every service; mistakes named', (t) => {
  const flags = parseControllerFlags(['--kubeconfig', '/k', '--master=http://api:8080', '--resync-period', '1m30s', '--cluster-cidr', '10.8.0.0/16', '--etcd', 'a:2379,b:2379', '--name', 'ctl-1', '--uplink=ens3'], {});
  t.like(flags, {
    kube: { kubeconfig: '/k', master: 'http://api:8080' },
    settings: { ...DEFAULT_SETTINGS, clusterCidr: '10.8.0.0/16', uplink: 'ens3' },
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
});

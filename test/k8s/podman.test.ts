// Pods made by a real container runtime: podman 4 with its CNI backend and runc
// starts busybox containers on node n1, calling netcube-cni (and through it
// host-local) for each, with netcubed, the controller, the node's services and etcd
// running. A container starts only once its ADD succeeded, which waits
// until the data plane forwards for it; two of them ping each other through the
// node's chain; removing them (CNI DEL) leaves no port, record or lease.

import test from 'ava';
import { leases } from '../helpers/cni';
import { loadManifests } from '../helpers/kube-manifests';
import { cniConfig, kubeNode, podPortsOn, startNodeServices } from '../helpers/kube-node';
import { podmanOn } from '../helpers/podman';
import { waitFor } from '../helpers/wait';

/** Node n1, and pods pod-a and pod-b bound to it: the containers podman runs for them. */
const objects = [
  ...loadManifests('cluster.yaml').filter((o) => (o.kind === 'Node' && o.metadata.name === 'n1') || o.kind === 'Namespace'),
  ...['pod-a', 'pod-b'].map((name) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { app: name } },
    spec: { nodeName: 'n1', containers: [{ name: 'main', image: 'busybox' }] },
    status: { phase: 'Running' },
  })),
];

test('podman starts two containers on netcube-cni: each gets an address from the node\'s range, they ping each other through the chain, and removing them leaves nothing', async (t) => {
  const bed = await kubeNode(t, objects);
  const { node, netcubed, store, lines } = bed;
  await startNodeServices(t, bed);
  // Node n1's conflist at CNI 1.0.0, the newest podman 4.3's libcni reads results of;
  // podman names the pod (K8S_POD_NAME: the container's name) but not its namespace.
  const { conf, dataDir } = cniConfig(t, bed);
  const { cniVersion: _newest, name, ...plugin } = conf;
  const podman = await podmanOn(t, node, { netcube: { cniVersion: '1.0.0', name, plugins: [{ ...plugin, readyTimeoutSeconds: 60, podNamespace: 'default' }] } });

  const a = await podman.startPod('pod-a', 'netcube');
  const b = await podman.startPod('pod-b', 'netcube');
  for (const address of [a, b]) t.regex(address, /^10\.244\.1\.\d+$/);
  t.not(a, b);
  const records = await store.podPorts.list('n1');
  t.deepEqual(records.map((r) => r.addresses[0].split('/')[0]).sort(), [a, b].sort(), 'both pods recorded for node n1 in etcd');
  t.is((await podPortsOn(netcubed))?.length, 2, 'both pods\' ports in the pods\' cube on netcubed');

  // The router service programs its cube in its own time: the first ping that gets through, then every one.
  const ping = (from: string, to: string, count: number) => podman.run(['exec', from, 'ping', '-q', '-c', String(count), '-W', '2', to]);
  await waitFor('pod-a reaching pod-b', () => ping('pod-a', b, 1).then(() => true, () => false), 60_000, 200);
  t.regex(await ping('pod-a', b, 3), / 0% packet loss/);
  t.regex(await ping('pod-b', a, 3), / 0% packet loss/);

  // podman removing the containers is the runtime's CNI DEL.
  await podman.run(['rm', '--force', '--time', '0', 'pod-a', 'pod-b']);
  await waitFor('no pod port left on netcubed', async () => (await podPortsOn(netcubed))?.length === 0);
  t.deepEqual(await store.podPorts.list('n1'), []);
  t.deepEqual(leases(dataDir), []);
  t.notRegex((await node.exec('ip', ['-o', 'link', 'show'])).stdout, /nc[0-9a-f]{11}/, 'no pod veth left on the node');
  t.false(lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

// One node as the kubelet sees it: netcube-cni called with the real CNI protocol
// (test/helpers/cni.ts, Debian's host-local for IPAM) inside a node namespace where
// a real netcubed runs as n1, the controller following the scripted API server and
// a real etcd. The pods' ports go into the node's chain on netcubed. Without the
// lbrp service (netcube-lbrp), which writes the pods' cube's tables, ADD reports
// exactly that gap; with the node's services running (router, lbrp, firewall, in
// process), ADD completes and two pods ping each other through pods' lbrp → router
// → lbrp. DEL of every pod leaves no port on netcubed, no veth, lease or record.

import test, { type ExecutionContext } from 'ava';
import { nodeNames } from '@netcube/k8s';
import { dataPlaneGap, hostVethName, parseConfig } from '@netcube/k8s/cni';
import { attachment, cni, leases } from '../helpers/cni';
import { loadManifests } from '../helpers/kube-manifests';
import { cniConfig, kubeNode, podPortsOn, startNodeServices } from '../helpers/kube-node';
import { createNetns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const objects = loadManifests('cluster.yaml').filter((o) => (o.kind === 'Node' && o.metadata.name === 'n1') || o.kind === 'Namespace' || (o.kind === 'Pod' && ['web-1', 'client'].includes(o.metadata.name as string)));

/** Node n1: etcd, netcubed, the controller following the API, a CNI config, two pods' namespaces. */
async function nodeBed(t: ExecutionContext) {
  const { etcd, node, daemon, netcubed, store, lines, log, controller, startController } = await kubeNode(t, objects);
  const { conf, dataDir } = cniConfig(t, { daemon, etcd });
  const pods = [
    { name: 'web-1', id: 'aaaa0001', netns: await createNetns(t) },
    { name: 'client', id: 'aaaa0002', netns: await createNetns(t) },
  ];
  return { etcd, node, daemon, netcubed, store, lines, log, conf, pods, dataDir, controller, startController };
}

test('CNI ADD of two pods with netcubed and the controller running: both ports in the chain on netcubed, the lbrp service the one gap; DEL leaves nothing', async (t) => {
  const { node, netcubed, store, lines, conf, pods, dataDir } = await nodeBed(t);
  const adds = await Promise.all(pods.map((p) => cni(node, 'ADD', conf, attachment(p.netns, p.id, p.name))));
  // Not forwarding within the second ADD waits here: no lbrp service writes the pods' cube's tables.
  for (const add of adds) t.like(add.out, { code: 11 });
  const veths = pods.map((p) => hostVethName(p.id, 'eth0')).sort();
  await waitFor('both pods\' ports on the pods\' cube on netcubed', async () => JSON.stringify(await podPortsOn(netcubed)) === JSON.stringify(veths));
  const records = await store.podPorts.list('n1');
  t.deepEqual(records.map((r) => r.pod).sort(), ['client', 'web-1']);
  for (const r of records) {
    const address = r.addresses[0].split('/')[0];
    t.is(
      await dataPlaneGap(parseConfig(JSON.stringify(conf)), r.netdev, address, netcubed),
      `the lbrp service has not routed ${address} to port ${r.netdev} of cube ${nodeNames('n1').pods} yet (is netcube-lbrp running?)`,
      'the controller and netcubed did their part; the lbrp service is the one gap',
    );
  }
  t.deepEqual(leases(dataDir).sort(), records.map((r) => r.addresses[0].split('/')[0]).sort());

  // DEL as the runtime calls it after the failed ADD: everything goes, on the node and on netcubed.
  for (const p of pods) t.deepEqual(await cni(node, 'DEL', conf, attachment(p.netns, p.id, p.name)), { code: 0, out: {} });
  await waitFor('no pod port left on netcubed', async () => (await podPortsOn(netcubed))?.length === 0);
  t.deepEqual(await store.podPorts.list('n1'), []);
  t.deepEqual(leases(dataDir), []);
  t.notRegex((await node.exec('ip', ['-o', 'link', 'show'])).stdout, /nc[0-9a-f]{11}/);
  t.false(lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

test('two pods added by CNI ping each other through the node\'s chain (pods\' lbrp, router, lbrp); the controller restarted or netcubed killed -9, they still do', async (t) => {
  const { etcd, node, daemon, store, lines, log, conf, pods, controller, startController } = await nodeBed(t);
  await startNodeServices(t, { etcd, log });
  // The ADDs wait until the data plane forwards for their pod: the controller places the ports, then netcube-lbrp writes the lbrp's tables.
  const adding = Promise.all(pods.map((p) => cni(node, 'ADD', { ...conf, readyTimeoutSeconds: 120 }, attachment(p.netns, p.id, p.name))));
  const addresses = (await adding).map((a) => {
    t.is(a.code, 0, JSON.stringify(a.out));
    return String((a.out.ips as { address: string }[])[0].address).split('/')[0];
  });
  // The router service programs its cube on its own time: the first ping that gets through.
  await waitFor('web-1 reaching client', () => pods[0].netns.ping(addresses[1], 1).then(() => true, () => false), 60_000, 200);
  await pods[0].netns.ping(addresses[1], 3);
  await pods[1].netns.ping(addresses[0], 3);
  t.false(lines.some((l) => l.includes('"level":"error"')), 'no errors logged (the router service took its config)');

  // The controller stopped: traffic goes on; a new replica leads and finds the chain as it wants it.
  const chain = nodeNames('n1').chain;
  const { version } = await store.chains.get(chain);
  await controller.close();
  await pods[0].netns.ping(addresses[1], 3);
  const replacement = await startController('test-2');
  await waitFor('the new replica leading, one pass done', () => replacement.isLeader && replacement.passes > 0);
  t.is((await store.chains.get(chain)).version, version, 'the chain unchanged');

  // netcubed killed -9: the data plane it left keeps forwarding.
  await daemon.kill();
  await pods[1].netns.ping(addresses[0], 3);
  await pods[0].netns.ping(addresses[1], 3);
});

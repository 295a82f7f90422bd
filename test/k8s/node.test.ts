// One node as the kubelet sees it: netcube-cni called with the real CNI protocol
// (test/helpers/cni.ts, Debian's host-local for IPAM) inside a node namespace where
// a real netcubed runs as n1, the controller following the scripted API server and
// a real etcd. The pods' ports go into the node's chain on netcubed. What is
// missing on this branch for traffic is the lbrp service (netcube-lbrp, issue 10),
// which writes the pods' cube's tables: ADD reports exactly that gap. DEL of every
// pod leaves no port on netcubed, no veth, lease or record.

import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import { Controller, DEFAULT_SETTINGS, KubeSource, loadKubeConfig, nodeNames } from '@netcube/k8s';
import { dataPlaneGap, hostVethName, parseConfig } from '@netcube/k8s/cni';
import { attachment, cni, leases } from '../helpers/cni';
import { startDaemon } from '../helpers/daemon';
import { startEtcd } from '../helpers/etcd';
import { KubeApiServer, kubeconfig } from '../helpers/kube-apiserver';
import { loadManifests } from '../helpers/kube-manifests';
import { createNetns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';

const objects = loadManifests('cluster.yaml').filter((o) => (o.kind === 'Node' && o.metadata.name === 'n1') || o.kind === 'Namespace' || (o.kind === 'Pod' && ['web-1', 'client'].includes(o.metadata.name as string)));

test('CNI ADD of two pods with netcubed and the controller running: both ports in the chain on netcubed, the lbrp service the one gap; DEL leaves nothing', async (t) => {
  const etcd = await startEtcd(t);
  const node = await createNetns(t);
  await node.exec('ip', ['link', 'add', DEFAULT_SETTINGS.vxlanNetdev, 'type', 'vxlan', 'id', '42', 'dstport', '4789', 'nolearning']);
  await node.exec('ip', ['link', 'set', DEFAULT_SETTINGS.vxlanNetdev, 'up']);
  const daemon = await startDaemon(t, { netns: node, name: 'n1', etcd: etcd.endpoints });
  await daemon.waitConnected();
  const netcubed = daemon.client();
  t.teardown(() => netcubed.close());
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  const api = await KubeApiServer.start(objects);
  t.teardown(() => api.stop());
  const lines: string[] = [];
  const log = new Logger('debug', {}, (l) => lines.push(l));
  t.teardown(() => {
    if (!t.passed) t.log(lines.slice(-40).join(''));
  });
  const source = new KubeSource(loadKubeConfig({ kubeconfig: kubeconfig(t), master: api.url }), { log, retryMs: 20, retryMaxMs: 200 });
  const controller = new Controller({ store, source, settings: DEFAULT_SETTINGS, log, resyncMs: 60_000, leaseTtlSeconds: 2, replica: 'test' });
  t.teardown(() => controller.close());
  await controller.start();

  const dir = mkdtempSync(join(tmpdir(), `nct-node-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'ipam');
  // The node's conflist entry as deploy would write it: this node, its netcubed, its pod range.
  const conf = {
    cniVersion: '1.1.0',
    name: 'netcube',
    type: 'netcube-cni',
    host: 'n1',
    socket: daemon.socket,
    etcd: { endpoints: etcd.endpoints },
    readyTimeoutSeconds: 1,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24', rangeStart: '10.244.1.2', rangeEnd: '10.244.1.253', gateway: '10.244.1.1' }]], dataDir },
  };
  const pods = [
    { name: 'web-1', id: 'aaaa0001', netns: await createNetns(t) },
    { name: 'client', id: 'aaaa0002', netns: await createNetns(t) },
  ];
  const adds = await Promise.all(pods.map((p) => cni(node, 'ADD', conf, attachment(p.netns, p.id, p.name))));
  // Not forwarding within the second ADD waits here: no lbrp service writes the pods' cube's tables.
  for (const add of adds) t.like(add.out, { code: 11 });
  const veths = pods.map((p) => hostVethName(p.id, 'eth0')).sort();
  const podPorts = async () => {
    try {
      return (await netcubed.getCube({ name: nodeNames('n1').pods })).ports.filter((p) => p.peer?.netdev === p.name).map((p) => p.name).sort();
    } catch {
      return [];
    }
  };
  await waitFor('both pods\' ports on the pods\' cube on netcubed', async () => JSON.stringify(await podPorts()) === JSON.stringify(veths));
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
  await waitFor('no pod port left on netcubed', async () => (await podPorts()).length === 0);
  t.deepEqual(await store.podPorts.list('n1'), []);
  t.deepEqual(leases(dataDir), []);
  t.notRegex((await node.exec('ip', ['-o', 'link', 'show'])).stdout, /nc[0-9a-f]{11}/);
  t.false(lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});

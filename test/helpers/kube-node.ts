// A Kubernetes node for the provider's tests: a namespace as node n1 with the
// cluster's VXLAN netdev, a real netcubed in it, a real etcd, the scripted API
// server with the test's objects, and the controller (netcube-k8s) following it,
// its log kept and shown when the test fails.

import type { ExecutionContext } from 'ava';
import type { NetcubeClient } from '@netcube/api/grpc/client';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import { Controller, DEFAULT_SETTINGS, KubeSource, loadKubeConfig, nodeNames } from '@netcube/k8s';
import { NetcubedProcess, startDaemon } from './daemon';
import { EtcdCluster, startEtcd } from './etcd';
import { KubeApiServer, kubeconfig } from './kube-apiserver';
import type { KubeObject } from './kube-manifests';
import { createNetns, Netns } from './netns';

export const NODE = 'n1';

export interface KubeNode {
  etcd: EtcdCluster;
  node: Netns;
  daemon: NetcubedProcess;
  netcubed: NetcubeClient;
  /** etcd as the admin. */
  store: Store;
  api: KubeApiServer;
  controller: Controller;
  /** Another controller replica, as after a restart; stopped in the test's teardown. */
  startController(replica: string): Promise<Controller>;
  /** The controller's log lines (and those of what the test adds with `log`). */
  lines: string[];
  log: Logger;
}

/** Node n1 with everything running; `beforeController` runs once etcd and netcubed do, before the controller starts. */
export async function kubeNode(t: ExecutionContext, objects: readonly KubeObject[], beforeController?: (store: Store) => Promise<void>): Promise<KubeNode> {
  const etcd = await startEtcd(t);
  const node = await createNetns(t);
  // The router's overlay port is linked to it.
  await node.exec('ip', ['link', 'add', DEFAULT_SETTINGS.vxlanNetdev, 'type', 'vxlan', 'id', '42', 'dstport', '4789', 'nolearning']);
  await node.exec('ip', ['link', 'set', DEFAULT_SETTINGS.vxlanNetdev, 'up']);
  const daemon = await startDaemon(t, { netns: node, name: NODE, etcd: etcd.endpoints });
  await daemon.waitConnected();
  const netcubed = daemon.client();
  t.teardown(() => netcubed.close());
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  const api = await KubeApiServer.start(objects);
  t.teardown(() => api.stop());
  await beforeController?.(store);
  const lines: string[] = [];
  const log = new Logger('debug', {}, (l) => lines.push(l));
  t.teardown(() => {
    if (!t.passed) t.log(lines.slice(-40).join(''));
  });
  const config = kubeconfig(t);
  const startController = async (replica: string): Promise<Controller> => {
    const source = new KubeSource(loadKubeConfig({ kubeconfig: config, master: api.url }), { log, retryMs: 20, retryMaxMs: 200 });
    const controller = new Controller({ store, source, settings: DEFAULT_SETTINGS, log, resyncMs: 60_000, leaseTtlSeconds: 2, replica });
    t.teardown(() => controller.close());
    await controller.start();
    return controller;
  };
  const controller = await startController('test');
  return { etcd, node, daemon, netcubed, store, api, controller, startController, lines, log };
}

/** The ports of the node's pods' cube on netcubed that lead to a pod's veth, sorted; undefined without the cube. */
export async function podPortsOn(netcubed: NetcubeClient): Promise<string[] | undefined> {
  try {
    return (await netcubed.getCube({ name: nodeNames(NODE).pods })).ports.filter((p) => p.peer?.netdev === p.name).map((p) => p.name).sort();
  } catch {
    return undefined;
  }
}

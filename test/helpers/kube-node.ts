// A Kubernetes node for the provider's tests: a namespace as node n1 with the
// cluster's VXLAN netdev, its host link (as the node agent makes it) and its uplink (eth0, the Node's InternalIP, a veth to a
// namespace of its own outside the cluster: the node's network), a real netcubed
// in it, a real etcd, the scripted API server with the test's objects, and the
// controller (netcube-k8s) following it, its log kept and shown when the test
// fails. The node's CNI config (cniConfig) and the services the chain's cubes need
// (startNodeServices: netcube-router, netcube-lbrp, netcube-firewall,
// netcube-k8sdispatcher, in process) come on request.

import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetcubeClient } from '@netcube/api/grpc/client';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import { DEFAULT_MTU } from '@netcube/k8s/cni';
import { Controller, DEFAULT_SETTINGS, ensureHostLink, hostLinkSpec, Iproute, KubeSource, loadKubeConfig, nodeModel, nodeNames, Problems, type KubeNode as KubeNodeObject } from '@netcube/k8s';
import firewall from '@netcube/firewall';
import k8sdispatcher from '@netcube/k8sdispatcher';
import lbrp from '@netcube/lbrp';
import router from '@netcube/router';
import { startService, type RunningService, type ServiceDefinition } from '@netcube/sdk';
import { NetcubedProcess, startDaemon } from './daemon';
import { EtcdCluster, startEtcd } from './etcd';
import { KubeApiServer, kubeconfig } from './kube-apiserver';
import type { KubeObject } from './kube-manifests';
import { createNetns, createVethPair, Netns } from './netns';

export const NODE = 'n1';
/** Node n1's InternalIP (test/k8s/manifests/cluster.yaml), on its uplink. */
export const NODE_ADDRESS = '10.0.0.11';
/** The address of the node's network outside the cluster, at the other end of the uplink. */
export const OUTSIDE_ADDRESS = '10.0.0.1';

export interface KubeNode {
  etcd: EtcdCluster;
  node: Netns;
  /** The node's network outside the cluster: the other end of its uplink, OUTSIDE_ADDRESS. */
  outside: Netns;
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
  // The pods' lbrp's host port is linked to it: made as the node agent makes it.
  const nodeObject = objects.find((o) => o.kind === 'Node' && o.metadata.name === NODE) as KubeNodeObject | undefined;
  const model = nodeObject && nodeModel(nodeObject, DEFAULT_SETTINGS, new Problems());
  if (model) await ensureHostLink(new Iproute(node.path), hostLinkSpec(model, DEFAULT_SETTINGS, DEFAULT_MTU), new Logger('warn', {}, () => undefined));
  // The dispatcher's port is linked to the uplink; it sends pods' packets by the node's
  // routes, which bpf_fib_lookup gives only where forwarding is on (as on every Kubernetes node).
  const outside = await createNetns(t);
  await createVethPair(node, outside, [DEFAULT_SETTINGS.uplink, 'eth0'], [NODE_ADDRESS, OUTSIDE_ADDRESS]);
  await node.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
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
  return { etcd, node, outside, daemon, netcubed, store, api, controller, startController, lines, log };
}

/** The ports of the node's pods' cube on netcubed that lead to a pod's veth, sorted; undefined without the cube. */
export async function podPortsOn(netcubed: NetcubeClient): Promise<string[] | undefined> {
  try {
    return (await netcubed.getCube({ name: nodeNames(NODE).pods })).ports.filter((p) => p.peer?.netdev === p.name).map((p) => p.name).sort();
  } catch {
    return undefined;
  }
}

/** Node n1's pod range (test/k8s/manifests/cluster.yaml), as host-local's range of its conflist. */
export const NODE_POD_RANGE = { subnet: '10.244.1.0/24', rangeStart: '10.244.1.2', rangeEnd: '10.244.1.252', gateway: '10.244.1.1' };

/** Node n1's conflist entry as deploy would write it: this node, its netcubed, its pod range; host-local's leases in `dataDir`. */
export function cniConfig(t: ExecutionContext, bed: Pick<KubeNode, 'daemon' | 'etcd'>) {
  const dir = mkdtempSync(join(tmpdir(), `nct-node-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'ipam');
  const conf = {
    cniVersion: '1.1.0',
    name: 'netcube',
    type: 'netcube-cni',
    host: NODE,
    socket: bed.daemon.socket,
    etcd: { endpoints: bed.etcd.endpoints },
    readyTimeoutSeconds: 1,
    ipam: { type: 'host-local', ranges: [[NODE_POD_RANGE]], dataDir },
  };
  return { conf, dataDir };
}

/** The services of the node's cubes, in process, their logs with the controller's; stopped in the test's teardown. */
export async function startNodeServices(t: ExecutionContext, bed: Pick<KubeNode, 'etcd' | 'log'>) {
  const start = async <C, S>(service: ServiceDefinition<C, S>): Promise<RunningService<C, S>> => {
    const running = await startService(service, { etcd: bed.etcd.endpoints, replica: `test-${service.type}`, log: bed.log });
    t.teardown(() => running.close());
    return running;
  };
  return { router: await start(router), lbrp: await start(lbrp), firewall: await start(firewall), k8sdispatcher: await start(k8sdispatcher) };
}

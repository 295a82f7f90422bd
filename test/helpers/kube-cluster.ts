// Kubernetes nodes for the provider's multi-node tests: namespaces as nodes on one
// L2 segment (a "switch" namespace with a Linux bridge, each node's eth0 on it with
// the InternalIP of its Node), each with a real netcubed and the node agent
// (netcube-k8s node: its VXLAN netdev and forwarding table), one real etcd, the
// scripted API server with the test's objects, one controller, and the services of
// the chains' cubes in process (kube-node.ts's startNodeServices). Each node's CNI
// config is the one `netcube-k8s cni-config` writes for it (nodeConflist), its
// leases in a directory of the test's own. Logs are kept and shown when the test fails.

import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetcubeClient } from '@netcube/api/grpc/client';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import { hostVethName } from '@netcube/k8s/cni';
import { Controller, DEFAULT_SETTINGS, DEFAULT_VXLAN, Iproute, KubeSource, loadKubeConfig, NodeAgent, nodeConflist, nodeModel, Problems, type KubeNode as KubeNodeObject, type NodeModel } from '@netcube/k8s';
import { attachment, cni } from './cni';
import { NetcubedProcess, startDaemon } from './daemon';
import { EtcdCluster, startEtcd } from './etcd';
import { KubeApiServer, kubeconfig } from './kube-apiserver';
import type { KubeObject } from './kube-manifests';
import { startNodeServices } from './kube-node';
import { createNetns, createSegment, Netns, type Segment } from './netns';

export interface ClusterNode {
  name: string;
  model: NodeModel;
  netns: Netns;
  daemon: NetcubedProcess;
  netcubed: NetcubeClient;
  agent: NodeAgent;
  /** The node's netcube-cni config (its conflist's plugin). */
  cni: Record<string, unknown>;
}

export interface ClusterPod {
  name: string;
  node: ClusterNode;
  netns: Netns;
  address: string;
  /** The pod's port on the node (its host-side veth). */
  port: string;
}

export interface KubeCluster {
  etcd: EtcdCluster;
  /** etcd as the admin. */
  store: Store;
  api: KubeApiServer;
  controller: Controller;
  services: Awaited<ReturnType<typeof startNodeServices>>;
  /** The nodes' segment. */
  segment: Segment;
  nodes: Map<string, ClusterNode>;
  /** Adds pod `name` of `namespace` on its node by CNI ADD, at the address its manifest gives it; resolves once the data plane forwards for it. */
  addPod(name: string, namespace?: string): Promise<ClusterPod>;
  /** The log lines of the controller, the agents and the services. */
  lines: string[];
  log: Logger;
}

/** The agent's VXLAN netdev and settings are the defaults, as deploy runs them. */
export const SETTINGS = DEFAULT_SETTINGS;

let pods = 0;

/** The nodes `names` of `objects` (each a Node with a pod range and an InternalIP) with everything running. */
export async function kubeCluster(t: ExecutionContext, objects: readonly KubeObject[], names: readonly string[]): Promise<KubeCluster> {
  const lines: string[] = [];
  const log = new Logger('debug', {}, (l) => lines.push(l));
  t.teardown(() => {
    if (!t.passed) t.log(lines.slice(-60).join(''));
  });
  const etcd = await startEtcd(t);
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  const api = await KubeApiServer.start(objects);
  t.teardown(() => api.stop());
  const config = kubeconfig(t);
  const source = (resources?: ['nodes']) => new KubeSource(loadKubeConfig({ kubeconfig: config, master: api.url }), { log, retryMs: 20, retryMaxMs: 200, resources });

  const segment = await createSegment(t);
  const dataDir = mkdtempSync(join(tmpdir(), `nct-cluster-${process.pid}-`));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

  const nodes = new Map<string, ClusterNode>();
  await Promise.all(
    names.map(async (name) => {
      const problems = new Problems();
      const model = nodeModel(objects.find((o) => o.kind === 'Node' && o.metadata.name === name) as KubeNodeObject, SETTINGS, problems);
      if (!model) throw new Error(`Node ${name} of the test's objects: ${problems.list.map((p) => p.message).join('; ')}`);
      const netns = await createNetns(t);
      // The node's uplink on the segment, with its InternalIP.
      await segment.attach(netns, model.uplink, model.address);
      // As kubelet wants it; the dispatcher sends by the node's routes (NodePort answers, pods' packets out).
      await netns.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
      const agent = new NodeAgent({ node: name, source: source(['nodes']), settings: SETTINGS, vxlan: DEFAULT_VXLAN, iproute: new Iproute(netns.path), log: log.with({ agent: name }), resyncMs: 60_000 });
      t.teardown(() => agent.close());
      await agent.start();
      const daemon = await startDaemon(t, { netns, name, etcd: etcd.endpoints });
      await daemon.waitConnected();
      const netcubed = daemon.client();
      t.teardown(() => netcubed.close());
      const conflist = nodeConflist(model, { etcd: etcd.endpoints, socket: daemon.socket, ipamDataDir: join(dataDir, name) });
      const plugin = (conflist.plugins as Record<string, unknown>[])[0];
      nodes.set(name, { name, model, netns, daemon, netcubed, agent, cni: { cniVersion: conflist.cniVersion, name: conflist.name, ...plugin } });
    }),
  );
  const services = await startNodeServices(t, { etcd, log });
  // One replica, so its lease's length (the default) never delays a failover here.
  const controller = new Controller({ store, source: source(), settings: SETTINGS, log, resyncMs: 60_000, replica: 'test' });
  t.teardown(() => controller.close());
  await controller.start();

  const addPod = async (name: string, namespace = 'default'): Promise<ClusterPod> => {
    const manifest = objects.find((o) => o.kind === 'Pod' && o.metadata.name === name && (o.metadata.namespace ?? 'default') === namespace) as
      | (KubeObject & { spec: { nodeName: string }; status: { podIP: string } })
      | undefined;
    if (!manifest) throw new Error(`no Pod ${namespace}/${name} in the test's objects`);
    const node = nodes.get(manifest.spec.nodeName);
    if (!node) throw new Error(`Pod ${namespace}/${name} is on node ${manifest.spec.nodeName}, which the test did not start`);
    const netns = await createNetns(t);
    const id = `cccc${String(++pods).padStart(4, '0')}`;
    const env = attachment(netns, id, name);
    const args = env.CNI_ARGS.replace('K8S_POD_NAMESPACE=default', `K8S_POD_NAMESPACE=${namespace}`);
    const add = await cni(node.netns, 'ADD', { ...node.cni, readyTimeoutSeconds: 120 }, { ...env, CNI_ARGS: `${args};IP=${manifest.status.podIP}` });
    if (add.code !== 0) throw new Error(`ADD of ${namespace}/${name} on ${node.name}: ${JSON.stringify(add.out)}`);
    const address = String((add.out.ips as { address: string }[])[0].address).split('/')[0];
    if (address !== manifest.status.podIP) throw new Error(`host-local leased ${address} to ${name}, its manifest says ${manifest.status.podIP}`);
    return { name, node, netns, address, port: hostVethName(id, 'eth0') };
  };
  return { etcd, store, api, controller, services, segment, nodes, addPod, lines, log };
}

/** The forwarding entries of a node's VXLAN netdev, as `MAC dst` text, sorted. */
export async function fdbOf(node: ClusterNode): Promise<string[]> {
  return (await new Iproute(node.netns.path).fdb(SETTINGS.vxlanNetdev)).filter((e) => e.dst).map((e) => `${e.mac} ${e.dst}`).sort();
}

// Which pod ports go into which node's chain. A pod port is what a host's CNI
// plugin recorded (store/pod-ports.ts): a host is trusted with its own node only,
// so a record is placed when the pod it names exists, is bound to that node and
// runs in the pod network, and its address lies in that node's pod range and is
// no other placed pod's. What is left out is a problem, and left out of every chain.

import type { StoredPodPort } from '@netcube/api/store';
import { cidrContains } from '@netcube/sdk/packet';
import type { NodeModel } from './nodes';
import { keyOf, type ContainerPort, type KubePod } from './objects';
import { Problems } from './problems';

export interface PlacedPod {
  node: string;
  /** The host end of the pod's veth: also the port's name on the node's pods cube. */
  port: string;
  namespace: string;
  name: string;
  /** The pod's IPv4 address. */
  address: string;
  labels: Record<string, string>;
  /** Its containers' ports, for named ports. */
  containerPorts: ContainerPort[];
}

/** The ports the model places, per node, and every placed pod by `namespace/name`. */
export interface Placement {
  byNode: Map<string, PlacedPod[]>;
  byPod: Map<string, PlacedPod>;
}

export function placePods(pods: readonly KubePod[], records: readonly StoredPodPort[], nodes: ReadonlyMap<string, NodeModel>, problems: Problems): Placement {
  const podsByKey = new Map(pods.map((p) => [keyOf(p), p]));
  const placement: Placement = { byNode: new Map(), byPod: new Map() };
  const taken = new Map<string, string>();
  // The oldest record of an address or a pod wins: a newer one cannot take over a running pod's traffic.
  const ordered = [...records].sort((a, b) => a.revision - b.revision || (a.netdev < b.netdev ? -1 : 1));
  for (const r of ordered) {
    const at = `pod port ${r.host}/${r.netdev}`;
    const node = nodes.get(r.host);
    if (!node) {
      problems.add(at, `host ${r.host} is not a Node with a pod range (yet)`);
      continue;
    }
    const key = `${r.namespace}/${r.pod}`;
    const pod = podsByKey.get(key);
    if (!r.namespace || !r.pod) {
      problems.add(at, 'names no Kubernetes pod (K8S_POD_NAMESPACE and K8S_POD_NAME were not in CNI_ARGS)');
      continue;
    }
    if (!pod || pod.metadata?.deletionTimestamp && pod.status?.phase !== 'Running') {
      if (!pod) problems.add(at, `pod ${key} does not exist (yet)`);
      else problems.add(at, `pod ${key} is being deleted`);
      continue;
    }
    if (pod.spec?.nodeName !== r.host) {
      problems.add(at, `pod ${key} is bound to node ${pod.spec?.nodeName ?? '(none)'}, not to ${r.host}`);
      continue;
    }
    if (pod.spec?.hostNetwork) {
      problems.add(at, `pod ${key} uses the host's network`);
      continue;
    }
    const address = r.addresses.map((a) => a.split('/')[0]).find((a) => !a.includes(':'));
    if (!address || !cidrContains(node.podCidr, address) || address === node.gateway || address === node.clusterSnatAddress) {
      problems.add(at, `address ${r.addresses.join(', ')} is not one of node ${r.host}'s pod addresses (${node.podRange.start}-${node.podRange.end})`);
      continue;
    }
    if (taken.has(address)) {
      problems.add(at, `address ${address} is ${taken.get(address)}'s already`);
      continue;
    }
    if (placement.byPod.has(key)) {
      problems.add(at, `pod ${key} has a port already (${placement.byPod.get(key)!.port})`);
      continue;
    }
    taken.set(address, `pod port ${r.host}/${r.netdev}`);
    const placed: PlacedPod = {
      node: r.host,
      port: r.netdev,
      namespace: r.namespace,
      name: r.pod,
      address,
      labels: { ...(pod.metadata?.labels ?? {}) },
      containerPorts: (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []),
    };
    placement.byPod.set(key, placed);
    let list = placement.byNode.get(r.host);
    if (!list) placement.byNode.set(r.host, (list = []));
    list.push(placed);
  }
  for (const list of placement.byNode.values()) list.sort((a, b) => (a.port < b.port ? -1 : a.port > b.port ? 1 : 0));
  return placement;
}

// What the controller makes of a Node: its address, its pod range and the addresses
// netcube takes from that range, and the names of its chain and cubes. One rule for
// the controller (the node's chain), the CNI plugin's config (the IPAM range) and
// whatever programs a node's VXLAN forwarding table (the router's VXLAN MAC).

import { derivedMac } from '@netcube/sdk/codec';
import { cidrContains, ipv4FromNumber, ipv4ToNumber, parseCidr, type Cidr } from '@netcube/sdk/packet';
import type { KubeNode } from './objects';
import { Problems } from './problems';

export interface ClusterSettings {
  /** Every pod address of the cluster (kube-controller-manager's --cluster-cidr). */
  clusterCidr: string;
  /** Every ClusterIP (kube-apiserver's --service-cluster-ip-range): the node's kernel reaches them through its host link. */
  serviceCidr: string;
  /** The node's netdev towards the other nodes and the outside (a Node's annotation netcube.io/uplink overrides it). */
  uplink: string;
  /** The kernel VXLAN netdev on every node that carries pod traffic between nodes. */
  vxlanNetdev: string;
  /** Source ports of pod traffic masqueraded to the node's address: outside the node's own ephemeral ports (net.ipv4.ip_local_port_range). */
  masqueradePorts: string;
  /**
   * The routers' addresses on the VXLAN overlay, one per node pod range in the
   * cluster's range: a subnet of its own, since a router's ports may not overlap
   * (the pods' port holds the node's pod range, inside the cluster's).
   */
  overlayCidr: string;
}

export const DEFAULT_SETTINGS: ClusterSettings = {
  clusterCidr: '10.244.0.0/16',
  serviceCidr: '10.96.0.0/12',
  uplink: 'eth0',
  vxlanNetdev: 'ncvx0',
  masqueradePorts: '61000-65535',
  overlayCidr: '100.64.0.0/16',
};

export const UPLINK_ANNOTATION = 'netcube.io/uplink';

/** The link between the node's router and its dispatcher: the router's end, and the gateway whose ARP the dispatcher answers. */
export const NODE_LINK = { router: '169.254.1.2/30', gateway: '169.254.1.1' };

/**
 * The node's own way into its chain (kubelet's probes, a hostNetwork process calling
 * a pod, a pod calling its node's address): a veth pair the node agent makes, the
 * kernel's end with the node's host address (NodeModel.hostAddress) and routes to
 * the cluster's pods and ClusterIPs through the pods' gateway, the other end a port
 * of the pods' lbrp, as a pod's.
 */
export const HOST_LINK = { kernel: 'nchost', chain: 'nchost-c', port: 'host' } as const;

export interface NodeModel {
  name: string;
  /** The node's InternalIP. */
  address: string;
  podCidr: Cidr;
  podCidrText: string;
  uplink: string;
  /** The router's address towards the pods: the pods' gateway (the range's first address). */
  gateway: string;
  /** The router's address on the VXLAN overlay (overlayCidr), numbered by where the pod range lies in the cluster's: 10.244.2.0/24 in 10.244.0.0/16 is 100.64.0.3/16. */
  vxlanAddress: string;
  /** The source address of NodePort traffic this node sends to another node's pods (externalTrafficPolicy Cluster): the range's last address. */
  clusterSnatAddress: string;
  /** The node kernel's address in its pod range (HOST_LINK): the one before clusterSnatAddress. */
  hostAddress: string;
  /** The MAC of the router's VXLAN port: other nodes' forwarding tables point it at this node. */
  vxlanMac: string;
  /** The MAC of the router's port towards the dispatcher. */
  routerMac: string;
  /** The addresses IPAM may give pods (host-local's rangeStart, rangeEnd). */
  podRange: { start: string; end: string };
  /** The names of what the controller places on the node. */
  names: NodeNames;
}

export interface NodeNames {
  chain: string;
  /** The pods' lbrp (ClusterIP), the router, the NodePort lbrp, the dispatcher. */
  pods: string;
  router: string;
  nodePorts: string;
  dispatcher: string;
  /** The firewall of a pod's port. */
  firewall(port: string): string;
}

const NAME_MAX = 63;

/** A cube or chain name from a node name: node names may hold dots and run to 253 characters, cube names may not. */
export function nodeNames(node: string): NodeNames {
  let base = node.replace(/\./g, '-');
  // Room for the longest suffix ("-fw-" and a 15-character port).
  const room = NAME_MAX - 'k8s-'.length - '-fw-'.length - 15;
  if (base !== node || base.length > room) {
    const hash = derivedMac(node).replace(/:/g, '').slice(2, 8);
    base = `${base.slice(0, room - 7).replace(/-+$/, '')}-${hash}`;
  }
  const prefix = `k8s-${base}`;
  return {
    chain: prefix,
    pods: `${prefix}-pods`,
    router: `${prefix}-rt`,
    nodePorts: `${prefix}-np`,
    dispatcher: `${prefix}-disp`,
    firewall: (port) => `${prefix}-fw-${port.toLowerCase().replace(/_/g, '-')}`,
  };
}

/** The node as the model uses it, or undefined (with the problem recorded) when it cannot carry pods yet. */
export function nodeModel(node: KubeNode, settings: ClusterSettings, problems: Problems): NodeModel | undefined {
  const name = node.metadata?.name ?? '';
  const at = `Node ${name}`;
  const cidrText = (node.spec?.podCIDRs ?? []).find((c) => !c.includes(':')) ?? node.spec?.podCIDR;
  if (!cidrText) return problems.add(at, 'has no IPv4 spec.podCIDR: start kube-controller-manager with --allocate-node-cidrs (or set it)');
  let podCidr: Cidr;
  try {
    podCidr = parseCidr(cidrText, 'spec.podCIDR');
  } catch (err) {
    return problems.add(at, (err as Error).message);
  }
  const cluster = parseCidr(settings.clusterCidr, 'clusterCidr');
  if (podCidr.family !== 4 || podCidr.prefixLength < cluster.prefixLength || !cidrContains(cluster, podCidr.network) || podCidr.prefixLength > 29) {
    return problems.add(at, `spec.podCIDR ${cidrText} is not an IPv4 range of /29 or wider inside the cluster's ${settings.clusterCidr} (--cluster-cidr)`);
  }
  const address = node.status?.addresses?.find((a) => a.type === 'InternalIP' && a.address && !a.address.includes(':'))?.address;
  if (!address) return problems.add(at, 'has no IPv4 InternalIP in status.addresses: the kubelet reports it (--node-ip)');
  const network = ipv4ToNumber(podCidr.network);
  const overlay = parseCidr(settings.overlayCidr, 'overlayCidr');
  const rangeIndex = Math.floor((network - ipv4ToNumber(cluster.network)) / 2 ** (32 - podCidr.prefixLength));
  if (overlay.family !== 4 || rangeIndex + 2 >= 2 ** (32 - overlay.prefixLength)) {
    return problems.add(at, `spec.podCIDR ${cidrText} is pod range ${rangeIndex} of the cluster's; the overlay ${settings.overlayCidr} (overlayCidr) numbers fewer: widen it`);
  }
  const last = network + 2 ** (32 - podCidr.prefixLength) - 1;
  return {
    name,
    address,
    podCidr,
    podCidrText: `${ipv4FromNumber(network)}/${podCidr.prefixLength}`,
    uplink: node.metadata?.annotations?.[UPLINK_ANNOTATION] ?? settings.uplink,
    gateway: ipv4FromNumber(network + 1),
    vxlanAddress: `${ipv4FromNumber(ipv4ToNumber(overlay.network) + rangeIndex + 1)}/${overlay.prefixLength}`,
    clusterSnatAddress: ipv4FromNumber(last - 1),
    hostAddress: ipv4FromNumber(last - 2),
    vxlanMac: vxlanMac(name),
    routerMac: derivedMac(`k8s-router-node/${name}`),
    podRange: { start: ipv4FromNumber(network + 2), end: ipv4FromNumber(last - 3) },
    names: nodeNames(name),
  };
}

/** The MAC of a node's router on the VXLAN overlay. */
export function vxlanMac(node: string): string {
  return derivedMac(`k8s-vxlan/${node}`);
}

// The Kubernetes cluster as netcube chains: one chain per node, the NetSoft'22
// layout (polykube's), written whole from the cluster's state every time. Pure: the
// state in, chains and problems out; no API server, no etcd. The controller and the
// tests share it.
//
//   pods' veths ─[firewall]─ pods (lbrp: ClusterIP, a frontend per pod) up ─ pods (router) vxlan ─ netdev:<vxlan>
//   netdev:nchost-c ─ host ┘                                                 node ─ rt (lbrp: NodePort) ext ─ int (dispatcher) ext ─ netdev:<uplink>
//
// - A pod's packets enter the pods' lbrp through the pod's port, past the firewall
//   its NetworkPolicies make (if any): to a ClusterIP they go to a backend, the
//   client's address kept; everything goes on to the router.
// - The node's kernel is a frontend of the pods' lbrp too (nodes.ts's HOST_LINK): its
//   packets to pods (kubelet's probes) come in as a pod's do.
// - The router routes by destination: the node's pods and its kernel (the node's
//   own address too) back through the lbrp (which finds the port by the address),
//   another node's pod range over VXLAN (the next hop is that node's router), the
//   rest towards the dispatcher.
// - The NodePort lbrp answers for NodePorts at the node's address (their answers go
//   back out as the node's address) and passes the rest to its default frontend.
// - The dispatcher (polykube's "k8s dispatcher") is the node's edge: towards the
//   uplink it gives pods' packets to the outside the node's address (masquerade,
//   ports of ClusterSettings.masqueradePorts) and sends them by the kernel's routes
//   and neighbours; from the uplink it takes into the chain only NodePort traffic
//   and the answers to masqueraded flows, and gives everything else (the node's own
//   traffic, VXLAN) to the node's kernel. NodePort traffic of
//   externalTrafficPolicy Cluster takes the node's cluster SNAT address as its
//   source, so that a backend on another node answers through this one; Local
//   keeps the client's address.
//
// Both NATs are the dispatcher's, not nat cubes stacked beside it: the two ways in
// (NodePort from anywhere, answers to pods) would need two links between the
// NodePort lbrp and the edge, a loop to the chain validator, and a nat's SNAT rules
// choose by source alone, which cannot tell the two apart on one link.

import { CHAIN_API_VERSION, CHAIN_KIND, type AttachmentSpec, type Chain, type CubeSpec, type JsonObject, type LinkSpec } from '@netcube/api/chain';
import type { StoredPodPort } from '@netcube/api/store';
import { HOST_LINK, NODE_LINK, nodeModel, type ClusterSettings, type NodeModel } from './nodes';
import { keyOf, type KubeEndpointSlice, type KubeNamespace, type KubeNetworkPolicy, type KubeNode, type KubePod, type KubeService } from './objects';
import { placePods, type Placement } from './pods';
import { podFirewalls } from './policy';
import { Problems, type Problem } from './problems';
import { clusterIpServices, nodePortServices, serviceModels } from './services';

/** Everything the chains derive from. */
export interface ClusterState {
  nodes: readonly KubeNode[];
  pods: readonly KubePod[];
  namespaces: readonly KubeNamespace[];
  services: readonly KubeService[];
  endpointSlices: readonly KubeEndpointSlice[];
  networkPolicies: readonly KubeNetworkPolicy[];
  /** The pod ports hosts recorded (store/pod-ports.ts). */
  podPorts: readonly StoredPodPort[];
}

export interface ClusterChains {
  /** One chain per node that can carry pods, by node name. */
  chains: Map<string, Chain>;
  nodes: Map<string, NodeModel>;
  placement: Placement;
  problems: Problem[];
}

/** The cube type of the dispatcher (bpf/cubes/k8sdispatcher.bpf.c). */
export const DISPATCHER_TYPE = 'k8sdispatcher';
/** A cube has at most 32 ports (NC_MAX_PORTS): two are the pods' lbrp's way up and the node kernel's. */
export const MAX_PODS_PER_NODE = 30;

const PORTS = {
  pods: { up: 'up' },
  router: { pods: 'pods', vxlan: 'vxlan', node: 'node' },
  nodePorts: { backends: 'rt', outside: 'ext' },
  dispatcher: { uplink: 'ext', inside: 'int' },
} as const;

export interface ChainOptions {
  /**
   * Place each node's edge (the NodePort lbrp and the dispatcher). Without it the
   * chain carries pod-to-pod and ClusterIP traffic only: the router's way to the
   * node goes nowhere, so NodePorts and pod → outside do not work (the controller
   * leaves the edge out while the dispatcher's cube type is not registered).
   */
  edge: boolean;
}

export function clusterChains(state: ClusterState, settings: ClusterSettings, options: ChainOptions = { edge: true }): ClusterChains {
  const problems = new Problems();
  if (!options.edge) problems.add('cluster', `NodePort services and pod → outside masquerade are off: cube type ${DISPATCHER_TYPE} is not registered`);
  const nodes = new Map<string, NodeModel>();
  for (const n of [...state.nodes].sort((a, b) => cmp(keyOf(a), keyOf(b)))) {
    const model = nodeModel(n, settings, problems);
    if (model) nodes.set(model.name, model);
  }
  const placement = placePods(state.pods, state.podPorts, nodes, problems);
  const services = serviceModels(state.services, state.endpointSlices, problems);
  const firewalls = podFirewalls(placement, state.networkPolicies, state.namespaces, services, new Map([...nodes.values()].map((m) => [m.name, m.hostAddress])), problems);
  const clusterIps = clusterIpServices(services);

  const chains = new Map<string, Chain>();
  for (const node of nodes.values()) {
    const n = node.names;
    let pods = placement.byNode.get(node.name) ?? [];
    if (pods.length > MAX_PODS_PER_NODE) {
      for (const p of pods.slice(MAX_PODS_PER_NODE)) problems.add(`Pod ${p.namespace}/${p.name}`, `node ${node.name} has ${pods.length} pods; netcube places ${MAX_PODS_PER_NODE} per node (ports of a cube)`);
      pods = pods.slice(0, MAX_PODS_PER_NODE);
    }
    const cubes: CubeSpec[] = [];
    const links: LinkSpec[] = [];
    const attachments: AttachmentSpec[] = [];
    const cube = (name: string, type: string, ports: string[], params: object): void => {
      cubes.push({ name, host: node.name, type, mode: 'tc', ports, logLevel: 'info', params: params as JsonObject });
    };
    const link = (from: string, to: string): void => {
      links.push({ from, to });
    };

    cube(n.pods, 'lbrp', [PORTS.pods.up, HOST_LINK.port, ...pods.map((p) => p.port)], {
      backendPort: PORTS.pods.up,
      frontends: { [HOST_LINK.port]: { hosts: [node.hostAddress, node.address] }, ...Object.fromEntries(pods.map((p) => [p.port, { hosts: [p.address] }])) },
      services: clusterIps,
    });
    link(`netdev:${HOST_LINK.chain}`, `${n.pods}:${HOST_LINK.port}`);
    for (const p of pods) {
      link(`netdev:${p.port}`, `${n.pods}:${p.port}`);
      const firewall = firewalls.get(`${p.namespace}/${p.name}`);
      if (!firewall) continue;
      cube(n.firewall(p.port), 'firewall', [], firewall);
      attachments.push({ cube: n.firewall(p.port), to: `${n.pods}:${p.port}`, direction: 'both' });
    }

    const others = [...nodes.values()].filter((o) => o.name !== node.name);
    cube(n.router, 'router', Object.values(PORTS.router), {
      ports: {
        [PORTS.router.pods]: { address: `${node.gateway}/${node.podCidr.prefixLength}` },
        [PORTS.router.vxlan]: { address: node.vxlanAddress, mac: node.vxlanMac },
        [PORTS.router.node]: { address: NODE_LINK.router, mac: node.routerMac },
      },
      routes: [
        ...others.map((o) => ({ prefix: o.podCidrText, nexthop: o.vxlanAddress.split('/')[0], port: PORTS.router.vxlan })),
        // The node's own address: its kernel, through the pods' lbrp.
        { prefix: `${node.address}/32`, nexthop: node.hostAddress, port: PORTS.router.pods },
        // Answers to NodePort clients this node gave its cluster SNAT address: back to the NodePort lbrp.
        { prefix: `${node.clusterSnatAddress}/32`, nexthop: NODE_LINK.gateway, port: PORTS.router.node },
        { prefix: '0.0.0.0/0', nexthop: NODE_LINK.gateway, port: PORTS.router.node },
      ],
    });
    link(`${n.pods}:${PORTS.pods.up}`, `${n.router}:${PORTS.router.pods}`);
    link(`${n.router}:${PORTS.router.vxlan}`, `netdev:${settings.vxlanNetdev}`);

    chains.set(node.name, { apiVersion: CHAIN_API_VERSION, kind: CHAIN_KIND, metadata: { name: n.chain }, spec: { cubes, links, attachments } });
    if (!options.edge) continue;

    const nodePorts = nodePortServices(services, node.name, node.address);
    cube(n.nodePorts, 'lbrp', Object.values(PORTS.nodePorts), {
      backendPort: PORTS.nodePorts.backends,
      defaultFrontend: PORTS.nodePorts.outside,
      services: nodePorts.services,
    });
    link(`${n.router}:${PORTS.router.node}`, `${n.nodePorts}:${PORTS.nodePorts.backends}`);

    cube(n.dispatcher, DISPATCHER_TYPE, Object.values(PORTS.dispatcher), {
      uplinkPort: PORTS.dispatcher.uplink,
      nodeAddress: node.address,
      clusterCidr: settings.clusterCidr,
      masqueradePorts: settings.masqueradePorts,
      clusterSnatAddress: node.clusterSnatAddress,
      gateway: NODE_LINK.gateway,
      routerMac: node.routerMac,
      nodePorts: nodePorts.rules,
    });
    link(`${n.nodePorts}:${PORTS.nodePorts.outside}`, `${n.dispatcher}:${PORTS.dispatcher.inside}`);
    link(`${n.dispatcher}:${PORTS.dispatcher.uplink}`, `netdev:${node.uplink}`);
  }
  return { chains, nodes, placement, problems: problems.list };
}


function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Services and their EndpointSlices as load-balancer services (lbrp's config,
// proto/netcube/lbrp/v1): every ClusterIP on the pods' lbrp of every node, every
// NodePort on the NodePort lbrp of every node at the node's address. As kube-proxy:
// only ready endpoints receive new flows; externalTrafficPolicy Local sends a node's
// NodePort traffic to that node's endpoints only, and keeps the client's address;
// Cluster to every endpoint, from the node's own address (the dispatcher's SNAT),
// so that the answers come back through this node. IPv4 only, as the router.

import { keyOf, type KubeEndpointSlice, type KubeService, type ServicePort } from './objects';
import { Problems } from './problems';

export interface LbBackend {
  address: string;
  port: number;
  weight?: number;
}

export interface LbService {
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  backends: LbBackend[];
  affinitySeconds?: number;
}

export interface NodePortRule {
  protocol: 'tcp' | 'udp' | 'sctp';
  port: number;
  /** externalTrafficPolicy Cluster: the node's address takes the client's (SNAT). */
  cluster: boolean;
}

interface Endpoint {
  address: string;
  port: number;
  node?: string;
}

interface ServiceModel {
  key: string;
  clusterIps: string[];
  port: ServicePort;
  protocol: LbService['protocol'];
  endpoints: Endpoint[];
  nodePort?: number;
  local: boolean;
  affinitySeconds?: number;
}

const PROTOCOLS = new Map<string, LbService['protocol']>([
  ['TCP', 'tcp'],
  ['UDP', 'udp'],
  ['SCTP', 'sctp'],
]);

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const DEFAULT_AFFINITY_SECONDS = 10_800;

/** Each port of each Service with its ready endpoints. */
export function serviceModels(services: readonly KubeService[], slices: readonly KubeEndpointSlice[], problems: Problems): ServiceModel[] {
  const slicesOf = new Map<string, KubeEndpointSlice[]>();
  for (const s of slices) {
    const owner = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!owner || s.addressType !== 'IPv4') continue;
    const key = `${s.metadata?.namespace}/${owner}`;
    slicesOf.set(key, [...(slicesOf.get(key) ?? []), s]);
  }
  const models: ServiceModel[] = [];
  for (const svc of services) {
    const spec = svc.spec ?? {};
    const key = keyOf(svc);
    if (spec.type === 'ExternalName') continue;
    const clusterIps = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((ip) => ip && ip !== 'None' && !ip.includes(':'));
    if (clusterIps.length === 0) continue; // headless: DNS only
    const nodePorts = spec.type === 'NodePort' || spec.type === 'LoadBalancer';
    for (const port of spec.ports ?? []) {
      const protocol = PROTOCOLS.get(port.protocol ?? 'TCP');
      if (!protocol || !port.port) {
        problems.add(`Service ${key}`, `port ${port.name ?? port.port}: protocol ${port.protocol} is not TCP, UDP or SCTP`);
        continue;
      }
      const endpoints = new Map<string, Endpoint>();
      for (const slice of slicesOf.get(key) ?? []) {
        const slicePort = (slice.ports ?? []).find((p) => (p.name ?? '') === (port.name ?? '') && (p.protocol ?? 'TCP') === (port.protocol ?? 'TCP'));
        if (!slicePort?.port) continue;
        for (const e of slice.endpoints ?? []) {
          // The API: a nil ready condition means ready.
          if (e.conditions?.ready === false) continue;
          for (const address of e.addresses ?? []) endpoints.set(`${address}:${slicePort.port}`, { address, port: slicePort.port, node: e.nodeName });
        }
      }
      models.push({
        key,
        clusterIps,
        port,
        protocol,
        endpoints: [...endpoints.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port)),
        nodePort: nodePorts ? port.nodePort : undefined,
        local: spec.externalTrafficPolicy === 'Local',
        affinitySeconds: spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS) : undefined,
      });
    }
  }
  return models;
}

const backends = (endpoints: readonly Endpoint[]): LbBackend[] => endpoints.map((e) => ({ address: e.address, port: e.port }));

/** The ClusterIP services every node's pods lbrp holds. */
export function clusterIpServices(models: readonly ServiceModel[]): LbService[] {
  return models.flatMap((m) =>
    m.clusterIps.map((vip) => ({ vip, port: m.port.port!, protocol: m.protocol, backends: backends(m.endpoints), ...(m.affinitySeconds ? { affinitySeconds: m.affinitySeconds } : {}) })),
  );
}

/** The NodePort services of one node (at its address), and what its dispatcher takes in. */
export function nodePortServices(models: readonly ServiceModel[], node: string, nodeAddress: string): { services: LbService[]; rules: NodePortRule[] } {
  const services: LbService[] = [];
  const rules: NodePortRule[] = [];
  for (const m of models) {
    if (!m.nodePort) continue;
    const endpoints = m.local ? m.endpoints.filter((e) => e.node === node) : m.endpoints;
    services.push({ vip: nodeAddress, port: m.nodePort, protocol: m.protocol, backends: backends(endpoints), ...(m.affinitySeconds ? { affinitySeconds: m.affinitySeconds } : {}) });
    rules.push({ protocol: m.protocol, port: m.nodePort, cluster: !m.local });
  }
  return { services, rules };
}

export type { ServiceModel };

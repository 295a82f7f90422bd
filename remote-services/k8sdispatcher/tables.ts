// k8sdispatcher config -> the tables of bpf/cubes/k8sdispatcher.bpf.c (disp_config,
// disp_node_ports). Pure (no kernel, no SDK): the data-plane tests and the control
// plane share it. The fast path does all per-flow work (ports, sessions,
// checksums, routes); config only says who the node is and which NodePorts it takes.

import { FieldError, arrayAt, integerAt, objectAt, onlyKnown, parseAddress, parsePortRange, parsePrefix, parseProtocol, PORT_PROTOCOLS, prefixContains, type Address } from '@netcube/catalog/fields';
import { addressText } from '@netcube/api/fields';

/** disp_node_ports' size (k8sdispatcher.bpf.c). */
export const MAX_NODE_PORTS = 4096;

export interface NodePortRule {
  protocol: string;
  port: number;
  /** externalTrafficPolicy Cluster: the client's address becomes clusterSnatAddress. */
  cluster?: boolean;
}

/** The params the Kubernetes controller writes (remote-services/k8s/src/model/chains.ts). */
export interface DispatcherConfig {
  uplinkPort: string;
  nodeAddress: string;
  clusterCidr: string;
  masqueradePorts: string;
  clusterSnatAddress: string;
  gateway: string;
  routerMac: string;
  nodePorts?: NodePortRule[];
}

export interface CompileOptions {
  /** The cube's ports by name -> data-plane index. */
  ports: Record<string, number>;
  /** The cube's own MAC on the chain's side (what its ARP answers give). */
  gatewayMac: string;
}

export interface TableEntry {
  key: unknown;
  value: unknown;
}

export interface DispatcherTables {
  disp_config: TableEntry[];
  disp_node_ports: TableEntry[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function ipv4At(value: unknown, field: string): Address {
  const a = parseAddress(value, field);
  if (a.family !== 4) throw new FieldError(field, `${value} is IPv6: the dispatcher is IPv4 only, as the node's router`);
  return a;
}

function macAt(value: unknown, field: string): string {
  if (typeof value !== 'string' || !MAC.test(value)) throw new FieldError(field, `expected a MAC like '02:00:00:00:00:01', got ${JSON.stringify(value)}`);
  if (parseInt(value.slice(0, 2), 16) & 1) throw new FieldError(field, `${value} is a multicast MAC: a port's MAC is unicast`);
  return value.toLowerCase();
}

/** Checks a dispatcher config and compiles its tables; errors name the field ("nodePorts[2].port"). */
export function compileDispatcher(config: unknown, opts: CompileOptions): DispatcherTables {
  const c = objectAt(config ?? {}, '');
  onlyKnown(c, ['uplinkPort', 'nodeAddress', 'clusterCidr', 'masqueradePorts', 'clusterSnatAddress', 'gateway', 'routerMac', 'nodePorts', 'conntrack'], '');
  const names = Object.keys(opts.ports);
  if (names.length !== 2) throw new FieldError('', `a k8sdispatcher has two ports, its uplink's and the chain's; this one has ${names.length} (${names.join(', ') || 'none'})`);
  if (typeof c.uplinkPort !== 'string' || !(c.uplinkPort in opts.ports)) {
    throw new FieldError('uplinkPort', `expected one of the cube's ports (${names.join(', ')}), got ${JSON.stringify(c.uplinkPort)}`);
  }
  const chainPort = names.find((n) => n !== c.uplinkPort)!;
  const node = ipv4At(c.nodeAddress, 'nodeAddress');
  const cluster = parsePrefix(c.clusterCidr, 'clusterCidr');
  if (cluster.family !== 4) throw new FieldError('clusterCidr', `${c.clusterCidr} is IPv6: the dispatcher is IPv4 only`);
  if (prefixContains(cluster, node)) throw new FieldError('nodeAddress', `${c.nodeAddress} is inside the cluster's pod range ${c.clusterCidr}: a node's address is outside it`);
  const ports = parsePortRange(c.masqueradePorts, 'masqueradePorts');
  if (ports.first < 1024) throw new FieldError('masqueradePorts', `${c.masqueradePorts} starts below 1024: masquerade with ports outside the well-known ones and the node's own ephemeral range`);
  const snat = ipv4At(c.clusterSnatAddress, 'clusterSnatAddress');
  if (!prefixContains(cluster, snat)) throw new FieldError('clusterSnatAddress', `${c.clusterSnatAddress} is outside the cluster's pod range ${c.clusterCidr}: the backends' answers must come back through this node`);
  const gateway = ipv4At(c.gateway, 'gateway');
  const routerMac = macAt(c.routerMac, 'routerMac');

  const seen = new Map<string, number>();
  const nodePorts: TableEntry[] = [];
  arrayAt(c.nodePorts ?? [], 'nodePorts').forEach((raw, i) => {
    const at = `nodePorts[${i}]`;
    const r = objectAt(raw, at);
    onlyKnown(r, ['protocol', 'port', 'cluster'], at);
    const proto = parseProtocol(r.protocol, `${at}.protocol`);
    if (!PORT_PROTOCOLS.has(proto)) throw new FieldError(`${at}.protocol`, `a NodePort is tcp, udp or sctp, got ${JSON.stringify(r.protocol)}`);
    const port = integerAt(r.port, 1, 65535, `${at}.port`);
    if (r.cluster !== undefined && typeof r.cluster !== 'boolean') throw new FieldError(`${at}.cluster`, `expected true or false, got ${JSON.stringify(r.cluster)}`);
    const id = `${proto}/${port}`;
    const dup = seen.get(id);
    if (dup !== undefined) throw new FieldError(at, `nodePorts[${dup}] has the same protocol and port`);
    seen.set(id, i);
    nodePorts.push({ key: { proto, pad: 0, port }, value: { cluster: r.cluster ? 1 : 0, pad: [0, 0, 0] } });
  });
  if (nodePorts.length > MAX_NODE_PORTS) throw new FieldError('nodePorts', `${nodePorts.length} NodePorts; a dispatcher holds ${MAX_NODE_PORTS}`);

  const mask = Buffer.alloc(4);
  mask.writeUInt32BE(cluster.length === 0 ? 0 : (0xffffffff << (32 - cluster.length)) >>> 0);
  return {
    disp_config: [
      {
        key: 0,
        value: {
          configured: 1,
          ext_port: opts.ports[c.uplinkPort],
          int_port: opts.ports[chainPort],
          node_addr: addressText(node.bytes),
          cluster_net: addressText(cluster.bytes),
          cluster_mask: addressText(mask),
          cluster_snat: addressText(snat.bytes),
          gateway: addressText(gateway.bytes),
          port_min: ports.first,
          port_max: ports.last,
          router_mac: routerMac,
          gateway_mac: macAt(opts.gatewayMac, 'gatewayMac'),
        },
      },
    ],
    disp_node_ports: nodePorts,
  };
}

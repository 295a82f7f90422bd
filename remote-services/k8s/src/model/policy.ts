// NetworkPolicy (networking.k8s.io/v1) as firewall config (proto/netcube/firewall/v1)
// for the firewall stacked on a pod's port, as pcn-k8s did. The firewall sits
// between the pod's veth and the pods' lbrp: its `ingress` rules see what the pod
// sends (the policy's Egress), its `egress` rules what the pod receives (the
// policy's Ingress).
//
// The semantics are the API's: a pod selected by a policy of a type is isolated in
// that direction, and then only what some rule of a policy selecting it allows
// gets through (the union); answers to allowed connections always do
// (acceptEstablished). A rule with no peers allows every peer, with no ports every
// port. A peer is pods (podSelector in the policy's namespace; namespaceSelector
// for all pods of those namespaces; both: those pods of those namespaces) or an
// ipBlock (cidr less its except prefixes). A named port is the port of that name
// of the pod that receives: the selected pod for Ingress, the peer pod for Egress.
//
// A pod isolated for Ingress still takes what its own node's kernel sends it
// (kubelet's probes, from the node's host address): Kubernetes asks that of a
// network plugin, and Calico and Cilium allow it the same way.
//
// The pod's packets to a ClusterIP pass the firewall before the lbrp picks a
// backend, so an Egress rule sees the service's address, not the pod's: a
// ClusterIP port is allowed when the rules allow every one of its endpoints
// (address, port, protocol). IPv4 only, as the router.

import { cidrContains, ipv4FromNumber, ipv4ToNumber, parseCidr } from '@netcube/sdk/packet';
import type { KubeNamespace, KubeNetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from './objects';
import { keyOf } from './objects';
import type { Placement, PlacedPod } from './pods';
import { Problems } from './problems';
import { selects } from './selectors';
import type { ServiceModel } from './services';

export interface FirewallRule {
  action: 'accept' | 'drop';
  src?: string;
  dst?: string;
  protocol?: string;
  dport?: string;
}

export interface FirewallDirection {
  defaultAction: 'accept' | 'drop';
  acceptEstablished?: boolean;
  rules?: FirewallRule[];
}

export interface FirewallConfig {
  /** What the pod sends: the policies' Egress. */
  ingress: FirewallDirection;
  /** What the pod receives: the policies' Ingress. */
  egress: FirewallDirection;
}

/** The firewall's limit per direction (firewall.bpf.c). */
export const MAX_RULES = 10_000;

const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
const OPEN: FirewallDirection = { defaultAction: 'accept' };

/** A port a rule allows: protocol and a port or range as the firewall writes it; undefined fields: any. */
interface PortMatch {
  protocol?: string;
  dport?: string;
}

/** The firewall of each pod some policy isolates, by `namespace/name`. */
export function podFirewalls(
  placement: Placement,
  policies: readonly KubeNetworkPolicy[],
  namespaces: readonly KubeNamespace[],
  services: readonly ServiceModel[],
  /** Each node's host address (NodeModel.hostAddress), by node name. */
  hostAddresses: ReadonlyMap<string, string>,
  problems: Problems,
): Map<string, FirewallConfig> {
  const nsLabels = new Map(namespaces.map((n) => [n.metadata?.name ?? '', { [NAMESPACE_NAME_LABEL]: n.metadata?.name ?? '', ...(n.metadata?.labels ?? {}) }]));
  const pods = [...placement.byPod.values()];
  const peersOf = (peer: NetworkPolicyPeer, policyNs: string): PlacedPod[] => {
    const inNamespaces = peer.namespaceSelector
      ? pods.filter((p) => selects(peer.namespaceSelector!, nsLabels.get(p.namespace) ?? { [NAMESPACE_NAME_LABEL]: p.namespace }))
      : pods.filter((p) => p.namespace === policyNs);
    return peer.podSelector ? inNamespaces.filter((p) => selects(peer.podSelector!, p.labels)) : inNamespaces;
  };

  const ingressRules = new Map<string, FirewallRule[]>();
  const egressRules = new Map<string, FirewallRule[]>();
  for (const policy of policies) {
    const spec = policy.spec ?? {};
    const ns = policy.metadata?.namespace ?? '';
    const at = `NetworkPolicy ${keyOf(policy)}`;
    const types = spec.policyTypes ?? ['Ingress', ...(spec.egress ? ['Egress'] : [])];
    const targets = pods.filter((p) => p.namespace === ns && selects(spec.podSelector ?? {}, p.labels));
    for (const target of targets) {
      const key = `${target.namespace}/${target.name}`;
      if (types.includes('Ingress')) {
        const host = hostAddresses.get(target.node);
        const rules = ingressRules.get(key) ?? (host ? [{ action: 'accept' as const, src: `${host}/32` }] : []);
        ingressRules.set(key, rules);
        for (const [i, rule] of (spec.ingress ?? []).entries()) {
          for (const source of sources(rule.from, ns, peersOf, `${at} ingress[${i}]`, problems)) {
            for (const port of portMatches(rule.ports, target, `${at} ingress[${i}]`, problems)) rules.push({ action: 'accept', ...(source.prefix ? { src: source.prefix } : {}), ...port });
          }
        }
      }
      if (types.includes('Egress')) {
        const rules = egressRules.get(key) ?? [];
        egressRules.set(key, rules);
        for (const [i, rule] of (spec.egress ?? []).entries()) {
          for (const dest of sources(rule.to, ns, peersOf, `${at} egress[${i}]`, problems)) {
            // A named port is the destination pod's: unknown for an address block or any peer.
            for (const port of portMatches(rule.ports, dest.pod, `${at} egress[${i}]`, problems)) rules.push({ action: 'accept', ...(dest.prefix ? { dst: dest.prefix } : {}), ...port });
          }
        }
      }
    }
  }

  const firewalls = new Map<string, FirewallConfig>();
  for (const key of new Set([...ingressRules.keys(), ...egressRules.keys()])) {
    const inbound = ingressRules.get(key);
    let outbound = egressRules.get(key);
    if (outbound) outbound = [...outbound, ...serviceRules(outbound, services)];
    firewalls.set(key, {
      ingress: outbound ? isolated(outbound, `pod ${key} (Egress)`, problems) : OPEN,
      egress: inbound ? isolated(inbound, `pod ${key} (Ingress)`, problems) : OPEN,
    });
  }
  return firewalls;
}

function isolated(rules: FirewallRule[], at: string, problems: Problems): FirewallDirection {
  const unique = [...new Map(rules.map((r) => [JSON.stringify(r), r])).values()];
  if (unique.length > MAX_RULES) problems.add(at, `its policies make ${unique.length} firewall rules; the firewall holds ${MAX_RULES}: the rest are left out (their traffic is dropped)`);
  return { defaultAction: 'drop', acceptEstablished: true, rules: unique.slice(0, MAX_RULES) };
}

interface Peer {
  /** Undefined: any address. */
  prefix?: string;
  /** The pod, for its named ports. */
  pod?: PlacedPod;
}

function sources(peers: NetworkPolicyPeer[] | undefined, ns: string, peersOf: (p: NetworkPolicyPeer, ns: string) => PlacedPod[], at: string, problems: Problems): Peer[] {
  if (!peers || peers.length === 0) return [{}];
  const out: Peer[] = [];
  for (const [j, peer] of peers.entries()) {
    if (peer.ipBlock) {
      const cidr = peer.ipBlock.cidr ?? '';
      if (cidr.includes(':')) continue; // IPv6: the router carries none
      try {
        for (const prefix of subtract(cidr, (peer.ipBlock.except ?? []).filter((e) => !e.includes(':')))) out.push({ prefix });
      } catch (err) {
        problems.add(`${at} peer[${j}]`, `ipBlock: ${(err as Error).message}`);
      }
      continue;
    }
    for (const pod of peersOf(peer, ns)) out.push({ prefix: `${pod.address}/32`, pod });
  }
  return out;
}

function portMatches(ports: NetworkPolicyPort[] | undefined, pod: PlacedPod | undefined, at: string, problems: Problems): PortMatch[] {
  if (!ports || ports.length === 0) return [{}];
  const out: PortMatch[] = [];
  for (const [j, p] of ports.entries()) {
    const protocol = (p.protocol ?? 'TCP').toLowerCase();
    if (p.port === undefined) {
      out.push({ protocol });
      continue;
    }
    if (typeof p.port === 'number') {
      out.push({ protocol, dport: p.endPort && p.endPort > p.port ? `${p.port}-${p.endPort}` : String(p.port) });
      continue;
    }
    if (/^[0-9]+$/.test(p.port)) {
      out.push({ protocol, dport: p.port });
      continue;
    }
    // A named port: the receiving pod's container port of that name and protocol; none, no match.
    const named = pod?.containerPorts.find((c) => c.name === p.port && (c.protocol ?? 'TCP').toLowerCase() === protocol);
    if (named?.containerPort) out.push({ protocol, dport: String(named.containerPort) });
    else if (!pod) problems.add(`${at} ports[${j}]`, `named port ${p.port} only matches pods, not address blocks or every address`);
  }
  return out;
}

/** `cidr` less the `except` prefixes inside it, as the fewest prefixes. */
export function subtract(cidr: string, except: readonly string[]): string[] {
  const whole = parseCidr(cidr, 'cidr');
  if (whole.family !== 4) throw new RangeError(`${cidr} is not IPv4`);
  const holes = except.map((e, i) => {
    const c = parseCidr(e, `except[${i}]`);
    if (c.family !== 4 || c.prefixLength < whole.prefixLength || !cidrContains(whole, c.network)) throw new RangeError(`except[${i}] ${e} is not inside ${cidr}`);
    return { network: ipv4ToNumber(c.network), length: c.prefixLength };
  });
  const out: string[] = [];
  const walk = (network: number, length: number): void => {
    const size = 2 ** (32 - length);
    const overlapping = holes.filter((h) => {
      const hSize = 2 ** (32 - h.length);
      return h.network < network + size && network < h.network + hSize;
    });
    if (overlapping.length === 0) {
      out.push(`${ipv4FromNumber(network)}/${length}`);
      return;
    }
    // Wholly inside a hole: nothing of it is left.
    if (overlapping.some((h) => h.length <= length)) return;
    walk(network, length + 1);
    walk(network + size / 2, length + 1);
  };
  walk(ipv4ToNumber(whole.network), whole.prefixLength);
  return out;
}

/** Whether `rules` accept a packet to `address`:`port`/`protocol`. */
function accepts(rules: readonly FirewallRule[], address: string, port: number, protocol: string): boolean {
  return rules.some((r) => {
    if (r.protocol && r.protocol !== protocol) return false;
    if (r.dst && !cidrContains(r.dst, address)) return false;
    if (r.dport) {
      const [first, last] = r.dport.split('-').map(Number);
      if (port < first || port > (last ?? first)) return false;
    }
    return true;
  });
}

/** Rules for the ClusterIP ports whose every endpoint `rules` accept. */
function serviceRules(rules: readonly FirewallRule[], services: readonly ServiceModel[]): FirewallRule[] {
  const out: FirewallRule[] = [];
  for (const s of services) {
    if (s.endpoints.length === 0) continue;
    if (!s.endpoints.every((e) => accepts(rules, e.address, e.port, s.protocol))) continue;
    for (const vip of s.clusterIps) out.push({ action: 'accept', dst: `${vip}/32`, protocol: s.protocol, dport: String(s.port.port) });
  }
  return out;
}

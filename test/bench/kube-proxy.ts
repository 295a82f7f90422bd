// The NAT rules kube-proxy's iptables mode writes for ClusterIP services, as
// iptables-restore input: the baseline of lb.conn_ratio (and of the Kubernetes
// provider's service benchmarks). Per service port, one rule in KUBE-SERVICES
// that jumps to its KUBE-SVC-* chain; there, the masquerade mark for sources
// outside the cluster, then one KUBE-SEP-* chain per endpoint chosen by `-m
// statistic --mode random` with the probabilities kube-proxy computes (1/n,
// 1/(n-1), ..., the last unconditional); each KUBE-SEP-* marks hairpin traffic
// and DNATs. The first packet of a connection walks KUBE-SERVICES in order, one
// rule per service until its own; the rest of the connection is conntrack's.
// Chain names are KUBE-SVC-/KUBE-SEP- with 16 base32 characters of a hash, as
// kube-proxy makes them.
import { createHash } from 'node:crypto';

export interface ClusterIpService {
  namespace: string;
  name: string;
  vip: string;
  port: number;
  protocol: 'tcp' | 'udp';
  endpoints: { address: string; port: number }[];
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * `count` ClusterIP services of a benchmark: port 80/TCP, their addresses
 * 10.96.0.0 up in order, three endpoints each on `targetPort` at 10.101-103.x.y,
 * where nothing answers; the measured one, at `probe`, has `probeEndpoints`.
 */
export function benchServices(count: number, namespace: string, targetPort: number, probe: number, probeEndpoints: readonly string[]): ClusterIpService[] {
  return Array.from({ length: count }, (_, i) => ({
    namespace,
    name: `svc-${i}`,
    vip: `10.96.${i >> 8}.${i & 0xff}`,
    port: 80,
    protocol: 'tcp' as const,
    endpoints: (i === probe ? probeEndpoints : [1, 2, 3].map((b) => `10.${100 + b}.${i >> 8}.${i & 0xff}`)).map((address) => ({ address, port: targetPort })),
  }));
}

/** KUBE-SVC-/KUBE-SEP- + 16 base32 characters of sha256(what), as kube-proxy names its chains. */
function chainName(prefix: string, what: string): string {
  const hash = createHash('sha256').update(what).digest();
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 16) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length === 16) break;
  }
  return `${prefix}-${out}`;
}

/** The nat table kube-proxy writes for `services`, for iptables-restore (`clusterCidr`: sources not masqueraded). */
export function kubeProxyNatRules(services: readonly ClusterIpService[], clusterCidr: string): string {
  const chains = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];
  const rules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  const perService: string[] = [];
  for (const s of services) {
    const id = `${s.namespace}/${s.name}:${s.protocol}`;
    const svc = chainName('KUBE-SVC', `${id}${s.protocol}`);
    chains.push(svc);
    rules.push(`-A KUBE-SERVICES -d ${s.vip}/32 -p ${s.protocol} -m comment --comment "${id} cluster IP" -m ${s.protocol} --dport ${s.port} -j ${svc}`);
    perService.push(`-A ${svc} ! -s ${clusterCidr} -d ${s.vip}/32 -p ${s.protocol} -m comment --comment "${id} cluster IP" -m ${s.protocol} --dport ${s.port} -j KUBE-MARK-MASQ`);
    s.endpoints.forEach((e, i) => {
      const sep = chainName('KUBE-SEP', `${id}${s.protocol}${e.address}:${e.port}`);
      chains.push(sep);
      const left = s.endpoints.length - i;
      const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(11)}` : '';
      perService.push(`-A ${svc} -m comment --comment "${id} -> ${e.address}:${e.port}"${pick} -j ${sep}`);
      perService.push(`-A ${sep} -s ${e.address}/32 -m comment --comment "${id}" -j KUBE-MARK-MASQ`);
      perService.push(`-A ${sep} -p ${s.protocol} -m comment --comment "${id}" -m ${s.protocol} -j DNAT --to-destination ${e.address}:${e.port}`);
    });
  }
  rules.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ...chains.map((c) => `:${c} - [0:0]`),
    ...rules,
    ...perService,
    'COMMIT',
    '',
  ].join('\n');
}

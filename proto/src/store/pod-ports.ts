// Pod ports: the veths a CNI plugin (netcube-cni) made on a host for pods, each
// recorded under the host's own keys (pods/<host>/<netdev>), which only that host's
// identity may write (store/access.ts). A host cannot write a chain on a locked-down
// etcd; the controller that owns the node's chain (remote-services/k8s) reads these
// records and places each port in it: a link from the veth to a port of the node's
// pod-facing cube, the pod's address behind that port, its firewall. Removing a
// record (CNI DEL) is the whole of what a host needs to do to take a pod out of the
// desired state, with or without its netcubed.
//
// A record is input from a host, which may be hostile to other hosts: decode()
// checks its shape; the controller checks what it claims (the pod on that node, an
// address of that node's pod range) before it uses it.

import { CompareResult } from 'etcd3';
import { absent, decode, deleteOp, Etcd, KeyValue, prefixOp, putOp } from './etcd';
import { StoreError, ValidationError } from './errors';
import { podPortKey, podPortsPrefix, PODS_PREFIX } from './keys';
import { PrefixWatch } from './watch';
import { hostNameProblem, ifnameProblem } from '../names';

export interface PodPortValue {
  /** The host end of the pod's veth (the key's last segment). */
  netdev: string;
  /** The pod as the container runtime names it (CNI_ARGS K8S_POD_NAMESPACE, K8S_POD_NAME; empty outside Kubernetes). */
  namespace: string;
  pod: string;
  /** The CNI attachment: container (sandbox) id and the interface name inside it. */
  containerId: string;
  ifname: string;
  /** The pod's addresses, `a.b.c.d/len` or IPv6, as IPAM gave them. */
  addresses: string[];
  /** The MAC of the pod's interface. */
  mac: string;
  createdAt: string;
}

export interface StoredPodPort extends PodPortValue {
  host: string;
  /** etcd revision of the write. */
  revision: number;
}

export type PodPortWatch = PrefixWatch<StoredPodPort>;

/** Bounds on what a host may claim in one record. */
const MAX_ADDRESSES = 4;
const MAX_TEXT = 253;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** The problem with a record, naming the field, or undefined. */
export function podPortProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'a pod port must be an object';
  const v = value as Record<string, unknown>;
  const text = (field: string, allowEmpty = false): string | undefined => {
    const s = v[field];
    if (typeof s !== 'string' || (!allowEmpty && s.length === 0) || s.length > MAX_TEXT) return `${field} must be a string of ${allowEmpty ? 0 : 1} to ${MAX_TEXT} characters`;
    return undefined;
  };
  const problem =
    text('netdev') ??
    ifnameProblem(v.netdev as string) ??
    text('namespace', true) ??
    text('pod', true) ??
    text('containerId') ??
    text('ifname') ??
    text('mac') ??
    text('createdAt');
  if (problem) return problem;
  if (!MAC_RE.test(v.mac as string)) return `mac ${JSON.stringify(v.mac)} is not a MAC address in lower-case hex (aa:bb:cc:dd:ee:ff)`;
  const addresses = v.addresses;
  if (!Array.isArray(addresses) || addresses.length === 0 || addresses.length > MAX_ADDRESSES || addresses.some((a) => typeof a !== 'string' || a.length === 0 || a.length > 64)) {
    return `addresses must list 1 to ${MAX_ADDRESSES} addresses`;
  }
  return undefined;
}

export class PodPorts {
  constructor(private readonly etcd: Etcd) {}

  /** Records (or replaces) `value` as a pod port of `host`; as `host`'s identity on a locked-down etcd. */
  async put(host: string, value: PodPortValue): Promise<StoredPodPort> {
    checkHost(host);
    const problem = podPortProblem(value);
    if (problem) throw new ValidationError(`pod port of host ${host}: ${problem}`);
    const { revision } = await this.etcd.write(`record pod port ${value.netdev} of host ${host}`, [], [putOp(podPortKey(host, value.netdev), value)]);
    return { ...value, host, revision };
  }

  /** Forgets a pod port; true if it was recorded. */
  async delete(host: string, netdev: string): Promise<boolean> {
    checkHost(host);
    const key = podPortKey(host, netdev);
    const { succeeded } = await this.etcd.write(`forget pod port ${netdev} of host ${host}`, [present(key)], [deleteOp(key)]);
    return succeeded;
  }

  /** The pod ports of `host`, or of every host. */
  async list(host?: string): Promise<StoredPodPort[]> {
    if (host !== undefined) checkHost(host);
    const prefix = host === undefined ? PODS_PREFIX : podPortsPrefix(host);
    const { ranges } = await this.etcd.read(`read the pod ports of ${host === undefined ? 'every host' : `host ${host}`}`, [prefixOp(prefix)]);
    return ranges[0].map(decodePodPort);
  }

  /** Every host's pod ports as put/delete events named `<host>/<netdev>`; begins with a put for each. */
  watch(): PodPortWatch {
    return new PrefixWatch(this.etcd, PODS_PREFIX, decodePodPort, 'pod ports');
  }
}

/** The key exists (now). */
function present(key: string): ReturnType<typeof absent> {
  return { ...absent(key), result: CompareResult.Greater };
}

function checkHost(host: string): void {
  const problem = typeof host === 'string' ? hostNameProblem(host) : 'host must be a string';
  if (problem) throw new ValidationError(problem);
}

export function decodePodPort(kv: KeyValue): StoredPodPort {
  const [host, netdev] = kv.key.slice(PODS_PREFIX.length).split('/');
  const value = decode<PodPortValue>(kv);
  const problem = podPortProblem(value) ?? (value.netdev !== netdev ? `netdev ${JSON.stringify(value.netdev)} is not the key's ${netdev}` : undefined);
  if (problem) throw new StoreError(`pod port at ${kv.key}: ${problem}; delete it (netcube-cni DEL, or etcdctl)`);
  return { ...value, host, revision: kv.modRevision };
}

// netcube-cni: a CNI plugin (spec 1.0.0 ADD, DEL, CHECK, VERSION; 1.1.0 STATUS, GC)
// that joins a pod to its node's netcube chain.
//
// ADD: IPAM by the config's `ipam` plugin (host-local); the veth, its pod end in the
// pod's namespace with the addresses and a default route via the gateway; then the
// pod port recorded under the node's own etcd keys (store/pod-ports.ts, with the
// node's certificate: a host identity may write nothing else that matters), where
// the Kubernetes controller finds it and puts the port into the node's chain. ADD
// returns once the node's data plane forwards for the pod: netcubed (its unix
// socket) runs the port linked to the veth, and the pods' lbrp sends the pod's
// address out of it. Past readyTimeoutSeconds it fails with "try again later" (11)
// and what is missing; the runtime then calls DEL.
//
// DEL needs neither netcubed nor the controller: it releases the IPAM lease, deletes
// the veth and forgets the record, each of which may be gone already. GC does the
// same for every attachment of this node the runtime no longer lists.
//
//   {"cniVersion": "1.0.0", "name": "netcube", "type": "netcube-cni",
//    "host": "n1",                                  the node (netcubed's --name)
//    "etcd": {"endpoints": ["https://10.0.0.1:2379"], "tlsCa": ..., "tlsCert": ..., "tlsKey": ...},
//    "socket": "/run/netcube/n1/netcubed.sock",     default: /run/netcube/<host>/netcubed.sock
//    "mtu": 1450, "readyTimeoutSeconds": 60,
//    "podNamespace": "default",                     for runtimes that do not pass K8S_POD_NAMESPACE
//    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1", ...}]]}}

import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { NetcubeClient } from '@netcube/api/grpc/client';
import { Store, type StoredPodPort } from '@netcube/api/store';
import { nodeNames } from '../model/nodes';
import { CNI_CODES, CniError } from './errors';
import { delegate, findPlugin, type IpamResult } from './ipam';
import { deleteHostEnd, hostVethName, linkAddresses, linkMac, makePodInterface } from './link';
import { hostNameProblem, ifnameProblem } from '@netcube/api/names';

export const SUPPORTED_VERSIONS = ['1.0.0', '1.1.0'];
/** The pods' MTU unless a config says otherwise: room for VXLAN's 50 bytes on a 1500-byte network. */
export const DEFAULT_MTU = 1450;
const DEFAULT_READY_TIMEOUT_S = 60;

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  host: string;
  socket: string;
  etcd: { endpoints: string[]; tlsCa?: string; tlsCert?: string; tlsKey?: string };
  mtu: number;
  readyTimeoutSeconds: number;
  /**
   * The pod's Kubernetes namespace when CNI_ARGS has no K8S_POD_NAMESPACE: a kubelet's
   * runtime always passes it, podman passes only K8S_POD_NAME (the container's name).
   */
  podNamespace?: string;
  ipam: { type: string; [field: string]: unknown };
  prevResult?: CniResult;
  /** GC (1.1.0): the attachments the runtime still has. */
  'cni.dev/valid-attachments'?: { containerID: string; ifname: string }[];
  /** Everything as given, for the IPAM plugin. */
  raw: Record<string, unknown>;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

export interface Invocation {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args: Record<string, string>;
  path: string;
  env: NodeJS.ProcessEnv;
}

/** A namespace's name (an RFC 1123 label). */
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const bad = (message: string): CniError => new CniError(CNI_CODES.INVALID_NETWORK_CONFIG, message);

export function parseConfig(text: string): NetConf {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CniError(CNI_CODES.DECODING_FAILURE, `the network config on stdin is not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CniError(CNI_CODES.DECODING_FAILURE, 'the network config on stdin is not a JSON object');
  const version = raw.cniVersion;
  if (typeof version !== 'string' || !SUPPORTED_VERSIONS.includes(version)) {
    throw new CniError(CNI_CODES.INCOMPATIBLE_VERSION, `cniVersion ${JSON.stringify(version)} is not supported: netcube-cni speaks ${SUPPORTED_VERSIONS.join(' and ')}`);
  }
  const host = raw.host === undefined ? hostname() : raw.host;
  if (typeof host !== 'string' || hostNameProblem(host)) throw bad(`host: ${typeof host === 'string' ? hostNameProblem(host) : 'must be the node name, a string'}`);
  const etcd = raw.etcd as NetConf['etcd'] | undefined;
  if (!etcd || !Array.isArray(etcd.endpoints) || etcd.endpoints.length === 0 || etcd.endpoints.some((e) => typeof e !== 'string')) {
    throw bad('etcd.endpoints must list the etcd cluster\'s client URLs (the node records its pods there)');
  }
  for (const f of ['tlsCa', 'tlsCert', 'tlsKey'] as const) if (etcd[f] !== undefined && typeof etcd[f] !== 'string') throw bad(`etcd.${f} must be a file name`);
  const ipam = raw.ipam as NetConf['ipam'] | undefined;
  if (!ipam || typeof ipam.type !== 'string') throw bad('ipam.type must name the IPAM plugin (host-local)');
  const mtu = raw.mtu ?? DEFAULT_MTU;
  if (!Number.isInteger(mtu) || (mtu as number) < 576 || (mtu as number) > 65535) throw bad(`mtu must be an integer from 576 to 65535, got ${JSON.stringify(mtu)}`);
  const timeout = raw.readyTimeoutSeconds ?? DEFAULT_READY_TIMEOUT_S;
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > 600) throw bad(`readyTimeoutSeconds must be a number of seconds from 0 to 600, got ${JSON.stringify(timeout)}`);
  const podNamespace = raw.podNamespace;
  if (podNamespace !== undefined && (typeof podNamespace !== 'string' || !NAMESPACE_RE.test(podNamespace))) {
    throw bad(`podNamespace must be a Kubernetes namespace name (lower-case letters, digits and '-', at most 63), got ${JSON.stringify(podNamespace)}`);
  }
  const socket = raw.socket ?? `/run/netcube/${host}/netcubed.sock`;
  if (typeof socket !== 'string') throw bad('socket must be the path of netcubed\'s unix socket');
  return {
    cniVersion: version,
    name: String(raw.name ?? ''),
    type: String(raw.type ?? ''),
    host,
    socket,
    etcd,
    mtu: mtu as number,
    readyTimeoutSeconds: timeout,
    podNamespace,
    ipam,
    prevResult: raw.prevResult as CniResult | undefined,
    'cni.dev/valid-attachments': raw['cni.dev/valid-attachments'] as NetConf['cni.dev/valid-attachments'],
    raw,
  };
}

/** CNI_ARGS: `K1=V1;K2=V2`. */
export function parseArgs(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? '').split(';').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CNI_CODES.INVALID_ENVIRONMENT, `CNI_ARGS: ${JSON.stringify(pair)} is not KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

function need(inv: Invocation, name: 'containerId' | 'netns' | 'ifname', env: string): string {
  const v = inv[name];
  if (!v) throw new CniError(CNI_CODES.INVALID_ENVIRONMENT, `${env} is not set: the runtime must give it for ${inv.command}`);
  return v;
}

async function withStore<T>(conf: NetConf, fn: (store: Store) => Promise<T>): Promise<T> {
  let store: Store;
  try {
    store = await Store.connect({
      endpoints: conf.etcd.endpoints,
      tls: conf.etcd.tlsCa || conf.etcd.tlsCert ? { ca: conf.etcd.tlsCa, cert: conf.etcd.tlsCert, key: conf.etcd.tlsKey } : undefined,
      retry: { timeoutMs: 10_000 },
    });
  } catch (err) {
    throw new CniError(CNI_CODES.TRY_AGAIN_LATER, `etcd (${conf.etcd.endpoints.join(', ')}) cannot be reached as node ${conf.host}: ${(err as Error).message}`);
  }
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function cmdAdd(conf: NetConf, inv: Invocation): Promise<CniResult> {
  const containerId = need(inv, 'containerId', 'CNI_CONTAINERID');
  const netns = need(inv, 'netns', 'CNI_NETNS');
  const ifname = need(inv, 'ifname', 'CNI_IFNAME');
  if (ifnameProblem(ifname)) throw new CniError(CNI_CODES.INVALID_ENVIRONMENT, `CNI_IFNAME: ${ifnameProblem(ifname)}`);
  if (!existsSync(netns)) throw new CniError(CNI_CODES.UNKNOWN_CONTAINER, `CNI_NETNS ${netns} does not exist: the container's network namespace is gone`);
  const host = hostVethName(containerId, ifname);
  const ipam = await delegate('ADD', findPlugin(conf.ipam.type, inv.path), conf.raw as { cniVersion: string }, inv.env);
  const ips = (ipam?.ips ?? []).filter((i) => !i.address.includes(':'));
  const gateway = ips.find((i) => i.gateway)?.gateway;
  if (ips.length === 0 || !gateway) {
    throw bad(`IPAM ${conf.ipam.type} gave ${ips.length === 0 ? 'no IPv4 address' : 'no gateway'}: its range must be IPv4 with the node router's address as gateway (ipam.ranges[].gateway)`);
  }
  const link = await makePodInterface({ host, ifname, netns, mtu: conf.mtu, addresses: ips.map((i) => i.address), gateway });
  const record = {
    netdev: host,
    namespace: inv.args.K8S_POD_NAMESPACE ?? conf.podNamespace ?? '',
    pod: inv.args.K8S_POD_NAME ?? '',
    containerId,
    ifname,
    addresses: ips.map((i) => i.address),
    mac: link.podMac,
    createdAt: new Date().toISOString(),
  };
  await withStore(conf, (store) => store.podPorts.put(conf.host, record));
  await waitForwarding(conf, host, ips[0].address.split('/')[0]);
  return {
    cniVersion: conf.cniVersion,
    interfaces: [
      { name: host, mac: link.hostMac },
      { name: ifname, mac: link.podMac, sandbox: netns },
    ],
    ips: ips.map((i) => ({ address: i.address, gateway: i.gateway, interface: 1 })),
    routes: [{ dst: '0.0.0.0/0', gw: gateway }],
    ...(ipam?.dns ? { dns: ipam.dns } : {}),
  };
}

/** What is not there yet for the pod's traffic, or undefined when its data plane forwards. */
export async function dataPlaneGap(conf: NetConf, port: string, address: string, client: NetcubeClient): Promise<string | undefined> {
  const cube = nodeNames(conf.host).pods;
  let ports;
  try {
    ports = (await client.getCube({ name: cube }, { timeoutMs: 5_000 })).ports;
  } catch (err) {
    return `netcubed on ${conf.socket} does not run cube ${cube} (${(err as Error).message}): is the netcube controller (netcube-k8s) running, and does it know node ${conf.host}?`;
  }
  const p = ports.find((x) => x.name === port);
  if (!p || p.peer?.netdev !== port) return `the controller has not put pod port ${port} into chain ${nodeNames(conf.host).chain} yet (is netcube-k8s running? its log says why a port is left out)`;
  // lb_hosts keys are IPv6, IPv4 addresses mapped (::ffff:a.b.c.d), as tables show them.
  try {
    const entry = await client.getEntry({ table: { cube, table: 'lb_hosts' }, entry: { keyJson: JSON.stringify(`::ffff:${address}`) } }, { timeoutMs: 5_000 });
    if (Number(JSON.parse(entry.valueJson ?? 'null')) === p.index) return undefined;
  } catch {
    // not written yet
  }
  return `the lbrp service has not routed ${address} to port ${port} of cube ${cube} yet (is netcube-lbrp running?)`;
}

async function waitForwarding(conf: NetConf, port: string, address: string): Promise<void> {
  const deadline = Date.now() + conf.readyTimeoutSeconds * 1000;
  const client = NetcubeClient.connect({ target: `unix:${conf.socket}`, timeoutMs: 5_000 });
  let gap: string | undefined;
  try {
    for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
      gap = await dataPlaneGap(conf, port, address, client);
      if (!gap || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, pause));
    }
  } finally {
    client.close();
  }
  if (gap) throw new CniError(CNI_CODES.TRY_AGAIN_LATER, `pod port ${port} (${address}) is not forwarding after ${conf.readyTimeoutSeconds} s: ${gap}`);
}

/** Releases the lease, deletes the veth, forgets the record: each may be gone already. */
export async function cmdDel(conf: NetConf, inv: Invocation): Promise<void> {
  const containerId = need(inv, 'containerId', 'CNI_CONTAINERID');
  const ifname = need(inv, 'ifname', 'CNI_IFNAME');
  await release(conf, inv, containerId, ifname);
}

async function release(conf: NetConf, inv: Invocation, containerId: string, ifname: string, store?: Store): Promise<void> {
  const host = hostVethName(containerId, ifname);
  await delegate('DEL', findPlugin(conf.ipam.type, inv.path), conf.raw as { cniVersion: string }, { ...inv.env, CNI_CONTAINERID: containerId, CNI_IFNAME: ifname });
  await deleteHostEnd(host);
  if (store) await store.podPorts.delete(conf.host, host);
  else await withStore(conf, (s) => s.podPorts.delete(conf.host, host));
}

export async function cmdCheck(conf: NetConf, inv: Invocation): Promise<void> {
  const containerId = need(inv, 'containerId', 'CNI_CONTAINERID');
  const netns = need(inv, 'netns', 'CNI_NETNS');
  const ifname = need(inv, 'ifname', 'CNI_IFNAME');
  const prev = conf.prevResult;
  if (!prev) throw bad('CHECK needs prevResult: the result of the ADD to check');
  const host = hostVethName(containerId, ifname);
  if ((await linkMac(host)) === undefined) throw new CniError(CNI_CODES.IO_FAILURE, `the pod's veth ${host} is missing on node ${conf.host}: delete and add the pod again`);
  await delegate('CHECK', findPlugin(conf.ipam.type, inv.path), conf.raw as { cniVersion: string }, inv.env);
  const have = await linkAddresses(ifname, netns);
  for (const ip of prev.ips ?? []) {
    if (ip.address.includes(':')) continue;
    if (!have.includes(ip.address)) throw new CniError(CNI_CODES.IO_FAILURE, `${ifname} in ${netns} lacks its address ${ip.address} (it has ${have.join(', ') || 'none'})`);
  }
  const records = await withStore(conf, (s) => s.podPorts.list(conf.host));
  if (!records.some((r) => r.netdev === host)) throw new CniError(CNI_CODES.IO_FAILURE, `pod port ${host} is not recorded for node ${conf.host} in etcd: delete and add the pod again`);
  const address = (prev.ips ?? []).find((i) => !i.address.includes(':'))?.address.split('/')[0];
  if (!address) return;
  const client = NetcubeClient.connect({ target: `unix:${conf.socket}`, timeoutMs: 5_000 });
  try {
    const gap = await dataPlaneGap(conf, host, address, client);
    if (gap) throw new CniError(CNI_CODES.IO_FAILURE, gap);
  } finally {
    client.close();
  }
}

/** STATUS (1.1.0): ready for ADDs when etcd takes the node's records, netcubed answers and the IPAM plugin is there. */
export async function cmdStatus(conf: NetConf, inv: Invocation): Promise<void> {
  const unavailable = (why: string) => new CniError(CNI_CODES.PLUGIN_NOT_AVAILABLE, why);
  try {
    findPlugin(conf.ipam.type, inv.path);
  } catch (err) {
    throw unavailable((err as Error).message);
  }
  try {
    await withStore(conf, (s) => s.podPorts.list(conf.host));
  } catch (err) {
    throw unavailable((err as Error).message);
  }
  const client = NetcubeClient.connect({ target: `unix:${conf.socket}`, timeoutMs: 5_000 });
  try {
    await client.getHost({ timeoutMs: 5_000 });
  } catch (err) {
    throw unavailable(`netcubed does not answer on ${conf.socket}: ${(err as Error).message}; start it (systemctl start netcubed, or the netcube DaemonSet)`);
  } finally {
    client.close();
  }
}

/** GC (1.1.0): everything of this node's attachments the runtime no longer lists. */
export async function cmdGc(conf: NetConf, inv: Invocation): Promise<string[]> {
  const valid = conf['cni.dev/valid-attachments'] ?? [];
  if (!Array.isArray(valid)) throw bad('cni.dev/valid-attachments must be a list of {containerID, ifname}');
  const keep = new Set(valid.map((a) => hostVethName(a.containerID, a.ifname)));
  return withStore(conf, async (store) => {
    const stale: StoredPodPort[] = (await store.podPorts.list(conf.host)).filter((r) => !keep.has(r.netdev));
    for (const r of stale) await release(conf, inv, r.containerId, r.ifname, store);
    return stale.map((r) => r.netdev);
  });
}

export type { IpamResult };

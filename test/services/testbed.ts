// The testbed of the acceptance tests: two hosts, each with two pods, a bridge and a
// router, the routers linked between the hosts; the control planes in a namespace of
// their own, reaching the daemons over a management network with mutual TLS.
//
//   pod a1 (10.1.0.11) ─┐                                            ┌─ pod b1 (10.2.0.11)
//   pod a2 (10.1.0.12) ─┤ br-a ── rt-a ─ wa ═══ wb ─ rt-b ── br-b ├─ pod b2 (10.2.0.12)
//                         host-a  10.1.0.1 | 10.0.0.1/30  10.0.0.2 | 10.2.0.1   host-b
//                          mgmt 10.77.1.1  |                       | mgmt 10.77.2.1
//                                          └──── ctl (10.77.1.2, 10.77.2.2) ─┘
//                                    router and bridge services, TLS to :7400
//
// Every namespace, process and certificate goes in close(), also after a failure.

import * as fs from 'node:fs';
import { Store } from '@netcube/api/store';
import { ServiceClient } from '@netcube/sdk';
import { NetcubedProcess } from '../helpers/daemon';
import { EtcdCluster } from '../helpers/etcd';
import { EtcdBridge } from '../helpers/etcd-bridge';
import { Netns, newNetns } from '../helpers/netns';
import { attachXdpPass } from '../helpers/traffic';
import { applyChain, managementCertificates, ManagementCertificates, ServiceProcess } from './helpers';
import { waitFor } from '../helpers/wait';

export type Mode = 'tc' | 'xdp';
export type HostName = 'a' | 'b';
export type PodName = 'a1' | 'a2' | 'b1' | 'b2';

export interface Pod {
  name: PodName;
  ns: Netns;
  address: string;
  mac: string;
}

export interface Host {
  name: string;
  ns: Netns;
  daemon: NetcubedProcess;
  /** Where the daemon serves gRPC with TLS, on the management network. */
  endpoint: string;
}

export const API_PORT = 7400;

const SUBNET = { a: '10.1.0', b: '10.2.0' } as const;
const MGMT = { a: '10.77.1', b: '10.77.2' } as const;
const WAN = { a: '10.0.0.1', b: '10.0.0.2' } as const;

/**
 * `ethtool -K <dev> tx off`, which this machine lacks: the legacy ETHTOOL_STXCSUM
 * ioctl, from python (node has no ioctl).
 */
async function txChecksumOff(ns: Netns, dev: string): Promise<void> {
  const script = [
    'import array, fcntl, socket, struct, sys',
    'value = array.array("I", [0x17, 0])', // ETHTOOL_STXCSUM, off
    'ifr = struct.pack("16sP", sys.argv[1].encode(), value.buffer_info()[0])',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    'fcntl.ioctl(s.fileno(), 0x8946, ifr)', // SIOCETHTOOL
  ].join('\n');
  await ns.exec('python3', ['-c', script, dev]);
}

export class TwoHosts {
  readonly namespaces: Netns[] = [];
  readonly closers: (() => unknown)[] = [];
  etcd!: EtcdCluster;
  store!: Store;
  certs!: ManagementCertificates;
  ctl!: Netns;
  readonly hosts = {} as Record<HostName, Host>;
  readonly pods = {} as Record<PodName, Pod>;
  router!: ServiceProcess;
  bridge!: ServiceProcess;
  routerApi!: ServiceClient;
  bridgeApi!: ServiceClient;

  private constructor(readonly mode: Mode) {}

  static async open(mode: Mode): Promise<TwoHosts> {
    const bed = new TwoHosts(mode);
    try {
      await bed.build();
    } catch (err) {
      await bed.close();
      throw err;
    }
    return bed;
  }

  private async ns(): Promise<Netns> {
    const ns = await newNetns();
    this.namespaces.push(ns);
    // IPv4 only: no router solicitations or DAD to flood through the cubes.
    await ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    return ns;
  }

  private async veth(a: Netns, aName: string, b: Netns, bName: string): Promise<void> {
    await a.exec('ip', ['link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name]);
    // `dev`: without it ip takes a name like "ma" for an abbreviation of "master".
    await a.exec('ip', ['link', 'set', 'dev', aName, 'up']);
    await b.exec('ip', ['link', 'set', 'dev', bName, 'up']);
  }

  private async build(): Promise<void> {
    this.etcd = await EtcdCluster.start();
    this.closers.push(() => this.etcd.stop());
    this.store = await Store.connect({ endpoints: this.etcd.endpoints });
    this.closers.push(() => this.store.close());
    this.certs = managementCertificates([`${MGMT.a}.1`, `${MGMT.b}.1`]);
    this.closers.push(() => this.certs.remove());
    this.ctl = await this.ns();
    const dir = fs.mkdtempSync('/run/nct-ctl-');
    this.closers.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const etcdBridge = await EtcdBridge.open(this.ctl.path, this.etcd.endpoints, dir);
    this.closers.push(() => etcdBridge.close());

    for (const h of ['a', 'b'] as const) {
      const ns = await this.ns();
      // The management link, with the controller's namespace.
      await this.veth(ns, 'mgmt', this.ctl, `m${h}`);
      await ns.exec('ip', ['addr', 'add', `${MGMT[h]}.1/24`, 'dev', 'mgmt']);
      await this.ctl.exec('ip', ['addr', 'add', `${MGMT[h]}.2/24`, 'dev', `m${h}`]);
      for (const i of [1, 2] as const) {
        const name = `${h}${i}` as PodName;
        const pod = await this.ns();
        await this.veth(pod, 'eth0', ns, `p${name}`);
        const address = `${SUBNET[h]}.${10 + i}`;
        await pod.exec('ip', ['addr', 'add', `${address}/24`, 'dev', 'eth0']);
        await pod.exec('ip', ['route', 'add', 'default', 'via', `${SUBNET[h]}.1`]);
        const [link] = JSON.parse((await pod.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as { address: string }[];
        this.pods[name] = { name, ns: pod, address, mac: link.address };
        if (this.mode === 'xdp') {
          // XDP redirects into a veth only arrive when its other end has NAPI (an XDP program).
          const pass = await attachXdpPass(pod, 'eth0');
          this.closers.push(() => pass.close());
          // A frame redirected as an XDP frame loses the skb's "checksum still to do" mark:
          // TCP from a pod whose veth offloads its checksums would arrive with bad ones.
          await txChecksumOff(pod, 'eth0');
        }
      }
      const daemon = await NetcubedProcess.start({
        netns: ns,
        name: `host-${h}`,
        etcd: this.etcd.endpoints,
        listen: `${MGMT[h]}.1:${API_PORT}`,
        tls: { cert: this.certs.serverCert, key: this.certs.serverKey, ca: this.certs.ca },
      });
      this.closers.push(() => daemon.cleanup());
      this.hosts[h] = { name: daemon.name, ns, daemon, endpoint: `${MGMT[h]}.1:${API_PORT}` };
    }
    // The link between the hosts that the routers' wan ports share.
    await this.veth(this.hosts.a.ns, 'wa', this.hosts.b.ns, 'wb');
    for (const h of Object.values(this.hosts)) await h.daemon.waitConnected();

    await applyChain(this.store, this.chain());
    const tls = (type: string) => ({ ca: this.certs.ca, ...this.certs.service(type) });
    this.router = await this.startService('router', 'router-1', tls('router'));
    this.bridge = await this.startService('bridge', 'bridge-1', tls('bridge'));
    this.routerApi = this.router.client();
    this.bridgeApi = this.bridge.client();
    this.closers.push(() => this.routerApi.close(), () => this.bridgeApi.close());
    await this.ready();
  }

  private async startService(service: string, name: string, tls: { ca: string; cert: string; key: string }): Promise<ServiceProcess> {
    const s = await ServiceProcess.start({ service, etcd: this.etcd.endpoints, name, netns: this.ctl, etcdBridged: true, tls, resyncSeconds: 30 });
    this.closers.push(() => s.cleanup());
    return s;
  }

  /** Waits until both services lead and have every cube ready. */
  async ready(timeoutMs = 30_000): Promise<void> {
    for (const api of [this.routerApi, this.bridgeApi]) {
      await waitFor(
        'every cube ready',
        async () => {
          const cubes = await api.listCubes();
          return cubes.length === 2 && cubes.every((c) => c.ready);
        },
        timeoutMs,
      );
    }
  }

  chain(): string {
    const cubes = (['a', 'b'] as const).flatMap((h) => {
      const other = h === 'a' ? 'b' : 'a';
      return [
        `    - { name: br-${h}, host: ${this.hosts[h].name}, type: bridge, mode: ${this.mode}, ports: [p1, p2, up] }`,
        `    - name: rt-${h}
      host: ${this.hosts[h].name}
      type: router
      mode: ${this.mode}
      ports: [lan, wan]
      params:
        ports:
          lan: { address: ${SUBNET[h]}.1/24 }
          wan: { address: ${WAN[h]}/30 }
        routes:
          - { prefix: ${SUBNET[other]}.0/24, nexthop: ${WAN[other]}, port: wan }`,
      ];
    });
    const links = (['a', 'b'] as const).flatMap((h) => [
      `    - { from: br-${h}:p1, to: netdev:p${h}1 }`,
      `    - { from: br-${h}:p2, to: netdev:p${h}2 }`,
      `    - { from: br-${h}:up, to: rt-${h}:lan }`,
    ]);
    return `apiVersion: netcube/v1
kind: Chain
metadata: { name: pods }
spec:
  cubes:
${cubes.join('\n')}
  links:
${links.join('\n')}
    - { from: rt-a:wan, to: rt-b:wan, via: { from: wa, to: wb } }
`;
  }

  /** A pod's ARP entry for `address` (its MAC), if it has one. */
  async neighbourOf(pod: PodName, address: string): Promise<string | undefined> {
    const out = JSON.parse((await this.pods[pod].ns.exec('ip', ['-j', 'neigh', 'show', address])).stdout || '[]') as { lladdr?: string; state?: string[] }[];
    return out.find((n) => n.lladdr)?.lladdr;
  }

  async close(): Promise<void> {
    for (const c of this.closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
    for (const ns of this.namespaces.reverse()) await ns.delete().catch(() => undefined);
  }
}

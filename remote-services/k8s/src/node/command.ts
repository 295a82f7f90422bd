// netcube-k8s node: the node agent's command line (agent.ts), as deploy/k8s's node
// DaemonSet and deploy/hosts.sh --k8s run it.

import { Logger } from '@netcube/api/log';
import { UsageError } from '@netcube/sdk/run';
import { nodeFlag } from '../cni-config';
import { KubeSource, loadKubeConfig } from '../kube/source';
import { parseControllerFlags, splitFlags } from '../main';
import { NodeAgent } from './agent';
import { Iproute } from './iproute';

const OWN_FLAGS = ['node', 'vxlan-vni', 'vxlan-port', 'netns'] as const;
/** The controller's flags that say where etcd is and who this is there: the agent reads the Kubernetes API only. */
const ETCD_FLAGS = ['etcd', 'etcd-user', 'name', 'tls-ca', 'tls-cert', 'tls-key', 'tls-server-name', 'lease-ttl'];

export const DEFAULT_VXLAN = { vni: 42, port: 4789 };

export const nodeAgentUsage = (): string => `Usage: netcube-k8s node --node NAME [options]

The node agent: keeps node NAME's kernel VXLAN netdev (--vxlan-netdev) and its
forwarding table in step with the cluster's Nodes. The netdev is made on the node's
uplink, from its InternalIP, with the uplink's MTU less 50; its table holds, for each
other node, a flood entry (the routers' ARP) and its router's overlay MAC, both
towards that node's InternalIP. Entries of Nodes gone or moved are removed. It also
makes the node's host link, the kernel's port into the node's chain: the veth pair
nchost / nchost-c, the node's host address on nchost (its pod range's third-last),
and routes to --cluster-cidr and --service-cluster-ip-range through the pods' gateway.

  --node NAME            this node (default: $NODE_NAME, as the downward API gives it)
  --vxlan-vni N          the VXLAN network identifier, one for the cluster (default: ${DEFAULT_VXLAN.vni})
  --vxlan-port PORT      its UDP port, one for the cluster (default: ${DEFAULT_VXLAN.port})
  --netns FILE           act in that network namespace (/run/netns/NAME) instead of the
                         agent's own, as deploy/hosts.sh --k8s does for its namespace-nodes
  --log-level LEVEL      error, warn, info or debug (default: info)

The Kubernetes flags as netcube-k8s takes them (--kubeconfig, --master, --cluster-cidr,
--service-cluster-ip-range, --resync-period, --uplink, --vxlan-netdev, --overlay-cidr;
netcube-k8s --help), with the controller's values: they decide which Nodes carry pods,
their routers' MACs and the host link's routes.
`;

export interface NodeAgentFlags extends Exclude<ReturnType<typeof parseControllerFlags>, 'help'> {
  node: string;
  vxlan: { vni: number; port: number };
  netns?: string;
}

/** `netcube-k8s node`'s command line: its own flags here, the Kubernetes ones as netcube-k8s takes them. */
export function parseNodeAgentFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): NodeAgentFlags | 'help' {
  const { values: v, rest } = splitFlags(argv, OWN_FLAGS);
  const etcdFlag = rest.map((a) => /^--([a-z-]+)/.exec(a)?.[1]).find((f) => f && ETCD_FLAGS.includes(f));
  if (etcdFlag) throw new UsageError(`--${etcdFlag}: the node agent reads the Kubernetes API only, it has no etcd; see --help`);
  const flags = parseControllerFlags(rest, env);
  if (flags === 'help') return 'help';
  const node = nodeFlag(v.node, env);
  const integer = (flag: string, text: string | undefined, def: number, min: number, max: number): number => {
    if (text === undefined) return def;
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`--${flag}: an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
    return n;
  };
  const vxlan = { vni: integer('vxlan-vni', v['vxlan-vni'], DEFAULT_VXLAN.vni, 1, 16_777_215), port: integer('vxlan-port', v['vxlan-port'], DEFAULT_VXLAN.port, 1, 65_535) };
  const netns = v.netns;
  if (netns !== undefined && !netns.startsWith('/')) throw new UsageError(`--netns: the namespace's file, e.g. /run/netns/NAME, got ${JSON.stringify(netns)}`);
  return { ...flags, node, vxlan, netns };
}

/** `netcube-k8s node ...`: runs the agent until SIGTERM or SIGINT. */
export function nodeAgentMain(argv: string[]): void {
  let flags;
  try {
    flags = parseNodeAgentFlags(argv);
  } catch (err) {
    process.stderr.write(`netcube-k8s node: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (flags === 'help') {
    process.stdout.write(nodeAgentUsage());
    return;
  }
  const log = new Logger(flags.logLevel, { node: flags.node });
  const source = new KubeSource(loadKubeConfig(flags.kube), { log, resources: ['nodes'] });
  const agent = new NodeAgent({ node: flags.node, source, settings: flags.settings, vxlan: flags.vxlan, iproute: new Iproute(flags.netns), log, resyncMs: flags.resyncMs });
  const stop = (signal: string): void => {
    log.info('stopping', { signal });
    void agent.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  agent.start().catch((err) => {
    log.error('netcube-k8s node could not start', { error: (err as Error).message });
    process.exit(1);
  });
}

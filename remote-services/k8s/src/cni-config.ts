// netcube-k8s cni-config: the CNI network config (a conflist) of one node, as the
// node's installer (deploy/k8s's DaemonSet, an init container) writes it into the
// node's CNI config directory before pods are scheduled there: the node's name and
// its netcubed's socket, the etcd the plugin records the node's pods in (with the
// node's certificate), and the IPAM range the controller gives the node — one rule for
// both (model/nodes.ts), so the plugin's addresses are the ones the chain routes.

import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { hostNameProblem } from '@netcube/api/chain';
import { UsageError } from '@netcube/sdk/run';
import { loadKubeConfig, readNode } from './kube/source';
import { parseControllerFlags, splitFlags } from './main';
import { DEFAULT_MTU, SUPPORTED_VERSIONS } from './cni/plugin';
import { nodeModel, Problems, type KubeNode, type NodeModel } from './model';

const OWN_FLAGS = ['node', 'out', 'socket', 'mtu', 'ipam-data-dir', 'cni-version'] as const;

export const cniConfigUsage = (): string => `Usage: netcube-k8s cni-config --node NAME [--out FILE] [options]

Writes node NAME's CNI network config (a conflist for netcube-cni) to FILE (atomically)
or to standard output: the node's IPAM range from its Node's spec.podCIDR as the
controller numbers it, its netcubed socket, the etcd it records its pods in.

  --node NAME            the node (default: $NODE_NAME, as the downward API gives it)
  --out FILE             where to write it, e.g. /etc/cni/net.d/10-netcube.conflist
  --socket PATH          netcubed's unix socket (default: /run/netcube/<node>/netcubed.sock)
  --mtu BYTES            the pods' MTU (default: ${DEFAULT_MTU}, room for VXLAN)
  --ipam-data-dir DIR    host-local's lease directory (default: /var/lib/cni/networks)
  --cni-version V        1.0.0 (default: what every runtime of today reads) or 1.1.0
                         (STATUS and GC too; the runtime's libcni must be 1.2 or later)

The Kubernetes flags (--kubeconfig, --master, --cluster-cidr, --overlay-cidr...) and
--etcd, --tls-ca, --tls-cert, --tls-key as netcube-k8s takes them (netcube-k8s --help);
the TLS files are the node's, named in the config as given.
`;

export interface CniConfigOptions {
  cniVersion?: string;
  etcd: string[];
  tls?: { ca?: string; cert?: string; key?: string };
  socket?: string;
  mtu?: number;
  ipamDataDir?: string;
}

/** The conflist of node `node`. */
export function nodeConflist(node: NodeModel, opts: CniConfigOptions): Record<string, unknown> {
  const etcd: Record<string, unknown> = { endpoints: opts.etcd };
  if (opts.tls?.ca) etcd.tlsCa = opts.tls.ca;
  if (opts.tls?.cert) etcd.tlsCert = opts.tls.cert;
  if (opts.tls?.key) etcd.tlsKey = opts.tls.key;
  return {
    cniVersion: opts.cniVersion ?? '1.0.0',
    name: 'netcube',
    plugins: [
      {
        type: 'netcube-cni',
        host: node.name,
        socket: opts.socket ?? `/run/netcube/${node.name}/netcubed.sock`,
        etcd,
        mtu: opts.mtu ?? DEFAULT_MTU,
        readyTimeoutSeconds: 60,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: node.podCidrText, rangeStart: node.podRange.start, rangeEnd: node.podRange.end, gateway: node.gateway }]],
          dataDir: opts.ipamDataDir ?? '/var/lib/cni/networks',
        },
      },
    ],
  };
}

export interface CniConfigFlags extends Exclude<ReturnType<typeof parseControllerFlags>, 'help'> {
  node: string;
  out?: string;
  conflist: Omit<CniConfigOptions, 'etcd' | 'tls'>;
}

/** `netcube-k8s cni-config`'s command line: its own flags here, the rest as netcube-k8s takes them. */
export function parseCniConfigFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): CniConfigFlags | 'help' {
  const { values: v, rest } = splitFlags(argv, OWN_FLAGS);
  const flags = parseControllerFlags(rest, env);
  if (flags === 'help') return 'help';
  const node = nodeFlag(v.node, env);
  const mtu = v.mtu === undefined ? undefined : Number(v.mtu);
  if (mtu !== undefined && (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)) throw new UsageError(`--mtu: an integer from 576 to 65535, got ${JSON.stringify(v.mtu)}`);
  const cniVersion = v['cni-version'];
  if (cniVersion !== undefined && !SUPPORTED_VERSIONS.includes(cniVersion)) throw new UsageError(`--cni-version: ${SUPPORTED_VERSIONS.join(' or ')}, got ${JSON.stringify(cniVersion)}`);
  return { ...flags, node, out: v.out, conflist: { cniVersion, socket: v.socket, mtu, ipamDataDir: v['ipam-data-dir'] } };
}

/** A node's command's --node: the value given, else $NODE_NAME (as the downward API gives it), a valid host name. */
export function nodeFlag(value: string | undefined, env: NodeJS.ProcessEnv): string {
  const node = value ?? env.NODE_NAME;
  if (!node) throw new UsageError('--node: give the node\'s name (or $NODE_NAME)');
  const problem = hostNameProblem(node);
  if (problem) throw new UsageError(`--node: ${problem}`);
  return node;
}

/** `netcube-k8s cni-config ...`: resolves with the conflist's text once written (or printed). */
export async function cniConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<string | 'help'> {
  const flags = parseCniConfigFlags(argv, env);
  if (flags === 'help') return 'help';
  const name = flags.node;
  const node = (await readNode(loadKubeConfig(flags.kube), name)) as KubeNode;
  const problems = new Problems();
  const model = nodeModel(node, flags.settings, problems);
  if (!model) throw new Error(problems.list.map((p) => `${p.object} ${p.message}`).join('; '));
  const text = `${JSON.stringify(nodeConflist(model, { etcd: flags.etcd, tls: flags.tls, ...flags.conflist }), null, 2)}\n`;
  if (flags.out) {
    // A runtime reading the directory meanwhile sees the old file or the new one, never half of one.
    const tmp = `${flags.out}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, flags.out);
  }
  return text;
}

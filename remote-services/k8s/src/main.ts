#!/usr/bin/env node
// netcube-k8s, the controller's process (see --help): the Kubernetes flags as kube
// components name them, the etcd and TLS flags as every netcube service names them
// (the SDK's parseFlags reads those), and a clean stop on SIGTERM/SIGINT.

import { parseArgs } from 'node:util';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import { formatIp, parseCidr } from '@netcube/sdk/packet';
import { parseFlags, UsageError } from '@netcube/sdk/run';
import { cniConfig, cniConfigUsage } from './cni-config';
import { Controller } from './controller';
import { KubeSource, loadKubeConfig, type KubeConfigFlags } from './kube/source';
import { DEFAULT_SETTINGS, type ClusterSettings } from './model';
import { nodeAgentMain } from './node/command';

const KUBE_FLAGS = ['kubeconfig', 'master', 'cluster-cidr', 'service-cluster-ip-range', 'resync-period', 'uplink', 'vxlan-netdev', 'masquerade-ports', 'overlay-cidr'] as const;

export const usage = (): string => `Usage: netcube-k8s [options]
       netcube-k8s cni-config --node NAME [--out FILE] [options]   (a node's CNI config; cni-config --help)
       netcube-k8s node --node NAME [options]   (the node agent: its VXLAN netdev; node --help)

The netcube Kubernetes controller: follows Nodes, Pods, Namespaces, Services,
EndpointSlices and NetworkPolicies, and the pod ports netcube-cni records, and
writes one chain per node (k8s-<node>) into etcd. One replica leads at a time.

Kubernetes options:
  --kubeconfig FILE        the client's kubeconfig (default: $KUBECONFIG, else in-cluster,
                           else ~/.kube/config)
  --master URL             the API server's address, over the kubeconfig's
  --cluster-cidr CIDR      every pod address of the cluster (default: ${DEFAULT_SETTINGS.clusterCidr})
  --service-cluster-ip-range CIDR
                           every ClusterIP, as kube-apiserver's flag (default: ${DEFAULT_SETTINGS.serviceCidr}):
                           the node agent routes them into the chain for the node's own processes
  --resync-period DURATION derive every chain at least this often, e.g. 30s, 5m (default: 5m)
  --uplink NETDEV          each node's netdev towards the others and the outside
                           (default: ${DEFAULT_SETTINGS.uplink}; a Node's netcube.io/uplink annotation overrides it)
  --vxlan-netdev NETDEV    the kernel VXLAN netdev on every node (default: ${DEFAULT_SETTINGS.vxlanNetdev})
  --masquerade-ports A-B   source ports of pod traffic masqueraded to the node's address
                           (default: ${DEFAULT_SETTINGS.masqueradePorts})
  --overlay-cidr CIDR      the routers' addresses on the VXLAN overlay, apart from every pod and
                           node address (default: ${DEFAULT_SETTINGS.overlayCidr})

etcd options, as for every netcube service (netcube-router --help says each):
  --etcd URLS, --etcd-user NAME, --name NAME, --tls-ca FILE, --tls-cert FILE,
  --tls-key FILE, --tls-server-name NAME, --lease-ttl SECONDS, --log-level LEVEL.
  Its etcd identity is service-k8s, allowed its chains and the lbrp's and firewalls' config of
  their cubes (netcubectl access service k8s --owns-chains --configures lbrp,firewall).

  -h, --help               show this help
`;

export interface ControllerFlags {
  kube: KubeConfigFlags;
  settings: ClusterSettings;
  resyncMs: number;
}

/** netcube-k8s's command line: the Kubernetes flags here, the rest through the SDK's parseFlags. */
export function parseControllerFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): (ControllerFlags & Exclude<ReturnType<typeof parseFlags>, 'help'>) | 'help' {
  const { values: v, rest } = splitFlags(argv, KUBE_FLAGS);
  // What is not a Kubernetes flag goes to the SDK, which refuses what it does not know.
  const other = rest.map((a) => /^--(listen|resync)(=|$)/.exec(a)?.[1]).find(Boolean);
  if (other) throw new UsageError(`--${other}: netcube-k8s has ${other === 'listen' ? 'no config API' : '--resync-period instead'}; see --help`);
  const common = parseFlags(rest, env);
  if (common === 'help') return 'help';
  const settings: ClusterSettings = {
    clusterCidr: v['cluster-cidr'] ?? DEFAULT_SETTINGS.clusterCidr,
    serviceCidr: cidrFlag('--service-cluster-ip-range', v['service-cluster-ip-range'] ?? DEFAULT_SETTINGS.serviceCidr),
    uplink: v.uplink ?? DEFAULT_SETTINGS.uplink,
    vxlanNetdev: v['vxlan-netdev'] ?? DEFAULT_SETTINGS.vxlanNetdev,
    masqueradePorts: v['masquerade-ports'] ?? DEFAULT_SETTINGS.masqueradePorts,
    overlayCidr: v['overlay-cidr'] ?? DEFAULT_SETTINGS.overlayCidr,
  };
  return { ...common, kube: { kubeconfig: v.kubeconfig, master: v.master }, settings, resyncMs: duration('--resync-period', v['resync-period'] ?? '5m') };
}

/** Splits a command line: the values of the string flags `own`, and the rest as given, for another parser. */
export function splitFlags(argv: string[], own: readonly string[]): { values: Record<string, string | undefined>; rest: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: Object.fromEntries(own.map((f) => [f, { type: 'string' as const }])), strict: false, allowPositionals: true, tokens: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}; see --help`);
  }
  const rest: string[] = [];
  for (const token of parsed.tokens) {
    if (token.kind === 'option' && own.includes(token.name)) {
      if (token.value === undefined) throw new UsageError(`--${token.name} needs a value; see --help`);
    } else if (token.kind === 'option') {
      if (token.inlineValue) rest.push(`${token.rawName}=${token.value}`);
      else rest.push(token.rawName, ...(token.value === undefined ? [] : [token.value]));
    } else if (token.kind === 'positional') {
      rest.push(token.value);
    }
  }
  return { values: parsed.values as Record<string, string | undefined>, rest };
}

/** An IPv4 CIDR flag, as the route the node agent writes takes it (network/length). */
function cidrFlag(flag: string, text: string): string {
  let cidr;
  try {
    cidr = parseCidr(text, flag);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (cidr.family !== 4) throw new UsageError(`${flag}: an IPv4 range (netcube is IPv4 only), got ${text}`);
  return `${formatIp(cidr.network)}/${cidr.prefixLength}`;
}

/** A Go duration as kube components take them (1h30m, 5m, 30s, 500ms), in milliseconds, at least one second. */
export function duration(flag: string, text: string): number {
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new UsageError(`${flag}: a duration such as 30s, 5m or 1h30m, got ${JSON.stringify(text)}`);
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]], 0);
  if (ms < 1000) throw new UsageError(`${flag}: at least 1s, got ${text}`);
  return ms;
}

function main(): void {
  if (process.argv[2] === 'cni-config') return void cniConfigMain(process.argv.slice(3));
  if (process.argv[2] === 'node') return nodeAgentMain(process.argv.slice(3));
  let flags;
  try {
    flags = parseControllerFlags(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`netcube-k8s: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (flags === 'help') {
    process.stdout.write(usage());
    return;
  }
  const log = new Logger(flags.logLevel);
  const start = async (): Promise<Controller> => {
    const source = new KubeSource(loadKubeConfig(flags.kube), { log });
    const store = await Store.connect({ endpoints: flags.etcd, tls: flags.tls, auth: flags.etcdAuth, retry: { timeoutMs: 10_000 } });
    const controller = new Controller({ store, source, settings: flags.settings, log, resyncMs: flags.resyncMs, leaseTtlSeconds: flags.leaseTtl, replica: flags.replica });
    await controller.start();
    const stop = (signal: string): void => {
      log.info('stopping', { signal, replica: flags.replica });
      void controller.close().then(() => store.close()).then(() => process.exit(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return controller;
  };
  start().catch((err) => {
    log.error('netcube-k8s could not start', { error: (err as Error).message });
    process.exit(1);
  });
}

/** `netcube-k8s cni-config`: a node's conflist (cni-config.ts), for the node's installer. */
function cniConfigMain(argv: string[]): void {
  cniConfig(argv).then(
    (text) => {
      if (text === 'help') process.stdout.write(cniConfigUsage());
      else if (!argv.some((a) => a === '--out' || a.startsWith('--out='))) process.stdout.write(text);
    },
    (err: Error) => {
      process.stderr.write(`netcube-k8s cni-config: ${err.message}\n`);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}

if (require.main === module) main();

// netcubed's command line: every option, its default, and the help text.

import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { LEVELS, Level } from '@netcube/api/log';
import { DEFAULT_SLOW_PATH } from '../runtime/runtime';
import { DEFAULT_SLOW_PATH_BUDGET } from '../slowpath/dispatcher';
import { DEFAULT_TYPE_POLICY, type TypePolicy } from '../typecheck/policy';
import { hostNameProblem } from '@netcube/api/names';

export interface DaemonConfig {
  name: string;
  etcd: string[];
  /** etcd user/password authentication, instead of the certificate's CN. */
  etcdAuth?: { username: string; password: string };
  root: string;
  socket: string;
  /** Members of this group are viewers on the unix socket. */
  viewerGid?: number;
  listen?: string;
  advertise?: string;
  /** The cluster's CA, this host's certificate and key: for --listen, etcd (https://) and exposed metrics. */
  tls?: { cert?: string; key?: string; ca?: string };
  netns?: string;
  xdpMode: 'native' | 'generic';
  /** HOST:PORT of /metrics; HTTPS with client certificates unless HOST is a loopback address. */
  metrics?: string;
  logLevel: Level;
  leaseTtl: number;
  /** Every this often the reconciler passes even when nothing changed: failed chains are tried again. */
  reconcileIntervalMs: number;
  /** Slow-path packets per second: read by the daemon (the host), and sent by one cube. */
  slowPath: { hostRate: number; cubeRate: number };
  /** What cube types' objects may hold, and the limits on their maps' kernel memory. */
  typePolicy: TypePolicy;
}

export const HELP = `Usage: netcubed [options]

netcubed is the per-host daemon of netcube. It owns this host's data plane
(eBPF programs, maps and links, pinned in its own bpffs under --root), applies the
chains placed on this host from etcd, and serves the netcube.v1 gRPC API.
The data plane keeps forwarding while netcubed, etcd or a controller is down; a
restarted netcubed adopts what it finds pinned.

Options:
  --name NAME           this host's name in chains and etcd (default: the hostname)
  --etcd URLS           etcd endpoints, comma-separated (default: $NETCUBE_ETCD or 127.0.0.1:2379);
                        https://HOST:PORT or unixs:/PATH: over TLS, with --tls-ca and --tls-cert
  --etcd-user NAME      authenticate to etcd as NAME, password in $NETCUBE_ETCD_PASSWORD
                        (default: as the CN of --tls-cert, when etcd checks client certificates)
  --root DIR            state directory on tmpfs, mode 0700 (default: /run/netcube/<name>)
  --socket PATH         gRPC on a unix socket, mode 0660 (default: <root>/netcubed.sock);
                        root may do anything on it
  --viewer-group GROUP  members of GROUP may read the API on the unix socket (the socket
                        and --root then belong to GROUP)
  --listen HOST:PORT    also serve gRPC over TCP, with mutual TLS (needs --tls-cert, --tls-key
                        and --tls-ca): every client presents a certificate of the cluster's CA,
                        whose spiffe://netcube/... identity says what it may do
  --advertise HOST:PORT the address other machines reach --listen at (default: --listen)
  --tls-ca FILE         the cluster's CA (PEM): of clients on --listen, of etcd, of metrics clients
  --tls-cert FILE       this host's certificate (PEM; spiffe://netcube/host/<name>, its CN
                        the host's etcd user)
  --tls-key FILE        its private key (PEM)
  --netns PATH          network namespace of this host's netdevs (default: the daemon's own)
  --xdp-mode MODE       native or generic XDP for netdev entries (default: native)
  --metrics [HOST:]PORT serve Prometheus metrics at /metrics, on 127.0.0.1 unless HOST says
                        otherwise; on an address other than loopback over HTTPS only, to
                        clients with an admin or viewer certificate (needs the --tls-* files)
  --log-level LEVEL     error, warn, info or debug (default: info)
  --lease-ttl SECONDS   lease of this host's registration in etcd (default: 10)
  --reconcile-interval SECONDS  reconcile this often even when etcd says nothing new,
                        trying failed chains again (default: 60; a netdev that appears
                        retries them at once)
  --slowpath-host-rate N  slow-path packets per second the daemon reads, for all
                        cubes together; the rest waits in the ring or is dropped
                        when it is full (default: 200000)
  --slowpath-cube-rate N  slow-path packets per second one cube may send; the data
                        plane drops the rest (default: 100000, bursts of a tenth)
  --max-map-memory SIZE   kernel memory one map of a cube type may take (default: 64M)
  --max-cube-memory SIZE  kernel memory the maps of one cube may take (default: 256M)
  --max-host-memory SIZE  kernel memory the maps of all cubes may take (default: 2G);
                        SIZE is bytes, or a number with K, M or G
  -h, --help            show this help

Run it inside the host's network namespace without a private mount namespace
(nsenter --net=/run/netns/<host> netcubed ...), so its bpffs outlives it.
`;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): DaemonConfig | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        etcd: { type: 'string' },
        'etcd-user': { type: 'string' },
        root: { type: 'string' },
        socket: { type: 'string' },
        'viewer-group': { type: 'string' },
        listen: { type: 'string' },
        advertise: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        netns: { type: 'string' },
        'xdp-mode': { type: 'string' },
        metrics: { type: 'string' },
        'log-level': { type: 'string' },
        'lease-ttl': { type: 'string' },
        'reconcile-interval': { type: 'string' },
        'slowpath-host-rate': { type: 'string' },
        'slowpath-cube-rate': { type: 'string' },
        'max-map-memory': { type: 'string' },
        'max-cube-memory': { type: 'string' },
        'max-host-memory': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; see netcubed --help`);
  }
  if (values.help) return 'help';
  const str = (k: string): string | undefined => values[k] as string | undefined;

  const name = str('name') ?? os.hostname().split('.')[0].toLowerCase();
  const problem = hostNameProblem(name);
  if (problem) throw new ConfigError(`--name: ${problem}`);
  const etcd = (str('etcd') ?? env.NETCUBE_ETCD ?? '127.0.0.1:2379').split(',').map((s) => s.trim()).filter(Boolean);
  if (etcd.length === 0) throw new ConfigError('--etcd: give at least one endpoint, e.g. 127.0.0.1:2379');
  const root = path.resolve(str('root') ?? `/run/netcube/${name}`);
  const hostPort = (flag: string): string | undefined => {
    const v = str(flag);
    if (v !== undefined && !/^[^\s]+:\d{1,5}$/.test(v)) throw new ConfigError(`--${flag}: expected HOST:PORT, got ${JSON.stringify(v)}`);
    return v;
  };
  const listen = hostPort('listen');
  const advertise = hostPort('advertise');
  const metricsFlag = str('metrics');
  if (metricsFlag !== undefined && !/^([^\s]+:)?\d{1,5}$/.test(metricsFlag)) throw new ConfigError(`--metrics: expected PORT or HOST:PORT, got ${JSON.stringify(metricsFlag)}`);
  const metrics = metricsFlag === undefined ? undefined : metricsFlag.includes(':') ? metricsFlag : `127.0.0.1:${metricsFlag}`;
  const cert = str('tls-cert');
  const key = str('tls-key');
  const ca = str('tls-ca');
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError('--tls-cert and --tls-key go together: this host\'s certificate and its key');
  if (listen && (!cert || !ca))
    throw new ConfigError('--listen serves gRPC over mutual TLS only: give --tls-cert and --tls-key (this host\'s certificate) and --tls-ca (the CA of the clients\' certificates)');
  if (metrics && !isLoopback(metrics.slice(0, metrics.lastIndexOf(':'))) && (!cert || !ca))
    throw new ConfigError(`--metrics ${metrics}: metrics on an address other than loopback are served over HTTPS to clients with certificates only: give --tls-cert, --tls-key and --tls-ca`);
  const etcdUser = str('etcd-user');
  if (etcdUser !== undefined && !env.NETCUBE_ETCD_PASSWORD) throw new ConfigError('--etcd-user: give the password in $NETCUBE_ETCD_PASSWORD');
  const viewerGroup = str('viewer-group');
  const xdpMode = str('xdp-mode') ?? 'native';
  if (xdpMode !== 'native' && xdpMode !== 'generic') throw new ConfigError(`--xdp-mode: native or generic, got ${JSON.stringify(xdpMode)}`);
  const logLevel = str('log-level') ?? 'info';
  if (!(LEVELS as readonly string[]).includes(logLevel)) throw new ConfigError(`--log-level: one of ${LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  const leaseTtl = Number(str('lease-ttl') ?? 10);
  if (!Number.isInteger(leaseTtl) || leaseTtl < 2) throw new ConfigError(`--lease-ttl: an integer of seconds >= 2, got ${str('lease-ttl')}`);
  const reconcileInterval = Number(str('reconcile-interval') ?? 60);
  if (!Number.isInteger(reconcileInterval) || reconcileInterval < 1 || reconcileInterval > 86_400)
    throw new ConfigError(`--reconcile-interval: an integer of seconds from 1 to 86400, got ${JSON.stringify(str('reconcile-interval')?.slice(0, 32))}`);

  const rate = (flag: string, fallback: number): number => {
    const v = str(flag);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > 2 ** 31) throw new ConfigError(`--${flag}: packets per second, an integer from 1 to ${2 ** 31}, got ${JSON.stringify(v.slice(0, 32))}`);
    return n;
  };
  const slowPath = { hostRate: rate('slowpath-host-rate', DEFAULT_SLOW_PATH_BUDGET.hostRate), cubeRate: rate('slowpath-cube-rate', DEFAULT_SLOW_PATH.rate) };

  const size = (flag: string, fallback: number): number => {
    const v = str(flag);
    if (v === undefined) return fallback;
    const m = /^(\d{1,15})([KMG]?)$/i.exec(v);
    const n = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
    if (!m || n < 4096 || n > 2 ** 50) throw new ConfigError(`--${flag}: a size of at least 4096 bytes, as bytes or with K, M or G (64M), got ${JSON.stringify(v.slice(0, 32))}`);
    return n;
  };
  const typePolicy: TypePolicy = {
    maxMapBytes: size('max-map-memory', DEFAULT_TYPE_POLICY.maxMapBytes),
    maxCubeBytes: size('max-cube-memory', DEFAULT_TYPE_POLICY.maxCubeBytes),
    maxHostBytes: size('max-host-memory', DEFAULT_TYPE_POLICY.maxHostBytes),
  };

  return {
    name,
    etcd,
    root,
    socket: path.resolve(str('socket') ?? path.join(root, 'netcubed.sock')),
    viewerGid: viewerGroup === undefined ? undefined : groupId(viewerGroup),
    listen,
    advertise: advertise ?? listen,
    tls: cert || ca ? { cert, key, ca } : undefined,
    etcdAuth: etcdUser === undefined ? undefined : { username: etcdUser, password: env.NETCUBE_ETCD_PASSWORD! },
    netns: str('netns'),
    xdpMode,
    metrics,
    logLevel: logLevel as Level,
    leaseTtl,
    reconcileIntervalMs: reconcileInterval * 1000,
    slowPath,
    typePolicy,
  };
}

/** 127.0.0.0/8, ::1 and localhost: where metrics are served as plain HTTP. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** A group's id, by number or by name (through NSS, as `getent group` resolves it). */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    const line = execFileSync('getent', ['group', group], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const gid = Number(line.split(':')[2]);
    if (Number.isInteger(gid)) return gid;
  } catch {
    // not found: below
  }
  throw new ConfigError(`--viewer-group: no group ${JSON.stringify(group)} on this machine (getent group ${group}); create it or give a gid`);
}

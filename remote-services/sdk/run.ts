// Running a service: one process per replica. Each replica connects to etcd,
// serves the config API, and campaigns for leadership; the leader alone runs the
// controller (controller.ts) and steps down the moment its lease may be gone, so a
// replica that takes over never overlaps with it.
//
//   // remote-services/<svc>/main.ts
//   import { run } from '../sdk';
//   import service from './service';
//   run(service, process.argv.slice(2));

import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { LEVELS, Level, Logger } from '@netcube/api/log';
import { servicePrefix, Store } from '@netcube/api/store';
import { ConfigSchema } from './config';
import { ConfigApiServer, serveConfigApi } from './config-api';
import { checkConfig, Controller } from './controller';
import { LeaderElection } from './election';
import type { TlsFiles } from './host-link';
import type { CubeInfo, ServiceDefinition } from './service';
import { hostNameProblem } from '@netcube/api/names';

export interface ServiceOptions {
  /** etcd endpoints (host:port; https://host:port over TLS, with `tls`). */
  etcd: string[];
  /** etcd user/password authentication, instead of the CN of `tls.cert`. */
  etcdAuth?: { username: string; password: string };
  /** This replica's name, unique among the service's replicas. */
  replica: string;
  /** Where to serve the config API (host:port with mutual TLS, port 0 picks one; or unix:/path); none when absent. */
  listen?: string;
  /**
   * The cluster's CA and the service's certificate (spiffe://netcube/service/<type>;
   * its CN the service's etcd user): for etcd over TLS, the config API on TCP, and
   * daemons reached over TCP.
   */
  tls?: TlsFiles;
  /** Lease of the leader key, seconds (a dead leader is replaced within about this). */
  leaseTtl?: number;
  /** Static tables are reconciled again this often, besides on every change. */
  resyncSeconds?: number;
  log?: Logger;
}

/** A running replica. */
export interface RunningService<C = unknown, S = unknown> {
  readonly replica: string;
  readonly isLeader: boolean;
  /** The config API's host:port, when served. */
  readonly endpoint?: string;
  /** The controller while this replica leads. */
  readonly controller?: Controller<C, S>;
  readonly election: LeaderElection;
  /** Steps down (the next leader takes over at once) and lets go of everything. */
  close(): Promise<void>;
}

/** Starts a replica of `service`; resolves once it serves its config API and campaigns. */
export async function startService<C, S>(service: ServiceDefinition<C, S>, opts: ServiceOptions): Promise<RunningService<C, S>> {
  const log = (opts.log ?? new Logger('info')).with({ service: service.type, replica: opts.replica });
  const schema = ConfigSchema.load<C>(service.config.proto, service.config.message);
  const validate = (params: unknown, info: CubeInfo): C => checkConfig(service, schema, params, info);
  // One etcd connection for the process: the store's, which the election shares.
  const store = await Store.connect({ endpoints: opts.etcd, tls: opts.tls, auth: opts.etcdAuth, retry: { timeoutMs: 10_000 } });
  let controller: Controller<C, S> | undefined;
  let api: ConfigApiServer | undefined;
  let election: LeaderElection | undefined;
  // Leadership changes one at a time: a demotion finishes stopping before a new term starts.
  let transitions = Promise.resolve();
  const serially = (fn: () => Promise<void>): void => {
    transitions = transitions.then(fn).catch((err) => log.error('leadership change failed', { error: (err as Error).message }));
  };
  try {
    const ctx = {
      service,
      replica: opts.replica,
      store,
      election: undefined as unknown as LeaderElection,
      controller: () => controller,
      validate,
      log,
    };
    if (opts.listen) {
      api = await serveConfigApi(ctx, opts.listen, opts.tls?.cert && opts.tls.key ? opts.tls : undefined);
      log.info('serving the config API', { endpoint: api.endpoint });
    }
    election = new LeaderElection(store, `${servicePrefix(service.type)}leader`, { replica: opts.replica, endpoint: api?.endpoint, since: new Date().toISOString() }, opts.leaseTtl ?? 5, log);
    ctx.election = election;
    election.on('elected', () =>
      serially(async () => {
        if (!election!.isLeader) return;
        const ctl = new Controller<C, S>(service, schema, store, { replica: opts.replica, tls: opts.tls, resyncSeconds: opts.resyncSeconds ?? 30, log });
        controller = ctl;
        await ctl.start();
      }),
    );
    election.on('demoted', () =>
      serially(async () => {
        const ctl = controller;
        controller = undefined;
        await ctl?.stop();
      }),
    );
    election.start();
  } catch (err) {
    await api?.close();
    await store.close();
    throw err;
  }
  const el = election;
  return {
    replica: opts.replica,
    get isLeader() {
      return el.isLeader;
    },
    get endpoint() {
      return api?.endpoint;
    },
    get controller() {
      return controller;
    },
    election: el,
    async close() {
      await el.close();
      await transitions;
      await controller?.stop();
      await api?.close();
      await store.close();
    },
  };
}

export const usage = (type: string): string => `Usage: netcube-${type} [options]

The remote control plane of ${type} cubes. Every replica follows the chains in
etcd; one, elected, programs the cubes through their hosts' daemons and answers
their slow-path packets. Each serves the config API (netcube.service.v1).

Options:
  --etcd URLS           etcd endpoints, comma-separated (default: $NETCUBE_ETCD or 127.0.0.1:2379);
                        https://HOST:PORT over TLS, with --tls-ca and --tls-cert
  --etcd-user NAME      authenticate to etcd as NAME, password in $NETCUBE_ETCD_PASSWORD
                        (default: as the CN of --tls-cert)
  --name NAME           this replica's name (default: <hostname>-<pid>)
  --listen ADDRESS      serve the config API at HOST:PORT, with mutual TLS only (needs
                        --tls-cert, --tls-key and --tls-ca), or on unix:/path (mode 0600)
  --tls-ca FILE         the cluster's CA: of etcd, the daemons, the config API's clients
  --tls-cert FILE       this service's certificate (spiffe://netcube/service/${type}), for
                        etcd, the daemons and --listen
  --tls-key FILE        its key
  --tls-server-name N   name to check the daemons' certificates against (default: their address)
  --lease-ttl SECONDS   lease of the leader key (default: 5)
  --resync SECONDS      reconcile static tables this often besides on changes (default: 30)
  --log-level LEVEL     error, warn, info or debug (default: info)
  -h, --help            show this help

With any --tls-* option, daemons are reached over TCP with TLS when they serve
it; else over their unix socket when it is on this machine (as root: the admin).
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

/** The options of a command line (see usage()); 'help' for -h. */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): (ServiceOptions & { logLevel: Level }) | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        etcd: { type: 'string' },
        'etcd-user': { type: 'string' },
        name: { type: 'string' },
        listen: { type: 'string' },
        'tls-ca': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-server-name': { type: 'string' },
        'lease-ttl': { type: 'string' },
        resync: { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}; see --help`);
  }
  if (values.help) return 'help';
  const str = (k: string): string | undefined => values[k] as string | undefined;
  const etcd = (str('etcd') ?? env.NETCUBE_ETCD ?? '127.0.0.1:2379').split(',').map((s) => s.trim()).filter(Boolean);
  if (etcd.length === 0) throw new UsageError('--etcd: give at least one endpoint, e.g. 127.0.0.1:2379');
  const replica = str('name') ?? `${os.hostname().split('.')[0].toLowerCase()}-${process.pid}`;
  const problem = hostNameProblem(replica);
  if (problem) throw new UsageError(`--name: ${problem.replace(/host name/i, 'replica name')}`);
  const listen = str('listen');
  if (listen !== undefined && !/^[^\s]+:\d{1,5}$/.test(listen) && !/^unix:\/\S+$/.test(listen)) throw new UsageError(`--listen: expected HOST:PORT or unix:/path, got ${JSON.stringify(listen)}`);
  const [ca, cert, key, serverName] = ['tls-ca', 'tls-cert', 'tls-key', 'tls-server-name'].map(str);
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together (a client certificate and its key)');
  const tls = ca || cert || serverName ? { ca, cert, key, serverName } : undefined;
  if (listen !== undefined && !listen.startsWith('unix:') && !(cert && ca))
    throw new UsageError(`--listen ${listen}: the config API is served over TCP with mutual TLS only: give --tls-cert, --tls-key and --tls-ca, or listen on unix:/path`);
  const etcdUser = str('etcd-user');
  if (etcdUser !== undefined && !env.NETCUBE_ETCD_PASSWORD) throw new UsageError('--etcd-user: give the password in $NETCUBE_ETCD_PASSWORD');
  const etcdAuth = etcdUser === undefined ? undefined : { username: etcdUser, password: env.NETCUBE_ETCD_PASSWORD! };
  const seconds = (flag: string, def: number, min: number): number => {
    const v = str(flag);
    const n = v === undefined ? def : Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag}: an integer of seconds >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const logLevel = str('log-level') ?? 'info';
  if (!(LEVELS as readonly string[]).includes(logLevel)) throw new UsageError(`--log-level: one of ${LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  return { etcd, etcdAuth, replica, listen, tls, leaseTtl: seconds('lease-ttl', 5, 2), resyncSeconds: seconds('resync', 30, 1), logLevel: logLevel as Level };
}

/** The main of a service's process: flags, start, and a clean stop on SIGTERM/SIGINT. */
export function run<C, S>(service: ServiceDefinition<C, S>, argv: string[]): void {
  let flags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    process.stderr.write(`${service.type}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (flags === 'help') {
    process.stdout.write(usage(service.type));
    return;
  }
  const log = new Logger(flags.logLevel);
  startService(service, { ...flags, log }).then(
    (svc) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info('stopping', { signal, service: service.type, replica: svc.replica });
        svc.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    },
    (err: Error) => {
      log.error('the service could not start', { service: service.type, error: err.message });
      process.exit(1);
    },
  );
}

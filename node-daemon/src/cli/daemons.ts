// Reaching the hosts' daemons: a host is found through its registration in etcd and
// reached with the API's typed client, at its unix socket when that socket is on this
// machine, else at its TCP endpoint (always TLS, with --tls-* when given).

import { statSync } from 'node:fs';
import { ApiCallError, NetcubeClient } from '@netcube/api/grpc/client';
import { RegisteredHost, Store, StoredChain } from '@netcube/api/store';
import { CommandFailed, UsageError } from './command';
import { some } from './output';

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** Deadline of one call from netcubectl. */
const CALL_TIMEOUT_MS = 30_000;

/** A call to a host's daemon that failed: which host, where, and what it said. */
export class DaemonCallError extends Error {
  override name = 'DaemonCallError';

  constructor(
    readonly host: string,
    readonly endpoint: string,
    override readonly cause: ApiCallError,
  ) {
    super(describeCallError(host, endpoint, cause));
  }
}

function describeCallError(host: string, endpoint: string, err: ApiCallError): string {
  switch (err.codeName) {
    case 'UNAVAILABLE':
      return `cannot reach netcubed of host ${host} at ${endpoint}: ${err.details}; is it running?`;
    case 'DEADLINE_EXCEEDED':
      return `netcubed of host ${host} at ${endpoint} did not answer in time: ${err.details}`;
    case 'UNAUTHENTICATED':
    case 'PERMISSION_DENIED':
      return `netcubed of host ${host} at ${endpoint} refused netcubectl: ${err.details}; check --tls-ca, --tls-cert and --tls-key`;
    default: {
      const field = err.field && !err.details.includes(err.field) ? ` (field ${err.field})` : '';
      return `host ${host}: ${err.details}${field}`;
    }
  }
}

export interface Connection {
  host: string;
  endpoint: string;
  client: NetcubeClient;
}

export class DaemonConnections {
  private readonly connections = new Map<string, Connection>();
  private registered?: Promise<RegisteredHost[]>;
  private chains?: Promise<StoredChain[]>;

  constructor(
    private readonly store: Store,
    private readonly tls?: TlsFiles,
  ) {
    for (const [flag, file] of [['--tls-ca', tls?.ca], ['--tls-cert', tls?.cert], ['--tls-key', tls?.key]] as const) {
      if (file === undefined) continue;
      try {
        if (!statSync(file).isFile()) throw new Error('not a file');
      } catch {
        throw new UsageError(`${flag} ${file}: no such file (a PEM file is expected)`);
      }
    }
  }

  /** Registered hosts, sorted by name; read once per run. */
  hosts(): Promise<RegisteredHost[]> {
    this.registered ??= this.store.hosts.listHosts().then(hosts => hosts.sort((a, b) => (a.name < b.name ? -1 : 1)));
    return this.registered;
  }

  /** The daemon of `host`, which must be registered. */
  async connect(host: string): Promise<Connection> {
    const existing = this.connections.get(host);
    if (existing) return existing;
    const hosts = await this.hosts();
    const registration = hosts.find(h => h.name === host);
    if (!registration) {
      const known = hosts.length ? `registered hosts: ${some(hosts.map(h => h.name), 8)}` : 'no host is registered';
      throw new CommandFailed(`host ${host} is not registered in etcd (${known}): is its netcubed running, and pointed at this etcd?`);
    }
    const endpoint = this.endpointOf(registration);
    const client = NetcubeClient.connect(
      endpoint.startsWith('unix:') ? { target: endpoint, timeoutMs: CALL_TIMEOUT_MS } : { target: endpoint, tls: this.tls ?? {}, timeoutMs: CALL_TIMEOUT_MS },
    );
    const connection = { host, endpoint, client };
    this.connections.set(host, connection);
    return connection;
  }

  /** The daemon of the host that runs `cube`, per the chains in etcd. */
  async forCube(cube: string): Promise<Connection & { chain: StoredChain }> {
    const chain = (await this.allChains()).find(c => c.chain.spec.cubes.some(spec => spec.name === cube));
    if (!chain) {
      const cubes = (await this.allChains()).flatMap(c => c.chain.spec.cubes.map(spec => spec.name));
      throw new CommandFailed(`no chain has a cube named ${cube} (cubes: ${cubes.length ? some(cubes.sort(), 8) : 'none'}); see netcubectl get cubes`);
    }
    const host = chain.chain.spec.cubes.find(spec => spec.name === cube)!.host;
    return { ...(await this.connect(host)), chain };
  }

  /** Any daemon (for cluster-wide calls such as registering a type): the first registered host. */
  async any(): Promise<Connection> {
    const hosts = await this.hosts();
    if (hosts.length === 0) throw new CommandFailed('no host is registered in etcd: start a netcubed pointed at this etcd first');
    // One on this machine is the cheapest to reach.
    const local = hosts.find(h => h.endpoints.some(e => e.startsWith('unix:') && isSocket(e.slice('unix:'.length))));
    return this.connect((local ?? hosts[0]).name);
  }

  allChains(): Promise<StoredChain[]> {
    this.chains ??= this.store.chains.list();
    return this.chains;
  }

  /** Runs `fn` with the client of `connection`, turning a failed call into an error naming the host. */
  async call<T>(connection: Connection, fn: (client: NetcubeClient) => Promise<T>): Promise<T> {
    try {
      return await fn(connection.client);
    } catch (err) {
      if (err instanceof ApiCallError) throw new DaemonCallError(connection.host, connection.endpoint, err);
      throw err;
    }
  }

  close(): void {
    for (const { client } of this.connections.values()) client.close();
    this.connections.clear();
  }

  private endpointOf(host: RegisteredHost): string {
    const local = host.endpoints.find(e => e.startsWith('unix:') && isSocket(e.slice('unix:'.length)));
    if (local) return local;
    const tcp = host.endpoints.find(e => !e.startsWith('unix:'));
    if (tcp) return tcp;
    throw new CommandFailed(
      `host ${host.name} serves its API only on ${host.endpoints.join(', ')}, which is not on this machine: ` +
        `run netcubectl there, or start its netcubed with --listen HOST:PORT --tls-cert ... --tls-key ...`,
    );
  }
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

// Who may read and write what in etcd: netcube's layout of etcd's users and roles
// (etcd's own access control, `etcdctl auth enable`), and setting it up. Each
// identity of the cluster (grpc/identity.ts) is one etcd user, the CN of its
// certificate when etcd checks client certificates (--client-cert-auth), with one
// role of the same name:
//
//   user (= role)      reads           writes (keys.ts has the layout)
//   admin              /netcube/v1/    /netcube/v1/ (chains, types, everything)
//   viewer             /netcube/v1/    nothing
//   host-<host>        /netcube/v1/    hosts/<host> (its registration, under its lease),
//                                      status/<host>/ (what it reports), pods/<host>/ (the
//                                      ports its CNI plugin made for pods), and the records
//                                      of the built-in types, types/<builtin>
//   service-<type>     /netcube/v1/    services/<type>/ (its leader election and the
//                                      config SetConfig stores), types/<type> (its type);
//                                      a service that owns chains (the Kubernetes
//                                      controller) also chains/<type>-* and their history,
//                                      and the config of their cubes for the services it
//                                      configures, services/<other>/config/<type>-*
//
// So a host's credentials cannot change what any host runs (chains, types of code
// other hosts load) nor what another host reports: the pod ports it records are
// requests that the owner of its node's chain checks before it places them; a
// service's cannot change chains other than its own, nor another service's keys. A built-in type's record only informs validation:
// every daemon runs its own build's built-ins and never loads them from etcd.
// etcd's `root` user (certs.sh etcd-root) is the one that sets this up.

import type { Etcd3, IPermission } from 'etcd3';
import { Range } from 'etcd3';
import { CHAIN_HISTORY_PREFIX, CHAINS_PREFIX, hostKey, podPortsPrefix, ROOT, serviceConfigPrefix, servicePrefix, STATUS_PREFIX, typeKey } from './keys';
import { hostNameProblem, nameProblem } from '../names';

export type Access = 'Read' | 'Write' | 'Readwrite';

export interface Grant {
  access: Access;
  /** A key, or a prefix when it ends in '/' or `prefix` says so. */
  key: string;
  prefix?: boolean;
}

export const ADMIN_USER = 'admin';
export const VIEWER_USER = 'viewer';

/** The etcd user (and role) of a host. */
export function hostUser(host: string): string {
  const problem = hostNameProblem(host);
  if (problem) throw new RangeError(problem);
  return `host-${host}`;
}

/** The etcd user (and role) of a cube type's service. */
export function serviceUser(type: string): string {
  const problem = nameProblem(type, 'cube type name');
  if (problem) throw new RangeError(problem);
  return `service-${type}`;
}

export function adminGrants(): Grant[] {
  return [{ access: 'Readwrite', key: ROOT }];
}

export function viewerGrants(): Grant[] {
  return [{ access: 'Read', key: ROOT }];
}

/** A host's: its own registration, status and pod ports, and the records of `builtinTypes`. */
export function hostGrants(host: string, builtinTypes: readonly string[]): Grant[] {
  return [
    { access: 'Read', key: ROOT },
    { access: 'Readwrite', key: hostKey(host) },
    { access: 'Readwrite', key: `${STATUS_PREFIX}${host}/` },
    { access: 'Readwrite', key: podPortsPrefix(host) },
    ...builtinTypes.map((t) => ({ access: 'Readwrite' as const, key: typeKey(t) })),
  ];
}

export interface ServiceAccess {
  /**
   * The service writes chains, those named `<type>-...` (and their history): a
   * controller that derives chains from another system's state, as the Kubernetes
   * controller (remote-services/k8s) writes each node's chain.
   */
  ownsChains?: boolean;
  /**
   * With `ownsChains`: the services (cube types) whose config it sets for the cubes of
   * its chains (named `<type>-...` too), as the Kubernetes controller sets the lbrp's
   * and the firewalls' (services/lbrp/config/k8s-..., services/firewall/config/k8s-...).
   */
  configures?: readonly string[];
}

/** A service's: its own keys, its own type, and with `ownsChains` the chains named after it (and the config of their cubes it sets). */
export function serviceGrants(type: string, access: ServiceAccess = {}): Grant[] {
  const configures = access.configures ?? [];
  if (configures.length > 0 && !access.ownsChains) throw new RangeError(`service ${type} configures ${configures.join(', ')} but owns no chains: the config it may set is that of its chains' cubes`);
  for (const other of configures) {
    const problem = nameProblem(other, 'configured cube type name');
    if (problem) throw new RangeError(problem);
  }
  return [
    { access: 'Read', key: ROOT },
    { access: 'Readwrite', key: servicePrefix(type) },
    { access: 'Readwrite', key: typeKey(type) },
    ...(access.ownsChains
      ? [
          { access: 'Readwrite' as const, key: ownedChainsPrefix(CHAINS_PREFIX, type), prefix: true },
          { access: 'Readwrite' as const, key: ownedChainsPrefix(CHAIN_HISTORY_PREFIX, type), prefix: true },
          ...configures.map((other) => ({ access: 'Readwrite' as const, key: ownedChainsPrefix(serviceConfigPrefix(other), type), prefix: true })),
        ]
      : []),
  ];
}

const ownedChainsPrefix = (prefix: string, type: string): string => `${prefix}${type}-`;

/**
 * Sets up the users and roles of netcube on `client` (connected as etcd's root, or
 * before access control is on): creates what is missing, grants what is granted
 * (again: granting twice changes nothing). Users have no password; they
 * authenticate by their client certificate's CN.
 */
export class AccessControl {
  constructor(private readonly client: Etcd3) {}

  /** The admin and viewer roles, etcd's root user, then access control on. */
  async enable(): Promise<void> {
    await this.user('root', 'root');
    await this.identity(ADMIN_USER, adminGrants());
    await this.identity(VIEWER_USER, viewerGrants());
    // Once more when it is on already changes nothing (etcd 3.4 has no AuthStatus to ask).
    await this.client.auth.authEnable();
  }

  async host(host: string, builtinTypes: readonly string[]): Promise<string> {
    const user = hostUser(host);
    await this.identity(user, hostGrants(host, builtinTypes));
    return user;
  }

  async service(type: string, access: ServiceAccess = {}): Promise<string> {
    const user = serviceUser(type);
    await this.identity(user, serviceGrants(type, access));
    return user;
  }

  /** A user, and a role of the same name holding `grants`. */
  async identity(name: string, grants: readonly Grant[]): Promise<void> {
    await this.tolerate('role name already exists', () => this.client.auth.roleAdd({ name }));
    for (const g of grants) {
      const range = g.prefix || g.key.endsWith('/') ? Range.prefix(g.key) : new Range(g.key);
      const perm: IPermission = { permType: g.access, key: range.start, range_end: range.end };
      await this.client.auth.roleGrantPermission({ name, perm });
    }
    await this.user(name, name);
  }

  private async user(name: string, role: string): Promise<void> {
    await this.tolerate('user name already exists', () => this.client.auth.userAdd({ name, password: '', options: { no_password: true } }));
    await this.client.auth.userGrantRole({ user: name, role });
  }

  private async tolerate(already: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (!String((err as Error).message).includes(already)) throw err;
    }
  }
}

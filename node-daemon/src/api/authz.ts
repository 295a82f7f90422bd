// Who may do what on netcubed's API, in one place: the rule of every RPC, checked
// before its handler runs (the slow path's session by what its hello claims), by
// the caller's identity (@netcube/api's grpc/identity.ts; on the unix socket,
// peer.ts):
//
//   admin                 everything
//   viewer                every read
//   service/<type>        the host's facts and the type catalogue; cubes of its own
//                         type: read them, their tables (a host-scope table only
//                         while no cube of another type shares it) and logs; write
//                         their tables, their config (UpdateCube without ports),
//                         replace their micro-cubes; register its own type; a
//                         slow-path session for its own type (and cubes of it)
//   host/<host>           the host's facts and the type catalogue (a daemon's
//                         identity is for etcd and its server certificate)
//   no netcube identity   nothing (grpc.health.v1 and reflection are not netcube.v1)
//
// Changes of topology (creating, deleting, linking, stacking cubes) and
// unregistering types are the admin's. A refusal is PERMISSION_DENIED naming the
// identity and the object, logged and counted (netcube_authz_denied_total).

import { ApiError } from '@netcube/api/grpc/status';
import { Identity, isServiceOf } from '@netcube/api/grpc/identity';
import type { CallContext } from '@netcube/api/grpc/call';
import { status } from '@grpc/grpc-js';
import { ApiContext } from './context';
import { UnixPeer } from './peer';

type Access = 'read' | 'write';

/** What a call is about, from its request. */
type Target =
  /** The host's own facts (GetHost): any netcube identity. */
  | { kind: 'facts' }
  /** The cube types this host knows. */
  | { kind: 'types' }
  /** Everything on the host at once: its topology, every cube, every cube's logs. */
  | { kind: 'host' }
  | { kind: 'type'; name: string }
  | { kind: 'cube'; name: string }
  | { kind: 'table'; cube: string; table: string }
  | { kind: 'cubes'; names: string[] };

interface Rule {
  access: Access;
  target(req: Record<string, unknown>): Target;
  /** Only the admin, whatever the target. */
  admin?: true;
  /** A service may do it only when this holds of the request (why not, else). */
  serviceOnlyIf?(req: Record<string, unknown>): string | undefined;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const tableOf = (req: Record<string, unknown>): Target => {
  const ref = (req.table ?? {}) as Record<string, unknown>;
  return { kind: 'table', cube: str(ref.cube), table: str(ref.table) };
};
const cube = (field: string) => (req: Record<string, unknown>): Target => ({ kind: 'cube', name: str(req[field]) });
const host = (): Target => ({ kind: 'host' });

/** Every RPC of netcube.v1 but SlowPathService.Connect (authorizeSlowPath). */
const RULES: Record<string, Rule> = {
  GetHost: { access: 'read', target: () => ({ kind: 'facts' }) },
  GetTopology: { access: 'read', target: host },
  ListTypes: { access: 'read', target: () => ({ kind: 'types' }) },
  GetType: { access: 'read', target: () => ({ kind: 'types' }) },
  RegisterType: { access: 'write', target: (req) => ({ kind: 'type', name: str(req.name) }) },
  UnregisterType: { access: 'write', target: (req) => ({ kind: 'type', name: str(req.name) }), admin: true },
  CreateCube: { access: 'write', target: cube('name'), admin: true },
  GetCube: { access: 'read', target: cube('name') },
  ListCubes: { access: 'read', target: host },
  UpdateCube: {
    access: 'write',
    target: cube('name'),
    serviceOnlyIf: (req) => (req.ports ? "a service changes a cube's config (params, log level), not its ports" : undefined),
  },
  DeleteCube: { access: 'write', target: cube('name'), admin: true },
  SetPeer: { access: 'write', target: cube('cube'), admin: true },
  Attach: { access: 'write', target: cube('cube'), admin: true },
  Detach: { access: 'write', target: cube('cube'), admin: true },
  ReplaceMicroCube: { access: 'write', target: cube('cube') },
  ListTables: { access: 'read', target: cube('cube') },
  GetEntry: { access: 'read', target: tableOf },
  ListEntries: { access: 'read', target: tableOf },
  PutEntry: { access: 'write', target: tableOf },
  DeleteEntry: { access: 'write', target: tableOf },
  PutEntries: { access: 'write', target: tableOf },
  // A session switches the cube's copying on: as writing its tables.
  // A capture on a netdev stacks a cube on the host's wire: the host's to allow.
  Capture: { access: 'write', target: (req) => (str(req.netdev) ? host() : cube('cube')(req)) },
  StreamLogs: { access: 'read', target: (req) => (Array.isArray(req.cubes) && req.cubes.length > 0 ? { kind: 'cubes', names: req.cubes.map(str) } : host()) },
};

export class Authorizer {
  constructor(
    private readonly ctx: ApiContext,
    /** Members of this group are viewers on the unix socket. */
    private readonly viewerGid?: number,
  ) {}

  /** The identity of a peer on the unix socket. */
  unixIdentity(peer: UnixPeer): Identity {
    const who = `uid ${peer.uid} (pid ${peer.pid}) on the unix socket`;
    if (peer.uid === 0) return { name: who, role: 'admin' };
    if (this.viewerGid !== undefined && peer.gids.includes(this.viewerGid)) return { name: who, role: 'viewer' };
    return { name: `${who} (neither root nor in the viewer group)` };
  }

  /** Throws PERMISSION_DENIED unless the caller may make this call. */
  authorize(method: string, request: unknown, call: CallContext): void {
    const rule = RULES[method];
    const req = (request ?? {}) as Record<string, unknown>;
    const identity = call.identity;
    // A method without a rule is refused to all but the admin: a new RPC is closed until given one.
    if (!rule) {
      if (identity.role !== 'admin') throw this.deny(method, identity, `call ${method}`, 'only the admin may');
      return;
    }
    const target = rule.target(req);
    const why = this.refusal(identity, rule, target, req);
    if (why) throw this.deny(method, identity, `${rule.access} ${this.describe(target)}`, why);
  }

  /**
   * What a slow-path session may control: the admin anything it names; a service
   * its own type, and cubes of that type. Throws PERMISSION_DENIED for any other
   * claim, and for every claim of any other identity.
   */
  authorizeSlowPath(identity: Identity, types: ReadonlySet<string>, cubes: ReadonlySet<string>): void {
    if (identity.role === 'admin') return;
    const claims = `control ${[...[...types].map((t) => `cube type ${t}`), ...[...cubes].map((c) => this.describe({ kind: 'cube', name: c }))].join(', ')} (a slow-path session)`;
    if (identity.role !== 'service') throw this.deny('Connect', identity, claims, 'only the admin and a service, for its own cube type, have slow-path sessions');
    const type = identity.subject!;
    const other = [...types].find((t) => t !== type);
    if (other !== undefined) throw this.deny('Connect', identity, `control cube type ${other} (a slow-path session)`, `a service controls its own cube type (${type}) only`);
    for (const c of cubes) {
      if (this.typeOfCube(c) !== type) throw this.deny('Connect', identity, `control ${this.describe({ kind: 'cube', name: c })} (a slow-path session)`, `a service controls cubes of its own type (${type}) only`);
    }
  }

  /** Whether a session of `identity` may receive packets of, and send packets into, cubes of `type` (the dispatcher asks). */
  mayControl(identity: Identity, type: string): boolean {
    return identity.role === 'admin' || isServiceOf(identity, type);
  }

  /** Why `identity` may not do this; undefined when it may. */
  private refusal(identity: Identity, rule: Rule, target: Target, req: Record<string, unknown>): string | undefined {
    switch (identity.role) {
      case 'admin':
        return undefined;
      case 'viewer':
        return rule.access === 'read' ? undefined : 'a viewer only reads';
      case 'host':
        return target.kind === 'facts' || target.kind === 'types' ? undefined : "a host's identity reads this host's facts and cube types only";
      case 'service':
        if (rule.admin) return 'only the admin may';
        return this.serviceRefusal(identity.subject!, rule, target, req);
      default:
        return 'it has no netcube identity (spiffe://netcube/admin, viewer, service/<type> or host/<host>)';
    }
  }

  private serviceRefusal(type: string, rule: Rule, target: Target, req: Record<string, unknown>): string | undefined {
    const own = `a service touches cubes of its own type (${type}) only`;
    switch (target.kind) {
      case 'facts':
      case 'types':
        return rule.access === 'read' ? undefined : own;
      case 'host':
        return "a service reads cubes of its own type, not everything on the host: name the cubes";
      case 'type':
        return target.name === type ? undefined : `a service registers its own cube type (${type}) only`;
      case 'cube':
        if (this.typeOfCube(target.name) !== type) return own;
        return rule.serviceOnlyIf?.(req);
      case 'cubes':
        return target.names.every((c) => this.typeOfCube(c) === type) ? undefined : own;
      case 'table': {
        if (this.typeOfCube(target.cube) !== type) return own;
        const sharers = this.hostTableTypes(target.cube, target.table).filter((t) => t !== type);
        return sharers.length === 0 ? undefined : `table ${target.table} is host-scope, shared with cubes of type ${sharers.join(', ')}`;
      }
    }
  }

  /** The type of cube `name` on this host: as it runs, else as an applied chain places it here. */
  private typeOfCube(name: string): string | undefined {
    try {
      return this.ctx.runtime.cube(name).type.name;
    } catch {
      for (const c of this.ctx.reconciler.appliedChains()) {
        const spec = c.chain.spec.cubes.find((k) => k.name === name && k.host === this.ctx.host);
        if (spec) return spec.type;
      }
      return undefined;
    }
  }

  /** The types of the live cubes that share `table` of `cube` when it is host-scope; none otherwise. */
  private hostTableTypes(cube: string, table: string): string[] {
    let scope: string | undefined;
    try {
      scope = this.ctx.runtime.cube(cube).type.tables.find((t) => t.name === table)?.scope;
    } catch {
      return [];
    }
    if (scope !== 'host') return [];
    const types = new Set<string>();
    for (const name of this.ctx.runtime.cubeNames()) {
      const type = this.ctx.runtime.cube(name).type;
      if (type.tables.some((t) => t.name === table && t.scope === 'host')) types.add(type.name);
    }
    return [...types];
  }

  private describe(target: Target): string {
    const cubeText = (name: string): string => {
      const type = this.typeOfCube(name);
      return `cube ${name || '(unnamed)'}${type ? ` (type ${type})` : ''} on host ${this.ctx.host}`;
    };
    switch (target.kind) {
      case 'facts':
        return `host ${this.ctx.host}'s facts`;
      case 'types':
        return `the cube types of host ${this.ctx.host}`;
      case 'host':
        return `every cube of host ${this.ctx.host}`;
      case 'type':
        return `cube type ${target.name || '(unnamed)'}`;
      case 'cube':
        return cubeText(target.name);
      case 'cubes':
        return target.names.map(cubeText).join(', ');
      case 'table':
        return `table ${target.table || '(unnamed)'} of ${cubeText(target.cube)}`;
    }
  }

  private deny(method: string, identity: Identity, what: string, why: string): ApiError {
    this.ctx.log.warn('permission denied', { method, identity: identity.name, object: what, reason: why });
    this.ctx.metrics.countDenied(method, identity.role ? [identity.role, identity.subject].filter(Boolean).join('/') : 'none');
    return new ApiError(status.PERMISSION_DENIED, `${identity.name} may not ${what}: ${why}`);
  }
}

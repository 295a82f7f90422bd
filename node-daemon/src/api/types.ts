// TypeService: the cube types this host knows, and registering uploaded ones for
// the whole cluster (etcd first, then this host's runtime; other hosts fetch them
// from etcd when a chain places a cube of the type on them).

import { NotFoundError } from '@netcube/api/store';
import { tableFacts } from '@netcube/api/chain';
import { Rpc } from '@netcube/api/grpc/call';
import { modeToProto } from '@netcube/api/grpc/convert';
import type { CubeType as CubeTypeMessage } from '@netcube/api/generated/netcube/v1/CubeType';
import type { TypeServiceHandlers } from '@netcube/api/generated/netcube/v1/TypeService';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '@netcube/api/grpc/status';
import type { BtfType } from '../bpf';
import { CubeType, TableInfo } from '../runtime/types';
import { Mode } from '../runtime/topology';
import { ApiContext } from './context';
import { tableInfoMessage } from './convert';
import { checkName } from './cubes';
import * as runtimeErrors from '../runtime/errors';

/** BTF of each type's tables, read from its object once per digest. */
const btfCache = new Map<string, Map<string, { keyType?: BtfType; valueType?: BtfType }>>();

function tableBtf(type: CubeType): Map<string, { keyType?: BtfType; valueType?: BtfType }> {
  let btf = btfCache.get(type.digest);
  if (!btf) {
    btf = new Map();
    const spec = type.open(type.modes[0]);
    try {
      for (const t of type.tables) {
        const m = spec.maps.get(t.name);
        btf.set(t.name, { keyType: m?.keyType, valueType: m?.valueType });
      }
    } finally {
      spec.close();
    }
    btfCache.set(type.digest, btf);
  }
  return btf;
}

export function typeMessage(type: CubeType): CubeTypeMessage {
  const btf = tableBtf(type);
  return {
    name: type.name,
    builtin: type.builtin,
    transparent: type.transparent,
    modes: type.modes.map(modeToProto),
    microcubes: [...type.programs],
    tables: type.tables.map((t: TableInfo) => tableInfoMessage(t, btf.get(t.name) ?? {})),
    digest: type.digest,
  };
}

export function typeService(ctx: ApiContext, rpc: Rpc): TypeServiceHandlers {
  return {
    ListTypes: rpc.unary('ListTypes', async () => ({ types: ctx.runtime.types.list().map(typeMessage) })),

    GetType: rpc.unary('GetType', async (req) => {
      const name = checkName('name', req.name, 'cube type name');
      const type = ctx.runtime.types.get(name);
      if (!type) throw notFound(`cube type ${name} is not known on host ${ctx.host}`);
      return typeMessage(type);
    }),

    RegisterType: rpc.unary('RegisterType', async (req, call) => {
      const name = checkName('name', req.name, 'cube type name');
      const objects: Partial<Record<Mode, Buffer>> = {};
      if (req.xdpObject?.length) objects.xdp = req.xdpObject;
      if (req.tcObject?.length) objects.tc = req.tcObject;
      if (!objects.xdp && !objects.tc) throw invalidArgument('xdp_object', 'give the ELF object of the type for xdp, tc or both (xdp_object, tc_object)');
      // Opened apart, checked against the host's policy and loaded once: a type the
      // verifier rejects is refused here, not when a chain places it. The error
      // names the object at fault.
      let type: CubeType;
      try {
        type = await ctx.heavy.run('RegisterType', call.signal, () => CubeType.inspect(name, objects, { policy: ctx.runtime.types.policy, testLoad: true }));
      } catch (err) {
        if (err instanceof runtimeErrors.InvalidArgumentError) throw invalidArgument(err.field === 'xdp' || err.field === 'tc' ? `${err.field}_object` : err.field === 'name' ? 'name' : 'tc_object', err.message);
        throw err;
      }

      const local = ctx.runtime.types.get(name);
      if (local && local.digest !== type.digest) {
        throw alreadyExists(
          local.builtin
            ? `cube type ${name} is built in and cannot be replaced; register yours under another name`
            : `cube type ${name} is already registered with other objects; unregister it first (no chain may use it)`,
        );
      }
      if (req.dryRun) return typeMessage(type);
      const store = ctx.store();
      const stored = await store.types.getType(name).catch((err) => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
      if (stored && !(['xdp', 'tc'] as const).every((m) => (stored.objects[m] ?? Buffer.alloc(0)).equals(objects[m] ?? Buffer.alloc(0))))
        throw alreadyExists(`cube type ${name} is already registered in the cluster with other objects; unregister it first (no chain may use it)`);
      await store.types.putType({ name, transparent: type.transparent, microcubes: type.microcubes, modes: type.modes, decrementsTtl: type.decrementsTtl, tables: type.tables.map(tableFacts), objects });
      const added = typeMessage(ctx.runtime.addType(type));
      // A chain that failed for want of it goes through now.
      ctx.reconciler.retryFailed(`cube type ${name} registered`);
      return added;
    }),

    UnregisterType: rpc.unary('UnregisterType', async (req) => {
      const name = checkName('name', req.name, 'cube type name');
      const local = ctx.runtime.types.get(name);
      if (local?.builtin) throw failedPrecondition(`cube type ${name} is built in and cannot be unregistered`);
      const users = ctx.runtime.topology().cubes.filter((c) => c.type === name).map((c) => c.name);
      if (users.length > 0) throw failedPrecondition(`cube type ${name} is used by cube(s) ${users.join(', ')} on host ${ctx.host}; delete them first`);
      try {
        await ctx.store().types.deleteType(name);
      } catch (err) {
        // Known here only (uploaded while etcd lost it): forgetting it locally is all there is to do.
        if (!(err instanceof NotFoundError) || !local) throw err;
      }
      if (local) ctx.runtime.unregisterType(name);
      return {};
    }),
  };
}

// CubeService: cubes on this host, their ports' peers and their place in
// transparent stacks. Reads come from the runtime; every change is a chain edit
// (chain-edit.ts), answered with the cube as this host then runs it.

import { Chain, CubeSpec, formatEndpoint, JsonObject, parseEndpoint } from '@netcube/api/chain';
import { StoredChain } from '@netcube/api/store';
import { CallContext, Rpc } from '@netcube/api/grpc/call';
import { directionFromProto, endpointFromProto, logLevelFromProto, modeFromProto, structToJson } from '@netcube/api/grpc/convert';
import type { CubeServiceHandlers } from '@netcube/api/generated/netcube/v1/CubeService';
import type { Cube } from '@netcube/api/generated/netcube/v1/Cube';
import type { Endpoint__Output } from '@netcube/api/generated/netcube/v1/Endpoint';
import { failedPrecondition, invalidArgument } from '@netcube/api/grpc/status';
import { ifindex, VerifierError } from '../bpf';
import { MAX_PORTS } from '../runtime/abi';
import * as runtimeErrors from '../runtime/errors';
import { Direction, Mode } from '../runtime/topology';
import { checkMicroCubeObject } from '../runtime/types';
import { checkTableSizes } from '../runtime/table-sizes';
import { possibleCpus } from '../bpf/addon';
import { defaultChainName, editChain, emptyChain, locateCube } from './chain-edit';
import { ApiContext } from './context';
import { cubeMessage } from './convert';
import { verifierTail } from './status';
import { ifnameProblem, nameProblem, portNameProblem } from '@netcube/api/names';

export function checkName(field: string, name: string | undefined, what = 'cube name'): string {
  if (!name) throw invalidArgument(field, `the ${what} is empty`);
  const problem = nameProblem(name, what);
  if (problem) throw invalidArgument(field, problem);
  return name;
}

function checkPortName(field: string, name: string | undefined): string {
  if (!name) throw invalidArgument(field, 'the port name is empty');
  const problem = portNameProblem(name);
  if (problem) throw invalidArgument(field, problem);
  return name;
}

function checkPorts(field: string, ports: string[]): string[] {
  if (ports.length > MAX_PORTS) throw invalidArgument(field, `a cube has at most ${MAX_PORTS} ports; ${ports.length} are given`);
  ports.forEach((p, i) => {
    checkPortName(`${field}[${i}]`, p);
    if (ports.indexOf(p) !== i) throw invalidArgument(`${field}[${i}]`, `port ${p} is listed twice`);
  });
  return ports;
}

/** A netdev endpoint must name an interface that exists on this host. */
async function checkNetdev(ctx: ApiContext, field: string, ifname: string): Promise<void> {
  const problem = ifnameProblem(ifname);
  if (problem) throw invalidArgument(field, problem);
  try {
    await ifindex(ifname, ctx.netns);
  } catch {
    throw invalidArgument(field, `netdev ${ifname} does not exist on host ${ctx.host}; create it first or fix the name`);
  }
}

async function checkEndpoint(ctx: ApiContext, field: string, e: Endpoint__Output | null | undefined): Promise<string> {
  const text = endpointFromProto(e, field);
  const parsed = parseEndpoint(text)!;
  if (parsed.kind === 'netdev') await checkNetdev(ctx, `${field}.netdev`, parsed.ifname);
  else {
    checkName(`${field}.port.cube`, parsed.cube);
    checkPortName(`${field}.port.port`, parsed.port);
  }
  return text;
}

/** The cube's spec inside `chain` (the edit's copy). */
function cubeIn(chain: Chain, name: string): CubeSpec {
  return chain.spec.cubes.find((c) => c.name === name)!;
}

const involves = (endpoint: string, cube: string): boolean => endpoint.startsWith(`${cube}:`);

/** A port endpoint's cube must be in the edited chain, on this host, and have that port. */
function checkPortIn(ctx: ApiContext, chain: Chain, all: StoredChain[], field: string, endpoint: string): void {
  const e = parseEndpoint(endpoint);
  if (!e || e.kind !== 'port') return;
  const cube = chain.spec.cubes.find((c) => c.name === e.cube);
  if (!cube) {
    const owner = all.find((c) => c.chain.spec.cubes.some((k) => k.name === e.cube));
    throw invalidArgument(
      `${field}.port.cube`,
      owner ? `cube ${e.cube} belongs to chain ${owner.name}, and ${chain.metadata.name} refers only to its own cubes` : `no cube named ${e.cube}`,
    );
  }
  if (cube.host !== ctx.host) throw invalidArgument(`${field}.port.cube`, `cube ${e.cube} runs on host ${cube.host}, not on ${ctx.host}`);
  if (!cube.ports.includes(e.port)) throw invalidArgument(`${field}.port.port`, `cube ${e.cube} has no port ${e.port} (its ports: ${cube.ports.join(', ') || 'none'})`);
}

async function typeFacts(ctx: ApiContext, field: string, type: string): Promise<{ transparent: boolean; modes: readonly Mode[] }> {
  const local = ctx.runtime.types.get(type);
  if (local) return local;
  const stored = (await ctx.store().types.listTypes()).find((t) => t.name === type);
  if (stored) return stored;
  const known = ctx.runtime.types.list().map((t) => t.name);
  throw invalidArgument(field, `unknown cube type ${type}; known types: ${known.join(', ') || 'none'}. Register it first (RegisterType)`);
}

export function cubeService(ctx: ApiContext, rpc: Rpc): CubeServiceHandlers {
  const applied = (name: string): Cube => cubeMessage(ctx.runtime, ctx.reconciler.appliedChains(), name);
  /** Edits the chain `name` belongs to. */
  const editCube = (call: CallContext, name: string, change: (chain: Chain, cube: CubeSpec, all: StoredChain[]) => Chain | null): Promise<string> =>
    editChain(ctx, call, {
      target: (all) => locateCube(ctx, all, name).chain.name,
      change: (current, all) => change(current!, cubeIn(current!, name), all),
    });

  return {
    CreateCube: rpc.unary('CreateCube', async (req, call) => {
      const name = checkName('name', req.name);
      if (name === 'netdev') throw invalidArgument('name', "'netdev' is reserved for netdev endpoints: choose another name");
      const typeName = checkName('type', req.type, 'cube type name');
      const mode = modeFromProto(req.mode, 'mode');
      const ports = checkPorts('ports', req.ports ?? []);
      const logLevel = logLevelFromProto(req.logLevel, 'log_level') ?? 'info';
      const params = structToJson(req.params, { field: 'params' }) as JsonObject;
      const chainName = req.chain ? checkName('chain', req.chain, 'chain name') : defaultChainName(ctx.host);
      const type = await typeFacts(ctx, 'type', typeName);
      if (!type.modes.includes(mode)) throw invalidArgument('mode', `cube type ${typeName} has no ${mode} object (it runs in ${type.modes.join(', ')})`);
      if (type.transparent && ports.length > 0) throw invalidArgument('ports', `cube type ${typeName} is transparent: its cubes have no ports; create it without ports and Attach it`);
      const tableSizes = Object.keys(req.tableSizes ?? {}).length > 0 ? { ...req.tableSizes } : undefined;
      // Held to this host's limits here; a type only etcd has yet is held to its record by the chain's validation.
      const local = ctx.runtime.types.get(typeName);
      if (local) checkTableSizes('table_sizes', name, local, tableSizes, ctx.runtime.types.policy, possibleCpus);

      await editChain(ctx, call, {
        target: () => chainName,
        change: (current, all) => {
          const owner = all.find((c) => c.chain.spec.cubes.some((k) => k.name === name));
          if (owner) alreadyExists(name, owner);
          const chain = current ?? emptyChain(chainName);
          chain.spec.cubes.push({ name, host: ctx.host, type: typeName, mode, ports, logLevel, params, ...(tableSizes ? { tableSizes } : {}) });
          return chain;
        },
      });
      return applied(name);
    }),

    GetCube: rpc.unary('GetCube', async (req) => applied(checkName('name', req.name))),

    ListCubes: rpc.unary('ListCubes', async () => ({ cubes: ctx.runtime.cubeNames().map(applied) })),

    UpdateCube: rpc.unary('UpdateCube', async (req, call) => {
      const name = checkName('name', req.name);
      const ports = req.ports ? checkPorts('ports.names', req.ports.names ?? []) : undefined;
      const logLevel = logLevelFromProto(req.logLevel, 'log_level');
      const params = req.params ? (structToJson(req.params, { field: 'params' }) as JsonObject) : undefined;
      await editCube(call, name, (chain, cube) => {
        if (ports) {
          if (ports.length > 0 && ctx.runtime.types.get(cube.type)?.transparent) throw invalidArgument('ports', `cube ${name} is transparent (type ${cube.type}) and has no ports`);
          const gone = cube.ports.filter((p) => !ports.includes(p)).map((p) => `${name}:${p}`);
          const stacked = chain.spec.attachments.filter((a) => gone.includes(a.to));
          if (stacked.length > 0)
            throw failedPrecondition(`port ${stacked[0].to} carries transparent cube(s) ${stacked.map((a) => a.cube).join(', ')}: detach them before removing the port`);
          chain.spec.links = chain.spec.links.filter((l) => !gone.includes(l.from) && !gone.includes(l.to));
          cube.ports = ports;
        }
        if (logLevel) cube.logLevel = logLevel;
        if (params) cube.params = params;
        return chain;
      });
      return applied(name);
    }),

    DeleteCube: rpc.unary('DeleteCube', async (req, call) => {
      const name = checkName('name', req.name);
      await editCube(call, name, (chain) => {
        const stacked = chain.spec.attachments.filter((a) => involves(a.to, name));
        if (stacked.length > 0)
          throw failedPrecondition(`transparent cube(s) ${stacked.map((a) => a.cube).join(', ')} are stacked on ports of cube ${name}: detach them first`);
        chain.spec.cubes = chain.spec.cubes.filter((c) => c.name !== name);
        chain.spec.links = chain.spec.links.filter((l) => !involves(l.from, name) && !involves(l.to, name));
        chain.spec.attachments = chain.spec.attachments.filter((a) => a.cube !== name);
        return chain.spec.cubes.length > 0 ? chain : null;
      });
      return {};
    }),

    SetPeer: rpc.unary('SetPeer', async (req, call) => {
      const name = checkName('cube', req.cube);
      const port = checkPortName('port', req.port);
      const peer = req.peer?.kind ? await checkEndpoint(ctx, 'peer', req.peer) : undefined;
      const self = formatEndpoint({ kind: 'port', cube: name, port });
      await editCube(call, name, (chain, cube, all) => {
        if (!cube.ports.includes(port)) throw invalidArgument('port', `cube ${name} has no port ${port} (its ports: ${cube.ports.join(', ') || 'none'})`);
        const linkOf = (end: string) => chain.spec.links.find((l) => l.from === end || l.to === end);
        const otherEnd = (l: { from: string; to: string }, end: string) => (l.from === end ? l.to : l.from);
        const mine = linkOf(self);
        if (!peer) {
          chain.spec.links = chain.spec.links.filter((l) => l !== mine);
          return chain;
        }
        if (peer === self) throw invalidArgument('peer', `a port cannot be its own peer`);
        checkPortIn(ctx, chain, all, 'peer', peer);
        if (mine && otherEnd(mine, self) === peer) return chain;
        if (mine) throw failedPrecondition(`port ${self} is already linked to ${otherEnd(mine, self)}: unlink it first (SetPeer without peer)`);
        const theirs = linkOf(peer) ?? netdevLinkOnHost(ctx, all, peer);
        if (theirs) throw failedPrecondition(`${peer} is already linked to ${otherEnd(theirs, peer)}: unlink it first`);
        chain.spec.links.push({ from: self, to: peer });
        return chain;
      });
      return applied(name);
    }),

    Attach: rpc.unary('Attach', async (req, call) => {
      const name = checkName('cube', req.cube);
      const target = await checkEndpoint(ctx, 'target', req.target);
      const direction: Direction = directionFromProto(req.direction, 'direction');
      const position = req.position;
      await editCube(call, name, (chain, cube, all) => {
        if (ctx.runtime.types.get(cube.type)?.transparent === false)
          throw invalidArgument('cube', `cube ${name} (type ${cube.type}) is not transparent: link its ports with SetPeer instead`);
        if (involves(target, name)) throw invalidArgument('target', `cube ${name} cannot be stacked on itself`);
        checkPortIn(ctx, chain, all, 'target', target);
        const rest = chain.spec.attachments.filter((a) => a.cube !== name);
        const onTarget = rest.map((a, i) => (a.to === target ? i : -1)).filter((i) => i >= 0);
        const at = position === undefined || position >= onTarget.length ? (onTarget.length ? onTarget[onTarget.length - 1] + 1 : rest.length) : onTarget[position];
        rest.splice(at, 0, { cube: name, to: target, direction });
        chain.spec.attachments = rest;
        return chain;
      });
      return applied(name);
    }),

    Detach: rpc.unary('Detach', async (req, call) => {
      const name = checkName('cube', req.cube);
      await editCube(call, name, (chain) => {
        chain.spec.attachments = chain.spec.attachments.filter((a) => a.cube !== name);
        return chain;
      });
      return applied(name);
    }),

    ReplaceMicroCube: rpc.unary('ReplaceMicroCube', async (req, call) => {
      const name = checkName('cube', req.cube);
      const index = req.index ?? 0;
      const object = req.object;
      if (!object || object.length === 0) throw invalidArgument('object', 'the object is empty: give the ELF object with the new program');
      const live = ctx.runtime.cube(name);
      if (!live.type.programs.includes(index))
        throw invalidArgument('index', `cube ${name} (type ${live.type.name}) has micro-cubes ${live.type.programs.join(', ')}; ${index} is not one of them`);
      // Opened apart from the daemon: a malformed object cannot crash it.
      try {
        await ctx.heavy.run('ReplaceMicroCube', call.signal, () => checkMicroCubeObject(name, index, live.mode, object, ctx.runtime.types.policy));
      } catch (err) {
        if (err instanceof runtimeErrors.InvalidArgumentError) throw invalidArgument('object', err.message);
        throw err;
      }
      const stored = await ctx.store().objects.put(object);
      try {
        await editCube(call, name, (chain, cube) => {
          cube.replacedMicrocubes = { ...cube.replacedMicrocubes, [String(index)]: stored.sha256 };
          return chain;
        });
      } catch (err) {
        // The chain is as it was (editChain takes a failed version back): so is the store.
        if (stored.created) await ctx.store().objects.removeUnused(stored.sha256).catch((e: Error) => ctx.log.warn('could not remove the object of a failed ReplaceMicroCube', { sha256: stored.sha256, error: e.message }));
        if (err instanceof VerifierError) throw invalidArgument('object', `the kernel's verifier rejected ${err.program}: ${verifierTail(err.log)}`);
        if (err instanceof runtimeErrors.InvalidArgumentError && (err.field === 'object' || err.field === 'index')) throw invalidArgument(err.field, err.message);
        throw err;
      }
      return applied(name);
    }),
  };
}

function alreadyExists(name: string, owner: StoredChain): never {
  const host = owner.chain.spec.cubes.find((c) => c.name === name)!.host;
  throw new runtimeErrors.AlreadyExistsError(`cube ${name} already exists (chain ${owner.name}, host ${host}); cube names are unique in the cluster`);
}

/** A link of `endpoint`, when it is a netdev of this host, in any chain. */
function netdevLinkOnHost(ctx: ApiContext, all: StoredChain[], endpoint: string): { from: string; to: string } | undefined {
  if (!endpoint.startsWith('netdev:')) return undefined;
  for (const c of all) {
    const hostOf = new Map(c.chain.spec.cubes.map((k) => [k.name, k.host]));
    for (const l of c.chain.spec.links) {
      const other = l.from === endpoint ? l.to : l.to === endpoint ? l.from : undefined;
      if (other && hostOf.get(other.split(':')[0]) === ctx.host) return l;
    }
  }
  return undefined;
}

/** What can be told of a micro-cube's object without loading it: an ELF with the program, for the cube's hook. */

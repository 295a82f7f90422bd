// How a mutating call changes the data plane: it edits a chain in etcd, and is
// answered once this host has applied that version.
//
// A request is checked first (nothing is written for a bad one), then the chain is
// read, edited and written with its version as the precondition, so a concurrent
// change makes us read again instead of overwriting it. The reconciler applies
// the new version like any other; when this host cannot, the version is taken back
// (Chains.undo: the chain as it was, no history entry for it) and the host's error
// is the answer, so etcd never keeps a change its caller was told failed.

import * as grpc from '@grpc/grpc-js';
import { Chain, CHAIN_API_VERSION, CHAIN_KIND } from '@netcube/api/chain';
import { ConflictError, StoredChain, WaitTimeoutError } from '@netcube/api/store';
import { CallContext } from '@netcube/api/grpc/call';
import { ApiError, failedPrecondition, isAbort, notFound } from '@netcube/api/grpc/status';
import { planHost } from '../chain';
import { FailedPreconditionError } from '../runtime/errors';
import { TypeFacts, wire } from '../runtime/topology';
import { ApiContext } from './context';

/** Reads and writes lost to concurrent changes before we give up with ABORTED. */
const ATTEMPTS = 4;
/** How long a mutation waits for this host to apply it, at most. */
const APPLY_TIMEOUT_MS = 60_000;

export interface ChainEdit {
  /** The chain to edit, chosen from the current chains. */
  target(all: StoredChain[]): string;
  /**
   * The chain as it should be, from a copy of the current one (undefined when it does
   * not exist); null deletes the chain. Throws ApiErrors for requests that cannot be.
   */
  change(current: Chain | undefined, all: StoredChain[]): Chain | null;
}

/** This host's own chain, where cubes created without a chain go. */
export function defaultChainName(host: string): string {
  return `host-${host.replace(/\./g, '-')}`.slice(0, 63).replace(/-+$/, '');
}

export function emptyChain(name: string): Chain {
  return { apiVersion: CHAIN_API_VERSION, kind: CHAIN_KIND, metadata: { name }, spec: { cubes: [], links: [], attachments: [] } };
}

/** The chain and position of `cube`; NOT_FOUND when no chain has it, FAILED_PRECONDITION when it runs elsewhere. */
export function locateCube(ctx: ApiContext, all: StoredChain[], cube: string): { chain: StoredChain; index: number } {
  for (const chain of all) {
    const index = chain.chain.spec.cubes.findIndex((c) => c.name === cube);
    if (index < 0) continue;
    const host = chain.chain.spec.cubes[index].host;
    if (host !== ctx.host) throw failedPrecondition(`cube ${cube} (chain ${chain.name}) runs on host ${host}: ask that host's netcubed`);
    return { chain, index };
  }
  throw notFound(`no cube named ${cube} in any chain`);
}

/** Writes the edit and waits until this host applied it; the chain's name is returned. */
export async function editChain(ctx: ApiContext, call: CallContext, edit: ChainEdit): Promise<string> {
  const store = ctx.store();
  for (let attempt = 1; ; attempt++) {
    call.signal.throwIfAborted();
    const all = await store.chains.list();
    const name = edit.target(all);
    const current = all.find((c) => c.name === name);
    const next = edit.change(current ? structuredClone(current.chain) : undefined, all);
    if (next === null && !current) return name;
    if (next) await precheck(ctx, next, all);

    let result: { version: number; revision: number; unchanged?: boolean };
    try {
      result = next ? await store.chains.apply(next, { expectedVersion: current?.version ?? 0 }) : await store.chains.delete(name, { expectedVersion: current!.version });
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      if (attempt === ATTEMPTS) throw new ApiError(grpc.status.ABORTED, `chain ${name} kept changing while this call edited it (${ATTEMPTS} tries): ${err.message}`);
      continue;
    }

    try {
      await ctx.reconciler.waitFor(name, result.revision, { timeoutMs: waitMs(call), deleted: next === null, signal: call.signal });
    } catch (err) {
      if (isAbort(err)) throw err;
      if (err instanceof WaitTimeoutError) {
        throw new ApiError(
          grpc.status.DEADLINE_EXCEEDED,
          `version ${result.version} of chain ${name} is recorded in etcd, but host ${ctx.host} had not applied it in time; it will when it can (its status in etcd tells)`,
        );
      }
      if (!result.unchanged) await restore(ctx, name, current, { version: result.version, revision: result.revision, deleted: next === null }, err);
      throw err;
    }
    return name;
  }
}

function waitMs(call: CallContext): number {
  return Math.max(0, Math.min(APPLY_TIMEOUT_MS, call.remainingMs()));
}

/**
 * Takes the version `failed` of `name` back after this host failed to apply it, so
 * etcd holds what it held before the call (no version for a change that never
 * was), and waits until this host runs `previous` again.
 */
async function restore(ctx: ApiContext, name: string, previous: StoredChain | undefined, failed: { version: number; revision: number; deleted: boolean }, cause: unknown): Promise<void> {
  const log = ctx.log.with({ chain: name });
  try {
    const back = await ctx.store().chains.undo(name, failed, previous);
    if (!back.undone) {
      // Someone changed the chain meanwhile: theirs is the desired state now.
      log.warn('could not take back a change this host failed to apply: the chain changed meanwhile', { failedVersion: failed.version, error: (cause as Error).message });
      return;
    }
    log.warn('change not applied by this host: taken back', { failedVersion: failed.version, restored: previous?.version ?? 'deleted', error: (cause as Error).message });
    await ctx.reconciler.waitFor(name, back.revision, { timeoutMs: 10_000, deleted: !previous }).catch(() => undefined);
  } catch (err) {
    log.warn('could not take back a change this host failed to apply', { failedVersion: failed.version, error: (err as Error).message });
  }
}

/**
 * What this host's runtime says of the topology the edit leads to: loops and
 * paths over the tail-call limit are FAILED_PRECONDITION, as the runtime would
 * refuse them. Anything else it finds, the chain validation reports with a path.
 */
async function precheck(ctx: ApiContext, next: Chain, all: StoredChain[]): Promise<void> {
  const chains = [...all.filter((c) => c.name !== next.metadata.name).map((c) => c.chain), next];
  const plan = planHost(chains, ctx.host);
  const facts = new Map<string, TypeFacts>();
  for (const cube of plan.cubes) {
    const local = ctx.runtime.types.get(cube.type);
    if (local) facts.set(cube.type, local);
  }
  if (plan.cubes.some((c) => !facts.has(c.type))) {
    for (const t of await ctx.store().types.listTypes()) if (!facts.has(t.name)) facts.set(t.name, t);
  }
  try {
    wire(plan.topology, (t) => facts.get(t));
  } catch (err) {
    if (err instanceof FailedPreconditionError) throw failedPrecondition(err.message);
  }
}

// `--wait`: until every host placing cubes of the chain reports the change done, with
// progress on stderr. Applying goes through the store's waitApplied; a deletion is
// done once the hosts have withdrawn their status reports for the chain's cubes.

import { setTimeout as sleep } from 'node:timers/promises';
import { Chain } from '@netcube/api/chain';
import { ApplyFailedError, CubeFailure, Store, WaitProgress, WaitTimeoutError } from '@netcube/api/store';
import { Args, CommandFailed, parseDuration, stringOption, UsageError } from './command';
import { ProgressLine } from './progress';
import { Session } from './session';

export const WAIT_OPTIONS = {
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

export const WAIT_HELP: [string, string][] = [
  ['--wait', 'wait until every host reports the change applied, showing progress; exit 1 if it does not converge'],
  ['--timeout DURATION', 'how long --wait waits, e.g. 30s, 2m (default: 60s)'],
];

const DEFAULT_TIMEOUT_MS = 60_000;
const POLL_MS = 200;

export interface WaitOutcome {
  converged: boolean;
  done: number;
  total: number;
  pending: string[];
  failures: CubeFailure[];
  message?: string;
}

export function waitTimeout(args: Args, command: string): number {
  const text = stringOption(args, 'timeout');
  if (text !== undefined && args.values.wait !== true) throw new UsageError('--timeout goes with --wait', command);
  return text === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(text, 'timeout', command);
}

/** Waits for `chain` at `version` everywhere; prints the outcome, and per cube any host errors. */
export async function waitApplied(session: Session, chain: string, version: number, timeoutMs: number): Promise<WaitOutcome> {
  const store = await session.store();
  const line = new ProgressLine(session.io.stderr, 'applied');
  let last: WaitProgress | undefined;
  try {
    const result = await store.status.waitApplied(chain, version, {
      timeoutMs,
      onProgress: progress => {
        last = progress;
        line.update(progress);
      },
    });
    line.finish();
    return { converged: true, done: result.cubes, total: result.cubes, pending: [], failures: [] };
  } catch (err) {
    line.finish();
    if (err instanceof ApplyFailedError || err instanceof WaitTimeoutError) {
      const failures = [...err.failures];
      const pending = err instanceof WaitTimeoutError ? [...err.pending] : [];
      const total = last?.total ?? failures.length + pending.length;
      return { converged: false, done: last?.done ?? 0, total, pending, failures, message: err.message };
    }
    throw err;
  }
}

/**
 * Waits until no host reports a cube of the deleted `chain` any more (each host
 * withdraws its reports once it has removed the cubes).
 */
export async function waitRemoved(session: Session, chain: Chain, timeoutMs: number): Promise<WaitOutcome> {
  const store = await session.store();
  const name = chain.metadata.name;
  const expected = chain.spec.cubes.map(cube => `${cube.host}/${cube.name}`);
  const line = new ProgressLine(session.io.stderr, 'removed');
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const remaining = new Set(
        (await store.status.listStatus(name)).map(s => `${s.host}/${s.cube}`).filter(id => expected.includes(id)),
      );
      const pending = expected.filter(id => remaining.has(id));
      const progress: WaitProgress = { done: expected.length - pending.length, total: expected.length, pending, failures: [] };
      line.update(progress);
      if (pending.length === 0) return { converged: true, done: progress.done, total: progress.total, pending: [], failures: [] };
      if (Date.now() >= deadline) {
        line.finish();
        const message = `chain ${name} is not removed everywhere after ${(timeoutMs / 1000).toFixed(1)} s: still on ${await describePending(store, pending)}`;
        return { converged: false, done: progress.done, total: progress.total, pending, failures: [], message };
      }
      await sleep(POLL_MS);
    }
  } finally {
    line.finish();
  }
}

/** `h2 (fwd2, not registered: is netcubed running there?)` */
async function describePending(store: Store, pending: string[]): Promise<string> {
  const registered = new Set((await store.hosts.listHosts()).map(h => h.name));
  const byHost = new Map<string, string[]>();
  for (const id of pending) {
    const [host, cube] = id.split('/');
    byHost.set(host, [...(byHost.get(host) ?? []), cube]);
  }
  return [...byHost]
    .map(([host, cubes]) => `${host} (${cubes.join(', ')}${registered.has(host) ? '' : ', not registered: is netcubed running there?'})`)
    .join(', ');
}

/** Turns a wait that did not converge into exit code 1, with each host's error on a line of its own. */
export function reportWait(outcome: WaitOutcome, subject: string): void {
  if (outcome.converged) return;
  const perCube = outcome.failures.map(f => `\n  ${f.host}/${f.cube}: ${f.error}`).join('');
  let headline: string;
  if (outcome.pending.length === 0) {
    headline = `${subject} failed on ${outcome.failures.length} of ${outcome.total} cubes:`;
  } else {
    // The store's timeout message names the hosts still pending and whether they are registered.
    headline = (outcome.message ?? `${subject} did not converge`).split('; failed: ')[0];
    if (perCube) headline += `; failed:`;
  }
  throw new CommandFailed(headline + perCube);
}

// Retries driven by StoreError.recoverable, with exponential backoff and jitter so that
// daemons that lost etcd together do not all come back in the same millisecond.

import { setTimeout as sleep } from 'node:timers/promises';
import { StoreClosedError, StoreError, StoreUnavailableError } from './errors';

export interface RetryPolicy {
  /** Ceiling of the first delay. */
  initialDelayMs: number;
  /** Ceiling the delays grow to. */
  maxDelayMs: number;
  /** Give up when the next attempt would start later than this after the first. */
  timeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { initialDelayMs: 100, maxDelayMs: 2000, timeoutMs: 30_000 };

/** Told before each retry: what failed, and when the next attempt comes. */
export interface RetryEvent {
  operation: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  delayMs: number;
  error: StoreError;
}
export type RetryListener = (event: RetryEvent) => void;

/**
 * Delays that double up to a ceiling; each is drawn from the upper half of its step
 * ("equal jitter"): spread out, but never a hot loop.
 */
export class Backoff {
  private step = 0;

  constructor(private readonly policy: Pick<RetryPolicy, 'initialDelayMs' | 'maxDelayMs'>) {}

  next(): number {
    const ceiling = Math.min(this.policy.maxDelayMs, this.policy.initialDelayMs * 2 ** this.step);
    this.step = Math.min(this.step + 1, 30);
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  reset(): void {
    this.step = 0;
  }
}

/** Waits `ms`, or rejects with StoreClosedError as soon as `signal` aborts. */
export async function pause(ms: number, signal: AbortSignal, operation: string): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw new StoreClosedError(`${operation}: the store is closed`);
  }
}

/** Runs `attempt` until it succeeds, fails with an unrecoverable error, or time is up. */
export async function retry<T>(
  operation: string,
  attempt: () => Promise<T>,
  policy: RetryPolicy,
  signal: AbortSignal,
  onRetry?: RetryListener,
): Promise<T> {
  const backoff = new Backoff(policy);
  const started = Date.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof StoreError) || !err.recoverable) throw err;
      const delayMs = backoff.next();
      if (Date.now() + delayMs - started > policy.timeoutMs) {
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        throw new StoreUnavailableError(`${err.message} (gave up after ${n} attempts in ${seconds} s)`, { cause: err });
      }
      onRetry?.({ operation, attempt: n, delayMs, error: err });
      await pause(delayMs, signal, operation);
    }
  }
}

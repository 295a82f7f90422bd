// Calls that take much memory or CPU while they run: a batch of table entries
// (decoded, then encoded through BTF), an ELF object (opened in a child process,
// test-loaded by the verifier). At most MAX_RUNNING run at once and MAX_WAITING
// wait their turn; past that a call is refused with RESOURCE_EXHAUSTED naming the
// limits, so a burst of them costs a bounded amount of memory and leaves the event
// loop to the daemon's other work. A batch of entries waits as the bytes it came
// in (its decoding is deferred to its turn: server.ts), not as the objects it
// decodes to, which take many times more.

import * as grpc from '@grpc/grpc-js';
import { ApiError } from '@netcube/api/grpc/status';

export const MAX_RUNNING = 2;
export const MAX_WAITING = 8;

/** The methods that go through here. */
export const HEAVY_METHODS = ['PutEntries', 'RegisterType', 'ReplaceMicroCube'] as const;

export class HeavyCalls {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  /** Runs `fn` in a turn of its own (acquire). */
  async run<T>(method: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(method, signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * Waits for a turn: at once while fewer than MAX_RUNNING run, else in line; refused
   * at once when MAX_WAITING wait already; the wait ends when `signal` aborts. The
   * function it resolves with ends the turn (once).
   */
  async acquire(method: string, signal: AbortSignal): Promise<() => void> {
    if (this.running >= MAX_RUNNING) {
      if (this.waiting.length >= MAX_WAITING) {
        throw new ApiError(
          grpc.status.RESOURCE_EXHAUSTED,
          `${method}: netcubed runs at most ${MAX_RUNNING} heavy calls (${HEAVY_METHODS.join(', ')}) at once and queues ${MAX_WAITING} more, and both are full: retry later`,
        );
      }
      await new Promise<void>((resolve, reject) => {
        const turn = (): void => {
          signal.removeEventListener('abort', abort);
          resolve();
        };
        const abort = (): void => {
          this.waiting.splice(this.waiting.indexOf(turn), 1);
          reject(signal.reason);
        };
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener('abort', abort, { once: true });
        this.waiting.push(turn);
      });
    } else {
      this.running++;
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      // The turn goes to the next in line, or is freed.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }
}

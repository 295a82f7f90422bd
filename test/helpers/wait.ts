// The one way tests wait for something: poll a condition until it holds, never a
// sleep standing in for an event. A check that throws counts as "not yet"; on time
// out the error names what was awaited and the check's last error.

import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `check` until it returns something other than undefined/false; throws after `timeoutMs` saying `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last error: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

// Loaded by ava into every test worker, before the test file (package.json,
// ava.require). A worker exits by itself once its last test is done; when something
// still holds its event loop (a timer, a socket, a child process, a watch still
// retrying), ava notices only at its inactivity timeout, minutes later, and says
// nothing of what was left. This names what holds the worker, timers with the stack
// that set them, and fails the worker after a short grace instead.

import { ChildProcess } from 'node:child_process';
import { Server, Socket } from 'node:net';
import test from 'ava';

const GRACE_MS = 15_000;

// Timers are not among the active handles Node lists, so remember where each was
// set: setTimeout and setInterval wrapped, not an async hook, which would run for
// every promise of the worker (measured: a promise-heavy loop half again as slow).
const timers = new Map<NodeJS.Timeout, Error>();
const { setTimeout: setTimer, setInterval: setRepeating, clearTimeout: clearTimer } = globalThis;
/** `set`, remembering where each timer was set until it is cleared (or, `once`, until it ran). */
function watched<T extends typeof setTimeout | typeof setInterval>(set: T, once: boolean): T {
  const wrapper = function (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) {
    const run = (...a: unknown[]) => {
      if (once) timers.delete(timer);
      callback.apply(timer, a);
    };
    const timer = (set as typeof setRepeating)(run, ms, ...args);
    timers.set(timer, new Error());
    return timer;
  };
  return Object.assign(wrapper, set) as unknown as T;
}
globalThis.setTimeout = watched(setTimer, true);
globalThis.setInterval = watched(setRepeating, false);
// Node's clearTimeout and clearInterval each clear either kind.
globalThis.clearTimeout = globalThis.clearInterval = ((timer?: NodeJS.Timeout | string | number) => {
  timers.delete(timer as NodeJS.Timeout);
  clearTimer(timer);
}) as typeof clearTimeout;

function describe(h: unknown): string {
  if (h instanceof ChildProcess) return `child process ${h.pid}: ${h.spawnargs.join(' ')}`;
  if (h instanceof Socket) return h.remoteAddress ? `socket ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}` : 'pipe or unix socket';
  if (h instanceof Server) return `server listening at ${JSON.stringify(h.address())}`;
  return (h as object)?.constructor?.name ?? typeof h;
}

function whereSet(made: Error): string {
  const frames = made.stack!.split('\n').filter((l) => l.startsWith('    at ') && !l.includes('node:internal') && !l.includes('exit-watch'));
  return frames.slice(0, 6).join('\n');
}

// ava runs this hook before the test file's own after.always hooks (it was declared
// first), so the grace is counted again while a child process runs (those hooks'
// cleanup commands, such as deploy/hosts.sh down), up to CLEANUP_MS in all.
const CLEANUP_MS = 180_000;

test.after.always('the worker exits once its tests are done', () => {
  const start = Date.now();
  const check = () => {
    // process._getActiveHandles is undocumented, and the one way to see the handles themselves.
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    if (handles.some((h) => h instanceof ChildProcess) && Date.now() - start < CLEANUP_MS) {
      setTimeout(check, GRACE_MS).unref();
      return;
    }
    const held = [...timers].filter(([timer]) => timer.hasRef()).map(([, made]) => made);
    process.stderr.write(
      `\nthis test file's worker is still running ${Math.round((Date.now() - start) / 1000)} s after its last test; something was not closed:\n` +
        `  resources: ${process.getActiveResourcesInfo().join(', ')}\n` +
        handles.map((h) => `  ${describe(h)}\n`).join('') +
        held.map((made) => `  a timer set\n    ${whereSet(made).trim().replace(/\n\s*/g, '\n    ')}\n`).join(''),
    );
    process.exit(1);
  };
  setTimeout(check, GRACE_MS).unref();
});

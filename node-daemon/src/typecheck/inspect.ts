// Inspecting untrusted ELF objects where a crash cannot hurt the daemon: each
// batch goes to a short-lived child process (child.ts) that opens the objects
// with the same libbpf binding, reports what they hold and, when asked, loads
// them once into the kernel and throws them away (the test load: the verifier's
// verdict before anything is registered). A child that crashes, hangs or talks
// too much is killed by its pid; the object it was on gets the error, and a new
// child takes the rest. At most MAX_CHILDREN run at once.

import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { possibleCpus } from '../bpf/addon';
import type { Mode } from '../runtime/topology';
import type { Verdict } from './child';
import type { TypePolicy } from './policy';
import { checkReport, type ObjectReport } from './report';

export interface InspectRequest {
  /** Names the object in errors: "cube type fw (xdp object)". */
  label: string;
  mode: Mode;
  elf: Buffer;
  /** Load it into the kernel once (if the policy allows it) and report the verifier's verdict. */
  testLoad?: boolean;
}

export type InspectResult = { ok: true; report: ObjectReport; verdict?: Verdict } | { ok: false; error: string };

/** Time a child may take per object: opening is quick, the verifier can take seconds on a large program. */
const OBJECT_TIMEOUT_MS = 30_000;
/** What a child may print: reports are a few kB. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
const MAX_CHILDREN = 2;
const CHILD = path.join(__dirname, 'child.js');

let running = 0;
const waiting: (() => void)[] = [];

async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_CHILDREN) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** Reports on every object of `requests`, in order; never throws for what an object is or does. */
export async function inspectObjects(requests: readonly InspectRequest[], policy: TypePolicy): Promise<InspectResult[]> {
  const results: (InspectResult | undefined)[] = requests.map(() => undefined);
  // Each round runs one child on the objects left; one that dies costs the object it was on.
  for (let next = 0; next < requests.length; ) {
    const batch = requests.slice(next);
    const run = await slot(() => runChild(batch, policy));
    run.results.forEach((r, i) => (results[next + i] = r));
    next += run.done;
    if (next < requests.length && run.done < batch.length) {
      results[next] = { ok: false, error: `${requests[next].label}: ${run.failure}` };
      next++;
    }
  }
  return results as InspectResult[];
}

interface ChildRun {
  /** Results of the first `done` objects of the batch. */
  results: InspectResult[];
  done: number;
  /** Why the child stopped before the end, said of the object it was on. */
  failure: string;
}

function runChild(batch: readonly InspectRequest[], policy: TypePolicy): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD], { stdio: ['pipe', 'pipe', 'pipe'] });
    const results: InspectResult[] = [];
    /** The report of the object in progress, waiting for its verdict. */
    let opened: ObjectReport | undefined;
    let output = '';
    let outputBytes = 0;
    let stderr = '';
    let failure: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const stop = (why: string): void => {
      failure ??= why;
      child.kill('SIGKILL');
    };
    const watchdog = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => stop(`inspecting it took longer than ${OBJECT_TIMEOUT_MS / 1000} s`), OBJECT_TIMEOUT_MS);
    };
    const finish = (index: number, result: InspectResult): void => {
      results[index] = result;
      opened = undefined;
      watchdog();
    };
    const onLine = (line: string): void => {
      let msg: { index?: unknown; error?: unknown; report?: unknown; verdict?: unknown };
      try {
        msg = JSON.parse(line);
      } catch {
        return stop('the inspector said something that is not JSON');
      }
      const index = results.length;
      if (msg.index !== index) return stop(`the inspector answered out of turn (object ${String(msg.index)}, expected ${index})`);
      const request = batch[index];
      if (typeof msg.error === 'string') return finish(index, { ok: false, error: `${request.label}: not a usable BPF ELF object: ${msg.error.slice(0, 4096)}` });
      if (msg.report !== undefined) {
        try {
          opened = checkReport(msg.report);
        } catch (err) {
          return stop((err as Error).message);
        }
        // A verdict follows when a test load was asked; else this is the whole result.
        if (!request.testLoad) finish(index, { ok: true, report: opened });
        return;
      }
      if (msg.verdict === null && opened) return finish(index, { ok: true, report: opened });
      if (msg.verdict !== undefined && opened) {
        const v = msg.verdict as Verdict;
        const verdict: Verdict = { ok: v.ok === true };
        for (const key of ['program', 'message', 'log'] as const) if (typeof v[key] === 'string') verdict[key] = (v[key] as string).slice(0, 8192);
        return finish(index, { ok: true, report: opened, verdict });
      }
      stop('the inspector said something unexpected');
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      outputBytes += chunk.length;
      if (outputBytes > MAX_OUTPUT_BYTES) return stop(`the inspector's report went over ${MAX_OUTPUT_BYTES} bytes`);
      output += chunk;
      for (let nl = output.indexOf('\n'); nl >= 0; nl = output.indexOf('\n')) {
        onLine(output.slice(0, nl));
        output = output.slice(nl + 1);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    // A child that dies early closes its stdin: what was not written is of no use.
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => stop(`the inspector could not run: ${err.message}`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // A report that came without its verdict: the test load is what ended the child.
      if (opened && results.length < batch.length && !failure && signal) failure = `libbpf crashed (${signal}) while loading it into the kernel`;
      if (results.length < batch.length && !failure) {
        failure = signal
          ? `libbpf crashed (${signal}) while opening it: the object is malformed`
          : `the inspector stopped (exit code ${code})${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' ').slice(0, 1024)}` : ''}`;
      }
      resolve({ results, done: results.length, failure: failure ?? '' });
    });
    watchdog();
    const header = {
      objects: batch.map((r) => ({ label: r.label, mode: r.mode, size: r.elf.length, testLoad: r.testLoad === true })),
      policy,
      cpus: possibleCpus,
    };
    child.stdin.write(`${JSON.stringify(header)}\n`);
    for (const r of batch) child.stdin.write(r.elf);
    child.stdin.end();
  });
}

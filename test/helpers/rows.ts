// Data-plane tests as tables: each row is {description, input frame, expected
// verdict, expected output frame, expected metadata} plus what else it checks
// (counters, ring-buffer records), and runs once per hook, XDP and TC, through
// BPF_PROG_TEST_RUN, against a fresh fixture of its own.

import test, { type ExecutionContext } from 'ava';
import { diffFrames } from '@netcube/sdk/packet';
import { Program } from '../../node-daemon/src/bpf';
import { Metadata } from '../../node-daemon/src/runtime/abi';
import type { Mode } from '../../node-daemon/src/runtime/topology';
import { RunResult, Verdict, runProgram } from './dataplane';

export { errors, packetRecords, records } from './dataplane';

export interface Row<F> {
  description: string;
  /** The hooks the row is for; default both. */
  modes?: readonly Mode[];
  /** The frame that goes in; a function when it depends on the fixture (ids, ifindexes). */
  input: Buffer | ((f: F, mode: Mode) => Buffer);
  /** Changes the fixture before the run (table entries, a topology). */
  setup?: (f: F, mode: Mode) => void | Promise<void>;
  /** The program the frame goes into; default the table's. */
  program?: (f: F) => Program;
  /** Metadata the frame enters with (raw bytes: as they are); none when absent or undefined. */
  md?: (f: F, mode: Mode) => Metadata | Buffer | undefined;
  verdict: Verdict;
  /** The frame after the run; default: the input, unchanged. */
  output?: Buffer | ((f: F, mode: Mode) => Buffer);
  /** The metadata the frame leaves with; not checked when absent. */
  outMd?: (f: F, mode: Mode) => Metadata;
  /** Anything else to check: counters, records. */
  check?: (t: ExecutionContext, f: F, res: RunResult, mode: Mode) => unknown;
}

/**
 * Registers one test per row and hook. `netns`: the network namespace the runs
 * happen in (a cube that asks the kernel's routes, bpf_fib_lookup, sees that one's).
 */
export function table<F>(rows: readonly Row<F>[], fixture: (t: ExecutionContext, mode: Mode) => Promise<F>, program: (f: F) => Program, netns?: (f: F) => string): void {
  for (const row of rows) {
    for (const mode of row.modes ?? (['xdp', 'tc'] as const)) {
      test(`${mode}: ${row.description}`, async (t) => {
        const f = await fixture(t, mode);
        await row.setup?.(f, mode);
        const frame = (x: Buffer | ((f: F, mode: Mode) => Buffer)): Buffer => (Buffer.isBuffer(x) ? x : x(f, mode));
        const input = frame(row.input);
        const res = await runProgram((row.program ?? program)(f), mode, input, row.md?.(f, mode), { netns: netns?.(f) });
        t.is(res.verdict, row.verdict, 'verdict');
        const diff = diffFrames(res.frame, row.output === undefined ? input : frame(row.output));
        t.true(diff === undefined, `output frame: ${diff}`);
        if (row.outMd) t.deepEqual(res.md, row.outMd(f, mode), 'metadata');
        await row.check?.(t, f, res, mode);
      });
    }
  }
}

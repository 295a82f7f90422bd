// The object inspector: a short-lived process that opens untrusted ELF objects
// with the daemon's own libbpf binding and says what they hold, so that an object
// that makes libbpf crash (libbpf 1.1 has crashed on malformed BTF) takes this
// process down, never the daemon. Run by inspect.ts, never by hand.
//
// stdin: one line of JSON, { objects: [{ label, mode, size, testLoad }], policy, cpus },
// then the objects' bytes one after the other. stdout: JSON lines, written one at
// a time with a blocking write before the next object is touched, so the parent
// knows exactly how far it got:
//   { index, error }                     libbpf refused to open it
//   { index, report }                    opened; `report` is an ObjectReport
//   { index, verdict }                   after a test load, when asked: null when the
//                                        policy forbids loading it (it is refused anyway)

import * as fs from 'node:fs';
import { CollectionSpec, VerifierError } from '../bpf';
import type { Mode } from '../runtime/topology';
import { policyProblems, type TypePolicy } from './policy';
import { describeSpec } from './report';

interface Header {
  objects: { label: string; mode: Mode; size: number; testLoad: boolean }[];
  policy: TypePolicy;
  cpus: number;
}

/** What a test load found: whether the kernel took every program, and if not, why. */
export interface Verdict {
  ok: boolean;
  /** The program the verifier rejected. */
  program?: string;
  message?: string;
  /** The end of the verifier's log, where its reason is. */
  log?: string;
}

const LOG_TAIL = 4096;

function say(line: object): void {
  fs.writeSync(1, `${JSON.stringify(line)}\n`);
}

async function main(): Promise<void> {
  const input = fs.readFileSync(0);
  const newline = input.indexOf(10);
  const header = JSON.parse(input.subarray(0, newline).toString('utf8')) as Header;
  let offset = newline + 1;
  for (const [index, object] of header.objects.entries()) {
    const elf = input.subarray(offset, offset + object.size);
    offset += object.size;
    let spec: CollectionSpec;
    try {
      spec = CollectionSpec.fromBuffer(elf, object.label);
    } catch (err) {
      say({ index, error: (err as Error).message });
      continue;
    }
    const report = describeSpec(spec);
    say({ index, report });
    if (!object.testLoad) {
      spec.close();
      continue;
    }
    // Only what the policy allows is loaded: a map past its limits is never created.
    if (policyProblems(object.label, object.mode, report, header.policy, header.cpus).length > 0) {
      spec.close();
      say({ index, verdict: null });
      continue;
    }
    let verdict: Verdict;
    try {
      (await spec.load()).close();
      verdict = { ok: true };
    } catch (err) {
      const e = err as Error;
      verdict = e instanceof VerifierError ? { ok: false, program: e.program, message: e.message.split('\n')[0], log: e.log.slice(-LOG_TAIL) } : { ok: false, message: e.message.slice(0, LOG_TAIL) };
    }
    say({ index, verdict });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(2);
  },
);

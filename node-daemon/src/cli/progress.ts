// The progress of `--wait`: one line rewritten in place on a terminal, a plain line
// per change otherwise (logs, CI), so both read well.

import { WaitProgress } from '@netcube/api/store';
import { some } from './output';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class ProgressLine {
  private open = false;
  private last = '';

  constructor(
    private readonly stream: ProgressStream,
    /** What done means: `applied`, `removed`. */
    private readonly verb: string,
  ) {}

  /** `2/3 cubes applied; waiting for host2/fwd2` */
  static describe(progress: WaitProgress, verb: string): string {
    const parts = [`${progress.done}/${progress.total} cubes ${verb}`];
    if (progress.failures.length > 0) {
      parts.push(`${progress.failures.length} failed (${some(progress.failures.map(f => `${f.host}/${f.cube}`))})`);
    }
    if (progress.pending.length > 0) parts.push(`waiting for ${some(progress.pending)}`);
    return parts.join('; ');
  }

  update(progress: WaitProgress): void {
    const line = ProgressLine.describe(progress, this.verb);
    if (line === this.last) return;
    this.last = line;
    if (this.stream.isTTY) {
      // Carriage return, then erase to the end of the line: the old text cannot show through.
      this.stream.write(`\r\x1b[K${line}`);
      this.open = true;
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  /** Ends the line in place, so what follows starts on its own line. */
  finish(): void {
    if (this.open) this.stream.write('\n');
    this.open = false;
  }
}

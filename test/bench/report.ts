// What a benchmark suite reports, and how the runner prints it. Results that
// compare against a baseline carry both, measured in the same run on the same
// machine; a ratio is the only thing worth comparing across machines.
import type { Writable } from 'node:stream';

export interface Result {
  /**
   * Dotted, starting with the suite's name ("binding.update.ratio"), or with the
   * name an issue gave the measurement ("p1.xdp.ratio").
   */
  name: string;
  value: number;
  /** "updates/s", "ns/packet", "x" for ratios. */
  unit: string;
  /** The baseline's value of the same quantity, when this result is compared to one. */
  baseline?: number;
  /** value / baseline for rates (higher is better), baseline / value for costs. */
  ratio?: number;
  /**
   * The least acceptable ratio (or value, for results without one), or the most
   * acceptable when `better` is 'lower'. A missed target shows as MISSED.
   */
  target?: number;
  /** Which way is better for the target; default 'higher'. */
  better?: 'higher' | 'lower';
  /** What the operator should know: for a missed target, the measurement and what limits it. */
  note?: string;
}

/** A module in test/bench/suites/ exports one as `suite`. */
export interface Suite {
  /** The module's file name; names the suite on the command line and prefixes its results. */
  name: string;
  description: string;
  run(ctx: SuiteContext): Promise<Result[]>;
}

export interface SuiteContext {
  /** The repository root. */
  root: string;
  /** Where a suite may put what it builds: build/bench. */
  buildDir: string;
  /** Progress for the operator, on stderr. */
  log(message: string): void;
}

/** Whether a result reaches its target; results without one always do. */
export function meetsTarget(result: Result): boolean {
  if (result.target === undefined) return true;
  const v = result.ratio ?? result.value;
  return result.better === 'lower' ? v <= result.target : v >= result.target;
}

function targetText(result: Result): string {
  if (result.target === undefined) return '';
  return `${result.better === 'lower' ? '<=' : '>='} ${result.target}`;
}

function format(n: number | undefined): string {
  if (n === undefined) return '';
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(3);
}

export function printTable(results: Result[], out: Writable): void {
  const rows = [['name', 'value', 'unit', 'baseline', 'ratio', 'target', '']];
  for (const r of results) {
    rows.push([r.name, format(r.value), r.unit, format(r.baseline), format(r.ratio),
               targetText(r), meetsTarget(r) ? '' : 'MISSED']);
  }
  const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));
  for (const row of rows) {
    out.write(`${row.map((cell, col) => (col === 0 || col === 2 ? cell.padEnd(widths[col]) : cell.padStart(widths[col])))
      .join('  ').trimEnd()}\n`);
  }
  const notes = results.filter((r) => r.note !== undefined);
  if (notes.length > 0) out.write('\n');
  for (const r of notes) out.write(`${r.name}${meetsTarget(r) ? '' : ' (MISSED)'}: ${r.note}\n`);
}

/**
 * One JSON object per line: {"name","value","unit","baseline","ratio","target","met","note"},
 * null where absent ("met" is null without a target).
 */
export function printJsonLines(results: Result[], out: Writable): void {
  for (const r of results) {
    out.write(`${JSON.stringify({ name: r.name, value: r.value, unit: r.unit, baseline: r.baseline ?? null,
                                  ratio: r.ratio ?? null, target: r.target === undefined ? null : targetText(r),
                                  met: r.target === undefined ? null : meetsTarget(r), note: r.note ?? null })}\n`);
  }
}

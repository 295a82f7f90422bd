// How netcubectl prints: aligned text tables for people, JSON and YAML for programs.
// Results go to stdout; progress, warnings and errors to stderr.

import { stringify } from 'yaml';

/** Columns aligned on the widest cell; the last column is not padded. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map(row => row.map(cell => String(cell)))];
  const widths = headers.map((_, i) => Math.max(...cells.map(row => (row[i] ?? '').length)));
  return cells
    .map(row => row.map((cell, i) => (i === row.length - 1 ? cell : (cell ?? '').padEnd(widths[i]))).join('  ').trimEnd())
    .join('\n') + '\n';
}

/** Values for JSON and YAML: bigints become numbers when exact, decimal strings otherwise; Buffers hex. */
export function plain(value: unknown): unknown {
  if (typeof value === 'bigint') return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return plain((value as { toJSON(): unknown }).toJSON());
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

export function toJson(value: unknown): string {
  return JSON.stringify(plain(value), null, 2) + '\n';
}

export function toYaml(value: unknown): string {
  return stringify(plain(value), { lineWidth: 0 });
}

/** `2025-01-02T03:04:05.678Z` as `2025-01-02 03:04:05`, with how long ago. */
export function when(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} (${ago(now - t)})`;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** `fwd1, fwd2, fwd3 and 4 more` */
export function some(items: string[], max = 3): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

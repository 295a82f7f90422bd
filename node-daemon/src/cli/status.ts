// What the hosts report about the cubes of the chains: one state per cube, as
// `get` and `describe` show it.

import { CubeStatusEntry, StoredChain } from '@netcube/api/store';

export interface CubeState {
  /** applied, error, pending (the host has not caught up), or unknown (no report at all). */
  state: 'applied' | 'error' | 'pending' | 'unknown';
  /** The version the host reported on, when it did. */
  version?: number;
  /** The host still reports on this older version. */
  behind?: number;
  error?: string;
  updatedAt?: string;
}

/** The state of `cube` of `chain` at its current version, from its host's report. */
export function cubeState(chain: StoredChain, cube: string, reports: readonly CubeStatusEntry[]): CubeState {
  const spec = chain.chain.spec.cubes.find(c => c.name === cube);
  const report = reports.find(r => r.cube === cube && r.host === spec?.host && r.chain === chain.name);
  if (!report) return { state: 'unknown' };
  const base = { version: report.version, updatedAt: report.updatedAt };
  // A report about an older version says nothing about the current one.
  if (report.revision < chain.revision) return { state: 'pending', ...base, behind: report.version };
  return report.state === 'error' ? { state: 'error', error: report.error, ...base } : { state: report.state, ...base };
}

/** `applied`, `error: <why>`, `pending (host at v2)`, `no report` */
export function describeState(s: CubeState): string {
  switch (s.state) {
    case 'applied':
      return 'applied';
    case 'error':
      return `error: ${s.error ?? 'no detail reported'}`;
    case 'pending':
      return s.behind !== undefined ? `pending (host at v${s.behind})` : 'pending';
    case 'unknown':
      return 'no report';
  }
}

import { firstOf } from '../cite';
import { ChainIssue } from './types';

/** The most problems a message lists; the rest are counted. */
export const MAX_ISSUES_SHOWN = 20;

/**
 * A chain that cannot be applied, with every problem found (not just the first), so a
 * user fixes a file in one round trip.
 */
export class ChainValidationError extends Error {
  override readonly name = 'ChainValidationError';

  constructor(
    /** metadata.name when it could be read. */
    readonly chain: string | undefined,
    readonly issues: readonly ChainIssue[],
    /** The file or other origin the chain was parsed from. */
    readonly source?: string,
  ) {
    super(describe(chain, issues, source));
  }
}

function describe(chain: string | undefined, issues: readonly ChainIssue[], source?: string): string {
  const subject = chain ? `chain ${chain}` : source ? `chain in ${source}` : 'chain';
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  return `${subject} is invalid (${count}):\n` + firstOf(issues.map(i => '  ' + formatIssue(i, source)), MAX_ISSUES_SHOWN, '\n');
}

/** `demo.yaml:14:7 spec.links[2].to: unknown cube fwd9; ...` */
export function formatIssue(issue: ChainIssue, source?: string): string {
  let where = '';
  if (issue.line !== undefined) {
    const position = issue.column !== undefined ? `${issue.line}:${issue.column}` : `${issue.line}`;
    where = source ? `${source}:${position} ` : `line ${position} `;
  }
  const path = issue.path ? `${issue.path}: ` : '';
  return `${where}${path}${issue.message}`;
}

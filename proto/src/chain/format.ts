import { stringify } from 'yaml';
import { Chain } from './types';

/** The chain as a user would write it; parseChain reads either form back. */
export function formatChain(chain: Chain, format: 'yaml' | 'json'): string {
  if (format === 'json') return JSON.stringify(chain, null, 2) + '\n';
  // lineWidth 0: never fold long strings, so the output diffs line by line.
  return stringify(chain, { lineWidth: 0 });
}

// Turns whatever a command threw into what the user reads and the exit code:
// 0 ok, 1 failure, 2 usage. Validation problems are listed one per line as
// `file:line:column path: message`, so an editor can jump to each.

import { ChainIssue, ChainValidationError, formatIssue } from '@netcube/api/chain';
import { ApplyFailedError, NetcubeError, StoreUnavailableError, ValidationError, WaitTimeoutError } from '@netcube/api/store';
import { CommandFailed, UsageError } from './command';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface Explained {
  text: string;
  exitCode: number;
}

export function explain(err: unknown): Explained {
  if (err instanceof UsageError) {
    const help = err.command ? `netcubectl ${err.command} --help` : 'netcubectl --help';
    return { text: `netcubectl: ${err.message}\nsee ${help}`, exitCode: EXIT_USAGE };
  }
  if (err instanceof CommandFailed) return { text: `netcubectl: ${err.message}`, exitCode: err.exitCode };
  if (err instanceof ChainValidationError) return { text: issues(err.message.split('\n')[0], err.issues, err.source), exitCode: EXIT_FAILURE };
  if (err instanceof ValidationError && err.issues.length > 0) {
    const cause = err.cause instanceof ChainValidationError ? err.cause : undefined;
    const headline = (cause?.message ?? err.message).split('\n')[0];
    return { text: issues(headline, err.issues, cause?.source), exitCode: EXIT_FAILURE };
  }
  if (err instanceof ApplyFailedError || err instanceof WaitTimeoutError) {
    return { text: `netcubectl: ${err.message}`, exitCode: EXIT_FAILURE };
  }
  if (err instanceof StoreUnavailableError) {
    return { text: `netcubectl: ${err.message}; or point netcubectl at it with --etcd or $NETCUBE_ETCD`, exitCode: EXIT_FAILURE };
  }
  if (err instanceof NetcubeError) return { text: `netcubectl: ${err.message}`, exitCode: EXIT_FAILURE };
  const message = err instanceof Error ? err.message : String(err);
  return { text: `netcubectl: ${message}`, exitCode: EXIT_FAILURE };
}

function issues(headline: string, list: readonly ChainIssue[], source?: string): string {
  return [`netcubectl: ${headline}`, ...list.map(issue => formatIssue(issue, source))].join('\n');
}

// The statuses of what only netcubed throws: the kernel's errors (the verifier, a
// missing feature, no room). Everything else, the runtime's errors too (they are
// @netcube/api's errors.ts kinds), maps in @netcube/api's grpc/status.ts, which calls
// this classifier first.

import * as grpc from '@grpc/grpc-js';
import { ApiError, invalidArgument, type StatusOptions } from '@netcube/api/grpc/status';
import { BpfError, NotSupportedError, VerifierError } from '../bpf';
import { InvalidArgumentError } from '../runtime/errors';

const { status } = grpc;

const KERNEL_EXHAUSTED = new Set(['E2BIG', 'ENOMEM', 'ENOSPC']);

export function daemonErrors(err: unknown): ApiError | undefined {
  if (err instanceof VerifierError) return new ApiError(status.FAILED_PRECONDITION, `the kernel's verifier rejected program ${err.program}: ${verifierTail(err.log)}`);
  if (err instanceof NotSupportedError) return new ApiError(status.FAILED_PRECONDITION, `this host cannot do that: ${err.message}`);
  // The kernel is out of room: a full table, a map or program too large for its memory.
  if (err instanceof BpfError && KERNEL_EXHAUSTED.has(err.code)) return new ApiError(status.RESOURCE_EXHAUSTED, `the kernel has no room for it: ${err.message}`);
  return undefined;
}

/** How netcubed's API answers: the classifier above, and its name in INTERNAL statuses. */
export const DAEMON_STATUS: StatusOptions = { server: 'netcubed', classify: daemonErrors };

/** Runs `fn`; a runtime InvalidArgumentError it throws is reported as being about `field` of the request. */
export function asField<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw invalidArgument(field, err.message);
    throw err;
  }
}

/** The last lines of a verifier log, where the reason is. */
export function verifierTail(log: string, lines = 4): string {
  return log.trim().split('\n').slice(-lines).join(' | ');
}

// What a caller hears when a call fails: every error becomes one gRPC status.
// Handlers throw ApiError where they know the status, and let the errors of the
// runtime, the store and the chain format through; each of those maps to the
// status its type names. Anything else is a bug or a surprise: the client gets
// INTERNAL with a reference, the daemon's log gets the details.

import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { NotSupportedError, VerifierError } from '../bpf';
import { ChainValidationError, formatIssue } from '../chain';
import { Logger } from '../daemon/log';
import * as runtime from '../runtime/errors';
import { StoreError, ValidationError } from '../store';
import { FIELD_METADATA_KEY } from './proto';

const { status } = grpc;


/** A failure with its gRPC status; `field` for INVALID_ARGUMENT. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly field?: string,
  ) {
    super(field ? `${field}: ${message}` : message);
  }
}

export const invalidArgument = (field: string, message: string): ApiError => new ApiError(status.INVALID_ARGUMENT, message, field);
export const notFound = (message: string): ApiError => new ApiError(status.NOT_FOUND, message);
export const alreadyExists = (message: string): ApiError => new ApiError(status.ALREADY_EXISTS, message);
export const failedPrecondition = (message: string): ApiError => new ApiError(status.FAILED_PRECONDITION, message);

/** Runs `fn`; a runtime InvalidArgumentError it throws is reported as being about `field` of the request. */
export function asField<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof runtime.InvalidArgumentError) throw invalidArgument(field, err.message);
    throw err;
  }
}

export interface StatusObject {
  code: grpc.status;
  details: string;
  metadata: grpc.Metadata;
}

/** The status to answer `err` with; unexpected errors are logged with a reference the client sees. */
export function toStatus(err: unknown, log: Logger, method: string): StatusObject {
  const metadata = new grpc.Metadata();
  const answer = (code: grpc.status, details: string, field?: string): StatusObject => {
    if (field) metadata.set(FIELD_METADATA_KEY, field);
    return { code, details, metadata };
  };

  if (err instanceof ApiError) return answer(err.code, err.message, err.field);
  if (err instanceof runtime.InvalidArgumentError) return answer(status.INVALID_ARGUMENT, `${err.field}: ${err.message}`, err.field);
  if (err instanceof runtime.NotFoundError) return answer(status.NOT_FOUND, err.message);
  if (err instanceof runtime.AlreadyExistsError) return answer(status.ALREADY_EXISTS, err.message);
  if (err instanceof runtime.FailedPreconditionError) return answer(status.FAILED_PRECONDITION, err.message);
  if (err instanceof ChainValidationError) return answer(status.INVALID_ARGUMENT, chainIssues(err.issues), firstPath(err.issues));
  if (err instanceof ValidationError && err.issues.length > 0) return answer(status.INVALID_ARGUMENT, chainIssues(err.issues), firstPath(err.issues));
  if (err instanceof VerifierError)
    return answer(status.FAILED_PRECONDITION, `the kernel's verifier rejected program ${err.program}: ${verifierTail(err.log)}`);
  if (err instanceof NotSupportedError) return answer(status.FAILED_PRECONDITION, `this host cannot do that: ${err.message}`);
  if (err instanceof StoreError && err.code !== 'INTERNAL') return answer(status[err.code], err.message);
  if (isAbort(err)) return answer(status.CANCELLED, 'the call was cancelled');

  const ref = randomBytes(4).toString('hex');
  log.error('internal error in a gRPC call', {
    method,
    ref,
    error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  return answer(status.INTERNAL, `internal error in netcubed (reference ${ref}; its log has the details)`);
}

function chainIssues(issues: readonly { path: string; message: string }[]): string {
  return issues.map((i) => formatIssue({ path: i.path, message: i.message })).join('; ');
}

function firstPath(issues: readonly { path: string }[]): string | undefined {
  return issues.find((i) => i.path)?.path;
}

/** The last lines of a verifier log, where the reason is. */
export function verifierTail(log: string, lines = 4): string {
  return log.trim().split('\n').slice(-lines).join(' | ');
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}

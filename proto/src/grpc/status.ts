// What a caller hears when a call fails: every error becomes one gRPC status, for
// netcubed's API and a service's config API alike. Handlers throw a kind of
// ../errors.ts (notFound(), failedPrecondition() ...) or an ApiError where they know
// the status, and let the errors of the store, the runtime and the chain format
// through; each of those is a NetcubeError and maps to the status its `code` names.
// A server adds the errors only it knows with a classifier (netcubed: the kernel's,
// in node-daemon/src/api/status.ts). Anything else is a bug or a surprise: the
// client gets INTERNAL with a reference, the server's log gets the details.

import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ChainValidationError, formatIssue } from '../chain';
import { MAX_ISSUES_SHOWN } from '../chain/errors';
import { cite, firstOf } from '../cite';
import type { Logger } from '../log';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NetcubeError, NotFoundError } from '../errors';
import { ValidationError } from '../store';
import { FIELD_METADATA_KEY } from './proto';

const { status } = grpc;

/** The most characters of a status's details, and of the field it names. */
export const MAX_DETAILS_CHARS = 4096;
const MAX_FIELD_CHARS = 256;

/** A failure with a gRPC status that no kind of ../errors.ts names; `field` for INVALID_ARGUMENT. */
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
// The kinds (../errors.ts), so that "not found" is one concept in a handler too.
export const notFound = (message: string): NotFoundError => new NotFoundError(message);
export const alreadyExists = (message: string): AlreadyExistsError => new AlreadyExistsError(message);
export const failedPrecondition = (message: string): FailedPreconditionError => new FailedPreconditionError(message);

/** The status of the errors only one server knows; undefined for any other error. */
export type ErrorClassifier = (err: unknown) => ApiError | undefined;

export interface StatusOptions {
  /** The server, as the client reads it in an INTERNAL status: `netcubed`, `service bridge`. */
  server: string;
  classify?: ErrorClassifier;
}

export interface StatusObject {
  code: grpc.status;
  details: string;
  metadata: grpc.Metadata;
}

/** The status to answer `err` with; unexpected errors are logged with a reference the client sees. */
export function toStatus(err: unknown, log: Logger, method: string, options: StatusOptions): StatusObject {
  const metadata = new grpc.Metadata();
  const answer = (code: grpc.status, details: string, field?: string): StatusObject => {
    // A header value is printable ASCII: a field path quoting input may hold anything.
    if (field) metadata.set(FIELD_METADATA_KEY, cite(field, MAX_FIELD_CHARS).replace(/[^\x20-\x7e]/g, '?'));
    // Whatever a message quotes of the input, the reply stays small.
    return { code, details: cite(details, MAX_DETAILS_CHARS), metadata };
  };

  const known = err instanceof ApiError ? err : options.classify?.(err);
  if (known) return answer(known.code, known.message, known.field);
  if (err instanceof ChainValidationError) return answer(status.INVALID_ARGUMENT, chainIssues(err.issues), firstPath(err.issues));
  if (err instanceof ValidationError && err.issues.length > 0) return answer(status.INVALID_ARGUMENT, chainIssues(err.issues), firstPath(err.issues));
  if (err instanceof InvalidArgumentError && err.field) return answer(status.INVALID_ARGUMENT, `${err.field}: ${err.message}`, err.field);
  if (err instanceof NetcubeError && err.code !== 'INTERNAL') return answer(status[err.code], err.message);
  if (isAbort(err)) return answer(status.CANCELLED, 'the call was cancelled');

  const ref = randomBytes(4).toString('hex');
  log.error('internal error in a gRPC call', {
    method,
    ref,
    error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  return answer(status.INTERNAL, `internal error in ${options.server} (reference ${ref}; its log has the details)`);
}

function chainIssues(issues: readonly { path: string; message: string }[]): string {
  return firstOf(issues.map((i) => formatIssue({ path: i.path, message: i.message })), MAX_ISSUES_SHOWN);
}

function firstPath(issues: readonly { path: string }[]): string | undefined {
  return issues.find((i) => i.path)?.path;
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}

// Every error the store throws is a NetcubeError (../errors.ts): the kinds the whole
// project shares (NotFoundError, AlreadyExistsError, FailedPreconditionError), and the
// store's own, below, which extend StoreError. `recoverable` is the one marker that
// decides whether retrying the same call can succeed; the retry loop, watches and host
// leases all go by it. `code` names the gRPC status an API handler answers with.

import {
  castGrpcError,
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  isRecoverableError,
} from 'etcd3';
import { ChainIssue } from '../chain';
import { cite } from '../cite';
import { AlreadyExistsError, type ErrorCode, FailedPreconditionError, NetcubeError, NotFoundError } from '../errors';
import { MAX_ETCD_REPLY_BYTES } from '../grpc/limits';

export { AlreadyExistsError, FailedPreconditionError, NetcubeError, NotFoundError };
export type StoreErrorCode = ErrorCode;

/** A failure of etcd or of what netcube keeps there. */
export class StoreError extends NetcubeError {
  override name = 'StoreError';
}

/** etcd could not be reached or could not answer (no quorum, leader change, timeout). */
export class StoreUnavailableError extends StoreError {
  override name = 'StoreUnavailableError';
  override readonly recoverable = true;
  override readonly code = 'UNAVAILABLE';
}

/** The store was closed while the call was pending, or before it. */
export class StoreClosedError extends StoreError {
  override name = 'StoreClosedError';
  override readonly code = 'CANCELLED';
}

/** Someone else changed the same object in between: read it again, then retry the change. */
export class ConflictError extends StoreError {
  override name = 'ConflictError';
  override readonly code = 'ABORTED';
}

/** The request itself is wrong; `issues` says where, when there are several. */
export class ValidationError extends StoreError {
  override name = 'ValidationError';
  override readonly code = 'INVALID_ARGUMENT';

  constructor(
    message: string,
    readonly issues: readonly ChainIssue[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** etcd's access control refused the call to this process's etcd user (store/access.ts has the layout). */
export class PermissionDeniedError extends StoreError {
  override name = 'PermissionDeniedError';
  override readonly code = 'PERMISSION_DENIED';
}

/** etcd does not know who this process is: no such user, a wrong password, no client certificate. */
export class UnauthenticatedError extends StoreError {
  override name = 'UnauthenticatedError';
  override readonly code = 'UNAUTHENTICATED';
}

/** etcd refused the request as too large: the same request always will. */
export class RequestTooLargeError extends StoreError {
  override name = 'RequestTooLargeError';
  override readonly code = 'RESOURCE_EXHAUSTED';
}

/** A cube type cannot be deleted or changed that way while these chains use it. */
export class TypeInUseError extends FailedPreconditionError {
  override name = 'TypeInUseError';

  constructor(
    message: string,
    readonly type: string,
    readonly chains: readonly string[],
  ) {
    super(message);
  }
}

export interface CubeFailure {
  host: string;
  cube: string;
  error: string;
}

/** Hosts reported errors applying a chain version. */
export class ApplyFailedError extends StoreError {
  override name = 'ApplyFailedError';
  override readonly code = 'FAILED_PRECONDITION';

  constructor(
    message: string,
    readonly failures: readonly CubeFailure[],
  ) {
    super(message);
  }
}

/** A wait ran out of time; `pending` lists `host/cube` that had not reported. */
export class WaitTimeoutError extends StoreError {
  override name = 'WaitTimeoutError';
  override readonly code = 'DEADLINE_EXCEEDED';

  constructor(
    message: string,
    readonly pending: readonly string[],
    readonly failures: readonly CubeFailure[],
  ) {
    super(message);
  }
}

/** Where a chain in etcd that cannot be read placed its cubes, as far as can be told. */
export interface CubePlacement {
  name: string;
  host: string;
}

/**
 * A value under netcube's keys that is not what netcube writes there (written by
 * hand, by another tool, or damaged): it is skipped where many are read, and
 * reported. `salvaged` is what could still be read of a chain: its version, and the
 * cubes it places, so their hosts can say it is broken.
 */
export class CorruptValueError extends StoreError {
  override name = 'CorruptValueError';
  override readonly code = 'FAILED_PRECONDITION';

  constructor(
    message: string,
    readonly key: string,
    readonly salvaged: { version?: number; cubes?: readonly CubePlacement[] } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Maps whatever the etcd client threw to the store's hierarchy; `user` is this process's etcd user, when known. */
export function toStoreError(err: unknown, operation: string, endpoints: readonly string[], user?: string): NetcubeError {
  if (err instanceof NetcubeError) return err;
  const cause = castGrpcError(err instanceof Error ? err : new Error(String(err)));
  if (cause instanceof ClientClosedError) {
    return new StoreClosedError(`${operation}: the store is closed`, { cause });
  }
  const as = user ? `etcd user ${user}` : 'this etcd user';
  if (cause instanceof EtcdPermissionDeniedError) {
    return new PermissionDeniedError(`${operation}: etcd refused it: ${as} may not (its roles do not allow it; see netcube's etcd access layout)`, { cause });
  }
  if (
    cause instanceof EtcdAuthenticationFailedError ||
    cause instanceof EtcdUserNotFoundError ||
    cause instanceof EtcdInvalidAuthTokenError ||
    cause instanceof GRPCUnauthenticatedError
  ) {
    return new UnauthenticatedError(`${operation}: etcd does not accept ${as} (${cause.message}): check the certificate's CN or the user and password`, { cause });
  }
  // The request, not etcd: retrying it would only fail again.
  if (cause instanceof GRPCResourceExhastedError) {
    // grpc says "Received message larger than max" of a reply past our bound (etcd.ts).
    if (/Received message larger than max/.test(cause.message)) {
      return new RequestTooLargeError(`${operation}: etcd's reply is larger than the ${MAX_ETCD_REPLY_BYTES} bytes netcube reads (${cite(cause.message, 200)}); nothing was written`, { cause });
    }
    return new RequestTooLargeError(`${operation}: etcd refused the request as too large (${cite(cause.message, 200)}); nothing was written`, { cause });
  }
  // An open circuit (etcd.ts, MemberBreaker): the client stopped trying a member that kept failing.
  if (isRecoverableError(cause) || (cause as { isBrokenCircuitError?: boolean }).isBrokenCircuitError) {
    return new StoreUnavailableError(
      `${operation}: etcd is unavailable at ${endpoints.join(', ')} (${cause.message}); check that etcd runs and is reachable`,
      { cause },
    );
  }
  return new StoreError(`${operation}: ${cause.message}`, { cause });
}

// The kinds of failure a caller acts on, one family for the whole project: the store,
// netcubed's runtime, the API and the services throw these, and grpc/status.ts turns
// each into the gRPC status its `code` names (the one mapping). "No such object" is
// NotFoundError wherever it comes from: the store (no such chain), the runtime (no
// such cube on this host) or the kernel (node-daemon/src/bpf: no such pin, interface
// or namespace, which keeps its errno and marks itself with NOT_FOUND_MARK).

/** The gRPC status a NetcubeError answers with, by name. */
export type ErrorCode =
  | 'UNAVAILABLE'
  | 'CANCELLED'
  | 'NOT_FOUND'
  | 'ABORTED'
  | 'INVALID_ARGUMENT'
  | 'FAILED_PRECONDITION'
  | 'DEADLINE_EXCEEDED'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'RESOURCE_EXHAUSTED'
  | 'INTERNAL';

export class NetcubeError extends Error {
  override name = 'NetcubeError';
  /** The gRPC status this failure answers with (INTERNAL: none a caller can act on). */
  readonly code: ErrorCode = 'INTERNAL';
  /** True when the same call may succeed later (etcd unreachable, no leader, timeout); it drives every retry. */
  readonly recoverable: boolean = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The request itself is wrong: a bad name, an unknown type, a dangling port; `field` says where. */
export class InvalidArgumentError extends NetcubeError {
  override name = 'InvalidArgumentError';
  override readonly code = 'INVALID_ARGUMENT';
  constructor(
    readonly field: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Errors of another family (the kernel's, which carry an errno) that mean "no such
 * object" set this property to true, so that `instanceof NotFoundError` holds for them.
 */
export const NOT_FOUND_MARK = Symbol.for('netcube.notFound');

/** There is no such object: a chain, a cube on this host, a table, a pinned map. */
export class NotFoundError extends NetcubeError {
  override name = 'NotFoundError';
  override readonly code = 'NOT_FOUND';

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    return this === NotFoundError && typeof value === 'object' && value !== null && (value as { [NOT_FOUND_MARK]?: boolean })[NOT_FOUND_MARK] === true;
  }
}

/** There is one already, and it is not the same. */
export class AlreadyExistsError extends NetcubeError {
  override name = 'AlreadyExistsError';
  override readonly code = 'ALREADY_EXISTS';
}

/** The request is well formed but the state forbids it: a loop, the tail-call limit, a type in use. */
export class FailedPreconditionError extends NetcubeError {
  override name = 'FailedPreconditionError';
  override readonly code = 'FAILED_PRECONDITION';
}

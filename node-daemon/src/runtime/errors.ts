// Errors of the cube runtime. Each maps to one gRPC status in the API layer, so a
// caller learns what to fix (the field, the object) without reading daemon logs.

export class RuntimeError extends Error {
  override name = 'RuntimeError';
}

/** The request itself is wrong: a bad name, an unknown type, a dangling port. */
export class InvalidArgumentError extends RuntimeError {
  override name = 'InvalidArgumentError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export class NotFoundError extends RuntimeError {
  override name = 'NotFoundError';
}

export class AlreadyExistsError extends RuntimeError {
  override name = 'AlreadyExistsError';
}

/** The request is well formed but the state of the host forbids it (a loop, the tail-call limit, a type in use). */
export class FailedPreconditionError extends RuntimeError {
  override name = 'FailedPreconditionError';
}

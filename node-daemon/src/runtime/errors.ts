// Errors of the cube runtime: the kinds the whole project shares (@netcube/api's
// errors.ts), each of which maps to one gRPC status, so a caller learns what to fix
// (the field, the object) without reading daemon logs.

export { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NetcubeError, NotFoundError } from '@netcube/api/errors';

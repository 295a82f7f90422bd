// The limits of netcubed's API and a service's config API, where a request enters:
// what a server takes, so a client can keep within them (the SDK splits its table
// writes by them). A request past one is refused before any of it is acted on, with
// the limit and its value in the error.

/**
 * The most bytes of one request message a server takes. Enough for what etcd can
 * hold of a request anyway (a cube type's objects, a micro-cube's: about 1 MiB), and
 * a full batch of table entries; a larger one is refused by gRPC itself
 * (RESOURCE_EXHAUSTED, "Received message larger than max").
 */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/** The most bytes of one reply (a topology of a thousand cubes is a few MB). */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024;

/**
 * The most bytes of one reply a store reads from etcd. Listing cube types reads their
 * objects (up to 1.4 MiB a type): grpc's default 4 MiB is passed by the built-in
 * types alone; this is about 130 types of the largest size etcd takes.
 */
export const MAX_ETCD_REPLY_BYTES = 192 * 1024 * 1024;

/** The most entries of one PutEntries call. */
export const MAX_BATCH_ENTRIES = 65_536;

/** Options of a grpc-js server that enforces them. */
export const SERVER_LIMITS = {
  'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
  'grpc.max_send_message_length': MAX_REPLY_BYTES,
} as const;

/** Options of a grpc-js client within them: what it would send past them fails before it leaves. */
export const CLIENT_LIMITS = {
  'grpc.max_receive_message_length': MAX_REPLY_BYTES,
  'grpc.max_send_message_length': MAX_REQUEST_BYTES,
} as const;

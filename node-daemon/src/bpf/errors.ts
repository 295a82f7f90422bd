// Errors of the libbpf binding. Every kernel or libbpf failure is a BpfError
// carrying errno, its name and the operation; the subclasses are the ones a
// caller acts on differently.
import { constants } from 'node:os';
import { NOT_FOUND_MARK } from '@netcube/api/errors';

/** A failure as the native side describes it (native/errors.cc). */
export interface NativeFailure {
  op: string;
  errno: number;
  message: string;   // strerror, or libbpf's text for its own codes
  label: string;     // the object: "BpfMap 'flows'", "CollectionSpec 'fw'"
  log: string;       // libbpf's warnings during the call
  program?: string;
  verifierLog?: string;
}

// The kernel's internal ENOTSUPP and libbpf's own codes have no name in os.constants.
const extraNames: Record<number, string> = {
  524: 'ENOTSUPP',
  4000: 'LIBBPF_ERRNO__LIBELF', 4001: 'LIBBPF_ERRNO__FORMAT', 4002: 'LIBBPF_ERRNO__KVERSION',
  4003: 'LIBBPF_ERRNO__ENDIAN', 4004: 'LIBBPF_ERRNO__INTERNAL', 4005: 'LIBBPF_ERRNO__RELOC',
  4006: 'LIBBPF_ERRNO__LOAD', 4007: 'LIBBPF_ERRNO__VERIFY', 4008: 'LIBBPF_ERRNO__PROG2BIG',
  4009: 'LIBBPF_ERRNO__KVER', 4010: 'LIBBPF_ERRNO__PROGTYPE', 4011: 'LIBBPF_ERRNO__WRNGPID',
  4012: 'LIBBPF_ERRNO__INVSEQ', 4013: 'LIBBPF_ERRNO__NLPARSE',
};
const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // os.constants lists aliases (EWOULDBLOCK, EDEADLOCK) after the usual name.
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** The symbolic name of an errno value ('ENOENT'), or 'E<number>' when it has none. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? extraNames[errno] ?? `E${errno}`;
}

export class BpfError extends Error {
  override name = 'BpfError';
  readonly code: string;
  /** libbpf's own messages during the failed call, also at the end of `message`. */
  readonly libbpfLog: string;

  constructor(readonly op: string, readonly errno: number, message: string, libbpfLog = '') {
    super(message);
    this.code = errnoName(errno);
    this.libbpfLog = libbpfLog;
  }
}

/** The key is not in the map (ENOENT). */
export class KeyNotExistError extends BpfError {
  override name = 'KeyNotExistError';
}

/**
 * What a path or name points at does not exist: a pinned object, an interface, a
 * namespace, an ELF file. It keeps its errno as every BpfError, and is "not found" as
 * the rest of netcube says it: `instanceof NotFoundError` of @netcube/api/errors holds.
 */
export class NotFoundError extends BpfError {
  override name = 'NotFoundError';
  readonly [NOT_FOUND_MARK] = true;
}

/** The operation does not exist for this kind of object (EOPNOTSUPP, ENOTSUPP). */
export class NotSupportedError extends BpfError {
  override name = 'NotSupportedError';
}

/** The verifier rejected `program`; `log` is the verifier's full log. */
export class VerifierError extends BpfError {
  override name = 'VerifierError';
  constructor(op: string, errno: number, message: string, libbpfLog: string,
              readonly program: string, readonly log: string) {
    super(op, errno, message, libbpfLog);
  }
}

/** The ELF object is malformed or not a BPF object libbpf can open. */
export class ElfError extends BpfError {
  override name = 'ElfError';
}

/** A batch update or delete that stopped part way: the first `done` of `count` elements took effect. */
export class BatchError extends BpfError {
  override name = 'BatchError';
  constructor(op: string, errno: number, message: string, libbpfLog: string, readonly done: number, readonly count: number) {
    super(op, errno, message, libbpfLog);
  }
}

/** The object was closed (or, for a spec, consumed by load()). */
export class ClosedError extends Error {
  override name = 'ClosedError';
  constructor(readonly object: string) {
    super(`${object} is closed`);
  }
}

// Operations on a map key whose ENOENT means "no such key".
const mapOps = new Set(['lookup', 'update', 'delete', 'next key']);
// Operations that look something up by path or name.
const findOps = new Set(['open', 'open pinned object', 'find interface', 'open network namespace']);

// Verifier logs run to megabytes; the message keeps the end, where the reason is.
const verifierTailLines = 8;

// Failures of opening an ELF that are about the file, not its contents.
const fileErrnos = new Set([constants.errno.ENOENT, constants.errno.EACCES, constants.errno.EPERM,
                            constants.errno.ENOMEM, constants.errno.EISDIR]);

/** Builds the typed error for a native failure; the addon calls this for every error it raises. */
export function fromNative(f: NativeFailure): BpfError {
  const code = errnoName(f.errno);
  const log = f.log ? `\n${f.log}` : '';
  if (f.program !== undefined && f.verifierLog) {
    const tail = f.verifierLog.trimEnd().split('\n').slice(-verifierTailLines).join('\n');
    return new VerifierError(f.op, f.errno,
      `${f.label}: the verifier rejected program '${f.program}' (${code}):\n${tail}`, f.log, f.program, f.verifierLog);
  }
  const message = `${f.label}: ${f.op} failed: ${f.message} (${code})${log}`;
  if ((f.errno === constants.errno.ENOENT || f.errno === constants.errno.ENODEV) && findOps.has(f.op)) {
    return new NotFoundError(f.op, f.errno, message, f.log);
  }
  if (f.op === 'open' && !fileErrnos.has(f.errno)) return new ElfError(f.op, f.errno, message, f.log);
  if (f.errno === constants.errno.ENOENT && mapOps.has(f.op)) return new KeyNotExistError(f.op, f.errno, message, f.log);
  if (f.errno === constants.errno.EOPNOTSUPP || f.errno === 524) {
    return new NotSupportedError(f.op, f.errno, message, f.log);
  }
  // native/map.cc says how far a batch got in its op: "update batch (stopped after N of M)".
  const batch = /^(?:update|delete) batch \(stopped after (\d+) of (\d+)\)$/.exec(f.op);
  if (batch) return new BatchError(f.op, f.errno, message, f.log, Number(batch[1]), Number(batch[2]));
  return new BpfError(f.op, f.errno, message, f.log);
}

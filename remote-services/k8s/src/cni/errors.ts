// CNI errors as the spec (1.1.0, "Error") has them: a JSON object on stdout with a
// code, a message and details, and exit status 1. Codes 1-99 are the spec's.

export const CNI_CODES = {
  /** Incompatible CNI version. */
  INCOMPATIBLE_VERSION: 1,
  /** Unsupported field in network configuration. */
  UNSUPPORTED_FIELD: 2,
  /** Container unknown or does not exist. */
  UNKNOWN_CONTAINER: 3,
  /** Invalid necessary environment variables. */
  INVALID_ENVIRONMENT: 4,
  /** I/O failure. */
  IO_FAILURE: 5,
  /** Failed to decode content. */
  DECODING_FAILURE: 6,
  /** Invalid network config. */
  INVALID_NETWORK_CONFIG: 7,
  /** Try again later. */
  TRY_AGAIN_LATER: 11,
  /** The plugin is not available (STATUS). */
  PLUGIN_NOT_AVAILABLE: 50,
} as const;

export class CniError extends Error {
  override name = 'CniError';
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

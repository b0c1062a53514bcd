/** Why a cache operation failed. */
export type CacheErrorCode =
  | "TIMEOUT" // L2 did not answer within timeoutMs
  | "UNAVAILABLE" // L2 could not be reached or answered with an error
  | "BREAKER_OPEN" // L2 is skipped after repeated failures
  | "CLOSED" // L2 is skipped: close() was called (L1 and loaders still work)
  | "SERIALIZE" // the value cannot be encoded (circular, …)
  | "SCHEMA" // a loaded value fails the schema
  | "CONFIG" // invalid options or environment
  | "INVALID_ARGUMENT"; // a bad argument to an operation (key, tags, duration): thrown whatever failSilently says

/**
 * The one error type tiercache throws for its own failures (with `failSilently: false`, or for bad
 * input and configuration). Loader errors are passed through untouched.
 */
export class CacheError extends Error {
  override readonly name = "CacheError";
  constructor(
    readonly code: CacheErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`tiercache: ${message}`, options);
  }
}

/** An `Error` for anything thrown. */
export function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}

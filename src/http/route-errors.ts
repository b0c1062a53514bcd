import { CacheError } from "../errors.js";

/** Bad input (a key from the route's `key` option, tags): the caller's error, never swallowed as cache trouble. */
export function isInvalidArgument(error: unknown): boolean {
  return error instanceof CacheError && error.code === "INVALID_ARGUMENT";
}

/** A cache failure reads as a miss; bad input is the caller's error and is thrown. */
export function unlessInvalidArgument(error: unknown): undefined {
  if (isInvalidArgument(error)) throw error;
  return undefined;
}

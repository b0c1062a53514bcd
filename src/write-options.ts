import { toMs } from "./duration.js";
import { checkTags } from "./input.js";
import type { SetOptions } from "./types.js";

/**
 * Checks the tags and durations of a write before anything runs: `getOrSet` calls it before its
 * loader, so a bad option is an error at the call rather than a value that is silently not cached.
 */
export function checkWriteOptions(options: SetOptions): void {
  checkTags(options.tags);
  if (options.ttl !== undefined) toMs(options.ttl, "ttl");
  if (options.staleWhileRevalidate !== undefined) toMs(options.staleWhileRevalidate, "staleWhileRevalidate");
  if (options.staleIfError !== undefined) toMs(options.staleIfError, "staleIfError");
}

import { CacheError } from "./errors.js";

/**
 * Checks of what callers pass in. Bad input is a programmer's error: it is thrown at the call,
 * whatever `failSilently` says, before anything is loaded or written.
 */

/**
 * Tags become Redis keys of their own (`…:~t:<tag>`), are never hashed and are stored in every
 * entry that carries them, so they are bounded — generously: `route` tags each entry with its URL
 * key, and a URL with its headers stays under 16 KiB in every common server.
 */
export const MAX_TAG_LENGTH = 16 * 1024;

/** A CacheError with code `INVALID_ARGUMENT`. */
export function invalidArgument(message: string): CacheError {
  return new CacheError("INVALID_ARGUMENT", message);
}

/** How a bad value is named in an error: numbers as written (`NaN`, `1e+21`), strings quoted, else the type. */
export function describe(value: unknown): string {
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === null || value === undefined || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const nativeIsWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;

/** The fallback for runtimes without `String.prototype.isWellFormed` (ES2024). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/**
 * False for a string with a lone surrogate: Redis stores UTF-8, where every lone surrogate becomes
 * U+FFFD, so `"a\uD800"` and `"a\uDFFF"` would be one Redis key.
 */
export function isWellFormed(text: string): boolean {
  return nativeIsWellFormed ? nativeIsWellFormed.call(text) : !hasLoneSurrogate(text);
}

/** Throws unless `key` is a non-empty, well-formed string. */
export function checkKey(key: unknown, what = "cache key"): asserts key is string {
  if (typeof key !== "string" || key.length === 0) {
    throw invalidArgument(`a ${what} must be a non-empty string, got ${describe(key)}`);
  }
  if (!isWellFormed(key)) {
    throw invalidArgument(`${what} ${describe(key)} contains a lone UTF-16 surrogate (ill-formed Unicode)`);
  }
}

/**
 * The tags of a write or an invalidation: `undefined` (none) or an array of non-empty, well-formed
 * strings of at most {@link MAX_TAG_LENGTH} characters. A string is refused rather than spread into
 * its characters.
 */
export function checkTags(tags: unknown, what = "tags"): readonly string[] {
  if (tags === undefined) return [];
  if (!Array.isArray(tags)) {
    throw invalidArgument(`${what} must be an array of strings, got ${describe(tags)}`);
  }
  for (const tag of tags as unknown[]) {
    if (typeof tag !== "string" || tag.length === 0) {
      throw invalidArgument(`${what} must be non-empty strings, got ${describe(tag)}`);
    }
    if (tag.length > MAX_TAG_LENGTH) {
      throw invalidArgument(`${what}: a tag is ${tag.length} characters long, over ${MAX_TAG_LENGTH}`);
    }
    if (!isWellFormed(tag)) {
      throw invalidArgument(
        `${what}: tag ${describe(tag)} contains a lone UTF-16 surrogate (ill-formed Unicode)`,
      );
    }
  }
  return tags as readonly string[];
}

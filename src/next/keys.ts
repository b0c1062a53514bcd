import { createHash } from "node:crypto";

/** Below the Cache's own hashing threshold (256), so a key never waits on async Web Crypto. */
const MAX_PLAIN = 200;

/**
 * The Cache key for a Next key or tag under `space`. Long ones (a `'use cache'` key carries the
 * serialized arguments) are hashed here, synchronously: every read of a page is then issued in the
 * same tick and leaves as one MGET, instead of the entry trailing its tag marks by a digest.
 */
export function cacheKey(space: string, key: string): string {
  if (key.length <= MAX_PLAIN) return `${space}${key}`;
  return `${space}#${createHash("sha256").update(key).digest("base64url")}`;
}

/** Namespaces of the keys the handlers write in the Cache. */
export const SPACES = {
  useCache: "next:u:",
  incremental: "next:i:",
  hardMark: "next:h:",
  softMark: "next:s:",
  /** Counter bumped by every tag update: other instances forget what they know of unmarked tags. */
  epoch: "next:tags",
} as const;

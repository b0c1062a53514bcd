import { checkTags } from "../input.js";
import { urlTag } from "./cache-key.js";
import { isInvalidArgument } from "./route-errors.js";
import type { RouteOptions } from "./route-options.js";

/** What invalidation after an unsafe request needs of a cache. */
export interface InvalidatingCache {
  delete(...keys: string[]): Promise<number>;
  invalidateTags(tags: readonly string[]): Promise<unknown>;
  deletePattern(glob: string): Promise<number>;
}

/**
 * What a successful unsafe request (POST, PUT, PATCH, DELETE…) invalidates: the URL's entry and
 * every variant of it (`own`, the request's key, or null when it has none), the route's `tags` for
 * the request and what `invalidates` maps it to. Awaited, so the next GET anywhere misses.
 */
export async function invalidateAfter<R extends Request>(
  cache: InvalidatingCache,
  req: R,
  own: string | null,
  ownTags: readonly string[],
  invalidates: RouteOptions<R>["invalidates"],
): Promise<void> {
  const extra = typeof invalidates === "function" ? await invalidates(req) : invalidates;
  const keys = [...(own === null ? [] : [own]), ...(extra?.keys ?? [])];
  // Bad input is thrown, but only once everything valid was invalidated.
  let badInput: unknown;
  let extraTags: readonly string[] = [];
  try {
    extraTags = checkTags(extra?.tags, "route: invalidates.tags");
  } catch (error) {
    badInput = error;
  }
  // Variants of the URL live under other keys: they carry its tag.
  const tags = [...(own === null ? [] : [urlTag(own)]), ...ownTags, ...extraTags];
  // Settled, not raced: each is tried even if another fails, and a failure (already reported by
  // the cache) does not cost the handler's response.
  const settled = await Promise.allSettled([
    keys.length > 0 ? cache.delete(...keys) : undefined,
    tags.length > 0 ? cache.invalidateTags(tags) : undefined,
    ...(extra?.patterns ?? []).map((pattern) => cache.deletePattern(pattern)),
  ]);
  for (const result of settled) {
    if (result.status === "rejected" && isInvalidArgument(result.reason)) badInput ??= result.reason;
  }
  if (badInput !== undefined) throw badInput;
}

import type { CacheCore } from "./core.js";
import { checkTags } from "./input.js";
import type { InvalidationResult } from "./types.js";

/**
 * Removing entries by key, tag or pattern: each is applied through coherence (both tiers, and other
 * instances within `l1.syncMs`) and announced to `onInvalidate` (CDN purges) at the same time.
 */

/** Deletes `keys` in both key spaces, and the copies a warm start would serve; returns Redis's count. */
export async function deleteKeys(core: CacheCore, keys: readonly string[]): Promise<number> {
  const pairs = await Promise.all(keys.map((key) => core.keys.entries(key)));
  // The copy a warm start would serve goes too, or the key would come back from the older version
  // once the tombstone expires: with warmStart on, the first delete of an instance waits for the
  // registry (one round trip, once) to know that version.
  if (core.config.warmStart) await core.registryKnown();
  const older = pairs.flatMap(([full]) => core.warmSource(full) ?? []);
  const [removed] = await Promise.all([
    core.coherence.deleteKeys([...pairs.flat(), ...older]),
    core.notifyInvalidation({ keys }),
  ]);
  return removed;
}

/** Marks `tags` invalidated (or, `soft`, stale); bad tags are a CacheError `INVALID_ARGUMENT`. */
export async function invalidateTags(
  core: CacheCore,
  tags: readonly string[],
  soft: boolean,
): Promise<InvalidationResult> {
  const list = checkTags(tags, "invalidateTags: tags");
  if (list.length === 0) return { deferred: false };
  const [result] = await Promise.all([
    core.coherence.invalidateTags(list, soft),
    core.notifyInvalidation({ tags: list }),
  ]);
  return result;
}

/** Deletes the entries whose user key matches `glob`; returns how many were removed. */
export async function deletePattern(core: CacheCore, glob: string, versioned: boolean): Promise<number> {
  const [removed] = await Promise.all([
    core.coherence.deletePattern(core.keys.pattern(glob, versioned)),
    core.notifyInvalidation({ patterns: [glob] }),
  ]);
  return removed;
}

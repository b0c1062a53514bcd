import { CacheError } from "./errors.js";
import { scanAndUnlink } from "./flush.js";
import { formatMark } from "./invalidation.js";
import { globToRegExp, type KeySpace } from "./keys.js";
import type { PendingSnapshot } from "./pending.js";
import type { L2 } from "./tiers/l2.js";
import { TOMBSTONE_MS, tombstone } from "./tombstone.js";
import type { RedisArg, RedisReply } from "./transports/types.js";

/**
 * The Redis work of replaying deferred invalidations (coherence.ts decides when, and what follows):
 * an overflow purge and pattern deletes by scan first, then one round trip of key deletes as
 * tombstones, tag marks dated `now` (at least as much as was asked) and, last, `bump` (the epoch
 * move that makes every instance drop its L1). Rejects when any of it did not land.
 */
export async function writeReplay(
  l2: L2,
  keys: KeySpace,
  snapshot: PendingSnapshot,
  now: number,
  bump: RedisArg[],
): Promise<(RedisReply | Error)[]> {
  if (snapshot.purgeBefore !== undefined) await purge(l2, keys);
  for (const pattern of snapshot.patterns.keys()) {
    const matcher = globToRegExp(pattern);
    await scanAndUnlink(l2, { pattern, matches: (key) => matcher.test(key) }, false, undefined);
  }
  const commands: RedisArg[][] = [...snapshot.keys.keys()].map((full) => [
    "SET",
    full,
    tombstone(now),
    "PX",
    TOMBSTONE_MS,
  ]);
  const tags = [...snapshot.tags].flatMap(([tag, mark]) => [keys.tag(tag), formatMark({ ...mark, at: now })]);
  if (tags.length > 0) commands.push(["MSET", ...tags]);
  commands.push(bump);
  return allAnswered(await l2.pipeline(commands, "replay"));
}

/** After an overflow: deletes every entry of this namespace's current version and unversioned space. */
async function purge(l2: L2, keys: KeySpace): Promise<void> {
  // Counters share the unversioned space today; they are data, not cache, and are kept.
  const counters = (await keys.counter("x")).slice(0, -1);
  for (const versioned of [true, false]) {
    const pattern = keys.pattern("*", versioned);
    const matcher = globToRegExp(pattern);
    await scanAndUnlink(
      l2,
      { pattern, matches: (key) => matcher.test(key) && !key.startsWith(counters) },
      false,
      undefined,
    );
  }
}

/** A pipeline's replies, or a CacheError when one of its commands failed: the invalidation did not fully land. */
export function allAnswered(replies: (RedisReply | Error)[]): (RedisReply | Error)[] {
  const failed = replies.find((reply) => reply instanceof Error);
  if (failed) throw new CacheError("UNAVAILABLE", `Redis refused a command: ${failed.message}`);
  return replies;
}

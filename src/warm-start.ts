import type { CacheCore } from "./core.js";
import type { Entry } from "./entry.js";
import { asError } from "./errors.js";
import { isTombstone } from "./tombstone.js";
import type { RedisArg } from "./transports/types.js";
import type { WaitUntil } from "./types.js";
import type { WritePath } from "./write-path.js";

/**
 * KEYS[1] the current version's key; ARGV: stored text, PX, the adopted entry's creation time.
 * Written only where the key still holds nothing, as it did when the read found the previous
 * version's entry: anything there since (a delete's tombstone, a loaded or set value however early
 * its load began) was written after that read and wins. Returns 1 when the entry is stored — by
 * this write, or already by another instance adopting the same entry — else 0.
 */
const ADOPT = `
local head = redis.call('GETRANGE', KEYS[1], 0, 63)
if head == '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
local created = string.match(head, '^%[%d+,(%d+),') or string.match(head, '^z:(%d+):')
if created == ARGV[3] then return 1 end
return 0
`;

/**
 * A warm start's adoption (README, "Deploys without a cold cache"): the previous version's entry of
 * a key, still fresh, becomes the current version's — same times, same tags — in L1 and Redis. A
 * write, never a load: the entry is reloaded when it would have been without the deploy, and tag
 * marks judge it as they did.
 */
export async function adopt(
  core: CacheCore,
  write: WritePath,
  key: string,
  full: string,
  entry: Entry,
  waitUntil: WaitUntil | undefined,
): Promise<void> {
  const { l1, l2, coherence, config } = core;
  // Invalidated here since the read left (a delete, a set, one of its tags): served, never kept.
  if (!coherence.admits(full, entry)) return;
  let command: readonly RedisArg[] | undefined;
  try {
    const prepared = await write.prepareCopy(key, full, entry);
    l1?.set(full, prepared.entry, Date.now());
    command = prepared.command;
  } catch (error) {
    config.logger.warn(`not adopted: ${asError(error).message}`);
    return;
  }
  const [, , stored, , px] = command ?? [];
  if (!l2 || stored === undefined || px === undefined || isTombstone(String(stored))) return;
  const script: RedisArg[] = ["EVAL", ADOPT, 1, full, stored, px, entry.created];
  const work = core
    .tolerate(() => l2.send(script, "SET"))
    .then((reply) => {
      // Refused: the key was deleted or written since the read, maybe on another instance. Our copy goes too.
      if (reply === 0 && l1?.get(full, Date.now())?.created === entry.created) l1.delete(full);
    })
    .catch((error: unknown) =>
      config.logger.warn(`adoption of ${key} not written: ${asError(error).message}`),
    );
  // Never awaited, even without a waitUntil: a lost adoption costs nothing (the next cold read adopts
  // the entry again), an awaited one a round trip on the warm hit.
  core.scheduler(waitUntil)?.(work);
}

import type { Entry } from "./entry.js";
import { scanAndUnlink } from "./flush.js";
import { formatMark, Invalidations, parseMark, type TagMark } from "./invalidation.js";
import { globToRegExp, type KeySpace } from "./keys.js";
import type { L1 } from "./tiers/l1.js";
import type { L2 } from "./tiers/l2.js";
import type { WaitUntil } from "./types.js";

/** Runs an L2 operation under the cache's `failSilently` policy: undefined instead of a swallowed error. */
export type Tolerate = <T>(work: () => Promise<T>) => Promise<T | undefined>;

/**
 * Invalidation that reaches every instance without pub/sub. Invalidations bump an epoch counter in
 * Redis; reads learn it for free (it rides in the MGET of the value) or, on L1 hits, in the
 * background — at most once per `l1.syncMs`. When it moved, L1 and the known tag marks are dropped.
 * Tags are judged by time: an entry written before its tag's last invalidation is gone (or stale).
 */
export class Coherence {
  private readonly state: Invalidations;

  constructor(
    private readonly l1: L1 | null,
    private readonly l2: L2 | null,
    private readonly keys: KeySpace,
    private readonly tolerate: Tolerate,
    syncMs: number,
    private readonly onDropped: () => void,
  ) {
    this.state = new Invalidations(syncMs);
  }

  /** One MSET of the tag marks and one INCR of the epoch, whatever the number of entries. */
  async invalidateTags(tags: readonly string[], soft: boolean): Promise<void> {
    const mark: TagMark = { at: Date.now(), soft };
    const wanted = new Set(tags);
    for (const tag of tags) this.state.remember(tag, mark);
    this.l1?.deleteWhere((_key, entry) => {
      if (!entry.tags.some((tag) => wanted.has(tag))) return false;
      if (!soft) return true;
      entry.fresh = Math.min(entry.fresh, mark.at);
      return false;
    });
    const l2 = this.l2;
    if (!l2) return;
    const stored = formatMark(mark);
    const replies = await this.tolerate(() =>
      l2.pipeline(
        [
          ["MSET", ...tags.flatMap((tag) => [this.keys.tag(tag), stored])],
          ["INCR", this.keys.epoch],
        ],
        "invalidateTags",
      ),
    );
    this.ownBump(replies?.[1]);
  }

  /** Removes full keys from both tiers and bumps the epoch; returns how many Redis removed (L1's count without it). */
  async deleteKeys(fulls: readonly string[]): Promise<number> {
    let local = 0;
    for (const full of fulls) if (this.l1?.delete(full)) local++;
    const l2 = this.l2;
    if (!l2 || fulls.length === 0) return local;
    const replies = await this.tolerate(() =>
      l2.pipeline(
        [
          ["UNLINK", ...fulls],
          ["INCR", this.keys.epoch],
        ],
        "UNLINK",
      ),
    );
    this.ownBump(replies?.[1]);
    return typeof replies?.[0] === "number" ? replies[0] : local;
  }

  /** Deletes the keys matching a pattern of this key space from both tiers, then bumps the epoch. */
  async deletePattern(pattern: string): Promise<number> {
    const matcher = globToRegExp(pattern);
    const local = this.l1?.deleteWhere((key) => matcher.test(key)) ?? 0;
    const l2 = this.l2;
    if (!l2) return local;
    const removed = await this.tolerate(async () => {
      const count = await scanAndUnlink(
        l2,
        { pattern, matches: (key) => matcher.test(key) },
        false,
        undefined,
      );
      this.ownBump(await l2.send(["INCR", this.keys.epoch]));
      return count;
    });
    return removed ?? local;
  }

  /** The stored text at `full`, with the epoch riding in the same MGET when a check is due. */
  read(full: string): Promise<string | null | undefined> {
    const l2 = this.l2;
    if (!l2) return Promise.resolve(undefined);
    const pendingValue = this.tolerate(() => l2.get(full));
    if (!this.state.claimEpochCheck(Date.now())) return pendingValue;
    const pendingEpoch = this.tolerate(() => l2.get(this.keys.epoch));
    return Promise.all([pendingValue, pendingEpoch]).then(([value, epoch]) => {
      if (epoch !== undefined) this.applyEpoch(epoch);
      return value;
    });
  }

  /**
   * For a batch of reads (read-path.ts): when a check is due, the epoch joins this tick's MGET ahead
   * of the values that follow, so a move drops L1 and the tag marks before those values are checked.
   * A failure is the whole batch's, and reaches the values' readers.
   */
  joinEpochCheck(now: number): void {
    const l2 = this.l2;
    if (!l2 || !this.state.claimEpochCheck(now)) return;
    l2.enqueue(this.keys.epoch, { reply: (epoch) => this.applyEpoch(epoch), fail: () => {} });
  }

  /**
   * Whether an entry read from Redis survives its tags' invalidations (a soft one shortens its
   * freshness instead). Unknown marks are fetched in one batch and kept until the epoch moves.
   */
  async passesTags(entry: Entry): Promise<boolean> {
    const l2 = this.l2;
    const unknown = entry.tags.filter((tag) => this.state.mark(tag) === undefined);
    if (unknown.length > 0 && l2) {
      const stored = await Promise.all(unknown.map((tag) => this.tolerate(() => l2.get(this.keys.tag(tag)))));
      // A mark that could not be read stays unknown (fetched again next time); the entry is served.
      stored.forEach((value, i) => {
        if (value !== undefined) this.state.remember(unknown[i] as string, parseMark(value));
      });
    }
    const { gone, staleFrom } = this.state.verdict(entry);
    if (staleFrom !== undefined) entry.fresh = Math.min(entry.fresh, staleFrom);
    return !gone;
  }

  /**
   * On an L1 hit, learns of invalidations elsewhere without delaying the hit. The check goes to
   * `waitUntil` when there is one: workerd cancels a request's loose I/O when it answers.
   */
  syncInBackground(now: number, scheduler: () => WaitUntil | undefined): void {
    const l2 = this.l2;
    if (!l2 || !this.state.claimEpochCheck(now)) return;
    const check = this.tolerate(() => l2.get(this.keys.epoch)).then(
      (epoch) => {
        if (epoch !== undefined) this.applyEpoch(epoch);
      },
      () => {},
    );
    // Looked up only when a check is due: an L1 hit in between pays for nothing but the clock test.
    scheduler()?.(check);
  }

  /** Records the INCR reply of this instance's own invalidation (or anything else: ignored). */
  ownBump(reply: unknown): void {
    if (typeof reply === "number" && this.state.observeOwnBump(reply)) this.l1?.clear();
  }

  private applyEpoch(epoch: string | null): void {
    if (!this.state.observeEpoch(epoch)) return;
    this.onDropped();
    this.l1?.clear();
  }
}

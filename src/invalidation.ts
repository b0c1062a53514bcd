import type { Entry } from "./entry.js";

/** When a tag was last invalidated, and whether entries carrying it become stale (soft) or gone (hard). */
export interface TagMark {
  at: number;
  soft: boolean;
}

/** How a tag mark is stored in Redis: `"<ms>"` for hard, `"s<ms>"` for soft. */
export function formatMark(mark: TagMark): string {
  return `${mark.soft ? "s" : ""}${mark.at}`;
}

export function parseMark(stored: string | null): TagMark | null {
  if (stored === null) return null;
  const soft = stored.startsWith("s");
  const at = Number(soft ? stored.slice(1) : stored);
  return Number.isFinite(at) ? { at, soft } : null;
}

/** Tag marks kept in memory at most; per-user tags on a long-lived server would grow without it. */
const MAX_KNOWN_MARKS = 10_000;

/**
 * What this instance knows of invalidations made anywhere, without pub/sub: the epoch token that
 * every invalidation replaces (checked at most once per `syncMs`, piggybacked on L2 reads) and the
 * tag marks it has fetched. When the epoch moves, everything learnt from Redis is dropped — L1 and
 * the tag marks — so an invalidation elsewhere is seen within `syncMs` plus one request.
 */
export class Invalidations {
  private epoch: string | null | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private readonly marks = new Map<string, TagMark | null>();

  constructor(readonly syncMs: number) {}

  /** Whether the epoch should be read again; claims the check so concurrent callers don't repeat it. */
  claimEpochCheck(now: number): boolean {
    if (now - this.checkedAt < this.syncMs) return false;
    this.checkedAt = now;
    return true;
  }

  /**
   * Records the epoch read from Redis; true when it moved since the last look (L1 must go). The first
   * look counts as a move: L1 may hold entries from before an invalidation this instance never saw.
   */
  observeEpoch(value: string | null): boolean {
    const moved = this.epoch !== value;
    this.epoch = value;
    if (moved) this.marks.clear();
    return moved;
  }

  /**
   * Records this instance's own bump: `previous` is what the epoch held before it (`SET … GET`'s
   * reply), `next` the token it wrote. If `previous` is not what this instance last saw, someone
   * else invalidated in between (or Redis lost the epoch): true, so L1 is dropped as for any change.
   */
  observeOwnBump(previous: string | null, next: string): boolean {
    const missed = this.epoch === undefined || previous !== this.epoch;
    this.epoch = next;
    if (missed) this.marks.clear();
    return missed;
  }

  /** The mark of `tag` if known: `null` = never invalidated, `undefined` = must be fetched. */
  mark(tag: string): TagMark | null | undefined {
    return this.marks.get(tag);
  }

  remember(tag: string, mark: TagMark | null): void {
    // A read of the mark that left before this instance's own invalidation may land after it:
    // the newer mark stays.
    const known = this.marks.get(tag);
    if (known && (mark === null || mark.at < known.at)) return;
    // Marks are only a cache of Redis: past the cap, forget them all and fetch again as needed.
    if (this.marks.size >= MAX_KNOWN_MARKS) this.marks.clear();
    this.marks.set(tag, mark);
  }

  /**
   * An entry is gone after a hard invalidation of one of its tags made when or after it was written,
   * and stale (fresh no longer than the invalidation) after a soft one.
   */
  verdict(
    entry: Pick<Entry, "created" | "tags">,
    pending?: (tag: string) => TagMark | undefined,
  ): { gone: boolean; staleFrom: number | undefined } {
    let staleFrom: number | undefined;
    for (const tag of entry.tags) {
      // An invalidation not yet written to Redis counts as much as one read from it.
      for (const mark of [this.marks.get(tag), pending?.(tag)]) {
        if (!mark || mark.at < entry.created) continue;
        if (!mark.soft) return { gone: true, staleFrom: undefined };
        staleFrom = Math.min(staleFrom ?? mark.at, mark.at);
      }
    }
    return { gone: false, staleFrom };
  }
}

import type { Cache } from "../index.js";
import { cacheKey, SPACES } from "./keys.js";

/**
 * What is known of one tag's invalidations, as epoch milliseconds (0: never). A hard invalidation at
 * `hard` removes every entry created at or before it; a soft one at `softAt` makes those entries stale
 * until `softUntil`, then removes them too.
 */
export interface Marks {
  hard: number;
  softAt: number;
  softUntil: number;
}

export type Verdict = "fresh" | "stale" | "expired";

/** The keys one update writes for a tag: a hard mark, a soft one `[at, until]`, or both. */
interface Write {
  hard?: number;
  soft?: [number, number];
}

const UNMARKED: Marks = Object.freeze({ hard: 0, softAt: 0, softUntil: 0 });
/** Unmarked tags remembered at most; past it they are forgotten and read again when needed. */
const MAX_REMEMBERED = 10_000;

/** Whether an entry created at `timestamp` carrying `tags` may be served, and how. */
export function verdict(
  marks: ReadonlyMap<string, Marks>,
  tags: Iterable<string>,
  timestamp: number,
  now: number,
): Verdict {
  let stale = false;
  for (const tag of tags) {
    const mark = marks.get(tag);
    if (!mark) continue;
    if (mark.hard > 0 && timestamp <= mark.hard) return "expired";
    if (mark.softAt > 0 && timestamp <= mark.softAt) {
      if (mark.softUntil <= now) return "expired";
      stale = true;
    }
  }
  return stale ? "stale" : "fresh";
}

/**
 * The latest time at which one of `tags` made entries created before it unservable — what
 * `getExpiration` answers. A soft invalidation counts once its expiry has passed; one still running
 * only makes entries stale, which `get` reports.
 */
export function expiration(marks: ReadonlyMap<string, Marks>, tags: Iterable<string>, now: number): number {
  let latest = 0;
  for (const tag of tags) {
    const mark = marks.get(tag);
    if (!mark) continue;
    latest = Math.max(latest, mark.hard);
    if (mark.softAt > 0 && mark.softUntil <= now) latest = Math.max(latest, mark.softAt);
  }
  return latest;
}

/**
 * Tag marks kept in the Cache (outside the versioned space: an invalidation reaches every deploy still
 * serving), one key per tag and kind so a hard and a soft invalidation never overwrite each other.
 *
 * Marks that exist are read through the Cache like any entry — from L1, which the Cache keeps coherent
 * across instances — and in the same tick as the entry that needs them, so they join its MGET. Tags
 * never invalidated have no key, and a miss is not cached by the Cache, so this instance remembers
 * them itself and forgets them all when the tag epoch (a counter every update bumps, checked at most
 * once per `syncMs` in the background) moves. Updates this instance could not write to Redis are kept
 * and replayed on a later check.
 */
export class TagBook {
  private readonly unmarked = new Set<string>();
  /** Bumped whenever `unmarked` is dropped, so a read that was in flight cannot refill it with old news. */
  private generation = 0;
  private epoch: number | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private checking = false;
  /** Marks written here that Redis has not confirmed (it failed or was down): merged into reads, replayed. */
  private readonly unconfirmed = new Map<string, Marks>();

  constructor(
    private readonly cache: Cache,
    private readonly syncMs: number,
    private readonly markTtlMs: number,
  ) {}

  /**
   * The marks of `tags`. Every Redis read is issued before this returns, so reads the caller starts in
   * the same tick (the entry itself) leave in the same MGET.
   */
  load(tags: Iterable<string>): Promise<Map<string, Marks>> {
    const found = new Map<string, Marks>();
    const pending: Promise<void>[] = [];
    const generation = this.generation;
    const errors = this.cache.stats().errors;
    for (const tag of tags) {
      if (found.has(tag)) continue;
      if (this.unmarked.has(tag)) {
        found.set(tag, this.withUnconfirmed(tag, UNMARKED));
        continue;
      }
      found.set(tag, UNMARKED);
      const hard = this.cache.get<number>(cacheKey(SPACES.hardMark, tag), { versioned: false });
      const soft = this.cache.get<[number, number]>(cacheKey(SPACES.softMark, tag), { versioned: false });
      pending.push(
        Promise.all([hard, soft]).then(([h, s]) => {
          const marks: Marks = { hard: num(h), softAt: num(s?.[0]), softUntil: num(s?.[1]) };
          found.set(tag, this.withUnconfirmed(tag, marks));
          // A miss while Redis fails says nothing: only a clean answer proves the tag unmarked.
          const clean = generation === this.generation && this.cache.stats().errors === errors;
          if (h === undefined && s === undefined && clean) this.rememberUnmarked(tag);
        }),
      );
    }
    return pending.length === 0 ? Promise.resolve(found) : Promise.all(pending).then(() => found);
  }

  /**
   * Invalidates `tags` everywhere: without `expireSeconds` hard (entries are gone now), with it soft
   * (stale now, gone after `expireSeconds`; `undefined` inside `soft` means never gone). Tiercache's own
   * entries carrying these tags are invalidated the same way, so an app's `cache.getOrSet(…, { tags })`
   * follows `revalidateTag` too.
   */
  async update(
    tags: readonly string[],
    soft: { expireSeconds: number | undefined } | undefined,
  ): Promise<void> {
    const unique = [...new Set(tags)];
    if (unique.length === 0) return;
    const now = Date.now();
    const writes = new Map<string, Write>();
    if (!soft) {
      for (const tag of unique) writes.set(tag, { hard: now });
    } else {
      const until =
        soft.expireSeconds === undefined ? Number.POSITIVE_INFINITY : now + soft.expireSeconds * 1000;
      const current = await this.load(unique);
      for (const tag of unique) {
        const previous = current.get(tag) ?? UNMARKED;
        const write: Write = {};
        // A soft invalidation whose expiry has passed has removed its entries: it becomes a hard one
        // rather than be overwritten, which would make those entries servable (stale) again.
        const lapsed = previous.softAt > 0 && previous.softUntil <= now;
        if (lapsed && previous.softAt > previous.hard) write.hard = previous.softAt;
        // Entries made stale by the previous one keep its deadline if it comes first.
        write.soft = [now, previous.softAt > 0 && !lapsed ? Math.min(previous.softUntil, until) : until];
        writes.set(tag, write);
      }
    }
    for (const tag of unique) this.unmarked.delete(tag);
    await this.write(writes);
    const [, bumped] = await Promise.all([
      this.cache.invalidateTags(unique, { soft: soft !== undefined }),
      this.cache.increment(SPACES.epoch),
    ]);
    this.observeOwnBump(bumped);
  }

  /** Starts the epoch check in the background when one is due (never on a request's path). */
  sync(now = Date.now()): void {
    if (this.checking || now - this.checkedAt < this.syncMs) return;
    this.checkedAt = now;
    this.checking = true;
    void this.check().finally(() => {
      this.checking = false;
    });
  }

  private async check(): Promise<void> {
    try {
      const epoch = await this.cache.increment(SPACES.epoch, 0);
      // The first look counts as a move: what was learnt before it may predate an invalidation.
      if (epoch !== this.epoch) this.forgetUnmarked();
      this.epoch = epoch;
      if (this.unconfirmed.size > 0) await this.replay();
    } catch {
      // Fail-open: a failed check is retried after syncMs; what is known stays in use.
    }
  }

  private async replay(): Promise<void> {
    const pending = new Map(this.unconfirmed);
    this.unconfirmed.clear();
    const current = await this.load(pending.keys());
    const writes = new Map<string, Write>();
    for (const [tag, mine] of pending) {
      const stored = current.get(tag) ?? UNMARKED;
      // Another instance may have written a newer mark meanwhile: never move a mark back in time. An
      // equal one is this instance's own, read back from its L1 (where the failed write still landed).
      const write: Write = {};
      if (mine.hard > 0 && mine.hard >= stored.hard) write.hard = mine.hard;
      if (mine.softAt > 0 && mine.softAt >= stored.softAt) write.soft = [mine.softAt, mine.softUntil];
      if (write.hard !== undefined || write.soft) writes.set(tag, write);
    }
    if (writes.size === 0) return;
    await this.write(writes);
    // As the update itself would have: other instances drop their L1 (which may hold older marks)
    // and learn of the new ones; tiercache's own tagged entries follow.
    const hard = [...writes].filter(([, w]) => w.hard !== undefined).map(([tag]) => tag);
    const soft = [...writes].filter(([, w]) => w.hard === undefined).map(([tag]) => tag);
    const [bumped] = await Promise.all([
      this.cache.increment(SPACES.epoch),
      hard.length > 0 ? this.cache.invalidateTags(hard) : undefined,
      soft.length > 0 ? this.cache.invalidateTags(soft, { soft: true }) : undefined,
    ]);
    this.observeOwnBump(bumped);
  }

  private async write(writes: Map<string, Write>): Promise<void> {
    // The Cache swallows Redis failures (fail-open), and skips Redis silently while its circuit is
    // open: a PING first, then no error during the write, is what proves Redis has the marks.
    const reachable = await this.cache.ping().then(
      () => true,
      () => false,
    );
    const errors = this.cache.stats().errors;
    const options = {
      versioned: false,
      ttl: this.markTtlMs,
      staleWhileRevalidate: 0,
      staleIfError: 0,
      jitter: 0,
    };
    await this.cache.setMany(
      [...writes].flatMap(([tag, write]) => [
        ...(write.hard !== undefined
          ? [{ key: cacheKey(SPACES.hardMark, tag), value: write.hard, ...options }]
          : []),
        ...(write.soft ? [{ key: cacheKey(SPACES.softMark, tag), value: write.soft, ...options }] : []),
      ]),
    );
    if (reachable && this.cache.stats().errors === errors) return;
    // Kept in L1 by setMany, but L1 may evict: hold them here until Redis has them.
    if (this.unconfirmed.size >= MAX_REMEMBERED) this.unconfirmed.clear();
    for (const [tag, write] of writes) {
      const mark: Marks = {
        hard: write.hard ?? 0,
        softAt: write.soft?.[0] ?? 0,
        softUntil: write.soft?.[1] ?? 0,
      };
      this.unconfirmed.set(tag, latest(this.unconfirmed.get(tag), mark));
    }
  }

  private withUnconfirmed(tag: string, marks: Marks): Marks {
    const mine = this.unconfirmed.get(tag);
    return mine ? latest(marks, mine) : marks;
  }

  private rememberUnmarked(tag: string): void {
    if (this.unmarked.size >= MAX_REMEMBERED) this.unmarked.clear();
    this.unmarked.add(tag);
  }

  private forgetUnmarked(): void {
    this.unmarked.clear();
    this.generation++;
  }

  /** INCR's reply to this instance's own bump: a skipped value means someone else updated tags too. */
  private observeOwnBump(value: number): void {
    if (this.epoch === undefined || value !== this.epoch + 1) this.forgetUnmarked();
    this.epoch = value;
  }
}

function num(value: unknown): number {
  return typeof value === "number" && !Number.isNaN(value) ? value : 0;
}

function latest(a: Marks | undefined, b: Marks): Marks {
  if (!a) return b;
  return a.softAt >= b.softAt
    ? { hard: Math.max(a.hard, b.hard), softAt: a.softAt, softUntil: a.softUntil }
    : { hard: Math.max(a.hard, b.hard), softAt: b.softAt, softUntil: b.softUntil };
}

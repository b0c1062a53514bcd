import type { Cache } from "../index.js";
import { type Marks, TagBook } from "./tags.js";

/** Keys whose tags are remembered at most (see {@link NextStore.read}). */
const MAX_HINTS = 10_000;
const DAY_MS = 24 * 3600 * 1000;

/** What the handlers store in the Cache: any value that names its own tags. */
export interface Tagged {
  tags: readonly string[];
}

/**
 * What both handlers share on one Cache: the tag book and, per key, the tags its entry carried last
 * time — so that after L1 was dropped (an invalidation elsewhere) the entry and all its tag marks
 * are read in one MGET instead of two round trips, entry first.
 */
export class NextStore {
  readonly tags: TagBook;
  private readonly hints = new Map<string, readonly string[]>();

  constructor(
    readonly cache: Cache,
    readonly maxTtlMs: number,
    syncMs: number,
  ) {
    // Marks must outlive every entry they judge; entries live `maxTtlMs` at most. The Cache takes
    // durations up to 3650 days.
    this.tags = new TagBook(cache, syncMs, Math.min(maxTtlMs + DAY_MS, 3650 * DAY_MS));
  }

  /**
   * The stored value at `key` and the marks of its tags and of `extraTags`. The entry and the marks
   * of the tags known up front leave together; the entry's tags are known up front from the second read on.
   */
  async read<T extends Tagged>(
    key: string,
    extraTags: readonly string[],
  ): Promise<{ value: T; marks: Map<string, Marks> } | undefined> {
    this.tags.sync();
    const hint = this.hints.get(key);
    const wanted = hint ? [...extraTags, ...hint] : extraTags;
    const [value, marks] = await Promise.all([this.cache.get<T>(key), this.tags.load(wanted)]);
    if (value === undefined) return undefined;
    const unknown = value.tags.filter((tag) => !marks.has(tag));
    if (unknown.length > 0) for (const [tag, mark] of await this.tags.load(unknown)) marks.set(tag, mark);
    if (hint !== value.tags) this.hint(key, value.tags);
    return { value, marks };
  }

  /** Stores a value for `ttlMs` (capped); a value that cannot be stored is logged, never thrown. */
  async write(key: string, value: Tagged, ttlMs: number, warn: (message: string) => void): Promise<void> {
    const ttl = Math.min(ttlMs, this.maxTtlMs);
    if (!(ttl >= 1)) return;
    try {
      await this.cache.set(key, value, {
        ttl: Math.ceil(ttl),
        staleWhileRevalidate: 0,
        staleIfError: 0,
        jitter: 0,
      });
      this.hint(key, value.tags);
    } catch (error) {
      warn(`tiercache/next: not cached: ${(error as Error).message}`);
    }
  }

  private hint(key: string, tags: readonly string[]): void {
    this.hints.delete(key);
    if (this.hints.size >= MAX_HINTS) {
      const oldest = this.hints.keys().next().value;
      if (oldest !== undefined) this.hints.delete(oldest);
    }
    this.hints.set(key, tags);
  }
}

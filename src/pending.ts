import type { TagMark } from "./invalidation.js";
import { globToRegExp } from "./keys.js";

/**
 * Invalidations kept at most while Redis is unreachable (keys, tags and patterns together). Past
 * it they degrade to a purge: every entry of the namespace written before the last deferred
 * invalidation is deleted on recovery.
 */
export const MAX_PENDING = 10_000;

/** What one replay carries; settled entries are dropped only if nothing newer replaced them since. */
export interface PendingSnapshot {
  keys: Map<string, number>;
  tags: Map<string, TagMark>;
  patterns: Map<string, number>;
  purgeBefore: number | undefined;
}

/**
 * Invalidations made while Redis could not be reached: replayed when it answers again, and until
 * then applied to what this instance reads from Redis (which may still hold the old values), so
 * they are never lost and never undone by a read.
 */
export class PendingInvalidations {
  private readonly keys = new Map<string, number>();
  private readonly tags = new Map<string, TagMark>();
  private readonly patterns = new Map<string, { at: number; matcher: RegExp }>();
  /** Set on overflow: entries written up to this time are treated as gone. */
  private purgeBefore: number | undefined;

  get size(): number {
    return this.keys.size + this.tags.size + this.patterns.size + (this.purgeBefore === undefined ? 0 : 1);
  }

  addKeys(fulls: readonly string[], at: number): void {
    if (this.absorbed(fulls.length, at)) return;
    for (const full of fulls) this.keys.set(full, at);
  }

  addTags(tags: readonly string[], mark: TagMark): void {
    if (this.absorbed(tags.length, mark.at)) return;
    for (const tag of tags) {
      const known = this.tags.get(tag);
      // A hard invalidation is not weakened by a later soft one.
      this.tags.set(tag, { at: mark.at, soft: mark.soft && (known?.soft ?? true) });
    }
  }

  addPattern(pattern: string, at: number): void {
    if (this.absorbed(1, at)) return;
    this.patterns.set(pattern, { at, matcher: globToRegExp(pattern) });
  }

  /** A later successful write of the key supersedes its pending delete. */
  forgetKeys(fulls: readonly string[]): void {
    for (const full of fulls) this.keys.delete(full);
  }

  /**
   * Whether what Redis holds at `full`, written at `created` (if known), must not be served: it was
   * written before an invalidation that reaches it. Later entries are newer than the invalidation
   * (a load on this instance during the outage, say) and are served.
   */
  hides(full: string, created: number | undefined): boolean {
    const before = (at: number | undefined) => at !== undefined && (created === undefined || created <= at);
    if (before(this.purgeBefore) || before(this.keys.get(full))) return true;
    for (const { at, matcher } of this.patterns.values()) if (before(at) && matcher.test(full)) return true;
    return false;
  }

  /** The pending invalidation of `tag`, kept whatever the epoch does until it is replayed. */
  mark(tag: string): TagMark | undefined {
    return this.tags.get(tag);
  }

  snapshot(): PendingSnapshot {
    const patterns = new Map([...this.patterns].map(([pattern, { at }]) => [pattern, at]));
    return { keys: new Map(this.keys), tags: new Map(this.tags), patterns, purgeBefore: this.purgeBefore };
  }

  /** Drops what a replay wrote to Redis, unless it was invalidated again in the meantime. */
  settle(done: PendingSnapshot): void {
    for (const [full, at] of done.keys) if (this.keys.get(full) === at) this.keys.delete(full);
    for (const [tag, mark] of done.tags) if (this.tags.get(tag)?.at === mark.at) this.tags.delete(tag);
    for (const [pattern, at] of done.patterns)
      if (this.patterns.get(pattern)?.at === at) this.patterns.delete(pattern);
    if (this.purgeBefore === done.purgeBefore) this.purgeBefore = undefined;
  }

  /** Past the cap everything becomes one purge; an invalidation made while purging is part of it. */
  private absorbed(adding: number, at: number): boolean {
    if (this.purgeBefore === undefined && this.size + adding <= MAX_PENDING) return false;
    this.purgeBefore = Math.max(this.purgeBefore ?? at, at);
    this.keys.clear();
    this.tags.clear();
    this.patterns.clear();
    return true;
  }
}

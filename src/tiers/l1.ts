import { LRUCache } from "lru-cache";
import type { Entry } from "../entry.js";

/**
 * The in-process tier. It keeps decoded values (no parse, no clone on a hit: callers must not mutate
 * what they get back) and drops each entry when it can no longer be served, even as stale.
 */
export class L1 {
  private readonly lru: LRUCache<string, Entry>;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
    private readonly ttlCapMs: number | undefined,
  ) {
    this.lru = new LRUCache<string, Entry>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (entry) => Math.max(1, entry.size),
    });
  }

  /** The entry if it can still be served (fresh or stale); expired ones are dropped on the way. */
  get(key: string, now: number): Entry | undefined {
    const entry = this.lru.get(key);
    if (entry === undefined) return undefined;
    if (entry.stale <= now) {
      this.lru.delete(key);
      return undefined;
    }
    return entry;
  }

  /**
   * Stores an entry for as long as it is servable, capped by `l1.ttl`: the cap shortens both its
   * freshness and its stale window here, so L1 never outlives what L2 would serve.
   */
  set(key: string, entry: Entry, now: number): void {
    // An entry L1 will not hold must not leave the previous value of the key in its place.
    if (entry.size > this.maxBytes) {
      this.lru.delete(key);
      return;
    }
    let stored = entry;
    if (this.ttlCapMs !== undefined) {
      const cap = now + this.ttlCapMs;
      if (entry.stale > cap) stored = { ...entry, fresh: Math.min(entry.fresh, cap), stale: cap };
    }
    if (stored.stale <= now) this.lru.delete(key);
    else this.lru.set(key, stored);
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  /** Drops every entry the predicate picks (pattern deletes, flushes); returns how many. */
  deleteWhere(predicate: (key: string, entry: Entry) => boolean): number {
    let removed = 0;
    for (const [key, entry] of this.lru.entries()) {
      if (predicate(key, entry) && this.lru.delete(key)) removed++;
    }
    return removed;
  }

  clear(): void {
    this.lru.clear();
  }

  get entries(): number {
    return this.lru.size;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }
}

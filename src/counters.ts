import type { CacheCore } from "./core.js";

/**
 * Atomic counters in Redis (`INCRBY`), outside the versioned space so they survive deploys. Without
 * Redis, or while it fails with `failSilently`, the count is this instance's own, best effort.
 */
export class Counters {
  private readonly local = new Map<string, number>();

  constructor(private readonly core: CacheCore) {}

  async increment(key: string, by: number): Promise<number> {
    if (!Number.isSafeInteger(by))
      throw new TypeError(`tiercache: increment by must be an integer, got ${by}`);
    const { l2, keys } = this.core;
    const full = await keys.counter(key);
    const local = (this.local.get(full) ?? 0) + by;
    if (l2) {
      const reply = await this.core.tolerate(() => l2.send(["INCRBY", full, by]));
      if (typeof reply === "number") return reply;
    }
    this.local.set(full, local);
    return local;
  }
}

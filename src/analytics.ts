import type { Counts } from "./core.js";
import type { KeySpace } from "./keys.js";
import type { L2 } from "./tiers/l2.js";
import type { RedisArg } from "./transports/types.js";
import type { WaitUntil } from "./types.js";

/**
 * Opt-in analytics (`analytics: true`): each instance adds what it counted since its last push to
 * shared per-namespace buckets, so `tiercache stats` can show hit rates across every instance.
 *
 * Layout: one hash per namespace and 10-minute slot, `[<prefix>:]tc:<namespace>:~a:<slot>` (slot =
 * epoch ms ÷ 600,000), fields `<version>:<counter>`, expiring {@link BUCKET_TTL_S} after the slot's
 * first push by this instance. A push is one pipeline: one `HINCRBY` per counter that moved, and one
 * `EXPIRE` when the slot is new to this instance — never on a request's path (handed to `waitUntil`
 * or left to run), at most once per `analyticsMs`, and nothing at all from an idle instance.
 */

/** Width of a bucket: "last hour" is the last 6 buckets, "last day" the last 144. */
export const SLOT_MS = 10 * 60_000;
/** Long enough for a day's worth of buckets to stay readable, and a little more. */
export const BUCKET_TTL_S = 25 * 3600;
/** The counters pushed, as field suffixes. */
export const COUNTERS = ["l1", "l2", "stale", "miss", "load", "error"] as const;
export type Counter = (typeof COUNTERS)[number];

export function analyticsKey(keys: Pick<KeySpace, "namespaceRoot">, slot: number): string {
  return `${keys.namespaceRoot}~a:${slot}`;
}

const fromCounts = (counts: Counts): Record<Counter, number> => ({
  l1: counts.l1,
  l2: counts.l2,
  stale: counts.stale,
  miss: counts.misses,
  load: counts.loads,
  error: counts.errors,
});

/** One instance's pusher: the read path calls {@link tick} on every read; it decides when a push is due. */
export class Analytics {
  private lastPush: number;
  private sent: Record<Counter, number> = { l1: 0, l2: 0, stale: 0, miss: 0, load: 0, error: 0 };
  private expiredSlot = -1;

  constructor(
    private readonly l2: L2,
    private readonly keys: KeySpace,
    private readonly counts: Counts,
    private readonly intervalMs: number,
    private readonly schedule: (given: WaitUntil | undefined) => WaitUntil | undefined,
  ) {
    this.lastPush = Date.now();
  }

  /**
   * Called on every read: starts a push in the background when the last one is `analyticsMs` old,
   * handed to the read's `waitUntil` (else the cache's, else the live Vercel request's).
   */
  tick(now: number, waitUntil: WaitUntil | undefined): void {
    if (now - this.lastPush < this.intervalMs) return;
    this.lastPush = now;
    const push = this.push(now).catch(() => {
      // Reported by L2 already; the counts are retried with the next push.
    });
    this.schedule(waitUntil)?.(push);
  }

  /** Pushes what moved since the last push (also called at `close()`); never throws. */
  async push(now = Date.now()): Promise<void> {
    const current = fromCounts(this.counts);
    const delta = COUNTERS.map((name) => [name, current[name] - this.sent[name]] as const).filter(
      ([, moved]) => moved > 0,
    );
    if (delta.length === 0) return;
    const slot = Math.floor(now / SLOT_MS);
    const key = analyticsKey(this.keys, slot);
    const version = this.keys.version;
    const commands: RedisArg[][] = delta.map(([name, moved]) => [
      "HINCRBY",
      key,
      `${version}:${name}`,
      moved,
    ]);
    const newSlot = slot !== this.expiredSlot;
    if (newSlot) commands.push(["EXPIRE", key, BUCKET_TTL_S]);
    // Counted as sent before the round trip, so a push overlapping this one does not send it twice.
    for (const [name, moved] of delta) this.sent[name] += moved;
    try {
      const replies = await this.l2.pipeline(commands, "analytics");
      if (replies.some((reply) => reply instanceof Error)) throw new Error("analytics push refused");
      if (newSlot) this.expiredSlot = slot;
    } catch (error) {
      for (const [name, moved] of delta) this.sent[name] -= moved;
      throw error;
    }
  }
}

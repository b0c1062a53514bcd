import type { CacheError } from "./errors.js";
import type { BreakerState, Logger } from "./types.js";

/** How long a failure logged once keeps its repeats quiet. */
const WINDOW_MS = 60_000;
/** Distinct failures remembered at once; the oldest is forgotten first. */
const MAX_KINDS = 64;

/**
 * Log lines for Redis trouble, bounded whatever the traffic: the first failure of a kind is
 * logged, repeats of it are counted but not logged for a minute, and each circuit change is one
 * line that says how many failures were not logged before it. An outage under 1,000 requests a
 * second costs a handful of lines, not one per call.
 */
export class OutageLog {
  /** Per kind of failure: when it was last logged, and how many repeats were kept quiet since. */
  private readonly kinds = new Map<string, { loggedAt: number; quiet: number }>();
  private quietTotal = 0;
  /** Errors {@link failure} logged or counted, so whoever rethrows them does not log them again. */
  private readonly reported = new WeakSet<object>();
  /** Between the circuit opening and closing again. */
  private down = false;

  constructor(private readonly logger: Logger) {}

  /** An operation failed: logged unless the same failure was logged within the last minute. */
  failure(operation: string, error: CacheError): void {
    this.reported.add(error);
    this.warn(`${error.code}:${shape(error.message.replace(/^tiercache: \S+/, ""))}`, () => [
      `Redis ${operation} failed: ${error.message}`,
      { code: error.code },
    ]);
  }

  /**
   * A line about a failure of something built on L2 (a version registration, say): skipped when it
   * is an L2 failure that {@link failure} has reported already, else logged like one.
   */
  consequence(
    kind: string,
    error: unknown,
    line: () => [message: string, details?: Record<string, unknown>],
  ): void {
    if (typeof error === "object" && error !== null && this.reported.has(error)) return;
    this.warn(kind, line);
  }

  private warn(kind: string, line: () => [message: string, details?: Record<string, unknown>]): void {
    const now = Date.now();
    const seen = this.kinds.get(kind);
    if (seen && now - seen.loggedAt < WINDOW_MS) {
      seen.quiet++;
      this.quietTotal++;
      return;
    }
    this.kinds.delete(kind);
    if (this.kinds.size >= MAX_KINDS) this.kinds.delete(this.kinds.keys().next().value as string);
    this.kinds.set(kind, { loggedAt: now, quiet: 0 });
    const [message, details] = line();
    const quiet = seen?.quiet ?? 0;
    this.quietTotal -= quiet; // reported on this line, not again on the next circuit change
    this.logger.warn(quiet > 0 ? `${message} (and ${quiet} more like it not logged)` : message, details);
  }

  /**
   * One line when the circuit opens and one when it closes, each with the count of failure lines
   * held back until then. A failed probe re-opening it during the same outage is not news.
   */
  breaker(state: BreakerState): void {
    if (state === "half-open" || (state === "open" && this.down)) return;
    this.down = state === "open";
    const quiet = this.quietTotal;
    this.quietTotal = 0;
    // Counted once: here. Once Redis is back, the next failure is news again.
    if (state === "closed") this.kinds.clear();
    else for (const seen of this.kinds.values()) seen.quiet = 0;
    const held = quiet > 0 ? ` (${quiet} repeated failure${quiet === 1 ? "" : "s"} not logged)` : "";
    if (state === "open") this.logger.warn(`Redis circuit open: serving from L1 and loaders${held}`);
    else this.logger.info?.(`Redis circuit closed: Redis is back${held}`);
  }
}

/** A failure's text with the parts that vary between repeats (numbers: ports, ms, counts) blanked. */
function shape(message: string): string {
  return message.replace(/\d+/g, "#").slice(0, 200);
}

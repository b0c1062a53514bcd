import type { BreakerState } from "../types.js";

/**
 * A circuit breaker over L2: after `failureThreshold` failures in a row it opens and every L2
 * operation is skipped at once; after `resetMs` one probe is let through (half-open), whose success
 * closes it and whose failure opens it again. Time is read on use — no timers, nothing kept alive.
 */
export class Breaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private current: BreakerState = "closed";

  constructor(
    private readonly failureThreshold: number,
    private readonly resetMs: number,
    private readonly onChange: (state: BreakerState) => void,
  ) {}

  get state(): BreakerState {
    return this.current;
  }

  /** Whether an operation may go to L2 now; in half-open, only one probe at a time may. */
  allow(now: number): boolean {
    if (this.current === "closed") return true;
    if (this.current === "open") {
      if (now - this.openedAt < this.resetMs) return false;
      this.transition("half-open");
    }
    if (this.probing) return false;
    this.probing = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== "closed") this.transition("closed");
  }

  /**
   * An operation that says nothing about Redis either way (cut short by its call's budget, or one
   * cluster node's failure): no verdict, but a half-open probe gives its turn back — otherwise the
   * breaker would wait for that probe's verdict forever and skip every operation from then on.
   */
  inconclusive(): void {
    this.probing = false;
  }

  failure(now: number): void {
    this.failures++;
    this.probing = false;
    if (this.current === "half-open" || this.failures >= this.failureThreshold) {
      this.openedAt = now;
      if (this.current !== "open") this.transition("open");
    }
  }

  private transition(state: BreakerState): void {
    this.current = state;
    this.onChange(state);
  }
}

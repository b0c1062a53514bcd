/**
 * The Redis time one cache call may still spend. Every L2 operation of the call (the read, the
 * awaited write-back, a lease) draws on it, so a call whose read already waited out `timeoutMs`
 * on a hanging Redis does not wait a second `timeoutMs` for its write. A loader's own time is
 * not Redis time and is not charged.
 */
export class Budget {
  private spentMs = 0;

  constructor(private readonly totalMs: number) {}

  get remainingMs(): number {
    return this.totalMs - this.spentMs;
  }

  spend(ms: number): void {
    this.spentMs += ms;
  }
}

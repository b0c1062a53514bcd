/** A getOrSet load in flight, and whether an invalidation of its key came in while it ran. */
export interface LoadTicket {
  readonly full: string;
  readonly startedAt: number;
  readonly generation: number;
  superseded: boolean;
}

/** Local invalidations remembered for {@link Supersession.admits}, at most, and for how long (reads land within their deadline). */
const MAX_NOTED_INVALIDATIONS = 10_000;
const NOTE_INVALIDATIONS_MS = 10_000;

/**
 * What this instance's own invalidations overtake: the loads in flight of the keys they touch (one
 * begun before must not write back what was invalidated) and the Redis reads still on their way (an
 * entry written before must not fill L1). It also counts every invalidation made or learnt of here,
 * so that single flight never joins a flight begun before one. Tag verdicts are coherence.ts's.
 */
export class Supersession {
  private readonly loads = new Map<string, Set<LoadTicket>>();
  /** Moves whenever L1 is dropped wholesale: a load that straddles it must not fill L1. */
  private generation = 0;
  private count = 0;
  private readonly invalidatedAt = new Map<string, number>();
  private everythingInvalidatedAt = 0;

  /** Moves with every invalidation this instance makes or learns of. */
  get invalidations(): number {
    return this.count;
  }

  /** Registers a load, so invalidations of its key made while it runs can supersede it. */
  begin(full: string): LoadTicket {
    const ticket: LoadTicket = {
      full,
      startedAt: Date.now(),
      generation: this.generation,
      superseded: false,
    };
    let tickets = this.loads.get(full);
    if (!tickets) {
      tickets = new Set();
      this.loads.set(full, tickets);
    }
    tickets.add(ticket);
    return ticket;
  }

  /** Ends a load: false when its key was invalidated here, or L1 dropped, since it began. */
  end(ticket: LoadTicket): boolean {
    const tickets = this.loads.get(ticket.full);
    tickets?.delete(ticket);
    if (tickets?.size === 0) this.loads.delete(ticket.full);
    return !ticket.superseded && ticket.generation === this.generation;
  }

  /**
   * An invalidation here of the keys `matches` accepts: their loads in flight are superseded, and
   * `fulls` (or, without a list, every key) noted at `at` for {@link admits}.
   */
  supersede(matches: (full: string) => boolean, fulls?: readonly string[], at = Date.now()): void {
    this.count++;
    this.note(fulls, at);
    for (const [full, tickets] of this.loads) {
      if (matches(full)) for (const ticket of tickets) ticket.superseded = true;
    }
  }

  /** An invalidation that supersedes no load by key (a tag invalidation: loads check their tags). */
  counted(): void {
    this.count++;
  }

  /** L1 was dropped wholesale (an invalidation elsewhere): every load in flight is overtaken. */
  dropped(): void {
    this.generation++;
    this.count++;
  }

  /**
   * Whether an entry of `full` written at `created` may go into L1 as far as this instance's key
   * invalidations go: not when its key (or everything, by pattern or flush) was invalidated after.
   */
  admits(full: string, created: number): boolean {
    return created >= this.everythingInvalidatedAt && created >= (this.invalidatedAt.get(full) ?? 0);
  }

  private note(fulls: readonly string[] | undefined, at: number): void {
    const now = Date.now();
    if (fulls && this.invalidatedAt.size + fulls.length > MAX_NOTED_INVALIDATIONS) {
      // A read lands within its deadline: older notes are of no use. Still past the cap, treat it as
      // an invalidation of everything (errs towards not filling L1).
      for (const [full, noted] of this.invalidatedAt) {
        if (now - noted > NOTE_INVALIDATIONS_MS) this.invalidatedAt.delete(full);
      }
      if (this.invalidatedAt.size + fulls.length > MAX_NOTED_INVALIDATIONS) fulls = undefined;
    }
    if (!fulls) {
      this.everythingInvalidatedAt = now;
      this.invalidatedAt.clear();
      return;
    }
    for (const full of fulls) this.invalidatedAt.set(full, at);
  }
}

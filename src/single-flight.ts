import type { Schema } from "./types.js";

/**
 * A flight key's slot in the single-flight registry; `flight` is emptied when it lands. It holds
 * the count of invalidations (coherence.ts) its flight began at; `replaced` once a later flight of
 * the same key (begun after an invalidation) took its place in the registry.
 */
export interface Running {
  flight: Promise<unknown> | undefined;
  invalidations: number;
  replaced: boolean;
}

/** Empty slots kept before a sweep: bounds the registry at the running flights plus this. */
const SWEEP_LANDED = 1024;

/**
 * Single flight of `getOrSet`: one flight per flight key (a key, and the schema its callers read it
 * through) that callers arriving while it runs join — unless an invalidation came in since it began.
 */
export class SingleFlight {
  /** Each flight key's slot, holding its running flight (empty ones kept, see {@link landed}). */
  private readonly slots = new Map<string, Running>();
  /** Empty slots still in `slots`. */
  private landedKept = 0;
  private readonly schemaIds = new WeakMap<Schema<unknown>, number>();
  private lastSchemaId = 0;

  /** Callers share a flight only when they would get the same value: same key, same schema. */
  flightKey(full: string, schema: Schema<unknown> | undefined): string {
    return schema ? `${full}\u0000${this.schemaId(schema)}` : full;
  }

  /**
   * The slot of `flightKey` for a caller arriving now: its running flight to join (`flight` set),
   * or a slot claimed for the caller's own flight, which the caller must set and, once it is over,
   * hand to {@link landed}. A flight begun before an invalidation (the count is `invalidations` now)
   * may bring back what was invalidated: it is not joined (it still answers its own callers).
   */
  enter(flightKey: string, invalidations: number): Running {
    const known = this.slots.get(flightKey);
    if (known?.flight && known.invalidations === invalidations) return known;
    // The key's slot is reused from flight to flight: nothing per flight stays reachable from it.
    let slot: Running;
    if (known && !known.flight) {
      slot = known;
      this.landedKept--;
    } else {
      if (known) known.replaced = true;
      slot = { flight: undefined, invalidations, replaced: false };
      this.slots.set(flightKey, slot);
    }
    slot.invalidations = invalidations;
    return slot;
  }

  /**
   * A flight is over: the next caller of its key starts a new one. Its slot stays, empty, until
   * enough have landed to sweep them at once: V8 shrinks a Map as it empties and grows it again as it
   * fills, and at 100 flights a tick that rehashing cost about 0.5 µs per read (measured).
   */
  landed(slot: Running): void {
    slot.flight = undefined;
    if (slot.replaced || ++this.landedKept < SWEEP_LANDED) return;
    for (const [flightKey, entry] of this.slots) if (!entry.flight) this.slots.delete(flightKey);
    this.landedKept = 0;
  }

  private schemaId(schema: Schema<unknown>): number {
    let id = this.schemaIds.get(schema);
    if (id === undefined) {
      id = ++this.lastSchemaId;
      this.schemaIds.set(schema, id);
    }
    return id;
  }
}

import { describe, expect, it } from "vitest";
import { MAX_PENDING, PendingInvalidations } from "../../src/pending.js";

describe("pending invalidations", () => {
  it("hide keys, patterns and tags until settled, and keep what was invalidated again meanwhile", () => {
    const pending = new PendingInvalidations();
    pending.addKeys(["ns:a", "ns:b"], 10);
    pending.addPattern("ns:user:*", 10);
    pending.addTags(["t"], { at: 10, soft: false });
    expect(pending.hides("ns:a", 5)).toBe(true);
    expect(pending.hides("ns:user:7", 5)).toBe(true);
    expect(pending.hides("ns:c", 5)).toBe(false);
    // Written after the invalidation (a load during the outage): newer, served.
    expect(pending.hides("ns:a", 11)).toBe(false);
    expect(pending.hides("ns:user:7", 11)).toBe(false);
    expect(pending.mark("t")).toEqual({ at: 10, soft: false });
    const snapshot = pending.snapshot();
    pending.addKeys(["ns:b"], 20); // invalidated again while the replay was in flight
    pending.settle(snapshot);
    expect(pending.hides("ns:a", 5)).toBe(false);
    expect(pending.hides("ns:user:7", 5)).toBe(false);
    expect(pending.mark("t")).toBeUndefined();
    expect(pending.hides("ns:b", 5)).toBe(true);
    expect(pending.size).toBe(1);
  });

  it("a soft invalidation after a hard one stays hard", () => {
    const pending = new PendingInvalidations();
    pending.addTags(["t"], { at: 10, soft: false });
    pending.addTags(["t"], { at: 20, soft: true });
    expect(pending.mark("t")).toEqual({ at: 20, soft: false });
  });

  it("past the cap, degrades to a purge of everything written up to the last invalidation", () => {
    const pending = new PendingInvalidations();
    pending.addKeys(
      Array.from({ length: MAX_PENDING }, (_, i) => `k${i}`),
      100,
    );
    expect(pending.size).toBe(MAX_PENDING);
    pending.addTags(["t"], { at: 200, soft: true });
    expect(pending.size).toBe(1);
    expect(pending.hides("anything", 200)).toBe(true);
    expect(pending.hides("anything", undefined)).toBe(true); // its age unknown: not served
    expect(pending.hides("anything", 201)).toBe(false);
    pending.addKeys(["later"], 300); // part of the purge now
    expect(pending.hides("anything", 250)).toBe(true);
    const snapshot = pending.snapshot();
    pending.settle(snapshot);
    expect(pending.size).toBe(0);
  });
});

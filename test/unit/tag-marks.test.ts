import { describe, expect, it } from "vitest";
import { Invalidations } from "../../src/invalidation.js";

describe("known tag marks", () => {
  it("a mark read before this instance's own invalidation, landing after it, does not replace it", () => {
    const state = new Invalidations(1000);
    state.remember("t", { at: 2000, soft: false }); // our invalidation
    state.remember("t", { at: 1000, soft: false }); // the older mark a read in flight brought back
    state.remember("t", null); // or "never invalidated", read before our MSET landed
    expect(state.mark("t")).toEqual({ at: 2000, soft: false });
    expect(state.verdict({ created: 1500, tags: ["t"] }).gone).toBe(true);
    state.remember("t", { at: 3000, soft: true });
    expect(state.mark("t")).toEqual({ at: 3000, soft: true });
  });
});

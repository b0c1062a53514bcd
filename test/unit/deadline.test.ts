import { describe, expect, it } from "vitest";
import { withDeadline } from "../../src/tiers/deadline.js";

describe("withDeadline", () => {
  it("settles like the work when it finishes in time, its signal never aborted", async () => {
    let seen: AbortSignal | undefined;
    const value = await withDeadline(1000, async (signal) => {
      seen = signal;
      return 42;
    });
    expect(value).toBe(42);
    await new Promise((r) => setTimeout(r, 5));
    expect(seen?.aborted).toBe(false);
    await expect(withDeadline(1000, () => Promise.reject(new Error("refused")))).rejects.toThrow("refused");
  });

  it("past the deadline: rejects with an AbortError and aborts the signal with a TimeoutError", async () => {
    let seen: AbortSignal | undefined;
    const started = performance.now();
    const outcome = await withDeadline(30, (signal) => {
      seen = signal;
      // Rejects late, after the deadline: dropped, not an unhandled rejection.
      return new Promise((_, reject) => setTimeout(() => reject(new Error("late")), 80));
    }).catch((error: unknown) => error as Error);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).name).toBe("AbortError");
    expect(seen?.aborted).toBe(true);
    expect((seen?.reason as DOMException | undefined)?.name).toBe("TimeoutError");
    await new Promise((r) => setTimeout(r, 100));
  });
});

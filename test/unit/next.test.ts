import { Buffer } from "node:buffer";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { withBuffers } from "../../src/next/bytes.js";
import { cacheKey } from "../../src/next/keys.js";
import { envOptions, readBuildId } from "../../src/next/shared.js";
import { expiration, type Marks, verdict } from "../../src/next/tags.js";

describe("tag verdicts (Next's semantics, without its reset of a lapsed soft invalidation)", () => {
  const now = 10_000;
  const marks = new Map<string, Marks>([
    ["hard", { hard: 5_000, softAt: 0, softUntil: 0 }],
    ["soft", { hard: 0, softAt: 6_000, softUntil: 20_000 }],
    ["lapsed", { hard: 0, softAt: 7_000, softUntil: 9_000 }],
  ]);
  it("hard: entries created at or before it are gone, later ones fresh", () => {
    expect(verdict(marks, ["hard"], 5_000, now)).toBe("expired");
    expect(verdict(marks, ["hard"], 5_001, now)).toBe("fresh");
  });
  it("soft: stale until its expiry, then gone; entries created after it are fresh", () => {
    expect(verdict(marks, ["soft"], 6_000, now)).toBe("stale");
    expect(verdict(marks, ["soft"], 6_000, 20_000)).toBe("expired");
    expect(verdict(marks, ["soft"], 6_001, 30_000)).toBe("fresh");
    expect(verdict(marks, ["lapsed"], 6_500, now)).toBe("expired");
    expect(verdict(marks, ["soft", "hard"], 4_000, now)).toBe("expired");
    expect(verdict(marks, ["unknown"], 1, now)).toBe("fresh");
  });
  it("getExpiration: the latest removal, counting a soft one only once it has lapsed", () => {
    expect(expiration(marks, ["hard", "soft"], now)).toBe(5_000);
    expect(expiration(marks, ["hard", "soft", "lapsed"], now)).toBe(7_000);
    expect(expiration(marks, ["unknown"], now)).toBe(0);
  });
});

describe("configuration from env", () => {
  it("during next build the Cache is L1-only: no connection attempt", () => {
    expect(envOptions({ NEXT_PHASE: "phase-production-build", REDIS_URL: "redis://x" }).redis).toBe(false);
    expect(envOptions({ REDIS_URL: "redis://x" }).redis).toBeUndefined();
  });
  it("versioned by REDIS_CACHE_VERSION / VERCEL_GIT_COMMIT_SHA (the Cache's own), else Next's build id", () => {
    const dist = mkdtempSync(join(tmpdir(), "tc-next-"));
    writeFileSync(join(dist, "BUILD_ID"), "aB3_x-9z\n");
    expect(envOptions({}, dist).version).toBe("aB3_x-9z");
    expect(envOptions({ VERCEL_GIT_COMMIT_SHA: "abcdef123456" }, dist).version).toBeUndefined();
    expect(envOptions({ REDIS_CACHE_VERSION: "7" }, dist).version).toBeUndefined();
    expect(envOptions({}, join(dist, "missing")).version).toBeUndefined();
    writeFileSync(join(dist, "BUILD_ID"), "a/b:c");
    expect(readBuildId(dist)).toBe("a_b_c");
  });
});

describe("bytes and keys", () => {
  it("withBuffers turns every byte array back into a Buffer, in new containers", () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const segments = new Map([["/a", new Uint8Array([4])]]);
    const value = { kind: "APP_PAGE", rscData: bytes, segmentData: segments, headers: { a: ["x"] }, n: null };
    const out = withBuffers(value);
    expect(Buffer.isBuffer(out.rscData)).toBe(true);
    expect((out.rscData as Buffer).toString("hex")).toBe("010203");
    expect(Buffer.isBuffer(out.segmentData.get("/a"))).toBe(true);
    expect(out.segmentData).not.toBe(segments);
    expect(out.headers).toEqual({ a: ["x"] });
    expect(out.headers).not.toBe(value.headers);
  });
  it("long keys are hashed synchronously, below the Cache's own (async) hashing threshold", () => {
    const long = cacheKey("next:u:", "k".repeat(5000));
    expect(typeof long).toBe("string");
    expect(long.length).toBeLessThan(256);
    expect(cacheKey("next:u:", "k".repeat(5000))).toBe(long);
    expect(cacheKey("next:u:", "short")).toBe("next:u:short");
  });
});

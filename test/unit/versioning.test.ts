import { describe, expect, it } from "vitest";
import { resolveVersion } from "../../src/config.js";
import { CacheError, createCache, KeySpace } from "../../src/index.js";
import { parseRegistry, planVersions, type VersionRecord } from "../../src/versioning.js";

const SHA = "0123456789abcdef0123456789abcdef01234567";

describe("version precedence", () => {
  it("REDIS_CACHE_VERSION beats VERCEL_GIT_COMMIT_SHA beats '1'; the SHA is cut to 8", () => {
    expect(resolveVersion({ REDIS_CACHE_VERSION: "v7", VERCEL_GIT_COMMIT_SHA: SHA })).toBe("v7");
    expect(resolveVersion({ VERCEL_GIT_COMMIT_SHA: SHA })).toBe("01234567");
    expect(resolveVersion({})).toBe("1");
  });

  it("the resolved version is the one in every versioned key, and only there", async () => {
    const both = createCache({
      redis: false,
      env: { REDIS_CACHE_VERSION: "v7", VERCEL_GIT_COMMIT_SHA: SHA },
    });
    const sha = createCache({ redis: false, env: { VERCEL_GIT_COMMIT_SHA: SHA } });
    const none = createCache({ redis: false, env: {} });
    expect([both.version, sha.version, none.version]).toEqual(["v7", "01234567", "1"]);
    expect(await sha.keys.entry("k")).toBe("tc:default:01234567:k:k");
    expect(await sha.keys.entry("k", false)).toBe("tc:default:~:k:k");
    expect(await sha.keys.counter("hits")).not.toContain("01234567");
    // An explicit option wins over the environment.
    expect(createCache({ redis: false, env: { REDIS_CACHE_VERSION: "v7" }, version: "v8" }).version).toBe(
      "v8",
    );
  });

  it("REDIS_ENV prefixes every key; a bad version or keepVersions is a CacheError at createCache", async () => {
    const preview = createCache({ redis: false, env: { REDIS_ENV: "preview", REDIS_CACHE_VERSION: "v1" } });
    expect(await preview.keys.entry("k")).toBe("preview:tc:default:v1:k:k");
    expect(() => createCache({ redis: false, env: { REDIS_CACHE_VERSION: "a:b" } })).toThrow(CacheError);
    expect(() => createCache({ redis: false, env: {}, keepVersions: -1 })).toThrow(/keepVersions/);
    expect(() => createCache({ redis: false, env: {}, keepVersions: 1.5 })).toThrow(/keepVersions/);
    expect(() => createCache({ redis: false, env: {}, keepVersions: 0 })).not.toThrow();
  });
});

const rec = (version: string, firstSeen: number, flushed = false): VersionRecord => ({
  version,
  firstSeen,
  flushed,
});

describe("planVersions", () => {
  // Names sort opposite to deploy order, so ordering by name instead of first-seen time fails.
  const registry = [rec("d", 100), rec("c", 200), rec("b", 300), rec("a", 400)];

  it("keeps the current version and the N before it; older ones are stale", () => {
    const plan = planVersions(registry, "a", 1);
    expect(plan.stale.map((r) => r.version)).toEqual(["d", "c"]);
    expect(plan).toMatchObject({ newest: true, previous: "b" });
    expect(planVersions(registry, "a", 0).stale.map((r) => r.version)).toEqual(["d", "c", "b"]);
    expect(planVersions(registry, "a", 5).stale).toEqual([]);
  });

  it("never counts a version first seen later than the current one as stale", () => {
    const plan = planVersions(registry, "c", 0);
    expect(plan.stale.map((r) => r.version)).toEqual(["d"]);
    expect(plan.newest).toBe(false);
    expect(planVersions(registry, "d", 0)).toMatchObject({ stale: [], newest: false });
  });

  it("orders by first-seen whatever the order of the registry reply; ties by name", () => {
    const shuffled = [rec("b", 300), rec("a", 400), rec("d", 100), rec("c", 200)];
    expect(planVersions(shuffled, "a", 1).stale.map((r) => r.version)).toEqual(["d", "c"]);
    const tie = [rec("y", 100), rec("x", 100)];
    expect(planVersions(tie, "y", 0).stale.map((r) => r.version)).toEqual(["x"]);
    expect(planVersions(tie, "x", 0)).toMatchObject({ stale: [], newest: false });
  });

  it("treats an unregistered current version as the newest (a dry run before registering)", () => {
    expect(planVersions(registry, "new", 1)).toMatchObject({ newest: true, previous: "a" });
    expect(planVersions(registry, "new", 1).stale.map((r) => r.version)).toEqual(["d", "c", "b"]);
  });
});

describe("parseRegistry", () => {
  const keys = new KeySpace(undefined, "app", "v2");

  it("reads this namespace's fields only, with their flushed marks, ignoring foreign or bad fields", () => {
    const reply = [
      "app:v1",
      "100:flushed",
      "app:v2",
      "200",
      "other:v9",
      "300",
      "app:bad",
      "soon",
      "appx:v3",
      "400",
    ];
    expect(parseRegistry(reply, keys)).toEqual([rec("v1", 100, true), rec("v2", 200)]);
  });

  it("fails clearly on an error slot or a reply that is not a list", () => {
    expect(() => parseRegistry(new Error("WRONGTYPE"), keys)).toThrow(/WRONGTYPE/);
    expect(() => parseRegistry("OK", keys)).toThrow(CacheError);
  });
});

import { describe, expect, it } from "vitest";
import { CacheError } from "../../src/errors.js";
import { escapeGlob, globToRegExp, KeySpace, MAX_PLAIN_KEY_LENGTH } from "../../src/keys.js";

describe("key layout", () => {
  it("puts the env prefix, library root, namespace, version and key marker in front of every key", () => {
    expect(new KeySpace("preview", "app", "abc123").entry("user:1")).toBe("preview:tc:app:abc123:k:user:1");
    expect(new KeySpace(undefined, "app", "1").entry("user:1")).toBe("tc:app:1:k:user:1");
  });

  it("keeps unversioned entries and counters outside the versioned space", () => {
    const keys = new KeySpace(undefined, "app", "v1");
    expect(keys.entry("feed", false)).toBe("tc:app:~:k:feed");
    expect(keys.counter("visits")).toBe("tc:app:~:c:k:visits");
  });

  it("hashes over-long keys to a fixed, distinct length", async () => {
    const keys = new KeySpace(undefined, "app", "1");
    const long = "k".repeat(10_240);
    const a = await keys.entry(long);
    const b = await keys.entry(`${long}x`);
    expect(a).toMatch(/^tc:app:1:h:[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(keys.entry("k".repeat(MAX_PLAIN_KEY_LENGTH))).toBe(
      `tc:app:1:k:${"k".repeat(MAX_PLAIN_KEY_LENGTH)}`,
    );
  });

  it("gives no user key the Redis key of a counter, a hashed key or any internal key", async () => {
    const keys = new KeySpace(undefined, "app", "v1");
    const long = "x".repeat(MAX_PLAIN_KEY_LENGTH + 1);
    const hashed = (await keys.entry(long)) as string;
    const hash = hashed.slice(hashed.lastIndexOf(":") + 1);
    const internal = [
      await keys.counter("visits"),
      await keys.counter(long),
      hashed,
      await keys.entry(long, false),
      keys.tag("user:1"),
      keys.epoch,
      keys.lease(keys.entry("page") as string),
      `${keys.namespaceRoot}~flush-lock`,
    ];
    // Every way a caller could try to spell one of them, in both spaces.
    const attempts = [
      "#count:visits",
      "c:k:visits",
      `#${hash}`,
      `h:${hash}`,
      hash,
      "~t:user:1",
      "~e",
      "~l:v1:k:page",
    ];
    const userKeys = await Promise.all(attempts.flatMap((key) => [keys.entry(key), keys.entry(key, false)]));
    for (const key of userKeys) expect(internal).not.toContain(key);
    // And no user glob reaches them: patterns only see plain user keys.
    for (const versioned of [true, false]) {
      const matcher = globToRegExp(keys.pattern("*", versioned));
      expect(internal.filter((key) => matcher.test(key))).toEqual([]);
      expect(matcher.test(keys.entry("#count:visits", versioned) as string)).toBe(true);
    }
  });

  it("refuses keys that are not non-empty, well-formed strings", () => {
    const keys = new KeySpace(undefined, "app", "1");
    expect(() => keys.entry("")).toThrow(CacheError);
    expect(() => keys.entry(undefined as never)).toThrow(/non-empty string, got undefined/);
    for (const bad of ["s:\uD800", "s:\uDFFF", "\uDC00a", "a\uD83D"]) {
      expect(() => keys.entry(bad)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
      expect(() => keys.counter(bad)).toThrow(/lone UTF-16 surrogate/);
      expect(() => keys.pattern(`${bad}*`)).toThrow(/lone UTF-16 surrogate/);
    }
    expect(keys.entry("emoji:\uD83D\uDE80")).toBe("tc:app:1:k:emoji:🚀");
  });

  it("escapes glob metacharacters of user input", () => {
    expect(escapeGlob("a*b?c[d]e\\f")).toBe("a\\*b\\?c\\[d\\]e\\\\f");
    expect(new KeySpace("p", "n", "v").pattern(escapeGlob("user:*"))).toBe("p:tc:n:v:k:user:\\*");
  });
});

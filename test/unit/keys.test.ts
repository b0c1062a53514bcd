import { describe, expect, it } from "vitest";
import { escapeGlob, KeySpace, MAX_PLAIN_KEY_LENGTH } from "../../src/keys.js";

describe("key layout", () => {
  it("puts the env prefix, library root, namespace and version in front of every key", () => {
    expect(new KeySpace("preview", "app", "abc123").entry("user:1")).toBe("preview:tc:app:abc123:user:1");
    expect(new KeySpace(undefined, "app", "1").entry("user:1")).toBe("tc:app:1:user:1");
  });

  it("keeps unversioned entries and counters outside the versioned space", () => {
    const keys = new KeySpace(undefined, "app", "v1");
    expect(keys.entry("feed", false)).toBe("tc:app:~:feed");
    expect(keys.counter("visits")).toBe("tc:app:~:#count:visits");
  });

  it("hashes over-long keys to a fixed, distinct length", async () => {
    const keys = new KeySpace(undefined, "app", "1");
    const long = "k".repeat(10_240);
    const a = await keys.entry(long);
    const b = await keys.entry(`${long}x`);
    expect(a).toMatch(/^tc:app:1:#[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(keys.entry("k".repeat(MAX_PLAIN_KEY_LENGTH))).toBe(`tc:app:1:${"k".repeat(MAX_PLAIN_KEY_LENGTH)}`);
  });

  it("refuses keys that are not non-empty strings", () => {
    const keys = new KeySpace(undefined, "app", "1");
    expect(() => keys.entry("")).toThrow(TypeError);
    expect(() => keys.entry(undefined as never)).toThrow(/non-empty string/);
  });

  it("escapes glob metacharacters of user input", () => {
    expect(escapeGlob("a*b?c[d]e\\f")).toBe("a\\*b\\?c\\[d\\]e\\\\f");
    expect(new KeySpace("p", "n", "v").pattern(escapeGlob("user:*"))).toBe("p:tc:n:v:user:\\*");
  });
});

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { keyId } from "../../src/encryption.js";
import { CacheError, createCache } from "../../src/index.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const newKey = () => randomBytes(32).toString("base64");
const SECRET = "ultra-secret-value-4711";

describe.each(["node-redis", "upstash"] as const)("encryption at rest on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  const raw = () => backend.raw as NonNullable<Backend["raw"]>;

  it("Redis holds no value bytes; times and tags stay readable; a second instance with the key reads it", async () => {
    const key = newKey();
    const writer = cacheOn(backend, { timeoutMs: 5000, encryption: { key } });
    await writer.set("user:1", { name: SECRET, at: new Date(5) }, { tags: ["users"] });
    const full = await writer.keys.entry("user:1");
    const stored = (await raw().get(full)) as string;
    expect(stored).not.toContain(SECRET);
    expect(stored).not.toContain("name");
    expect(stored).toMatch(/^\[2,\d+,\d+,\d+,\["users"\],"[0-9a-f]{8}:j:[A-Za-z0-9+/=]+"\]$/);
    expect(stored).toContain(`"${await keyId(Buffer.from(key, "base64"))}:j:`);
    const reader = cacheOn(backend, { timeoutMs: 5000, prefix: writer.keys.prefix, encryption: { key } });
    const back = await reader.get<{ name: string; at: Date }>("user:1");
    expect(back).toEqual({ name: SECRET, at: new Date(5) });
    expect(back?.at).toBeInstanceOf(Date);
    expect(reader.stats().hits.l2).toBe(1);
    await Promise.all([writer.close(), reader.close()]);
  });

  it("getOrSet's conditional write-back and a lease holder's write store sealed entries too", async () => {
    const key = newKey();
    const loader = cacheOn(backend, { timeoutMs: 5000, encryption: { key } });
    // Without waitUntil the write-back is awaited by getOrSet itself.
    expect(await loader.getOrSet("loaded", () => ({ secret: SECRET }))).toEqual({ secret: SECRET });
    expect(await loader.getOrSet("leased", () => SECRET, { lease: true })).toBe(SECRET);
    const reader = cacheOn(backend, { timeoutMs: 5000, prefix: loader.keys.prefix, encryption: { key } });
    for (const k of ["loaded", "leased"]) {
      const stored = (await raw().get(await loader.keys.entry(k))) as string;
      expect(stored).toMatch(/^\[2,/);
      expect(stored).not.toContain(SECRET);
    }
    expect(await reader.get("loaded")).toEqual({ secret: SECRET });
    expect(await reader.get("leased")).toBe(SECRET);
    await Promise.all([loader.close(), reader.close()]);
  });

  it("a fresh IV per write: the same value twice is two different ciphertexts", async () => {
    const cache = cacheOn(backend, { timeoutMs: 5000, encryption: { key: newKey() } });
    const full = (await cache.keys.entry("same")) as string;
    await cache.set("same", "v", { ttl: 60_000 });
    const first = await raw().get(full);
    await cache.set("same", "v", { ttl: 60_000 });
    expect(await raw().get(full)).not.toBe(first);
    await cache.close();
  });

  it("without the key or with a wrong one: a miss and one bounded warning, the entry left for others", async () => {
    const writer = cacheOn(backend, { timeoutMs: 5000, encryption: { key: newKey() } });
    for (let i = 0; i < 5; i++) await writer.set(`k${i}`, SECRET);
    const prefix = writer.keys.prefix;
    const warn = vi.fn();
    const plain = cacheOn(backend, { timeoutMs: 5000, prefix, logger: { warn } });
    const wrong = cacheOn(backend, {
      timeoutMs: 5000,
      prefix,
      logger: { warn },
      encryption: { key: newKey() },
    });
    for (let i = 0; i < 5; i++) {
      expect(await plain.get(`k${i}`)).toBeUndefined();
      expect(await wrong.get(`k${i}`)).toBeUndefined();
    }
    expect(await wrong.getOrSet("k0", () => "reloaded")).toBe("reloaded");
    // One line per instance per minute, whatever the number of reads.
    const lines = warn.mock.calls.map(([line]) => String(line));
    expect(lines.filter((l) => l.includes("encryption is not configured here"))).toHaveLength(1);
    expect(lines.filter((l) => l.includes("unknown key"))).toHaveLength(1);
    expect(lines.join("\n")).not.toContain(SECRET);
    expect(await raw().exists(await writer.keys.entry("k1"))).toBe(1);
    expect(plain.stats().misses).toBe(5);
    await Promise.all([writer.close(), plain.close(), wrong.close()]);
  });

  it("rotation: previous keys read old entries, new entries are written with the new key only", async () => {
    const oldKey = newKey();
    const currentKey = newKey();
    const before = cacheOn(backend, { timeoutMs: 5000, encryption: { key: oldKey } });
    const prefix = before.keys.prefix;
    await before.set("old", "written before rotation");
    const after = cacheOn(backend, {
      timeoutMs: 5000,
      prefix,
      encryption: { key: currentKey, previousKeys: [oldKey] },
    });
    expect(await after.get("old")).toBe("written before rotation");
    await after.set("new", "written after rotation");
    const stored = (await raw().get(await after.keys.entry("new"))) as string;
    expect(stored).toContain(`"${await keyId(Buffer.from(currentKey, "base64"))}:`);
    const onlyOld = cacheOn(backend, { timeoutMs: 5000, prefix, encryption: { key: oldKey } });
    expect(await onlyOld.get("new")).toBeUndefined();
    // The same through the environment, as a deployment would rotate.
    const fromEnv = cacheOn(backend, {
      timeoutMs: 5000,
      prefix,
      env: { CACHE_ENCRYPTION_KEY: currentKey, CACHE_ENCRYPTION_KEYS_PREVIOUS: `${newKey()}, ${oldKey}` },
    });
    expect(await fromEnv.get("old")).toBe("written before rotation");
    expect(await fromEnv.get("new")).toBe("written after rotation");
    await Promise.all([before.close(), after.close(), onlyOld.close(), fromEnv.close()]);
  });

  it("a tampered ciphertext, a ciphertext moved to another key, or edited times are misses", async () => {
    const key = newKey();
    const writer = cacheOn(backend, { timeoutMs: 5000, encryption: { key } });
    await writer.set("a", SECRET);
    await writer.set("b", "other");
    const [a, b, c] = (await Promise.all(["a", "b", "c"].map((k) => writer.keys.entry(k)))) as string[];
    const stored = (await raw().get(a as string)) as string;
    const reader = () =>
      cacheOn(backend, { timeoutMs: 5000, prefix: writer.keys.prefix, encryption: { key } });
    // One flipped character of the ciphertext.
    const at = stored.length - 10;
    const flipped = stored.slice(0, at) + (stored[at] === "A" ? "B" : "A") + stored.slice(at + 1);
    await raw().set(b as string, stored);
    await raw().set(
      c as string,
      stored.replace(/^\[2,(\d+),(\d+),/, (_, created, fresh) => `[2,${created},${Number(fresh) + 1},`),
    );
    await raw().set(a as string, flipped);
    const r = reader();
    expect(await r.get("a")).toBeUndefined();
    expect(await r.get("b")).toBeUndefined();
    expect(await r.get("c")).toBeUndefined();
    expect(r.stats().misses).toBe(3);
    await Promise.all([writer.close(), r.close()]);
  });

  it("compresses before encrypting: a large value is stored small, and reads back", async () => {
    const key = newKey();
    const cache = cacheOn(backend, { timeoutMs: 5000, encryption: { key } });
    const big = { rows: Array.from({ length: 5000 }, (_, i) => ({ i, label: `${SECRET}-${i % 10}` })) };
    await cache.set("big", big);
    const stored = (await raw().get(await cache.keys.entry("big"))) as string;
    expect(JSON.stringify(big).length).toBeGreaterThan(150_000);
    expect(stored.length).toBeLessThan(40_000);
    expect(stored).toMatch(/"[0-9a-f]{8}:z:/);
    expect(stored).not.toContain(SECRET);
    const reader = cacheOn(backend, { timeoutMs: 5000, prefix: cache.keys.prefix, encryption: { key } });
    expect(await reader.get("big")).toEqual(big);
    await Promise.all([cache.close(), reader.close()]);
  });

  it("with encryption on, a plain entry is not served (it could have been planted)", async () => {
    const plain = cacheOn(backend, { timeoutMs: 5000 });
    await plain.set("planted", "forged");
    const sealed = cacheOn(backend, {
      timeoutMs: 5000,
      prefix: plain.keys.prefix,
      encryption: { key: newKey() },
    });
    expect(await sealed.get("planted")).toBeUndefined();
    expect(await sealed.getOrSet("planted", () => "loaded")).toBe("loaded");
    await Promise.all([plain.close(), sealed.close()]);
  });

  it("L1 holds plaintext: an L1 hit is the value itself, no decryption", async () => {
    const cache = cacheOn(backend, { timeoutMs: 5000, encryption: { key: newKey() } });
    const value = { name: SECRET };
    await cache.set("l1", value);
    expect(await cache.get("l1")).toBe(value);
    expect(cache.stats().hits.l1).toBe(1);
    await cache.close();
  });
});

describe("encryption configuration", () => {
  it("a key that is not 32 bytes of base64 is a CONFIG error that does not echo the key", () => {
    for (const key of ["short", randomBytes(16).toString("base64"), `${randomBytes(32).toString("hex")}`]) {
      const error = (() => {
        try {
          createCache({ redis: false, env: {}, encryption: { key } });
        } catch (thrown) {
          return thrown as CacheError;
        }
      })();
      expect(error).toBeInstanceOf(CacheError);
      expect(error?.code).toBe("CONFIG");
      expect(error?.message).toContain("encryption.key must be 32 random bytes");
      expect(error?.message).not.toContain(key);
    }
    const bad = "x".repeat(20);
    expect(() => createCache({ redis: false, env: { CACHE_ENCRYPTION_KEY: bad } })).toThrow(
      /CACHE_ENCRYPTION_KEY must be 32 random bytes/,
    );
    expect(() =>
      createCache({
        redis: false,
        env: { CACHE_ENCRYPTION_KEY: newKey(), CACHE_ENCRYPTION_KEYS_PREVIOUS: bad },
      }),
    ).toThrow(/CACHE_ENCRYPTION_KEYS_PREVIOUS must be a comma-separated list of keys/);
    // Named with the other bad variables in one CONFIG error, as every variable is; never echoed.
    const both = (() => {
      try {
        createCache({ redis: false, env: { CACHE_ENCRYPTION_KEY: bad, REDIS_PORT: "99999" } });
      } catch (thrown) {
        return (thrown as Error).message;
      }
    })();
    expect(both).toMatch(
      /REDIS_PORT .*; CACHE_ENCRYPTION_KEY must be 32 random bytes|CACHE_ENCRYPTION_KEY must be 32 random bytes.*; REDIS_PORT/,
    );
    expect(both).not.toContain(bad);
    expect(() => createCache({ redis: false, env: { CACHE_ENCRYPTION_KEYS_PREVIOUS: newKey() } })).toThrow(
      /without CACHE_ENCRYPTION_KEY/,
    );
  });

  it("accepts raw bytes and URL-safe base64", () => {
    const bytes = randomBytes(32);
    expect(() =>
      createCache({ redis: false, env: {}, encryption: { key: new Uint8Array(bytes) } }),
    ).not.toThrow();
    expect(() =>
      createCache({ redis: false, env: {}, encryption: { key: bytes.toString("base64url") } }),
    ).not.toThrow();
  });
});

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Cache } from "../../src/index.js";
import { MAX_PLAIN_KEY_LENGTH } from "../../src/keys.js";
import type { CacheOptions } from "../../src/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

/** Issue 9, items 7–10: bad input is a clear error at the call and never corrupts what is cached. */

const invalid = (message: RegExp | string) =>
  expect.objectContaining({
    name: "CacheError",
    code: "INVALID_ARGUMENT",
    message: typeof message === "string" ? expect.stringContaining(message) : expect.stringMatching(message),
  });

const serialize = (message: RegExp) =>
  expect.objectContaining({ name: "CacheError", code: "SERIALIZE", message: expect.stringMatching(message) });

describe.each(["l1", "node-redis", "upstash"] as const)("input hardening on %s", (backendName) => {
  let backend: Backend;
  const opened: Cache[] = [];
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await Promise.all(opened.map((cache) => cache.close()));
    await backend.close();
  });

  /**
   * A writer and a second instance sharing its Redis (with its own, empty L1). A generous deadline:
   * nothing here is about timeouts, and a read that timed out on a loaded machine would be a miss.
   */
  function pair(options: CacheOptions = {}): { writer: Cache; reader: Cache } {
    const writer = cacheOn(backend, { timeoutMs: 5000, ...options });
    const reader = cacheOn(backend, { timeoutMs: 5000, ...options, prefix: writer.keys.prefix });
    opened.push(writer, reader);
    return { writer, reader };
  }

  /** Redis keys of this cache's environment, or [] on L1 only. */
  async function redisKeys(cache: Cache): Promise<string[]> {
    return backend.raw ? (await backend.raw.keys(`${cache.keys.root}*`)).sort() : [];
  }

  describe("7. tags are a list of non-empty strings", () => {
    it("set with a string for tags is refused, writes nothing, and invalidation keeps working", async () => {
      const { writer, reader } = pair();
      await writer.set("tagged", "v", { tags: ["user:1"] });
      await expect(writer.set("k", "v", { tags: "user:1" as never })).rejects.toThrow(
        invalid('tags must be an array of strings, got "user:1"'),
      );
      expect(await writer.get("k")).toBeUndefined();
      expect(await reader.get("k")).toBeUndefined();
      // Today the string sits in L1 and every later invalidateTags throws `entry.tags.some is not a function`.
      await expect(writer.invalidateTags(["user:1"])).resolves.toEqual({ deferred: false });
      expect(await writer.get("tagged")).toBeUndefined();
      expect(await reader.get("tagged")).toBeUndefined();
    });

    it.each([
      ["a string", "abc"],
      ["an empty tag", [""]],
      ["a number", [7]],
      ["a lone surrogate", ["t:\uD800"]],
    ])("set, setMany, getOrSet and wrap refuse %s before writing or loading", async (_name, tags) => {
      const { writer, reader } = pair();
      await writer.set("old", "kept");
      await expect(writer.set("old", "new", { tags: tags as never })).rejects.toThrow(invalid("tags"));
      await expect(
        writer.setMany([
          { key: "m1", value: 1 },
          { key: "m2", value: 2, tags: tags as never },
        ]),
      ).rejects.toThrow(invalid("tags"));
      const loader = vi.fn(async () => "loaded");
      await expect(writer.getOrSet("g", loader, { tags: tags as never })).rejects.toThrow(invalid("tags"));
      expect(() => writer.wrap(async () => 1, { key: "w", tags: tags as never })).toThrow(
        invalid("wrap: tags"),
      );
      const fn = vi.fn(async (id: number) => id);
      const wrapped = writer.wrap(fn, { key: "w:{0}", tags: () => tags as never });
      await expect(wrapped(1)).rejects.toThrow(invalid("wrap: tags"));
      expect(loader).not.toHaveBeenCalled();
      expect(fn).not.toHaveBeenCalled();
      for (const cache of [writer, reader]) {
        expect(await cache.getMany(["m1", "m2", "g", "w:1"])).toEqual([
          undefined,
          undefined,
          undefined,
          undefined,
        ]);
        expect(await cache.get("old")).toBe(backendName === "l1" && cache === reader ? undefined : "kept");
      }
      if (backend.raw) {
        const versioned = `${writer.keys.namespaceRoot}${writer.version}:`;
        const keys = await redisKeys(writer);
        expect(keys.filter((key) => key.startsWith(versioned))).toEqual([await writer.keys.entry("old")]);
      }
    });

    it('invalidateTags("abc") is refused instead of invalidating a, b and c', async () => {
      const { writer } = pair();
      await writer.set("a", 1, { tags: ["a"] });
      await expect(writer.invalidateTags("abc" as never)).rejects.toThrow(invalid('got "abc"'));
      await expect(writer.invalidateTags([1] as never)).rejects.toThrow(invalid("got 1"));
      expect(await writer.get("a")).toBe(1);
      expect((await redisKeys(writer)).filter((key) => key.includes(":~t:"))).toEqual([]);
    });

    it("route refuses bad tags, static at definition, computed before its handler runs", async () => {
      const { writer } = pair();
      const handler = vi.fn(async () => new Response("ok"));
      expect(() => writer.route(handler, { tags: "page" as never })).toThrow(invalid("route: tags"));
      const computed = writer.route(handler, { tags: () => "page" as never });
      await expect(computed(new Request("https://app.test/a"))).rejects.toThrow(invalid("route: tags"));
      await expect(computed(new Request("https://app.test/a", { method: "POST" }))).rejects.toThrow(
        invalid("route: tags"),
      );
      expect(handler).not.toHaveBeenCalled();
      // A bad `invalidates.tags` is thrown too: a static one at definition, a computed one after the
      // valid invalidations ran.
      expect(() => writer.route(handler, { invalidates: { tags: "x" as never } })).toThrow(
        invalid("invalidates.tags"),
      );
      await writer.set("other", 1);
      const post = writer.route(handler, { invalidates: () => ({ keys: ["other"], tags: "x" as never }) });
      await expect(post(new Request("https://app.test/b", { method: "POST" }))).rejects.toThrow(
        invalid("invalidates.tags"),
      );
      expect(await writer.get("other")).toBeUndefined();
    });
  });

  it("invalidating refuses a tags list that is not an array, and route a key with a lone surrogate", async () => {
    const { writer } = pair();
    await writer.set("a", 1, { tags: ["a"] });
    expect(() => writer.invalidating(async () => 1, { tags: "abc" as never })).toThrow(
      invalid("expected an array"),
    );
    const update = writer.invalidating(async () => "done", { tags: () => "abc" as never });
    await expect(update()).rejects.toThrow(invalid('expected an array, got "abc"'));
    expect(await writer.get("a")).toBe(1);
    const handler = vi.fn(async () => new Response("ok"));
    const keyed = writer.route(handler, { key: () => "page:\uD800" });
    await expect(keyed(new Request("https://app.test/p"))).rejects.toThrow(invalid("lone UTF-16 surrogate"));
    await expect(keyed(new Request("https://app.test/p", { method: "HEAD" }))).rejects.toThrow(
      invalid("lone UTF-16 surrogate"),
    );
    expect(handler).not.toHaveBeenCalled();
  });

  describe("8. user keys never collide with internal keys or each other", () => {
    it("the unversioned key `#count:visits` is not counter `visits`", async () => {
      const { writer, reader } = pair();
      await writer.increment("visits");
      await writer.increment("visits");
      // Today this reads the counter, deletes it as "corrupt", and the next increment answers 1.
      expect(await reader.get("#count:visits", { versioned: false })).toBeUndefined();
      await reader.set("#count:visits", "mine", { versioned: false });
      expect(await reader.get("#count:visits", { versioned: false })).toBe("mine");
      expect(await reader.delete("#count:visits")).toBeGreaterThanOrEqual(1);
      expect(await writer.increment("visits")).toBe(3);
    });

    it("no plain key reaches a hashed key", async () => {
      const { writer, reader } = pair();
      const long = `long:${"x".repeat(MAX_PLAIN_KEY_LENGTH)}`;
      await writer.set(long, "long value");
      const full = await writer.keys.entry(long);
      const hash = full.slice(full.lastIndexOf(":") + 1);
      for (const spelling of [`#${hash}`, hash, `h:${hash}`]) {
        expect(await reader.get(spelling)).toBeUndefined();
        await reader.set(spelling, "plain");
      }
      expect(await reader.get(long)).toBe(backendName === "l1" ? undefined : "long value");
      expect(await writer.get(long)).toBe("long value");
    });

    it("deletePattern reaches plain user keys only: never hashed keys, counters or bookkeeping", async () => {
      const { writer, reader } = pair();
      const long = `p:${"y".repeat(MAX_PLAIN_KEY_LENGTH)}`;
      await writer.set(long, 1);
      await writer.set("p:plain", 2);
      await writer.set("u:plain", 3, { versioned: false });
      await writer.increment("hits", 5);
      await writer.invalidateTags(["some-tag"]);
      expect(await writer.deletePattern("*")).toBe(1);
      expect(await writer.deletePattern("*", { versioned: false })).toBe(1);
      expect(await writer.get("p:plain")).toBeUndefined();
      expect(await writer.get("u:plain", { versioned: false })).toBeUndefined();
      expect(await writer.get(long)).toBe(1);
      expect(await writer.increment("hits")).toBe(6);
      if (backend.raw) {
        expect(await reader.get(long)).toBe(1);
        const keys = await redisKeys(writer);
        expect(keys).toContain(await writer.keys.counter("hits"));
        expect(keys).toContain(writer.keys.tag("some-tag"));
        expect(keys).toContain(writer.keys.epoch);
      }
    });

    it("keys with lone surrogates are refused, so `s:\\uD800` is never served `s:\\uDFFF`'s value", async () => {
      const { writer, reader } = pair();
      for (const key of ["s:\uD800", "s:\uDFFF"]) {
        await expect(writer.set(key, key)).rejects.toThrow(invalid("lone UTF-16 surrogate"));
        await expect(reader.get(key)).rejects.toThrow(invalid("lone UTF-16 surrogate"));
        await expect(reader.getOrSet(key, () => 1)).rejects.toThrow(invalid("lone UTF-16 surrogate"));
        await expect(reader.delete(key)).rejects.toThrow(invalid("lone UTF-16 surrogate"));
        await expect(reader.increment(key)).rejects.toThrow(invalid("lone UTF-16 surrogate"));
      }
      await expect(writer.set("ok", 1, { tags: ["t:\uDFFF"] })).rejects.toThrow(
        invalid("lone UTF-16 surrogate"),
      );
      expect((await redisKeys(writer)).filter((key) => key.includes("\uFFFD"))).toEqual([]);
      // Well-formed astral characters are fine.
      await writer.set("s:🚀", "rocket");
      expect(await reader.get("s:🚀")).toBe(backendName === "l1" ? undefined : "rocket");
    });

    it("flush scopes still find the new layout: a version flush keeps counters and unversioned entries", async () => {
      const { writer } = pair({ version: "v1" });
      await writer.set("page", 1);
      await writer.set("feed", 2, { versioned: false });
      await writer.increment("n");
      const result = await writer.flush({ scope: "version" });
      expect(result.removed).toBe(1);
      expect(await writer.get("page")).toBeUndefined();
      expect(await writer.get("feed", { versioned: false })).toBe(2);
      expect(await writer.increment("n")).toBe(2);
    });
  });

  describe("9. TTLs Redis cannot store are an error at the call", () => {
    const bad: [string, unknown, RegExp][] = [
      ["1e20", 1e20, /invalid ttl 100000000000000000000: at most "3650d"/],
      ["2 ** 63", 2 ** 63, /invalid ttl 9223372036854776000: at most "3650d"/],
      ["negative", -5, /invalid ttl -5/],
      ["NaN", Number.NaN, /invalid ttl NaN/],
      ["Infinity", Number.POSITIVE_INFINITY, /invalid ttl Infinity/],
      ["3651 days", "3651d", /invalid ttl "3651d"/],
    ];

    it.each(bad)(
      "set with ttl %s is refused; L1 and Redis keep the old value",
      async (_name, ttl, message) => {
        for (const failSilently of [true, false]) {
          const { writer, reader } = pair({ failSilently });
          await writer.set("k", "old");
          await expect(writer.set("k", "new", { ttl: ttl as never })).rejects.toThrow(invalid(message));
          expect(await writer.get("k")).toBe("old");
          expect(await reader.get("k")).toBe(backendName === "l1" ? undefined : "old");
        }
      },
    );

    it("every duration of a write is checked: stale windows, getOrSet, setTtl, expire, setMany", async () => {
      const { writer } = pair({ failSilently: false });
      await writer.set("k", "old", { ttl: "1m" });
      await expect(writer.set("k", "new", { staleWhileRevalidate: 1e20 })).rejects.toThrow(
        invalid("invalid staleWhileRevalidate 100000000000000000000"),
      );
      await expect(writer.set("k", "new", { staleIfError: "99999d" })).rejects.toThrow(
        invalid('invalid staleIfError "99999d"'),
      );
      await expect(writer.setMany([{ key: "k", value: "new", ttl: 2 ** 63 }])).rejects.toThrow(
        invalid("invalid ttl"),
      );
      const loader = vi.fn(async () => "loaded");
      await expect(writer.getOrSet("g", loader, { ttl: 1e20 })).rejects.toThrow(invalid("invalid ttl"));
      expect(loader).not.toHaveBeenCalled();
      await expect(
        writer.getOrSet("g", (context) => {
          context.setTtl(Number.NaN);
          return "loaded";
        }),
      ).rejects.toThrow(invalid("invalid ttl NaN"));
      expect(await writer.get("g")).toBeUndefined();
      const before = await writer.ttl("k");
      await expect(writer.expire("k", 1e20)).rejects.toThrow(invalid("invalid ttl 100000000000000000000"));
      expect(await writer.ttl("k")).toBe(before);
      expect(await writer.get("k")).toBe("old");
    });

    it("createCache and route refuse them too", () => {
      expect(() => cacheOn(backend, { ttl: 1e20 })).toThrow(invalid("invalid ttl"));
      expect(() => cacheOn(backend, { staleWhileRevalidate: Number.POSITIVE_INFINITY })).toThrow(
        invalid("invalid staleWhileRevalidate Infinity"),
      );
      expect(() => cacheOn(backend, { l1: { ttl: 2 ** 63 } })).toThrow(invalid("invalid l1.ttl"));
      const cache = cacheOn(backend);
      opened.push(cache);
      expect(() => cache.route(async () => new Response("x"), { ttl: 1e20 })).toThrow(invalid("invalid ttl"));
    });

    it("Redis itself refuses a PX whose expiry overflows 64-bit ms; the cap is far below", async () => {
      if (!backend.raw) return;
      const px = async (ms: string) =>
        backend.raw!.sendCommand(["SET", "tc-probe", "v", "PX", ms]).then(
          () => "OK",
          (error: Error) => error.message,
        );
      expect(await px(String(2 * 3650 * 86_400_000 + 3650 * 86_400_000))).toBe("OK");
      expect(await px("9223372036854775807")).toMatch(/invalid expire time/);
      expect(await px("9223372036854776000")).toMatch(/not an integer or out of range/);
      await backend.raw.del("tc-probe");
    });

    it("the longest accepted durations are stored by Redis", async () => {
      const { writer, reader } = pair({ failSilently: false });
      await writer.set("max", "v", { ttl: "3650d", staleWhileRevalidate: "3650d", staleIfError: "3650d" });
      expect(await reader.get("max")).toBe(backendName === "l1" ? undefined : "v");
      if (backend.raw) {
        const pttl = await backend.raw.pTTL(await writer.keys.entry("max"));
        expect(pttl).toBeGreaterThan(2 * 3650 * 86_400_000 - 60_000);
      }
    });
  });

  describe("10. L1 and Redis return the same thing for every value, or it is refused at set", () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
      norm(): number {
        return Math.hypot(this.x, this.y);
      }
    }
    class Money {
      constructor(readonly cents: number) {}
      toJSON(): string {
        return `${this.cents / 100} EUR`;
      }
    }
    const stored: [string, unknown, unknown][] = [
      ["-0", -0, -0],
      ["-0 in an object", { n: -0, m: [0, -0] }, { n: -0, m: [0, -0] }],
      ["a class instance", new Point(3, 4), { x: 3, y: 4 }],
      ["an object with toJSON", new Money(1250), "12.5 EUR"],
      ["toJSON inside", { price: new Money(5), at: new Date(7) }, { price: "0.05 EUR", at: new Date(7) }],
      ["an undefined member", { a: 1, b: undefined }, { a: 1 }],
      ["a symbol-keyed property", { a: 1, [Symbol("meta")]: 2 }, { a: 1 }],
      ["a Buffer", Buffer.from([1, 2]), new Uint8Array([1, 2])],
      ["NaN and Infinity", [Number.NaN, Number.NEGATIVE_INFINITY], [Number.NaN, Number.NEGATIVE_INFINITY]],
      [
        "Map, Set, bigint",
        new Map<unknown, unknown>([["s", new Set([1n])]]),
        new Map([["s", new Set([1n])]]),
      ],
      ["a tag-like object", { $n: "-0" }, { $n: "-0" }],
    ];

    it.each(stored)("%s reads back the same from L1 and from Redis", async (_name, value, expected) => {
      const { writer, reader } = pair();
      await writer.set("v", value);
      const fromL1 = await writer.get("v");
      expect(fromL1).toStrictEqual(expected);
      if (Object.is(expected, -0)) expect(Object.is(fromL1, -0)).toBe(true);
      if (backendName !== "l1") {
        const fromRedis = await reader.get("v");
        expect(fromRedis).toStrictEqual(fromL1);
        if (Object.is(expected, -0)) expect(Object.is(fromRedis, -0)).toBe(true);
      }
    });

    const refused: [string, unknown, RegExp][] = [
      ["a top-level function", () => 1, /a function cannot be cached/],
      ["a top-level symbol", Symbol("s"), /a symbol cannot be cached/],
      ["a function property", { id: 1, load: () => 1 }, /a function cannot be cached \(at "load"\)/],
      ["a symbol property", { id: 1, kind: Symbol("k") }, /a symbol cannot be cached \(at "kind"\)/],
      ["a function in an array", [1, () => 2], /a function cannot be cached/],
    ];

    it.each(refused)(
      "%s is refused at set with SERIALIZE; nothing is written",
      async (_name, value, message) => {
        const { writer, reader } = pair();
        await writer.set("v", "old");
        await expect(writer.set("v", value)).rejects.toThrow(serialize(message));
        expect(await writer.get("v")).toBe("old");
        expect(await reader.get("v")).toBe(backendName === "l1" ? undefined : "old");
      },
    );

    it("getOrSet hands its loader's own value to the caller, and the Redis form to every later read", async () => {
      const { writer, reader } = pair();
      const loaded = await writer.getOrSet("p", () => new Point(1, 2));
      expect(loaded).toBeInstanceOf(Point);
      expect(await writer.get("p")).toStrictEqual({ x: 1, y: 2 });
      if (backendName !== "l1") expect(await reader.get("p")).toStrictEqual({ x: 1, y: 2 });
    });
  });
});

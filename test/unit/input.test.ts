import { describe, expect, it } from "vitest";
import { decodeValue, encode } from "../../src/codec.js";
import { MAX_DURATION_MS, toMs } from "../../src/duration.js";
import { carriesTag, createEntry, type Entry, parseEntry } from "../../src/entry.js";
import { CacheError } from "../../src/errors.js";
import { checkTags, hasLoneSurrogate, isWellFormed, MAX_TAG_LENGTH } from "../../src/input.js";

const invalid = (message: RegExp) =>
  expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringMatching(message) });

describe("tags", () => {
  it("accepts undefined and arrays of non-empty strings", () => {
    expect(checkTags(undefined)).toEqual([]);
    expect(checkTags(["user:1", "🚀"])).toEqual(["user:1", "🚀"]);
  });

  it.each([
    ["a string (never spread into its characters)", "abc", /must be an array of strings, got "abc"/],
    ["a Set", new Set(["a"]), /must be an array of strings, got an object/],
    ["an empty tag", ["a", ""], /non-empty strings, got ""/],
    ["a number", [1], /non-empty strings, got 1/],
    ["null", [null], /non-empty strings, got null/],
    ["a lone surrogate", ["t:\uD800"], /lone UTF-16 surrogate/],
    ["an over-long tag", ["x".repeat(MAX_TAG_LENGTH + 1)], /over 16384/],
  ])("refuses %s", (_name, tags, message) => {
    expect(() => checkTags(tags)).toThrow(invalid(message));
    expect(() => checkTags(tags)).toThrow(CacheError);
  });
});

describe("well-formed Unicode", () => {
  it.each([
    ["plain", "user:1", true],
    ["a pair", "\uD83D\uDE80", true],
    ["a lone high surrogate", "s:\uD800", false],
    ["a lone low surrogate", "s:\uDFFF", false],
    ["a reversed pair", "\uDE80\uD83D", false],
    ["a high surrogate at the end", "a\uD83D", false],
  ])("%s", (_name, text, wellFormed) => {
    expect(isWellFormed(text)).toBe(wellFormed);
    // The fallback for runtimes without String.prototype.isWellFormed agrees.
    expect(hasLoneSurrogate(text)).toBe(!wellFormed);
  });
});

describe("durations", () => {
  it("accepts 0 up to 3650 days", () => {
    expect(toMs(0)).toBe(0);
    expect(toMs("3650d")).toBe(MAX_DURATION_MS);
    expect(toMs(MAX_DURATION_MS)).toBe(MAX_DURATION_MS);
  });

  it.each([
    [1e20, /invalid ttl 100000000000000000000: at most "3650d"/],
    [2 ** 63, /invalid ttl 9223372036854776000: at most/],
    ["3651d", /invalid ttl "3651d": at most/],
    [Number.POSITIVE_INFINITY, /invalid ttl Infinity/],
    [Number.NaN, /invalid ttl NaN: use milliseconds/],
    [-1, /invalid ttl -1: use milliseconds/],
    ["5 minutes", /invalid ttl "5 minutes"/],
  ])("refuses %s, naming it", (value, message) => {
    expect(() => toMs(value, "ttl")).toThrow(invalid(message));
  });
});

/** What a Redis read of a written value returns. */
function throughRedis(value: unknown): unknown {
  return decodeValue(encode(value, "k").text);
}

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

const times = { created: 1, fresh: 2, stale: 3 };

describe("values: L1 holds what Redis returns", () => {
  it.each([
    ["-0", -0],
    ["-0 nested", { n: [-0, 0] }],
    ["a class instance", new Point(3, 4)],
    ["toJSON", new Money(1250)],
    ["toJSON nested", { price: new Money(5) }],
    ["a plain object with toJSON", { toJSON: () => ({ a: 1 }) }],
    ["an undefined member", { a: 1, b: undefined }],
    ["undefined in an array", [1, undefined, 3]],
    ["a symbol key", { a: 1, [Symbol("s")]: 2 }],
    ["a null-prototype object", Object.assign(Object.create(null), { a: 1 })],
    ["a Buffer", Buffer.from([1, 2, 3])],
    ["an Error", new Error("boom")],
    ["a Map of Dates", new Map([["a", new Date(5)]])],
  ])("%s", (_name, value) => {
    const { entry, text } = createEntry("k", value, times, []);
    const fromRedis = (parseEntry(text) as Entry).value;
    expect(entry.value).toStrictEqual(fromRedis);
    if (Object.is(value, -0)) expect(Object.is(fromRedis, -0)).toBe(true);
  });

  it("keeps -0 through the codec", () => {
    expect(Object.is(throughRedis(-0), -0)).toBe(true);
    expect(Object.is((throughRedis({ a: -0 }) as { a: number }).a, -0)).toBe(true);
  });

  it("keeps values that encode faithfully as they are: no copy", () => {
    const value = {
      a: [1, "x", null, { b: new Date(1), m: new Map([[1, new Set([2n])]]) }],
      c: new Uint8Array([1]),
    };
    expect(encode(value, "k").exact).toBe(true);
    expect(createEntry("k", value, times, []).entry.value).toBe(value);
    expect(encode(undefined, "k").exact).toBe(true);
    expect(encode(new Point(1, 2), "k").exact).toBe(false);
  });

  it.each([
    ["a top-level function", () => 1, /a function cannot be cached/],
    ["a top-level symbol", Symbol("s"), /a symbol cannot be cached/],
    ["a function property", { a: 1, fn: () => 1 }, /a function cannot be cached \(at "fn"\)/],
    ["a symbol property", { s: Symbol("s") }, /a symbol cannot be cached \(at "s"\)/],
    ["a function in an array", [1, () => 1], /a function cannot be cached/],
    ["a function in a Map", new Map([["a", () => 1]]), /a function cannot be cached/],
    ["a toJSON returning nothing", { toJSON: () => undefined }, /encodes to nothing|cannot be cached/],
  ])("refuses %s with a SERIALIZE error", (_name, value, message) => {
    expect(() => createEntry("k", value, times, [])).toThrow(
      expect.objectContaining({ code: "SERIALIZE", message: expect.stringMatching(message) }),
    );
  });
});

describe("stored entries", () => {
  it("refuse tags that are not strings", () => {
    expect(() => parseEntry('[1,1,2,3,["ok",7],"v"]')).toThrow(/not a tiercache entry/);
  });

  it("invalidation never throws on an entry, whatever it holds", () => {
    const wanted = new Set(["a"]);
    expect(carriesTag({ tags: "abc" } as unknown as Entry, wanted)).toBe(true);
    expect(carriesTag({ tags: ["b"] } as unknown as Entry, wanted)).toBe(false);
    expect(carriesTag({ tags: ["b", "a"] } as unknown as Entry, wanted)).toBe(true);
  });
});

import { describe, expect, it } from "vitest";
import { decodeValue, encodeValue } from "../../src/codec.js";
import { compressText, createEntry, parseEntry } from "../../src/entry.js";
import { CacheError } from "../../src/errors.js";

const roundTrip = (value: unknown) => decodeValue(encodeValue(value, "k"));

describe("value codec", () => {
  it.each([
    ["string", "héllo ✓ 🚀"],
    ["number", 42.5],
    ["null", null],
    ["boolean", false],
    ["nested", { a: [1, { b: "c" }], d: null }],
  ])("round-trips %s", (_name, value) => {
    expect(roundTrip(value)).toEqual(value);
  });

  it("round-trips types JSON loses", () => {
    const value = {
      when: new Date("2024-05-06T07:08:09.010Z"),
      big: 12345678901234567890n,
      map: new Map<unknown, unknown>([
        ["a", 1],
        [2, new Date(0)],
      ]),
      set: new Set(["x", "y"]),
      bytes: new Uint8Array([0, 255, 1, 128]),
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      nothing: undefined,
    };
    const back = roundTrip(value) as typeof value;
    expect(back.when).toBeInstanceOf(Date);
    expect(back.when.toISOString()).toBe("2024-05-06T07:08:09.010Z");
    expect(back.big).toBe(12345678901234567890n);
    expect(back.map).toEqual(value.map);
    expect(back.set).toEqual(value.set);
    expect(back.bytes).toBeInstanceOf(Uint8Array);
    expect([...back.bytes]).toEqual([0, 255, 1, 128]);
    expect(back.nan).toBeNaN();
    expect(back.inf).toBe(Number.POSITIVE_INFINITY);
    expect("nothing" in back).toBe(false);
  });

  it("round-trips top-level undefined, bigint and Date", () => {
    expect(roundTrip(undefined)).toBeUndefined();
    expect(roundTrip(7n)).toBe(7n);
    expect(roundTrip(new Date(5))).toEqual(new Date(5));
  });

  it("never turns user objects that look like tags into something else", () => {
    const value = [{ $d: "2020-01-01" }, { $u: 0 }, { $o: [["a", 1]] }, { $x: 1 }];
    expect(roundTrip(value)).toEqual(value);
  });

  it("rejects binary types other than Uint8Array instead of silently mangling them", () => {
    expect(() => encodeValue(new Int16Array([1, 2]), "k")).toThrowError(/Int16Array is not supported/);
    expect(() => encodeValue({ b: new ArrayBuffer(4) }, "k")).toThrowError(CacheError);
    expect(() => encodeValue(new Uint8Array([1]), "k")).not.toThrow();
  });

  it("rejects a circular value with a clear CacheError", () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => encodeValue(a, "loop")).toThrowError(CacheError);
    expect(() => encodeValue(a, "loop")).toThrowError(/value for key "loop" cannot be cached/);
  });
});

describe("entries", () => {
  it("carry their metadata through the stored text, compressed or not", async () => {
    const times = { created: 1, fresh: 2, stale: 3 };
    const { entry, text } = createEntry("k", { big: "x".repeat(50_000) }, times, ["t1", "t2"]);
    const compressed = await compressText(text);
    expect(compressed.length).toBeLessThan(text.length / 10);
    for (const stored of [text, compressed]) {
      const back = await parseEntry(stored);
      expect(back).toMatchObject({ ...times, tags: ["t1", "t2"], value: entry.value });
      // L1 bounds bytes by what it holds: the decompressed size, not the stored one.
      expect(back.size).toBe(text.length);
    }
  });

  it.each(["garbage", "[1,2,3]", '{"a":1}', "z:not-base64!", "[2,1,2,3,[],null]", ""])(
    "refuses text it did not write: %j",
    async (stored) => {
      await expect(async () => parseEntry(stored)).rejects.toThrow();
    },
  );
});

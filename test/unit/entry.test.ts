import { describe, expect, it } from "vitest";
import { createEntry, parseEntry } from "../../src/entry.js";

describe("entry envelope parse", () => {
  const values: unknown[] = [
    { id: 1, name: "Ada", roles: ["admin"] },
    "text with ] and , inside",
    0,
    null,
    [1, [2, [3]]],
    new Date("2024-01-01T00:00:00Z"),
    new Map([["a", 1]]),
    { $d: "looks like a tag" },
  ];
  const times = [
    { created: 1_700_000_000_000, fresh: 1_700_000_060_000, stale: 1_700_000_120_000 },
    { created: 0, fresh: 10, stale: 20 },
    { created: 5, fresh: 10.5, stale: 20.25 }, // fractional: the general parse
  ];
  for (const tags of [[], ["a", "b,]"]]) {
    for (const at of times) {
      it(`reads back what it wrote (tags ${JSON.stringify(tags)}, fresh ${at.fresh})`, () => {
        for (const value of values) {
          const { entry, text } = createEntry("k", value, at, tags);
          expect(parseEntry(text)).toEqual(entry);
        }
      });
    }
  }

  it("refuses text it did not write, whichever parse looks at it", () => {
    for (const text of [
      "[1,2,3,4,[]]",
      "[1,2,3,4,[],]",
      "[1,01,3,4,[],5]",
      "[1,,3,4,[],5]",
      "[1,2,3,4,[],5],[6]",
      "[1,2,3,4,[],1,2]",
      "[1,2,3,4,[],5",
      "[2,2,3,4,[],5]",
      "[1,1234567890123456,3,4,[],5]x",
      '{"value":1}',
      "",
    ]) {
      expect(() => parseEntry(text), text).toThrow();
    }
  });

  it("reads integers as JSON does, up to 15 digits by hand and beyond by the general parse", () => {
    expect(parseEntry("[1,999999999999999,2,3,[],4]")).toMatchObject({ created: 999_999_999_999_999 });
    expect(parseEntry("[1,1234567890123456,2,3,[],4]")).toMatchObject({ created: 1_234_567_890_123_456 });
    expect(parseEntry("[1,0,2,3,[], 4 ]")).toMatchObject({ created: 0, value: 4 });
  });
});

import { describe, expect, it, vi } from "vitest";
import { CacheError } from "../../src/errors.js";
import { OutageLog } from "../../src/log-limiter.js";
import { redact, redactError } from "../../src/redact.js";

describe("redact", () => {
  it("masks known secrets whole, URL-encoded and per line, then Bearer values and URL user info", () => {
    const secret = "first-part\nsecond-part";
    const text = `Headers.append: "Bearer first-part\nsecond-part" is an invalid header value; ${encodeURIComponent(secret)}`;
    const clean = redact(text, [secret]);
    expect(clean).not.toMatch(/first-part|second-part|first-part%0Asecond-part/);
    expect(redact("connect redis://user:pa55@host:6379 failed")).toBe("connect redis://***@host:6379 failed");
    expect(redact("sent Authorization: Bearer abc.def")).toBe("sent Authorization: Bearer ***");
    expect(redact("nothing to hide", ["abc"])).toBe("nothing to hide");
  });

  it("redactError keeps a clean error as it is, and copies a dirty one without its cause", () => {
    const clean = new Error("fine");
    expect(redactError(clean, (t) => redact(t, ["s3cret"]))).toBe(clean);
    const dirty = new Error("token s3cret refused", { cause: new Error("s3cret") });
    const copy = redactError(dirty, (t) => redact(t, ["s3cret"]));
    expect(copy.message).toBe("token *** refused");
    expect(copy.cause).toBeUndefined();
    expect(copy.stack).not.toContain("s3cret");
  });
});

describe("OutageLog", () => {
  it("logs the first of a kind, counts repeats, and reports them on the circuit's changes", () => {
    const lines: string[] = [];
    const log = new OutageLog({ warn: (m) => lines.push(m), info: (m) => lines.push(m) });
    const failure = (port: number) =>
      new CacheError("UNAVAILABLE", `GET failed: connect ECONNREFUSED 127.0.0.1:${port}`);
    for (let i = 0; i < 100; i++) log.failure("GET", failure(1000 + i));
    log.breaker("open");
    log.breaker("half-open");
    log.failure("GET", failure(1));
    log.breaker("open"); // a failed probe: the same outage
    log.breaker("half-open");
    log.breaker("closed");
    log.failure("GET", failure(2)); // news again once Redis was back
    expect(lines).toEqual([
      "Redis GET failed: tiercache: GET failed: connect ECONNREFUSED 127.0.0.1:1000",
      "Redis circuit open: serving from L1 and loaders (99 repeated failures not logged)",
      "Redis circuit closed: Redis is back (1 repeated failure not logged)",
      "Redis GET failed: tiercache: GET failed: connect ECONNREFUSED 127.0.0.1:2",
    ]);
  });

  it("after a minute, a repeated failure is logged again with the count held back since, counted once", () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const lines: string[] = [];
      const log = new OutageLog({ warn: (m) => lines.push(m) });
      const error = () => new CacheError("TIMEOUT", "GET: Redis did not answer within 500 ms");
      for (let i = 0; i < 4; i++) log.failure("GET", error());
      vi.setSystemTime(61_000);
      log.failure("GET", error());
      log.breaker("open");
      expect(lines).toEqual([
        "Redis GET failed: tiercache: GET: Redis did not answer within 500 ms",
        "Redis GET failed: tiercache: GET: Redis did not answer within 500 ms (and 3 more like it not logged)",
        "Redis circuit open: serving from L1 and loaders",
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("does not log a consequence of a failure it has already reported", () => {
    const lines: string[] = [];
    const log = new OutageLog({ warn: (m) => lines.push(m) });
    const error = new CacheError("TIMEOUT", "HGETALL: Redis did not answer within 500 ms");
    log.failure("HGETALL", error);
    log.consequence("registration", error, () => ["registration failed"]);
    log.consequence("registration", new Error("bad registry"), () => ["registration failed: bad registry"]);
    expect(lines).toEqual([
      "Redis HGETALL failed: tiercache: HGETALL: Redis did not answer within 500 ms",
      "registration failed: bad registry",
    ]);
  });
});

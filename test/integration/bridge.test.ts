import { randomUUID } from "node:crypto";
import { request } from "node:http";
import { Redis, type RedisConfigNodejs } from "@upstash/redis";
import { createClient, RESP_TYPES } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLoopbackHost } from "../../src/bridge/exposure.js";
import { type Bridge, type BridgeLogger, startBridge } from "../../src/bridge/index.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { startRedisServer } from "../support/redis-server.js";

const TOKEN = `bridge-test-${randomUUID()}`;
const logs: string[] = [];
const logger: BridgeLogger = {
  info: (m) => logs.push(m),
  warn: (m) => logs.push(m),
  error: (m) => logs.push(m),
};

let redisUrl: string;
let bridge: Bridge;
let tcp: ReturnType<typeof createClient>;

beforeAll(async () => {
  redisUrl = await isolatedRedisUrl();
  bridge = await startBridge({ redisUrl, token: TOKEN, maxBodyBytes: 1024 * 1024, logger });
  tcp = createClient({ url: redisUrl });
  await tcp.connect();
});

afterAll(async () => {
  await bridge?.close();
  tcp?.destroy();
  expect(logs.join("\n")).not.toContain(TOKEN);
});

function client(options: Partial<RedisConfigNodejs> = {}): Redis {
  return new Redis({ url: bridge.url, token: TOKEN, enableTelemetry: false, ...options });
}

/** A raw request to the bridge; `token: null` sends no Authorization header. */
async function call(
  path: string,
  init: { method?: string; body?: BodyInit; headers?: Record<string, string>; token?: string | null } = {},
  target: Bridge = bridge,
): Promise<{ status: number; body: unknown }> {
  const headers = new Headers(init.headers);
  if (init.token !== null) headers.set("authorization", `Bearer ${init.token ?? TOKEN}`);
  const res = await fetch(target.url + path, { method: init.method ?? "POST", body: init.body, headers });
  return { status: res.status, body: await res.json() };
}

const key = (name: string) => `${name}:${randomUUID()}`;

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A request through node:http with exactly the headers given (Host included), and a chunked
 * body when `chunks` is given.
 */
function raw(
  target: Bridge,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; chunks?: string[] } = {},
): Promise<RawResponse> {
  const { port } = target;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: init.method ?? "POST", headers: init.headers },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    if (init.chunks) {
      for (const chunk of init.chunks) req.write(chunk);
      req.end();
    } else {
      req.end(init.body);
    }
  });
}

/** Redis connections currently open on this file's database (other files use other databases). */
async function connectedClients(): Promise<number> {
  const db = ` db=${new URL(redisUrl).pathname.slice(1)} `;
  const list = await tcp.sendCommand<string>(["CLIENT", "LIST"]);
  return list.split("\n").filter((line) => line.includes(db)).length;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("the @upstash/redis client with default options (base64, auto-pipelining)", () => {
  it("round-trips strings, numbers, JSON, unicode and binary-ish strings, visible over TCP", async () => {
    const redis = client();
    const values: Record<string, unknown> = {
      plain: "hello world",
      number: 42,
      float: 3.25,
      json: { user: { id: 7, tags: ["a", "b"], nested: { ok: true, none: null } } },
      array: [1, "two", { three: 3 }],
      unicode: "héllo wörld — 你好 🙂👍🏽 e\u0301",
      binaryish: '\u0000\u0001\u0002\u007f\u0080\u00ff\r\n\t"\\ end',
      looksLikeStatus: "OK",
      looksLikeBase64: "T0s=",
      empty: "",
    };
    const keys = Object.fromEntries(Object.keys(values).map((name) => [name, key(name)]));
    await Promise.all(Object.entries(values).map(([name, value]) => redis.set(keys[name]!, value)));
    for (const [name, value] of Object.entries(values)) {
      expect(await redis.get(keys[name]!), name).toEqual(value);
    }
    // What the bridge wrote is what Redis holds (the client JSON-encodes non-strings).
    expect(await tcp.get(keys.unicode!)).toBe(values.unicode);
    expect(await tcp.get(keys.binaryish!)).toBe(values.binaryish);
    expect(JSON.parse((await tcp.get(keys.json!))!)).toEqual(values.json);
  });

  it("answers counters as numbers", async () => {
    const redis = client();
    const counter = key("counter");
    expect(await redis.incr(counter)).toBe(1);
    expect(await redis.incrby(counter, 41)).toBe(42);
    expect(await redis.incrbyfloat(counter, 0.5)).toBe(42.5);
    expect(await redis.decr(key("fresh"))).toBe(-1);
  });

  it("reads strings that look like JSON as JSON (automaticDeserialization), unless turned off", async () => {
    const k = key("numeric-string");
    await client().set(k, "0123");
    expect(await client().get(k)).toBe("0123");
    await client().set(k, "123");
    expect(await client().get(k)).toBe(123);
    expect(await client({ automaticDeserialization: false }).get(k)).toBe("123");
  });

  it("handles hashes, sets, sorted sets and lists", async () => {
    const redis = client();
    const h = key("hash");
    expect(await redis.hset(h, { name: "ada", visits: 1, profile: { lang: "en" } })).toBe(3);
    expect(await redis.hincrby(h, "visits", 2)).toBe(3);
    expect(await redis.hget(h, "name")).toBe("ada");
    expect(await redis.hgetall(h)).toEqual({ name: "ada", visits: 3, profile: { lang: "en" } });
    expect(await redis.hdel(h, "profile")).toBe(1);
    expect(await redis.hkeys(h)).toEqual(["name", "visits"]);

    const s = key("set");
    expect(await redis.sadd(s, "a", "b", "c", "b")).toBe(3);
    expect(((await redis.smembers(s)) as string[]).sort()).toEqual(["a", "b", "c"]);
    expect(await redis.sismember(s, "b")).toBe(1);
    expect(await redis.sismember(s, "z")).toBe(0);

    const z = key("zset");
    await redis.zadd(
      z,
      { score: 2, member: "two" },
      { score: 1.5, member: "one-and-a-half" },
      { score: 10, member: "ten" },
    );
    expect(await redis.zrange(z, 0, -1)).toEqual(["one-and-a-half", "two", "ten"]);
    expect(await redis.zrange(z, 0, 0, { withScores: true })).toEqual(["one-and-a-half", 1.5]);
    expect(await redis.zscore(z, "ten")).toBe(10);
    expect(await redis.zincrby(z, 5, "two")).toBe(7);
    expect(await redis.zrank(z, "two")).toBe(1);

    const l = key("list");
    expect(await redis.rpush(l, "a", "b", "c")).toBe(3);
    expect(await redis.lpush(l, "z")).toBe(4);
    expect(await redis.lrange(l, 0, -1)).toEqual(["z", "a", "b", "c"]);
    expect(await redis.lpop(l)).toBe("z");
    expect(await redis.llen(l)).toBe(3);
  });

  it("sets and reads expiries", async () => {
    const redis = client();
    const k = key("expiring");
    await redis.set(k, "v", { px: 60_000 });
    const pttl = await redis.pttl(k);
    expect(pttl).toBeGreaterThan(50_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(await redis.expire(k, 100)).toBe(1);
    expect(await redis.ttl(k)).toBeGreaterThan(90);
    expect(await redis.persist(k)).toBe(1);
    expect(await redis.pttl(k)).toBe(-1);
    expect(await redis.pttl(key("missing"))).toBe(-2);
  });

  it("scans every key matching a pattern", async () => {
    const redis = client();
    const prefix = key("scan");
    const written = Array.from({ length: 60 }, (_, i) => `${prefix}:${i}`);
    await Promise.all(written.map((k) => redis.set(k, "x")));
    const seen = new Set<string>();
    let cursor: string | number = 0;
    do {
      const [next, keys]: [string | number, string[]] = await redis.scan(cursor, {
        match: `${prefix}:*`,
        count: 7,
      });
      for (const k of keys) seen.add(k);
      cursor = next;
    } while (String(cursor) !== "0");
    expect([...seen].sort()).toEqual([...written].sort());
  });

  it("runs EVAL and EVALSHA, and a script falls back from NOSCRIPT to EVAL after SCRIPT FLUSH", async () => {
    const redis = client();
    const k = key("script");
    const body = "redis.call('SET', KEYS[1], ARGV[1]); return {KEYS[1], redis.call('GET', KEYS[1]), 7}";
    expect(await redis.eval(body, [k], ["first"])).toEqual([k, "first", 7]);
    const sha = await redis.scriptLoad(body);
    expect(await redis.evalsha(sha, [k], ["second"])).toEqual([k, "second", 7]);

    await tcp.scriptFlush();
    await expect(redis.evalsha(sha, [k], ["third"])).rejects.toThrow(/NOSCRIPT/);
    const script = redis.createScript<[string, string, number]>(body);
    expect(await script.exec([k], ["fourth"])).toEqual([k, "fourth", 7]);
    expect(await tcp.get(k)).toBe("fourth");
  });

  it("keeps the other results of a pipeline when one command in the middle fails", async () => {
    const redis = client();
    const [a, notANumber, b] = [key("a"), key("nan"), key("b")];
    await redis.set(notANumber, "text");
    const pipeline = redis.pipeline();
    pipeline.set(a, "1");
    pipeline.incr(notANumber);
    pipeline.set(b, "after");
    pipeline.get(b);
    const results = await pipeline.exec({ keepErrors: true });
    expect(results.map((r) => r.result)).toEqual(["OK", undefined, "OK", "after"]);
    expect(results[1]?.error).toMatch(/not an integer/);
    expect(await tcp.get(b)).toBe("after");

    const failing = redis.pipeline();
    failing.get(a);
    failing.incr(notANumber);
    await expect(failing.exec()).rejects.toThrow(/Command 2 \[ incr \] failed/);
  });

  it("runs multi-exec atomically, with per-command run-time errors", async () => {
    const redis = client();
    const [k, text] = [key("tx"), key("tx-text")];
    await redis.set(text, "text");
    const tx = redis.multi();
    tx.set(k, "1");
    tx.incr(text);
    tx.incr(k);
    const results = await tx.exec({ keepErrors: true });
    expect(results.map((r) => r.result)).toEqual(["OK", undefined, 2]);
    expect(results[1]?.error).toMatch(/not an integer/);

    // Inside MULTI a blocking command cannot block: it answers at once (a pipeline would wait).
    const blocking = await call("/multi-exec", {
      body: JSON.stringify([["BLPOP", key("empty"), "0"], ["PING"]]),
    });
    expect(blocking).toEqual({ status: 200, body: [{ result: null }, { result: "PONG" }] });

    // A concurrent client's INCRs never land between the two INCRs of one transaction.
    const counter = key("tx-counter");
    const filler = "x".repeat(100 * 1024);
    let hammering = true;
    const hammer = (async () => {
      let n = 0;
      while (hammering) {
        await Promise.all(Array.from({ length: 20 }, () => tcp.incr(counter)));
        n += 20;
      }
      return n;
    })();
    const pairs = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const t = client({ enableAutoPipelining: false }).multi();
        t.incr(counter);
        t.set(`${counter}:filler:${i}`, filler);
        t.incr(counter);
        return t.exec<[number, "OK", number]>();
      }),
    );
    hammering = false;
    const hammered = await hammer;
    for (const [first, , second] of pairs) expect(second).toBe(first + 1);
    expect(Number(await tcp.get(counter))).toBe(hammered + 80);
  });

  it("rejects a wrong token and a missing one with 401", async () => {
    await expect(client({ token: "wrong-token", retry: false }).get("x")).rejects.toThrow(/invalid token/);
    const missing = await call("/", { body: '["PING"]', token: null });
    expect(missing).toEqual({ status: 401, body: { error: expect.stringMatching(/missing token.*Bearer/) } });
    const wrong = await call("/", { body: '["PING"]', token: "nope" });
    expect(wrong).toEqual({ status: 401, body: { error: "invalid token" } });
    const basic = await call("/", {
      body: '["PING"]',
      headers: { authorization: `Basic ${TOKEN}` },
      token: null,
    });
    expect(basic.status).toBe(401);
    const prefix = await call("/", { body: '["PING"]', token: TOKEN.slice(0, -1) });
    expect(prefix.status).toBe(401);
  });

  it("answers 1,000 concurrent calls, none lost or mixed up", async () => {
    for (const options of [
      {},
      { enableAutoPipelining: true },
      { enableAutoPipelining: false },
    ] as Partial<RedisConfigNodejs>[]) {
      const redis = client(options);
      const run = randomUUID();
      const answers = await Promise.all(
        Array.from({ length: 1000 }, async (_, i) => {
          const k = `concurrent:${run}:${i}`;
          const value = `value-${i}-${run}`;
          expect(await redis.set(k, value)).toBe("OK");
          return [value, await redis.get(k)];
        }),
      );
      for (const [sent, received] of answers) expect(received).toBe(sent);
      expect(await tcp.get(`concurrent:${run}:999`)).toBe(`value-999-${run}`);
    }
  });
});

describe("response encodings", () => {
  it("works with responseEncoding: false (plain UTF-8 strings)", async () => {
    const redis = client({ responseEncoding: false });
    const k = key("plain");
    const value = "plain — 你好 🙂 \u0000 T0s=";
    await redis.set(k, value);
    expect(await redis.get(k)).toBe(value);
    expect(await redis.hset(`${k}:h`, { f: "ü" })).toBe(1);
    expect(await redis.hgetall(`${k}:h`)).toEqual({ f: "ü" });
    expect(await call("/", { body: JSON.stringify(["GET", k]) })).toEqual({
      status: 200,
      body: { result: value },
    });
  });

  it("base64-encodes every string at any depth, leaving numbers and null alone", async () => {
    const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
    const headers = { "upstash-encoding": "base64" };
    const script = "return {'a', {'ü', 1, {'deep', 2}}, 3, redis.call('GET', KEYS[1])}";
    const k = key("nested");
    await tcp.set(k, "🙂");
    const nested = await call("/", { headers, body: JSON.stringify(["EVAL", script, 1, k]) });
    expect(nested).toEqual({
      status: 200,
      body: { result: [b64("a"), [b64("ü"), 1, [b64("deep"), 2]], 3, b64("🙂")] },
    });

    expect(await call("/", { headers, body: JSON.stringify(["MGET", k, key("missing")]) })).toEqual({
      status: 200,
      body: { result: [b64("🙂"), null] },
    });
    expect(await call("/", { headers, body: JSON.stringify(["SET", k, "v"]) })).toEqual({
      status: 200,
      body: { result: b64("OK") },
    });
    expect(await call("/", { headers, body: JSON.stringify(["GET", key("missing")]) })).toEqual({
      status: 200,
      body: { result: null },
    });
    expect(await call("/", { headers, body: JSON.stringify(["INCR", key("n")]) })).toEqual({
      status: 200,
      body: { result: 1 },
    });
    // Errors are never encoded, in pipelines neither.
    const error = await call("/", { headers, body: JSON.stringify(["INCR", k]) });
    expect(error).toEqual({ status: 400, body: { error: "ERR value is not an integer or out of range" } });
    const pipeline = await call("/pipeline", {
      headers,
      body: JSON.stringify([
        ["GET", k],
        ["INCR", k],
      ]),
    });
    expect(pipeline).toEqual({
      status: 200,
      body: [{ result: b64("v") }, { error: "ERR value is not an integer or out of range" }],
    });
  });

  it("keeps binary values intact in both directions", async () => {
    const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0xc3, 0x28, 0x0a, 0x41]);
    const k = key("binary");
    await tcp.set(k, bytes);
    const read = await call("/", {
      headers: { "upstash-encoding": "base64" },
      body: JSON.stringify(["GET", k]),
    });
    expect(Buffer.from((read.body as { result: string }).result, "base64")).toEqual(bytes);

    // The path form takes a POST body as the last argument, byte for byte.
    const written = key("binary-written");
    expect(await call(`/set/${encodeURIComponent(written)}`, { body: bytes })).toEqual({
      status: 200,
      body: { result: "OK" },
    });
    const stored = await tcp.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).get(written);
    expect(stored).toEqual(bytes);
  });
});

describe("raw protocol", () => {
  it("serves the GET path form with percent-encoded segments", async () => {
    const k = key("path/form ü");
    const set = await call(`/set/${encodeURIComponent(k)}/${encodeURIComponent("a value/with slash")}`, {
      method: "GET",
    });
    expect(set).toEqual({ status: 200, body: { result: "OK" } });
    expect(await call(`/get/${encodeURIComponent(k)}`, { method: "GET" })).toEqual({
      status: 200,
      body: { result: "a value/with slash" },
    });
    expect(await tcp.get(k)).toBe("a value/with slash");
  });

  it("accepts numbers and booleans as arguments", async () => {
    const k = key("scalars");
    expect((await call("/", { body: JSON.stringify(["SET", k, true]) })).status).toBe(200);
    expect(await tcp.get(k)).toBe("true");
    expect(await call("/", { body: JSON.stringify(["INCRBY", key("n"), 5]) })).toEqual({
      status: 200,
      body: { result: 5 },
    });
  });

  it("tolerates an absent or empty upstash-sync-token", async () => {
    for (const headers of [{}, { "upstash-sync-token": "" }, { "upstash-sync-token": "opaque" }] as Record<
      string,
      string
    >[]) {
      expect(await call("/", { headers, body: '["PING"]' })).toEqual({
        status: 200,
        body: { result: "PONG" },
      });
    }
  });

  it("answers each bad request with a clear JSON error and keeps serving", async () => {
    const cases: [string, { method?: string; body?: BodyInit }, number, RegExp][] = [
      ["/", { body: "{not json" }, 400, /malformed JSON/],
      ["/", { body: "" }, 400, /empty body/],
      ["/", { body: '{"command":"GET"}' }, 400, /JSON array/],
      ["/", { body: "[]" }, 400, /command is empty/],
      ["/", { body: '["SET","k",{"a":1}]' }, 400, /argument 2 must be a string, number or boolean/],
      ["/pipeline", { body: '["GET","k"]' }, 400, /command 0 must be a JSON array/],
      ["/pipeline", { body: "[]" }, 400, /no commands/],
      ["/multi-exec", { body: "[[]]" }, 400, /command 0 is empty/],
      ["/", { body: JSON.stringify(["SET", "k", "x".repeat(1100 * 1024)]) }, 413, /exceeds 1048576 bytes/],
      ["/no-such-thing", { method: "GET" }, 404, /unknown path/],
      ["/favicon.ico", { method: "GET" }, 404, /unknown path/],
      ["/", { method: "GET" }, 405, /POST only/],
      ["/", { body: '["NOSUCHCOMMAND"]' }, 400, /unknown command/],
      ["/get/%E0%A4%A", { method: "GET" }, 400, /percent-encoding/],
    ];
    for (const [path, init, status, message] of cases) {
      const response = await call(path, init);
      expect(response, `${path} ${String(init.body).slice(0, 40)}`).toEqual({
        status,
        body: { error: expect.stringMatching(message) },
      });
      expect(await call("/", { body: '["PING"]' })).toEqual({ status: 200, body: { result: "PONG" } });
    }
  });

  it("refuses, clearly, commands that would stall or change a shared connection", async () => {
    const cases: [unknown[], RegExp][] = [
      [["SUBSCRIBE", "chan"], /\/subscribe/],
      [["MONITOR"], /not supported/],
      [["MULTI"], /\/multi-exec/],
      [["WATCH", "k"], /EVAL/],
      [["SELECT", "3"], /shares/],
      [["CLIENT", "REPLY", "OFF"], /CLIENT REPLY .*shares/],
      [["HELLO", "3"], /shares/],
    ];
    const k = key("still-here");
    await tcp.set(k, "db-unchanged");
    for (const [command, message] of cases) {
      expect(await call("/", { body: JSON.stringify(command) })).toEqual({
        status: 400,
        body: { error: expect.stringMatching(message) },
      });
      expect((await call("/pipeline", { body: JSON.stringify([["PING"], command]) })).status).toBe(400);
      expect((await call("/multi-exec", { body: JSON.stringify([command]) })).status).toBe(400);
    }
    expect(await call("/", { body: JSON.stringify(["GET", k]) })).toEqual({
      status: 200,
      body: { result: "db-unchanged" },
    });
  });

  it("answers a transaction Redis discards with one error and applies none of it", async () => {
    const k = key("discarded");
    const response = await call("/multi-exec", {
      body: JSON.stringify([
        ["SET", k, "1"],
        ["SET", k],
      ]),
    });
    expect(response).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^EXECABORT.*wrong number of arguments for 'set'/) },
    });
    expect(await tcp.exists(k)).toBe(0);
    const tx = client().multi();
    tx.set(k, "1");
    tx.hset(k, {}); // HSET without a field: refused when queued, so Redis discards the transaction
    await expect(tx.exec()).rejects.toThrow(/EXECABORT/);
    expect(await tcp.exists(k)).toBe(0);
  });
});

describe("blocking commands and subscriptions", () => {
  it("runs BLPOP and XREAD BLOCK on their own connection while other requests flow", async () => {
    const list = key("queue");
    const stream = key("stream");
    const started = Date.now();
    const blpop = call("/", { body: JSON.stringify(["BLPOP", list, "2"]) });
    const xread = call("/", { body: JSON.stringify(["XREAD", "BLOCK", "2000", "STREAMS", stream, "$"]) });
    const blockingPipeline = call("/pipeline", { body: JSON.stringify([["PING"], ["BRPOP", list, "2"]]) });
    const redis = client({ enableAutoPipelining: false });
    for (let i = 0; i < 20; i++) expect(await redis.incr(key("meanwhile"))).toBe(1);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await blpop).toEqual({ status: 200, body: { result: null } });
    expect(await xread).toEqual({ status: 200, body: { result: null } });
    expect(await blockingPipeline).toEqual({ status: 200, body: [{ result: "PONG" }, { result: null }] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);

    const waiting = call("/", { body: JSON.stringify(["BLPOP", list, "5"]) });
    await eventually(async () => (await tcp.sendCommand<string>(["CLIENT", "LIST"])).includes("cmd=blpop"));
    await tcp.rPush(list, "job-1");
    expect(await waiting).toEqual({ status: 200, body: { result: [list, "job-1"] } });
  });

  it("releases a blocked connection when the HTTP client goes away", async () => {
    const before = await connectedClients();
    const controller = new AbortController();
    const pending = fetch(`${bridge.url}/`, {
      method: "POST",
      body: JSON.stringify(["BLPOP", key("never"), "0"]),
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: controller.signal,
    }).catch((error: unknown) => error);
    await eventually(async () => (await connectedClients()) === before + 1);
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await eventually(async () => (await connectedClients()) === before);
  });

  it("streams SUBSCRIBE and PSUBSCRIBE messages to the Upstash client", async () => {
    const redis = client();
    const channel = key("chan/with/slashes");
    const before = await connectedClients();
    const subscriber = redis.subscribe<{ n: number }>([channel]);
    const patterns = redis.psubscribe<{ n: number }>([`${channel}*`]);
    const messages: unknown[] = [];
    const pmessages: unknown[] = [];
    subscriber.on("message", (m) => messages.push(m));
    patterns.on("pmessage", (m) => pmessages.push(m));
    await eventually(async () => (await connectedClients()) === before + 2);
    await eventually(async () => (await redis.publish(channel, { n: 1 })) === 2);
    await eventually(async () => messages.length === 1 && pmessages.length === 1);
    expect(messages).toEqual([{ channel, message: { n: 1 } }]);
    expect(pmessages).toEqual([{ pattern: `${channel}*`, channel, message: { n: 1 } }]);
    await subscriber.unsubscribe();
    await patterns.unsubscribe();
    await eventually(async () => (await connectedClients()) === before);
  });
});

describe("lifecycle", () => {
  it("refuses to start without a token unless insecure", async () => {
    await expect(startBridge({ redisUrl })).rejects.toThrow(/token is required/);
    const open = await startBridge({ redisUrl, insecure: true, logger });
    try {
      expect(await call("/", { body: '["PING"]', token: null }, open)).toEqual({
        status: 200,
        body: { result: "PONG" },
      });
    } finally {
      await open.close();
    }
  });

  it("fails to start, clearly and without the password, when Redis is unreachable", async () => {
    await expect(startBridge({ redisUrl: "redis://:s3cret@127.0.0.1:1/0", token: TOKEN })).rejects.toThrow(
      /cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/,
    );
  });

  it("answers 503 while Redis is down and recovers when it is back", async () => {
    const server = await startRedisServer();
    const own = await startBridge({ redisUrl: server.url, token: TOKEN, logger });
    try {
      expect(await call("/", { body: '["SET","k","v"]' }, own)).toEqual({
        status: 200,
        body: { result: "OK" },
      });
      await server.stop();
      await eventually(async () => (await call("/", { body: '["PING"]' }, own)).status === 503);
      expect(await call("/", { body: '["PING"]' }, own)).toEqual({
        status: 503,
        body: { error: expect.stringMatching(/^Redis unavailable/) },
      });
      const restarted = await startRedisServer({ port: server.port });
      try {
        await eventually(async () => (await call("/", { body: '["PING"]' }, own)).status === 200, 5000);
      } finally {
        await restarted.stop();
      }
    } finally {
      await own.close();
      await server.stop();
    }
    expect(logs.some((line) => line.includes("lost the Redis connection"))).toBe(true);
  });

  it("ends blocked requests and streams at close, then stops listening", async () => {
    const own = await startBridge({ redisUrl, token: TOKEN, logger });
    const blocked = call("/", { body: JSON.stringify(["BLPOP", key("never"), "0"]) }, own);
    const stream = await fetch(`${own.url}/subscribe/${key("c")}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(stream.headers.get("content-type")).toBe("text/event-stream");
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(1500);
    expect((await blocked).status).toBe(503);
    expect(await stream.text()).toMatch(/^data: subscribe,c:.*,1\n\n$/);
    await expect(fetch(`${own.url}/`, { method: "POST", body: '["PING"]' })).rejects.toThrow();
  });
});

describe("server administration is refused unless allowAdmin", () => {
  const password = `pw-${randomUUID()}`;
  let server: Awaited<ReturnType<typeof startRedisServer>>;
  let guarded: Bridge;
  let admin: ReturnType<typeof createClient>;

  beforeAll(async () => {
    server = await startRedisServer();
    const setup = createClient({ url: server.url });
    await setup.connect();
    await setup.configSet("requirepass", password);
    setup.destroy();
    const url = `redis://:${password}@127.0.0.1:${server.port}`;
    admin = createClient({ url });
    await admin.connect();
    guarded = await startBridge({ redisUrl: url, token: TOKEN, logger });
  });

  afterAll(async () => {
    await guarded?.close();
    admin?.destroy();
    await server?.stop();
  });

  it("refuses CONFIG GET requirepass on /, /pipeline, /multi-exec and the path form, without the password", async () => {
    const command = ["CONFIG", "GET", "requirepass"];
    const answers = [
      await call("/", { body: JSON.stringify(command) }, guarded),
      await call("/pipeline", { body: JSON.stringify([["PING"], command]) }, guarded),
      await call("/multi-exec", { body: JSON.stringify([["PING"], command]) }, guarded),
      await call("/config/get/requirepass", { method: "GET" }, guarded),
      await call("/CONFIG/GET/requirepass", { method: "POST" }, guarded),
    ];
    for (const answer of answers) {
      expect(answer).toEqual({
        status: 400,
        body: { error: expect.stringMatching(/^ERR CONFIG is server administration.*--allow-admin/) },
      });
      expect(JSON.stringify(answer)).not.toContain(password);
    }
  });

  it("refuses the other administration commands and executes none of them", async () => {
    const before = await admin.configGet("maxmemory-policy");
    const refused: string[][] = [
      ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
      ["config", "resetstat"],
      ["ACL", "LIST"],
      ["ACL", "SETUSER", "intruder", "on", ">secret", "+@all", "~*"],
      ["ACL", "WHOAMI"],
      ["CLIENT", "PAUSE", "10"],
      ["CLIENT", "KILL", "TYPE", "normal"],
      ["CLIENT", "LIST"],
      ["CLIENT", "UNBLOCK", "1"],
      ["CLIENT"],
      ["SHUTDOWN", "ABORT"],
      ["DEBUG", "SLEEP", "0"],
      ["SAVE"],
      ["BGSAVE"],
      ["BGREWRITEAOF"],
      ["REPLICAOF", "NO", "ONE"],
      ["SLAVEOF", "NO", "ONE"],
      ["MODULE", "LIST"],
      ["FAILOVER", "ABORT"],
      ["SLOWLOG", "GET"],
      ["LATENCY", "LATEST"],
      ["MEMORY", "STATS"],
      ["MEMORY", "DOCTOR"],
      ["MIGRATE", "127.0.0.1", "1", "k", "0", "100"],
      ["ROLE"],
      ["LASTSAVE"],
      ["CLUSTER", "RESET"],
    ];
    for (const command of refused) {
      const answer = await call("/", { body: JSON.stringify(command) }, guarded);
      expect(answer, command.join(" ")).toEqual({
        status: 400,
        body: { error: expect.stringMatching(/^ERR .* is server administration/) },
      });
      expect((await call("/pipeline", { body: JSON.stringify([command]) }, guarded)).status).toBe(400);
    }
    expect(await admin.configGet("maxmemory-policy")).toEqual(before);
    expect(await admin.aclUsers()).toEqual(["default"]);
    expect((await admin.info("persistence")).includes("rdb_bgsave_in_progress:0")).toBe(true);
  });

  it("keeps what Upstash allows: FLUSHDB, FLUSHALL, INFO, DBSIZE, MEMORY USAGE, CLIENT ID, SCRIPT", async () => {
    await admin.set("doomed", "x");
    const allowed: [unknown[], unknown][] = [
      [["MEMORY", "USAGE", "doomed"], expect.any(Number)],
      [["CLIENT", "ID"], expect.any(Number)],
      [["CLIENT", "GETNAME"], null],
      [["DBSIZE"], 1],
      [["INFO", "keyspace"], expect.stringContaining("db0:keys=1")],
      [["SCRIPT", "LOAD", "return 1"], expect.stringMatching(/^[0-9a-f]{40}$/)],
      [["FLUSHDB"], "OK"],
      [["FLUSHALL"], "OK"],
    ];
    for (const [command, result] of allowed) {
      expect(await call("/", { body: JSON.stringify(command) }, guarded), String(command)).toEqual({
        status: 200,
        body: { result },
      });
    }
    expect(await admin.exists("doomed")).toBe(0);
  });

  it("lets everything through with allowAdmin", async () => {
    const open = await startBridge({
      redisUrl: `redis://:${password}@127.0.0.1:${server.port}`,
      token: TOKEN,
      allowAdmin: true,
      logger,
    });
    try {
      expect(await call("/", { body: '["CONFIG","GET","requirepass"]' }, open)).toEqual({
        status: 200,
        body: { result: ["requirepass", password] },
      });
      expect(await call("/pipeline", { body: '[["ACL","WHOAMI"],["CLIENT","ID"]]' }, open)).toEqual({
        status: 200,
        body: [{ result: "default" }, { result: expect.any(Number) }],
      });
      // Still refused: it would break the connection the bridge shares.
      expect((await call("/", { body: '["MONITOR"]' }, open)).status).toBe(400);
    } finally {
      await open.close();
    }
  });
});

describe("browsers and foreign Hosts (DNS rebinding) are refused", () => {
  let open: Bridge;
  beforeAll(async () => {
    open = await startBridge({ redisUrl, insecure: true, logger });
  });
  afterAll(async () => {
    await open?.close();
  });

  it("refuses a cross-origin text/plain POST and a GET /set/… from a page, executing neither", async () => {
    const [posted, got, noCors] = [key("csrf-post"), key("csrf-get"), key("csrf-img")];
    const post = await raw(open, "/", {
      headers: { origin: "http://evil.example", "content-type": "text/plain" },
      body: JSON.stringify(["SET", posted, "pwned"]),
    });
    expect(post.status).toBe(403);
    expect(JSON.parse(post.body)).toEqual({
      error: expect.stringMatching(/cross-origin.*evil\.example.*--allow-origin/),
    });
    const get = await raw(open, `/set/${encodeURIComponent(got)}/pwned`, {
      method: "GET",
      headers: { origin: "http://evil.example" },
    });
    expect(get.status).toBe(403);
    // <img src=…>: a no-cors GET carries no Origin, but Sec-Fetch-Site.
    const img = await raw(open, `/set/${encodeURIComponent(noCors)}/pwned`, {
      method: "GET",
      headers: { "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors" },
    });
    expect(img.status).toBe(403);
    expect(await tcp.exists([posted, got, noCors])).toBe(0);
  });

  it("refuses a foreign Host with 421 and answers loopback names and the bind address", async () => {
    const foreign = await raw(open, "/", {
      headers: { host: `evil.example:${open.port}` },
      body: JSON.stringify(["SET", key("rebound"), "x"]),
    });
    expect(foreign.status).toBe(421);
    expect(JSON.parse(foreign.body)).toEqual({
      error: expect.stringMatching(/Host 'evil\.example:\d+'.*--allow-host/),
    });
    for (const host of [
      `127.0.0.1:${open.port}`,
      `localhost:${open.port}`,
      `[::1]:${open.port}`,
      "localhost",
    ]) {
      const answer = await raw(open, "/", { headers: { host }, body: '["PING"]' });
      expect({ host, status: answer.status }).toEqual({ host, status: 200 });
    }
  });

  it("still serves @upstash/redis, which sends no Origin", async () => {
    const redis = new Redis({ url: open.url, token: "unused-in-insecure-mode", enableTelemetry: false });
    const k = key("server-side");
    expect(await redis.set(k, "ok")).toBe("OK");
    expect(await redis.get(k)).toBe("ok");
  });

  it("answers allowed origins and hosts, with CORS", async () => {
    const allowing = await startBridge({
      redisUrl,
      token: TOKEN,
      allowedOrigins: ["http://localhost:3000"],
      allowedHosts: ["bridge.test"],
      logger,
    });
    try {
      const preflight = await raw(allowing, "/", {
        method: "OPTIONS",
        headers: {
          origin: "http://localhost:3000",
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type, upstash-sync-token",
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers["access-control-allow-origin"]).toBe("http://localhost:3000");
      expect(preflight.headers["access-control-allow-headers"]).toMatch(/authorization/);
      const ping = await raw(allowing, "/", {
        headers: {
          origin: "http://localhost:3000",
          authorization: `Bearer ${TOKEN}`,
          host: "bridge.test:80",
        },
        body: '["PING"]',
      });
      expect(ping.status).toBe(200);
      expect(ping.headers["access-control-allow-origin"]).toBe("http://localhost:3000");
      expect(ping.headers["access-control-expose-headers"]).toBe("upstash-sync-token");
      const other = await raw(allowing, "/", {
        headers: { origin: "http://localhost:4000", authorization: `Bearer ${TOKEN}` },
        body: '["PING"]',
      });
      expect(other.status).toBe(403);
    } finally {
      await allowing.close();
    }
  });

  it("warns when binding an address other machines can reach", async () => {
    const warnings: string[] = [];
    const warnOnly: BridgeLogger = { info: () => {}, warn: (m) => warnings.push(m), error: () => {} };
    // TEST-NET-1 is never assigned locally, so the bind fails and nothing is ever exposed.
    await expect(
      startBridge({ redisUrl, insecure: true, host: "192.0.2.1", logger: warnOnly }),
    ).rejects.toThrow(/EADDRNOTAVAIL/);
    expect(warnings).toEqual([
      expect.stringMatching(/binding 192\.0\.2\.1, which other machines can reach.*no token/),
    ]);
    const quiet = await startBridge({ redisUrl, token: TOKEN, host: "127.0.0.1", logger: warnOnly });
    await quiet.close();
    expect(warnings).toHaveLength(1);
    expect(
      [..."127.0.0.1 127.1.2.3 localhost ::1 [::1]:80 ::ffff:127.0.0.1".split(" ")].map(isLoopbackHost),
    ).toEqual([true, true, true, true, true, true]);
    expect(["0.0.0.0", "::", "192.168.1.2", "example.com"].map(isLoopbackHost)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});

describe("read-your-writes sync token", () => {
  it("is on every response, changes with each write, and is never older than the client's", async () => {
    const redis = client();
    const k = key("ryw");
    expect(redis.readYourWritesSyncToken).toBe("");
    await redis.set(k, "1");
    const first = redis.readYourWritesSyncToken!;
    expect(first).toMatch(/^\d+$/);
    expect(await redis.get(k)).toBe(1);
    expect(redis.readYourWritesSyncToken).toBe(first);
    await redis.set(k, "2");
    const second = redis.readYourWritesSyncToken!;
    expect(BigInt(second)).toBeGreaterThan(BigInt(first));
    const pipeline = redis.pipeline();
    pipeline.incr(k);
    pipeline.get(k);
    await pipeline.exec();
    const third = redis.readYourWritesSyncToken!;
    expect(BigInt(third)).toBeGreaterThan(BigInt(second));
    const tx = redis.multi();
    tx.incr(k);
    await tx.exec();
    expect(BigInt(redis.readYourWritesSyncToken!)).toBeGreaterThan(BigInt(third));

    // A token from the future (another bridge, a restart) is answered with one at least as new.
    const ahead = String(BigInt(redis.readYourWritesSyncToken!) + 1_000_000n);
    redis.readYourWritesSyncToken = ahead;
    expect(await redis.get(k)).toBe(4);
    expect(BigInt(redis.readYourWritesSyncToken!)).toBeGreaterThanOrEqual(BigInt(ahead));

    for (const [path, init] of [
      ["/", { body: '["PING"]' }],
      ["/", { body: "{bad" }],
      ["/no-such-thing", { method: "GET" }],
    ] as const) {
      const res = await fetch(bridge.url + path, {
        method: "method" in init ? init.method : "POST",
        body: "body" in init ? init.body : undefined,
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(res.headers.get("upstash-sync-token"), path).toMatch(/^\d+$/);
    }
    const unauthorized = await fetch(`${bridge.url}/`, { method: "POST", body: '["PING"]' });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("upstash-sync-token")).toMatch(/^\d+$/);
  });
});

describe("Pub/Sub messages with line breaks", () => {
  it("arrive whole at the @upstash/redis subscriber, on subscribe and psubscribe", async () => {
    const redis = client();
    const channel = key("multiline");
    const subscriber = redis.subscribe([channel]);
    const patterns = redis.psubscribe([`${channel}*`]);
    const messages: unknown[] = [];
    const pmessages: unknown[] = [];
    subscriber.on("message", (m) => messages.push(m.message));
    patterns.on("pmessage", (m) => pmessages.push(m.message));
    try {
      // JSON sentinels: the client JSON-parses pmessages strictly.
      await eventually(async () => (await redis.publish(channel, { ready: true })) === 2);
      await eventually(async () => messages.length > 0 && pmessages.length > 0);
      // Sentinels of earlier rounds may still be on their way.
      const received = (list: unknown[]) => list.filter((m) => JSON.stringify(m) !== '{"ready":true}');
      const text = "line one\nline two, with a comma\r\nline three";
      await redis.publish(channel, text);
      await tcp.publish(channel, '{\n  "pretty": ["json",\n 1]\n}');
      await redis.publish(channel, { after: true });
      await eventually(async () => received(messages).length === 3 && received(pmessages).length === 3);
      expect(received(messages)).toEqual([text, { pretty: ["json", 1] }, { after: true }]);
      expect(received(pmessages)).toEqual([text, { pretty: ["json", 1] }, { after: true }]);
    } finally {
      await subscriber.unsubscribe();
      await patterns.unsubscribe();
    }
  });

  it("puts every event on one data: line of the raw stream", async () => {
    const channel = key("raw-multiline");
    const controller = new AbortController();
    const stream = await fetch(`${bridge.url}/subscribe/${channel}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: controller.signal,
    });
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const readUntil = async (done: (t: string) => boolean) => {
      while (!done(text)) text += decoder.decode((await reader.read()).value, { stream: true });
    };
    try {
      await readUntil((t) => t.includes("\n\n"));
      await tcp.publish(channel, "a\nb");
      await readUntil((t) => t.split("\n\n").length > 2);
      expect(text).toBe(`data: subscribe,${channel},1\n\ndata: message,${channel},"a\\nb"\n\n`);
    } finally {
      controller.abort();
    }
  });
});

describe("request body cap", () => {
  it("answers a chunked body over the cap with the same 413 JSON error as one with Content-Length", async () => {
    const k = key("chunked-too-big");
    const body = JSON.stringify(["SET", k, "x".repeat(1100 * 1024)]);
    const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    const sized = await raw(bridge, "/", { headers, body });
    const chunks = body.match(/[\s\S]{1,16384}/g)!;
    const chunked = await raw(bridge, "/", {
      headers: { ...headers, "transfer-encoding": "chunked" },
      chunks,
    });
    const chunkedPath = await raw(bridge, `/set/${encodeURIComponent(k)}`, {
      headers: { ...headers, "transfer-encoding": "chunked" },
      chunks,
    });
    const expected = { status: 413, body: { error: "request body exceeds 1048576 bytes" } };
    for (const answer of [sized, chunked, chunkedPath]) {
      expect({ status: answer.status, body: JSON.parse(answer.body) }).toEqual(expected);
      expect(answer.headers["content-type"]).toBe("application/json");
    }
    expect(chunked.headers["transfer-encoding"]).toBeUndefined();
    expect(await tcp.exists(k)).toBe(0);
    expect(await call("/", { body: '["PING"]' })).toEqual({ status: 200, body: { result: "PONG" } });
  });
});

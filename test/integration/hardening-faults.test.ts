import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import { Redis } from "@upstash/redis";
import { build } from "esbuild";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBridge } from "../../src/bridge/server.js";
import { CacheError } from "../../src/errors.js";
import { createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { upstash } from "../../src/transports/upstash.js";
import type { CacheEvent, CacheOptions, Logger } from "../../src/types.js";
import { start as startProxy } from "../support/fault-proxy.js";
import { startHttpProxy } from "../support/http-fault-proxy.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { type RedisServerHandle, startRedisServer } from "../support/redis-server.js";
import { runCli } from "../support/run-cli.js";
import { tcpAsOnWorkerd } from "../support/workerd-bundle.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TOKEN = "hardening-faults-token";
const quietBridge = { info() {}, warn() {}, error() {} };

/** A logger that keeps every line, by level. */
function recordingLogger() {
  const lines: { level: string; message: string; details?: unknown }[] = [];
  const logger: Logger = {
    debug: () => {},
    info: (message, details) => lines.push({ level: "info", message, details }),
    warn: (message, details) => lines.push({ level: "warn", message, details }),
    error: (message, details) => lines.push({ level: "error", message, details }),
  };
  return { logger, lines, warns: () => lines.filter((line) => line.level === "warn") };
}

async function elapsed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work().catch(() => {});
  return performance.now() - started;
}

let prefixes = 0;
const prefix = () => `hf${++prefixes}`;

let redisUrl: string;
let bridge: Awaited<ReturnType<typeof startBridge>>;
let raw: ReturnType<typeof createClient>;

beforeAll(async () => {
  redisUrl = await isolatedRedisUrl();
  bridge = await startBridge({ redisUrl, token: TOKEN, port: 0, logger: quietBridge });
  raw = createClient({ url: redisUrl });
  await raw.connect();
});

afterAll(async () => {
  raw?.destroy();
  await bridge?.close();
});

describe("A. the REST transport speaks Upstash over fetch itself", () => {
  it("neither the core nor tiercache/upstash pulls @upstash/redis into a bundle", async () => {
    const result = await build({
      stdin: {
        contents:
          'export { createCache } from "./src/index.ts"; export { upstash } from "./src/transports/upstash.ts";',
        resolveDir: ROOT,
        loader: "ts",
      },
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["browser", "module", "main"],
      metafile: true,
      plugins: [tcpAsOnWorkerd],
      logLevel: "silent",
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((path) => path.includes("src/transports/upstash.ts"))).toBe(true);
    expect(inputs.filter((path) => path.includes("@upstash"))).toEqual([]);
  });

  it("posts JSON to / and /pipeline with the bearer token, asks for base64, and returns the sync token", async () => {
    const proxy = await startHttpProxy(bridge.url);
    let n = 0;
    proxy.addResponseHeaders(() => ({ "upstash-sync-token": `sync-${++n}` }));
    const t = upstash({ url: `${proxy.url}/`, token: TOKEN });
    try {
      expect(await t.send(["SET", "a:sync", "v"])).toBe("OK");
      expect(await t.send(["GET", "a:sync"])).toBe("v");
      expect(await t.pipeline([["GET", "a:sync"], ["PING"]])).toEqual(["v", "PONG"]);
      expect(proxy.paths).toEqual(["/", "/", "/pipeline"]);
      const [first, second, third] = proxy.headers;
      expect(first?.authorization).toBe(`Bearer ${TOKEN}`);
      expect(first?.["upstash-encoding"]).toBe("base64");
      expect(first?.["upstash-sync-token"]).toBeUndefined();
      expect(second?.["upstash-sync-token"]).toBe("sync-1");
      expect(third?.["upstash-sync-token"]).toBe("sync-2");
    } finally {
      await proxy.close();
    }
  });

  it("bytes that are not UTF-8 are an error for that reply, never a silently replaced string", async () => {
    await raw.sendCommand(["SET", "a:binary", Buffer.from([0xff, 0xfe, 0x41])]);
    await raw.set("a:text", "ok ✓");
    const t = upstash({ url: bridge.url, token: TOKEN });
    await expect(t.send(["GET", "a:binary"])).rejects.toThrow(/not UTF-8/);
    const [binary, text] = await t.pipeline([
      ["GET", "a:binary"],
      ["GET", "a:text"],
    ]);
    expect(binary).toBeInstanceOf(Error);
    expect(text).toBe("ok ✓");
  });

  it("refuses an argument holding a lone surrogate instead of storing U+FFFD for it", async () => {
    const t = upstash({ url: bridge.url, token: TOKEN });
    await expect(t.send(["SET", "a:\uD800", "one"])).rejects.toThrow(/well-formed/);
    expect(await raw.exists("a:\uFFFD")).toBe(0);
  });
});

describe("1. an HTTP outage answer opens the breaker", () => {
  const outage = (status: number) => ({
    mode: "answer" as const,
    status,
    body: JSON.stringify({ error: "Service Unavailable" }),
  });
  const transports: [string, (url: string) => Transport][] = [
    ["fetch client", (url) => upstash({ url, token: TOKEN })],
    [
      "{ client }",
      (url) =>
        upstash({ client: new Redis({ url, token: TOKEN, retry: { retries: 0 }, enableTelemetry: false }) }),
    ],
  ];

  for (const [name, transport] of transports) {
    for (const status of [500, 503, 408, 429]) {
      it(`${name}: HTTP ${status} with {"error"}: 200 get() calls make about threshold requests, few log lines`, async () => {
        const proxy = await startHttpProxy(bridge.url);
        proxy.set(outage(status));
        const { logger, warns } = recordingLogger();
        const cache = createCache({
          redis: transport(proxy.url),
          env: {},
          prefix: prefix(),
          logger,
          breaker: { failureThreshold: 5, resetMs: 60_000 },
        });
        try {
          for (let i = 0; i < 200; i++) expect(await cache.get(`k${i}`)).toBeUndefined();
          // The threshold's worth of reads, plus the version registration's first attempt.
          expect(proxy.requests).toBeLessThanOrEqual(7);
          console.log(warns().map((l) => l.message));
          expect(warns().length).toBeLessThanOrEqual(4);
          expect(warns().some((line) => /circuit open/.test(line.message))).toBe(true);
        } finally {
          await proxy.close();
        }
      });
    }
  }

  it("a 2xx answer that is not the per-command reply shape is a transport failure too", async () => {
    const proxy = await startHttpProxy(bridge.url);
    proxy.set({ mode: "answer", status: 200, body: "<html>gateway</html>", contentType: "text/html" });
    const events: CacheEvent[] = [];
    const cache = createCache({
      redis: upstash({ url: proxy.url, token: TOKEN }),
      env: {},
      prefix: prefix(),
      logger: { warn: () => {} },
      onEvent: (event) => events.push(event),
      breaker: { failureThreshold: 3, resetMs: 60_000 },
    });
    try {
      for (let i = 0; i < 50; i++) await cache.get(`k${i}`);
      expect(events).toContainEqual({ type: "breaker", state: "open" });
      expect(proxy.requests).toBeLessThanOrEqual(5);
    } finally {
      await proxy.close();
    }
  });

  it("a command error (HTTP 400 {error}, as Upstash answers it) is a reply: the breaker stays closed", async () => {
    const proxy = await startHttpProxy(bridge.url);
    proxy.set({
      mode: "answer",
      status: 400,
      body: JSON.stringify({ error: "ERR wrong number of arguments" }),
    });
    const events: CacheEvent[] = [];
    const t = upstash({ url: proxy.url, token: TOKEN });
    const cache = createCache({
      redis: t,
      env: {},
      prefix: prefix(),
      logger: { warn: () => {} },
      onEvent: (event) => events.push(event),
      breaker: { failureThreshold: 3, resetMs: 60_000 },
    });
    try {
      await expect(t.send(["GET", "x"])).rejects.toMatchObject({ name: "ReplyError" });
      for (let i = 0; i < 20; i++) await cache.get(`k${i}`);
      expect(events.filter((event) => event.type === "breaker")).toEqual([]);
      expect(proxy.requests).toBeGreaterThanOrEqual(20);
    } finally {
      await proxy.close();
    }
  });
});

describe("2. one deadline per call", () => {
  const TIMEOUT = 300;
  /** Scheduling noise on a loaded machine; a second deadline would add TIMEOUT. */
  const MARGIN = 150;

  type Endpoint = { name: string; port: () => number; transport: (port: number) => Transport };
  const endpoints: Endpoint[] = [
    {
      name: "node-redis",
      port: () => Number(new URL(redisUrl).port),
      transport: (port) =>
        nodeRedis({ host: "127.0.0.1", port, db: Number(new URL(redisUrl).pathname.slice(1)) }),
    },
    {
      name: "upstash",
      port: () => bridge.port,
      transport: (port) => upstash({ url: `http://127.0.0.1:${port}`, token: TOKEN }),
    },
    {
      name: "upstash { client }",
      port: () => bridge.port,
      transport: (port) =>
        upstash({
          client: new Redis({
            url: `http://127.0.0.1:${port}`,
            token: TOKEN,
            retry: { retries: 0 },
            enableTelemetry: false,
          }),
        }),
    },
  ];
  const calls: [string, (cache: ReturnType<typeof createCache>) => Promise<unknown>][] = [
    ["getOrSet", (cache) => cache.getOrSet("d:k", async () => "v")],
    ["getOrSet with a lease", (cache) => cache.getOrSet("d:lease", async () => "v", { lease: true })],
    ["set", (cache) => cache.set("d:k", "v")],
    ["delete", (cache) => cache.delete("d:k")],
    ["invalidateTags", (cache) => cache.invalidateTags(["d:tag"])],
  ];

  /** Connected, as a warm instance is (a first connection on a loaded machine may miss 300 ms). */
  const connectedBeforeTheFault = async (cache: ReturnType<typeof createCache>) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await cache.ping();
      } catch (error) {
        if (attempt === 5) throw error;
      }
    }
  };

  for (const endpoint of endpoints) {
    for (const [name, call] of calls) {
      it(`${endpoint.name}: ${name} on a blackholed Redis settles within one timeoutMs`, async () => {
        const proxy = await startProxy({ targetPort: endpoint.port() });
        const cache = createCache({
          redis: endpoint.transport(proxy.port),
          env: {},
          prefix: prefix(),
          timeoutMs: TIMEOUT,
          logger: { warn: () => {} },
          breaker: { failureThreshold: 1000, resetMs: 60_000 },
        });
        try {
          await connectedBeforeTheFault(cache);
          proxy.setMode("blackhole");
          const ms = await elapsed(() => call(cache));
          expect(ms).toBeGreaterThanOrEqual(TIMEOUT - 20);
          expect(ms).toBeLessThan(TIMEOUT + MARGIN);
        } finally {
          await cache.close();
          await proxy.close();
        }
      });
    }
  }
});

describe("2. one deadline per call, on a slow Redis", () => {
  const TIMEOUT = 300;
  const RTT = 250;
  const MARGIN = 150;

  const slowCache = async (shared: string) => {
    const proxy = await startProxy({ targetPort: Number(new URL(redisUrl).port) });
    const db = Number(new URL(redisUrl).pathname.slice(1));
    const cache = createCache({
      redis: nodeRedis({ host: "127.0.0.1", port: proxy.port, db }),
      env: {},
      prefix: shared,
      timeoutMs: TIMEOUT,
      logger: { warn: () => {} },
      breaker: { failureThreshold: 1000, resetMs: 60_000 },
    });
    for (let attempt = 0; attempt < 5; attempt++) if (await cache.ping().catch(() => 0)) break;
    proxy.setMode("delay", RTT);
    return { cache, proxy };
  };

  it("get of a tagged entry: value and tag marks within one timeoutMs; an unread mark is no licence to serve", async () => {
    const shared = prefix();
    const writer = createCache({ redis: nodeRedis({ url: redisUrl }), env: {}, prefix: shared });
    await writer.set("s:tagged", "v", { tags: ["s:t1", "s:t2"] });
    await writer.invalidateTags(["s:t2"]); // the entry stays in Redis; its tag's mark says it is gone
    await writer.close();
    const { cache, proxy } = await slowCache(shared);
    try {
      let value: unknown = "not read";
      const ms = await elapsed(async () => {
        value = await cache.get("s:tagged");
      });
      expect(ms).toBeLessThan(TIMEOUT + MARGIN);
      // The marks could not be read within the budget left: the entry may be invalidated, so it is a miss.
      expect(value).toBeUndefined();
    } finally {
      await cache.close();
      await proxy.close();
    }
  });

  it("expire: the read and the rewrite within one timeoutMs", async () => {
    const shared = prefix();
    const writer = createCache({ redis: nodeRedis({ url: redisUrl }), env: {}, prefix: shared });
    await writer.set("s:exp", "v");
    await writer.close();
    const { cache, proxy } = await slowCache(shared);
    try {
      const ms = await elapsed(() => cache.expire("s:exp", "1m"));
      expect(ms).toBeLessThan(TIMEOUT + MARGIN);
    } finally {
      await cache.close();
      await proxy.close();
    }
  });
});

describe("3. log volume under an outage is bounded", () => {
  let server: RedisServerHandle;

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("1,000 calls while Redis is down (with half-open probes) log a handful of lines", async () => {
    const { logger, warns, lines } = recordingLogger();
    const cache = createCache({
      redis: nodeRedis({ url: server.url }),
      env: {},
      prefix: prefix(),
      logger,
      timeoutMs: 200,
      breaker: { failureThreshold: 5, resetMs: 50 },
    });
    await cache.set("warm", 1);
    await server.stop();
    let done = 0;
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          cache.getOrSet(`k${round}:${i}`, async () => i).then(() => done++),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    expect(done).toBe(1000);
    expect(warns().length).toBeLessThanOrEqual(6);
    // The circuit line carries the count of the failures it summarises.
    expect(lines.some((line) => /circuit open.*\d+ repeated failures not logged/.test(line.message))).toBe(
      true,
    );
    await cache.close();
  });
});

describe("12. close() stays closed", () => {
  let server: RedisServerHandle;

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    await server?.stop();
  });

  /** Connections on the test's own redis-server, except the one asking. */
  async function connections(): Promise<number> {
    const admin = createClient({ url: server.url });
    await admin.connect();
    try {
      const list = String(await admin.sendCommand(["CLIENT", "LIST"]));
      return list.trim().split("\n").length - 1;
    } finally {
      admin.destroy();
    }
  }

  const afterClose = async (cache: ReturnType<typeof createCache>) => {
    expect(await cache.get("a")).toBe(1); // L1 still serves
    expect(await cache.getOrSet("b", async () => "loaded")).toBe("loaded");
    expect(await cache.get("b")).toBe("loaded");
    await cache.set("c", 3);
    expect(await cache.delete("c")).toBe(1); // from L1
    await cache.invalidateTags(["t"]);
    expect(await cache.increment("n")).toBe(1);
    for (let i = 0; i < 20; i++) await cache.getOrSet(`many:${i}`, async () => i);
    await expect(cache.ping()).rejects.toMatchObject({ code: "CLOSED" });
    expect((await cache.health()).healthy).toBe(false);
  };

  const configurations: [string, () => CacheOptions][] = [
    ["from env (REDIS_URL)", () => ({ env: { REDIS_URL: server.url } })],
    ["with a transport", () => ({ redis: nodeRedis({ url: server.url }), env: {} })],
  ];

  for (const [name, options] of configurations) {
    for (const failSilently of [true, false]) {
      it(`${name}, failSilently ${failSilently}: no reconnect, no warning, works from L1 and loaders`, async () => {
        const { logger, warns } = recordingLogger();
        const cache = createCache({ ...options(), prefix: prefix(), logger, failSilently });
        await cache.set("a", 1);
        expect(await connections()).toBe(1);
        const before = warns().length; // a loaded machine may time out the first connect
        await cache.close();
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(await connections()).toBe(0);
        await afterClose(cache);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(await connections()).toBe(0);
        expect(warns().slice(before)).toEqual([]);
      });
    }
  }

  it("from env (UPSTASH_REDIS_REST_URL): no request after close()", async () => {
    const proxy = await startHttpProxy(bridge.url);
    const { logger, warns } = recordingLogger();
    const cache = createCache({
      env: { UPSTASH_REDIS_REST_URL: proxy.url, UPSTASH_REDIS_REST_TOKEN: TOKEN },
      prefix: prefix(),
      logger,
    });
    try {
      await cache.set("a", 1);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the version registration
      const warned = warns().length;
      await cache.close();
      const before = proxy.requests;
      await afterClose(cache);
      expect(proxy.requests).toBe(before);
      expect(warns().slice(warned)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});

describe("13. no secret crosses a public boundary", () => {
  const FIRST = "first-half-of-the-token";
  const SECOND = "second-half-of-the-token";
  const SECRET = `${FIRST}\n${SECOND}`;
  const leaks = (text: string) => text.includes(FIRST) || text.includes(SECOND);

  it("upstash() refuses a token with CR, LF or NUL, naming the option and not the value", () => {
    for (const token of [SECRET, `${FIRST}\r${SECOND}`, `${FIRST}\0${SECOND}`, "", " "]) {
      let message = "";
      try {
        upstash({ url: bridge.url, token });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/`token` option/);
      expect(leaks(message)).toBe(false);
    }
    // A transport logged or inspected whole does not show its token either.
    const shown = inspect(upstash({ url: bridge.url, token: TOKEN }), { showHidden: true, depth: 10 });
    expect(shown).not.toContain(TOKEN);
  });

  it("a client of your own with such a token: CacheErrors, log lines, health() and healthHandler() are clean", async () => {
    const client = new Redis({
      url: bridge.url,
      token: SECRET,
      retry: { retries: 0 },
      enableTelemetry: false,
    });
    const { logger, lines } = recordingLogger();
    const strict = createCache({
      redis: upstash({ client }),
      env: {},
      prefix: prefix(),
      failSilently: false,
      logger,
    });
    const thrown = await strict.get("k").catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(CacheError);
    const error = thrown as CacheError;
    expect(leaks(`${error.message}\n${error.stack}`)).toBe(false);
    const cause = error.cause as Error | undefined;
    expect(leaks(`${cause?.message}\n${cause?.stack}`)).toBe(false);

    const lenient = createCache({ redis: upstash({ client }), env: {}, prefix: prefix(), logger });
    await lenient.get("k");
    await lenient.getOrSet("k", async () => 1);
    const report = await lenient.health();
    expect(report.healthy).toBe(false);
    expect(leaks(report.error ?? "")).toBe(false);
    const response = await lenient.healthHandler()(new Request("http://localhost/health"));
    const body = await response.text();
    expect(body).toMatch(/"healthy":false/);
    expect(leaks(body)).toBe(false);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((line) => leaks(`${line.message} ${JSON.stringify(line.details ?? {})}`))).toEqual(
      [],
    );
  });

  it("the same token from the environment: createCache, operations and health() are clean", async () => {
    const { logger, lines } = recordingLogger();
    let texts: string[] = [];
    try {
      const cache = createCache({
        env: { UPSTASH_REDIS_REST_URL: bridge.url, UPSTASH_REDIS_REST_TOKEN: SECRET },
        prefix: prefix(),
        failSilently: false,
        logger,
      });
      const thrown = (await cache.get("k").catch((error: unknown) => error)) as Error;
      const report = await cache.health();
      texts = [thrown.message, String(thrown.stack), report.error ?? ""];
      expect(report.healthy).toBe(false);
    } catch (error) {
      // Refusing it at createCache is as good, as long as the message names the variable only.
      texts = [(error as Error).message];
      expect(texts[0]).toMatch(/UPSTASH_REDIS_REST_TOKEN/);
    }
    expect(texts.filter(leaks)).toEqual([]);
    expect(lines.filter((line) => leaks(line.message))).toEqual([]);
  });

  it("the CLI's health and flush output is clean", { timeout: 60_000 }, async () => {
    for (const command of ["health", "flush"]) {
      const result = await runCli(
        [command],
        { UPSTASH_REDIS_REST_URL: bridge.url, UPSTASH_REDIS_REST_TOKEN: SECRET },
        50_000,
      );
      const out = result.stdout + result.stderr;
      expect(result.code).not.toBe(0);
      expect(out.length).toBeGreaterThan(0);
      expect(leaks(out)).toBe(false);
    }
  });
});

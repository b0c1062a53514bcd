import { Buffer } from "node:buffer";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cache, createCache } from "../../src/index.js";
import {
  createIncrementalCacheHandler,
  createUseCacheHandler,
  type IncrementalCacheHandlerClass,
  type IncrementalCacheValue,
  type IncrementalGetContext,
  type TiercacheUseCacheHandler,
  type UseCacheEntry,
} from "../../src/next/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import { type Backend, openBackend } from "../support/backends.js";
import { commandCalls, totalCalls } from "../support/command-stats.js";
import { type FaultProxy, start as startProxy } from "../support/fault-proxy.js";
import { type RedisServerHandle, startRedisServer } from "../support/redis-server.js";

const SYNC_MS = 150;
/** "Within syncMs plus one request": the check falls due, its round trip, the request — and slack for a busy machine. */
const BOUND_MS = SYNC_MS * 2 + 300;
const quiet = { warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (stream: ReadableStream<Uint8Array>) => new Response(stream).text();

function streamOfText(body: string): ReadableStream<Uint8Array> {
  return new Blob([body]).stream();
}

function entry(body: string, over: Partial<UseCacheEntry> = {}): UseCacheEntry {
  return {
    value: streamOfText(body),
    tags: [],
    stale: 300,
    timestamp: Date.now(),
    expire: 3600,
    revalidate: 900,
    ...over,
  };
}

/**
 * A read the way Next 16's `'use cache'` wrapper makes it: `refreshTags` once, `get` with the implicit
 * tags, then `getExpiration` of those tags, discarding an entry created at or before it, and its own
 * `expire` check. Returns the body and the revalidate the handler answered with.
 */
async function nextRead(handler: TiercacheUseCacheHandler, key: string, softTags: string[] = []) {
  await handler.refreshTags();
  const found = await handler.get(key, softTags);
  if (!found) return undefined;
  const expiration = await handler.getExpiration(softTags);
  if (expiration < Number.POSITIVE_INFINITY && found.timestamp <= expiration) return undefined;
  if (Date.now() > found.timestamp + found.expire * 1000) return undefined;
  return { body: await text(found.value), revalidate: found.revalidate, tags: found.tags };
}

/** Polls until `check` holds; returns how long it took (fails past `withinMs`). */
async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > withinMs) throw new Error(`not within ${withinMs} ms`);
    await sleep(10);
  }
  return Date.now() - started;
}

let prefixes = 0;

for (const transport of ["node-redis", "upstash"] as const) {
  describe(`tiercache/next on ${transport}`, () => {
    let server: RedisServerHandle;
    let backend: Backend;
    const caches: Cache[] = [];
    beforeAll(async () => {
      server = await startRedisServer();
      backend = await openBackend(transport, server.url);
    });
    afterAll(async () => {
      await Promise.all(caches.map((c) => c.close()));
      await backend.close();
      await server.stop();
    });

    /** Two instances (two Caches, one Redis) of one deploy, like two servers of one app. */
    function instances(options: { version?: string; l1?: false } = {}) {
      const prefix = `n${++prefixes}`;
      const make = (version = options.version ?? "build1") => {
        const cache = createCache({
          redis: backend.transport(),
          env: {},
          prefix,
          version,
          l1: options.l1 === false ? false : { syncMs: SYNC_MS },
          logger: quiet,
        });
        caches.push(cache);
        return cache;
      };
      return { make, a: make(), b: make() };
    }

    describe("'use cache' handler", () => {
      it("stores the bytes and metadata, and gives every get a fresh stream — on another instance too", async () => {
        const { a, b } = instances();
        const ha = createUseCacheHandler({ cache: a, syncMs: SYNC_MS });
        const hb = createUseCacheHandler({ cache: b, syncMs: SYNC_MS });
        const timestamp = Date.now();
        await ha.set("k1", Promise.resolve(entry("payload ü", { tags: ["post:1"], timestamp, stale: 30 })));
        for (const handler of [ha, hb, hb]) {
          const found = await handler.get("k1", []);
          expect(found).toMatchObject({
            tags: ["post:1"],
            stale: 30,
            timestamp,
            expire: 3600,
            revalidate: 900,
          });
          expect(await text(found!.value)).toBe("payload ü");
        }
        // Two readers of the same entry at once: each gets the whole payload.
        const [x, y] = await Promise.all([hb.get("k1", []), hb.get("k1", [])]);
        expect(await Promise.all([text(x!.value), text(y!.value)])).toEqual(["payload ü", "payload ü"]);
        expect(await hb.get("absent", [])).toBeUndefined();
      });

      it("a get waits for a pending set of the same key", async () => {
        const { a } = instances();
        const handler = createUseCacheHandler({ cache: a });
        let finish!: (e: UseCacheEntry) => void;
        const pendingEntry = new Promise<UseCacheEntry>((resolve) => {
          finish = resolve;
        });
        const setting = handler.set("slow", pendingEntry);
        const reading = handler.get("slow", []);
        await sleep(30);
        finish(entry("rendered late"));
        const found = await reading;
        expect(found).toBeDefined();
        expect(await text(found!.value)).toBe("rendered late");
        await setting;
      });

      it("an errored stream or a rejected entry stores nothing and throws nothing", async () => {
        const { a } = instances();
        const handler = createUseCacheHandler({ cache: a });
        const broken = new ReadableStream<Uint8Array>({
          pull(controller) {
            controller.error(new Error("render failed"));
          },
        });
        await handler.set("broken", Promise.resolve(entry("", { value: broken })));
        await handler.set("rejected", Promise.reject(new Error("no entry")));
        expect(await handler.get("broken", [])).toBeUndefined();
        expect(await handler.get("rejected", [])).toBeUndefined();
      });

      it("past revalidate the entry is still served (Next refreshes it), past expire it is gone", async () => {
        const { a, b } = instances();
        const ha = createUseCacheHandler({ cache: a });
        const hb = createUseCacheHandler({ cache: b });
        await ha.set("short", Promise.resolve(entry("v", { revalidate: 0.05, expire: 0.4 })));
        await sleep(100);
        expect(await nextRead(hb, "short")).toMatchObject({ body: "v", revalidate: 0.05 });
        await sleep(400);
        expect(await ha.get("short", [])).toBeUndefined();
        expect(await hb.get("short", [])).toBeUndefined();
        // `expire: 0` is dynamic in production: never stored.
        await ha.set("dynamic", Promise.resolve(entry("d", { expire: 0 })));
        expect(await ha.get("dynamic", [])).toBeUndefined();
      });

      it("updateTags without durations expires at once here, and on the other instance within syncMs", async () => {
        const { a, b, make } = instances();
        const ha = createUseCacheHandler({ cache: a, syncMs: SYNC_MS });
        const hb = createUseCacheHandler({ cache: b, syncMs: SYNC_MS });
        await ha.set("post", Promise.resolve(entry("old", { tags: ["post:1"] })));
        await ha.set("other", Promise.resolve(entry("keep", { tags: ["post:2"] })));
        expect(await nextRead(hb, "post")).toMatchObject({ body: "old" }); // B holds it in L1 now
        await sleep(5);
        await ha.updateTags(["post:1"]);
        expect(await nextRead(ha, "post")).toBeUndefined();
        const took = await eventually(async () => (await nextRead(hb, "post")) === undefined, BOUND_MS);
        expect(took).toBeLessThanOrEqual(BOUND_MS);
        expect(await nextRead(hb, "other")).toMatchObject({ body: "keep" });
        // A render after the invalidation is served again (A drops its own copy when it renders too).
        await hb.set("post", Promise.resolve(entry("new", { tags: ["post:1"] })));
        expect(await nextRead(hb, "post")).toMatchObject({ body: "new" });
        expect(await nextRead(createUseCacheHandler({ cache: make() }), "post")).toMatchObject({
          body: "new",
        });
      });

      it("updateTags with { expire } serves stale (revalidate -1) everywhere, then expires", async () => {
        const { a, b } = instances();
        const ha = createUseCacheHandler({ cache: a, syncMs: SYNC_MS });
        const hb = createUseCacheHandler({ cache: b, syncMs: SYNC_MS });
        await ha.set("p", Promise.resolve(entry("old", { tags: ["t"] })));
        expect(await nextRead(hb, "p")).toMatchObject({ body: "old", revalidate: 900 });
        await sleep(5);
        await ha.updateTags(["t"], { expire: 1 });
        expect(await nextRead(ha, "p")).toMatchObject({ body: "old", revalidate: -1 });
        await eventually(async () => (await nextRead(hb, "p"))?.revalidate === -1, BOUND_MS);
        // Next renders anew and stores it: that entry is fresh again.
        await sleep(5);
        await ha.set("p2", Promise.resolve(entry("fresh", { tags: ["t"] })));
        expect(await nextRead(hb, "p2")).toMatchObject({ body: "fresh", revalidate: 900 });
        // Past the expire of the invalidation, what it made stale is gone.
        await sleep(1050);
        expect(await nextRead(ha, "p")).toBeUndefined();
        expect(await nextRead(hb, "p")).toBeUndefined();
        expect(await nextRead(hb, "p2")).toMatchObject({ body: "fresh" });
        // A second soft invalidation must not bring the expired entry back as stale.
        await ha.updateTags(["t"], { expire: 60 });
        expect(await ha.get("p", [])).toBeUndefined();
      });

      it("soft (implicit) tags: get and getExpiration both see them", async () => {
        const { a, b } = instances();
        const ha = createUseCacheHandler({ cache: a, syncMs: SYNC_MS });
        const hb = createUseCacheHandler({ cache: b, syncMs: SYNC_MS });
        const soft = ["_N_T_/layout", "_N_T_/blog/page"];
        await ha.set("page", Promise.resolve(entry("html")));
        expect(await nextRead(hb, "page", soft)).toMatchObject({ body: "html" });
        expect(await hb.getExpiration(soft)).toBe(0);
        await sleep(5);
        const before = Date.now();
        await ha.updateTags(["_N_T_/blog/page"]);
        expect(await ha.getExpiration(soft)).toBeGreaterThanOrEqual(before);
        expect(await ha.get("page", soft)).toBeUndefined();
        await eventually(async () => (await nextRead(hb, "page", soft)) === undefined, BOUND_MS);
        expect(await hb.getExpiration(soft)).toBeGreaterThanOrEqual(before);
        // Next 15 called it with the tags as arguments.
        expect(await hb.getExpiration(...(soft as unknown as [string[]]))).toBeGreaterThanOrEqual(before);
        expect(await hb.getExpiration(["_N_T_/elsewhere"])).toBe(0);
      });

      it("expire: Infinity is capped in Redis by default, kept as asked with maxTtl: false", async () => {
        const { a, make } = instances();
        const capped = createUseCacheHandler({ cache: a, maxTtl: "1d" });
        await capped.set("forever", Promise.resolve(entry("x", { expire: Number.POSITIVE_INFINITY })));
        const uncappedCache = make("build1u");
        const uncapped = createUseCacheHandler({ cache: uncappedCache, maxTtl: false });
        await uncapped.set("forever", Promise.resolve(entry("x", { expire: 0xfffffffe })));
        const raw = backend.raw!;
        const [cappedKey] = await raw.keys("*:build1:*next:u:forever");
        const [uncappedKey] = await raw.keys("*:build1u:*next:u:forever");
        const day = 24 * 3600 * 1000;
        expect(await raw.pTTL(cappedKey!)).toBeGreaterThan(day - 60_000);
        expect(await raw.pTTL(cappedKey!)).toBeLessThanOrEqual(day);
        expect(await raw.pTTL(uncappedKey!)).toBeGreaterThan(3000 * day);
        expect(await nextRead(createUseCacheHandler({ cache: a }), "forever")).toMatchObject({ body: "x" });
      });

      it("long keys (serialized arguments) are hashed without delaying the read: it leaves with the tag marks", async () => {
        const { a, b } = instances({ l1: false });
        const ha = createUseCacheHandler({ cache: a });
        const hb = createUseCacheHandler({ cache: b });
        const key = `["build",${JSON.stringify("x".repeat(2000))}]`;
        await ha.set(key, Promise.resolve(entry("long", { tags: ["t1", "t2"] })));
        const admin = backend.raw!;
        await admin.configResetStat();
        // A cold instance: the entry with the soft tags' marks, then the entry's own tags, then (once per
        // process) the marks again after the first look at the tag epoch. A key hashed asynchronously
        // would leave on its own and make it four.
        expect(await nextRead(hb, key, ["_N_T_/a"])).toMatchObject({ body: "long" });
        const cold = await commandCalls(admin);
        expect((cold.mget ?? 0) + (cold.get ?? 0)).toBe(3);
        await sleep(20);
        await admin.configResetStat();
        expect(await nextRead(hb, key, ["_N_T_/a"])).toMatchObject({ body: "long" });
        const warm = await commandCalls(admin);
        delete warm.incrby; // the background tag-epoch check, at most once per syncMs
        expect(totalCalls(warm)).toBe(1);
      });
    });

    describe("incremental cache handler", () => {
      const appPage = (html: string, tags: string): IncrementalCacheValue => ({
        kind: "APP_PAGE",
        html,
        rscData: Buffer.from(`rsc:${html}`),
        headers: { "x-next-cache-tags": tags, "content-type": "text/html" },
        postponed: undefined,
        status: 200,
        segmentData: new Map([
          ["/_tree", Buffer.from("tree")],
          ["/_index", Buffer.from([0, 255, 1])],
        ]),
      });
      const pageContext = { kind: "APP_PAGE", isFallback: false, isRoutePPREnabled: false } as const;
      const cacheControl = { revalidate: 60, expire: 3600 };

      function handlers(
        cacheA: Cache,
        cacheB: Cache,
      ): [IncrementalCacheHandlerClass, IncrementalCacheHandlerClass] {
        return [
          createIncrementalCacheHandler({ cache: cacheA, syncMs: SYNC_MS }),
          createIncrementalCacheHandler({ cache: cacheB, syncMs: SYNC_MS }),
        ];
      }

      it("every kind round-trips losslessly to another instance, Buffers and Maps usable as Next expects", async () => {
        const { a, b } = instances();
        const [A, B] = handlers(a, b);
        const values: [string, IncrementalCacheValue, object][] = [
          ["/blog/1", appPage("<p>1</p>", "_N_T_/layout,_N_T_/blog/1,post:1"), pageContext],
          [
            "/api/route",
            {
              kind: "APP_ROUTE",
              body: Buffer.from('{"ok":true}'),
              status: 201,
              headers: { "x-a": "1", "set-x": ["a", "b"] },
            },
            { kind: "APP_ROUTE", isFallback: false },
          ],
          [
            "/pages/p",
            {
              kind: "PAGES",
              html: "<div/>",
              pageData: { props: { n: 1, d: null } },
              headers: undefined,
              status: 200,
            },
            { kind: "PAGES", isFallback: false },
          ],
          [
            "/redirect",
            { kind: "REDIRECT", props: { destination: "/x" } },
            { kind: "PAGES", isFallback: false },
          ],
          [
            "/image",
            {
              kind: "IMAGE",
              etag: "e",
              upstreamEtag: "u",
              buffer: Buffer.from([1, 2, 3]),
              extension: "png",
              revalidate: 60,
            },
            { kind: "IMAGE" },
          ],
        ];
        for (const [key, value] of values) await new A({}).set(key, value, { cacheControl });
        const fetchValue: IncrementalCacheValue = {
          kind: "FETCH",
          data: {
            headers: { "content-type": "application/json" },
            body: "{}",
            url: "https://x.test/",
            status: 200,
          },
          tags: ["api"],
          revalidate: 30,
        };
        await new A({}).set("fetch-key", fetchValue, {
          fetchCache: true,
          tags: ["api"],
          fetchUrl: "https://x.test/",
        });

        for (const [key, value, context] of values) {
          const got = await new B({}).get(key, context as never);
          expect(got?.value).toEqual(value);
          expect(got?.cacheControl).toEqual(cacheControl);
          expect(got?.lastModified).toBeGreaterThan(Date.now() - 5000);
        }
        const page = (await new B({}).get("/blog/1", pageContext))!.value as Extract<
          IncrementalCacheValue,
          { kind: "APP_PAGE" }
        >;
        expect(Buffer.isBuffer(page.rscData)).toBe(true);
        expect((page.rscData as Buffer).toString("utf8")).toBe("rsc:<p>1</p>");
        expect(page.segmentData).toBeInstanceOf(Map);
        expect(Buffer.isBuffer(page.segmentData!.get("/_index"))).toBe(true);
        expect([...page.segmentData!.get("/_index")!]).toEqual([0, 255, 1]);
        const route = (await new B({}).get("/api/route", { kind: "APP_ROUTE", isFallback: false }))!.value;
        expect(Buffer.isBuffer((route as { body: unknown }).body)).toBe(true);
        const fetched = await new B({}).get("fetch-key", {
          kind: "FETCH",
          tags: ["api"],
          softTags: [],
          revalidate: 30,
        });
        expect(fetched?.value).toEqual(fetchValue);
        // What a caller does with an answer does not change what the next caller gets.
        (page.segmentData as Map<string, Buffer>).clear();
        const again = (await new B({}).get("/blog/1", pageContext))!.value as typeof page;
        expect(again.segmentData!.size).toBe(2);
      });

      it("TTL comes from cacheControl.expire; entries live in the deploy's version", async () => {
        const { a, make } = instances();
        const [A] = handlers(a, a);
        await new A({}).set("/ttl", appPage("x", ""), { cacheControl: { revalidate: 10, expire: 120 } });
        const [key] = await backend.raw!.keys("*:build1:*next:i:/ttl");
        const pttl = await backend.raw!.pTTL(key!);
        expect(pttl).toBeGreaterThan(110_000);
        expect(pttl).toBeLessThanOrEqual(120_000);
        const nextDeploy = createIncrementalCacheHandler({ cache: make("build2") });
        expect(await new nextDeploy({}).get("/ttl", pageContext)).toBeNull();
      });

      it("revalidateTag(tag) removes pages (tags from x-next-cache-tags) here and on the other instance", async () => {
        const { a, b } = instances();
        const [A, B] = handlers(a, b);
        await new A({}).set("/blog/1", appPage("1", "_N_T_/blog/1,post:1"), { cacheControl });
        await new A({}).set("/blog/2", appPage("2", "_N_T_/blog/2,post:2"), { cacheControl });
        expect(await new B({}).get("/blog/1", pageContext)).not.toBeNull();
        await sleep(5);
        await new A({}).revalidateTag("post:1");
        expect(await new A({}).get("/blog/1", pageContext)).toBeNull();
        await eventually(async () => {
          const handler = new B({});
          handler.resetRequestCache(); // as Next does at the start of each request
          return (await handler.get("/blog/1", pageContext)) === null;
        }, BOUND_MS);
        expect(await new B({}).get("/blog/2", pageContext)).not.toBeNull();
        // revalidatePath is a tag too (`_N_T_/…`), and it reaches the other instance the same way.
        await new B({}).revalidateTag(["_N_T_/blog/2"]);
        await eventually(async () => (await new A({}).get("/blog/2", pageContext)) === null, BOUND_MS);
      });

      it("revalidateTag(tag, { expire }) serves the page once more as stale, dated past its revalidate", async () => {
        const { a, b } = instances();
        const [A, B] = handlers(a, b);
        await new A({}).set("/p", appPage("p", "post:9"), { cacheControl });
        const written = (await new B({}).get("/p", pageContext))!.lastModified;
        await sleep(5);
        await new A({}).revalidateTag(["post:9"], { expire: 3600 });
        const stale = await new A({}).get("/p", pageContext);
        expect(stale?.value).toMatchObject({ kind: "APP_PAGE", html: "p" });
        // Next computes isStale from lastModified + revalidate: this makes it stale, not expired.
        expect(stale!.lastModified).toBeLessThan(Date.now() - cacheControl.revalidate * 1000);
        expect(stale!.lastModified).toBeGreaterThan(Date.now() - cacheControl.expire * 1000);
        await eventually(async () => {
          const got = await new B({}).get("/p", pageContext);
          return got !== null && got.lastModified < written;
        }, BOUND_MS);
        // A fetch made stale by its soft tag is dated past its own revalidate.
        const fetchValue: IncrementalCacheValue = {
          kind: "FETCH",
          data: { headers: {}, body: "1", url: "u" },
          revalidate: 30,
        };
        await new A({}).set("f", fetchValue, { fetchCache: true, tags: ["api"] });
        await sleep(5);
        await new A({}).revalidateTag(["_N_T_/dash"], { expire: 60 });
        const got = await new A({}).get("f", {
          kind: "FETCH",
          tags: ["api"],
          softTags: ["_N_T_/dash"],
          revalidate: 30,
        });
        expect(got!.lastModified).toBeLessThan(Date.now() - 30_000);
      });

      it("fetch entries: request tags and soft tags are checked, as are revalidated tags of the request", async () => {
        const { a, b } = instances();
        const [A, B] = handlers(a, b);
        const value: IncrementalCacheValue = {
          kind: "FETCH",
          data: { headers: {}, body: "b", url: "u" },
          revalidate: 60,
        };
        await new A({}).set("f1", value, { fetchCache: true, tags: ["products"] });
        const context: IncrementalGetContext = {
          kind: "FETCH",
          tags: ["products"],
          softTags: ["_N_T_/shop"],
          revalidate: 60,
        };
        expect(await new B({}).get("f1", context)).not.toBeNull();
        expect(await new B({ revalidatedTags: ["_N_T_/shop"] }).get("f1", context)).toBeNull();
        await sleep(5);
        await new A({}).revalidateTag("_N_T_/shop");
        await eventually(async () => (await new B({}).get("f1", context)) === null, BOUND_MS);
      });

      it("a revalidateTag in a new deploy reaches the entries of the previous one", async () => {
        const { a, make } = instances();
        const [Old] = handlers(a, a);
        const New = createIncrementalCacheHandler({ cache: make("build2") });
        await new Old({}).set("/x", appPage("x", "shared"), { cacheControl });
        await sleep(5);
        await new New({}).revalidateTag("shared");
        await eventually(async () => (await new Old({}).get("/x", pageContext)) === null, BOUND_MS);
      });
    });
  });
}

describe("tiercache/next: cost and faults on a real redis-server (node-redis)", () => {
  let server: RedisServerHandle;
  let admin: ReturnType<typeof createClient>;
  let proxy: FaultProxy;
  const caches: Cache[] = [];
  beforeAll(async () => {
    server = await startRedisServer();
    admin = createClient({ url: server.url });
    await admin.connect();
    proxy = await startProxy({ targetPort: server.port });
  });
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    await proxy.close();
    admin.destroy();
    await server.stop();
  });

  const make = (options: { l1?: false; url?: string; prefix?: string; timeoutMs?: number } = {}) => {
    const cache = createCache({
      redis: nodeRedis({ url: options.url ?? server.url }),
      env: {},
      prefix: options.prefix ?? "cost",
      version: "v1",
      l1: options.l1 === false ? false : { syncMs: 1000 },
      timeoutMs: options.timeoutMs ?? 500,
      logger: quiet,
    });
    caches.push(cache);
    return cache;
  };

  it("a cached page costs at most one Redis command per request in steady state (INFO commandstats)", async () => {
    const writer = createUseCacheHandler({ cache: make() });
    const soft = ["_N_T_/layout", "_N_T_/page", "_N_T_/blog/[slug]/page"];
    await writer.set("page", Promise.resolve(entry("rsc", { tags: ["post:1", "author:2"] })));
    const Pages = createIncrementalCacheHandler({ cache: make() });
    await new Pages({}).set(
      "/blog/1",
      {
        kind: "APP_ROUTE",
        body: Buffer.from("x"),
        status: 200,
        headers: { "x-next-cache-tags": "post:1,_N_T_/blog/1" },
      },
      {
        cacheControl: { revalidate: 60, expire: 3600 },
      },
    );

    // A fresh instance without L1: every request must read Redis, and pays one MGET for it.
    const noL1 = createUseCacheHandler({ cache: make({ l1: false }) });
    const NoL1Pages = createIncrementalCacheHandler({ cache: make({ l1: false }) });
    await nextRead(noL1, "page", soft); // first contact: connection, version registration, tag learning
    await new NoL1Pages({}).get("/blog/1", { kind: "APP_ROUTE", isFallback: false });
    await sleep(50);
    await admin.configResetStat();
    const requests = 20;
    for (let i = 0; i < requests; i++) {
      expect(await nextRead(noL1, "page", soft)).toMatchObject({ body: "rsc" });
      const handler = new NoL1Pages({});
      handler.resetRequestCache();
      expect(await handler.get("/blog/1", { kind: "APP_ROUTE", isFallback: false })).not.toBeNull();
    }
    const calls = await commandCalls(admin);
    expect(calls.set ?? 0).toBe(0);
    expect(totalCalls(calls)).toBeLessThanOrEqual(2 * requests);
    expect((calls.mget ?? 0) + (calls.get ?? 0)).toBe(2 * requests);

    // With L1 (the normal case), a warm instance costs nothing per request.
    const warm = createUseCacheHandler({ cache: make() });
    await nextRead(warm, "page", soft);
    await sleep(50);
    await admin.configResetStat();
    for (let i = 0; i < requests; i++)
      expect(await nextRead(warm, "page", soft)).toMatchObject({ body: "rsc" });
    expect(totalCalls(await commandCalls(admin))).toBe(0);
  });

  it("after an invalidation elsewhere drops L1, a page is read again in one MGET, tags included", async () => {
    const syncMs = 100;
    const mk = () => {
      const cache = createCache({
        redis: nodeRedis({ url: server.url }),
        env: {},
        prefix: "hint",
        version: "v1",
        l1: { syncMs },
        logger: quiet,
      });
      caches.push(cache);
      return createUseCacheHandler({ cache, syncMs });
    };
    const a = mk();
    const b = mk();
    await a.set("page", Promise.resolve(entry("rsc", { tags: ["post:1", "post:2", "post:3"] })));
    expect(await nextRead(b, "page")).toMatchObject({ body: "rsc" });
    await a.updateTags(["unrelated"]);
    await sleep(syncMs + 20);
    await nextRead(b, "page"); // due checks leave in the background: B learns of the invalidation
    await sleep(50);
    await admin.configResetStat();
    expect(await nextRead(b, "page")).toMatchObject({ body: "rsc" });
    expect(await commandCalls(admin)).toEqual({ mget: 1 });
  });

  it("updateTags costs O(tags), whatever the number of entries", async () => {
    const handler = createUseCacheHandler({ cache: make({ prefix: "many" }) });
    for (let i = 0; i < 200; i++) await handler.set(`k${i}`, Promise.resolve(entry("x", { tags: ["all"] })));
    await admin.configResetStat();
    await handler.updateTags(["all"]);
    const calls = await commandCalls(admin);
    expect(totalCalls(calls)).toBeLessThanOrEqual(5);
    expect(calls.scan ?? 0).toBe(0);
    expect(await handler.get("k7", [])).toBeUndefined();
  });

  it("fails open: with Redis silent, gets miss within the deadline and sets and updates do not throw", async () => {
    proxy.setMode("pass");
    const timeoutMs = 150;
    const cache = make({ url: `redis://127.0.0.1:${proxy.port}`, prefix: "faults", timeoutMs });
    const handler = createUseCacheHandler({ cache });
    const Pages = createIncrementalCacheHandler({ cache });
    await handler.set("cached", Promise.resolve(entry("kept in L1")));
    await handler.set("tagged", Promise.resolve(entry("invalidated while down", { tags: ["t"] })));
    proxy.setMode("blackhole");
    const started = Date.now();
    expect(await handler.get("never-written", ["_N_T_/x"])).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(timeoutMs * 3 + 100);
    expect(await nextRead(handler, "cached")).toMatchObject({ body: "kept in L1" });
    await expect(handler.set("while-down", Promise.resolve(entry("l1 only")))).resolves.toBeUndefined();
    expect(await nextRead(handler, "while-down")).toMatchObject({ body: "l1 only" });
    await expect(handler.updateTags(["t"])).resolves.toBeUndefined();
    expect(await handler.get("tagged", [])).toBeUndefined(); // applied here at once, Redis or not
    await expect(new Pages({}).set("/p", { kind: "REDIRECT", props: {} }, {})).resolves.toBeUndefined();
    const t0 = Date.now();
    expect(await new Pages({}).get("/absent", { kind: "APP_PAGE", isFallback: false })).toBeNull();
    expect(Date.now() - t0).toBeLessThan(timeoutMs * 3 + 100);
    proxy.setMode("pass");
  });

  it("tag updates made while Redis was unreachable are replayed: other instances see them", async () => {
    const resets = await startProxy({ targetPort: server.port });
    try {
      const syncMs = 100;
      const cacheA = createCache({
        redis: nodeRedis({ url: `redis://127.0.0.1:${resets.port}` }),
        env: {},
        prefix: "replay",
        version: "v1",
        l1: { syncMs },
        timeoutMs: 150,
        breaker: { resetMs: 300 },
        logger: quiet,
      });
      const cacheB = createCache({
        redis: nodeRedis({ url: server.url }),
        env: {},
        prefix: "replay",
        version: "v1",
        l1: { syncMs },
        logger: quiet,
      });
      caches.push(cacheA, cacheB);
      const a = createUseCacheHandler({ cache: cacheA, syncMs });
      const b = createUseCacheHandler({ cache: cacheB, syncMs });
      await a.set("p", Promise.resolve(entry("old", { tags: ["t"] })));
      expect(await nextRead(b, "p")).toMatchObject({ body: "old" });
      resets.setMode("reset");
      await a.updateTags(["t"]);
      expect(await a.get("p", [])).toBeUndefined();
      await sleep(syncMs * 2);
      expect(await nextRead(b, "p")).toMatchObject({ body: "old" }); // Redis never heard of it
      resets.setMode("pass");
      // A's next requests find Redis back and replay the update; B then drops the entry.
      await eventually(async () => {
        await a.refreshTags();
        await a.get("other", []);
        return (await nextRead(b, "p")) === undefined;
      }, 8000);
    } finally {
      await resets.close();
    }
  });

  it("connections do not grow with requests: Next makes a handler per request, they share one Cache", async () => {
    const Pages = createIncrementalCacheHandler({ cache: make({ prefix: "conn" }) });
    await new Pages({}).get("/warm", { kind: "APP_PAGE", isFallback: false });
    const clients = async () => (await admin.clientList()).length;
    const before = await clients();
    for (let i = 0; i < 100; i++) {
      const handler = new Pages({});
      handler.resetRequestCache();
      await handler.get(`/p${i % 7}`, { kind: "APP_PAGE", isFallback: false });
      await handler.set(
        `/p${i % 7}`,
        { kind: "REDIRECT", props: {} },
        { cacheControl: { revalidate: 1, expire: 10 } },
      );
    }
    expect(await clients()).toBe(before);
  });
});

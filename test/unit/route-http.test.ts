import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type RouteHandler, type RouteOptions, route } from "../../src/http/route.js";
import { cloudflareCdn, createCache, vercelCdn } from "../../src/index.js";
import type { CacheOptions } from "../../src/types.js";

/** HTTP caching semantics of route() (issue 16): freshness from the response, Vary, validators, the CDN. */

const quiet = { warn: () => {} };
const T0 = 1_700_000_000_000;

function l1Cache(options: CacheOptions = {}) {
  return createCache({ redis: false, env: {}, logger: quiet, ...options });
}

function counting(respond: (req: Request, run: number) => Response) {
  let runs = 0;
  return vi.fn(async (req: Request) => respond(req, ++runs));
}

function cached(handler: RouteHandler<Request, []>, options: RouteOptions = {}, cache = l1Cache()) {
  return route(cache, handler, options) as (req: Request) => Promise<Response>;
}

const get = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });
const at = (ms: number) => vi.setSystemTime(T0 + ms);
/** Lets background refreshes (awaited without waitUntil, but started after the response) settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

async function look(serve: (req: Request) => Promise<Response>, req: Request) {
  const res = await serve(req);
  return { xCache: res.headers.get("x-cache"), age: res.headers.get("age"), body: await res.text(), res };
}

afterEach(() => {
  vi.useRealTimers();
  delete (globalThis as Record<symbol, unknown>)[Symbol.for("@vercel/request-context")];
});

describe("route: freshness from the response's own headers", () => {
  it("s-maxage over max-age, then stale-while-revalidate, then a miss", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at(0);
    const handler = counting(
      (_req, run) =>
        new Response(`v${run}`, {
          headers: { "cache-control": "max-age=60, s-maxage=2, stale-while-revalidate=5" },
        }),
    );
    const serve = cached(handler);
    expect((await look(serve, get("https://a.test/s"))).xCache).toBe("MISS");
    at(1_500);
    expect(await look(serve, get("https://a.test/s"))).toMatchObject({ xCache: "HIT", age: "1", body: "v1" });
    at(3_000); // past s-maxage (2 s), within stale-while-revalidate (5 s): stale, refreshed in the background
    expect(await look(serve, get("https://a.test/s"))).toMatchObject({ xCache: "STALE", body: "v1" });
    await settle();
    expect(handler).toHaveBeenCalledTimes(2);
    expect(await look(serve, get("https://a.test/s"))).toMatchObject({ xCache: "HIT", body: "v2" });
    at(3_000 + 2_000 + 5_000 + 1); // past v2's freshness and its stale window: a plain miss
    expect(await look(serve, get("https://a.test/s"))).toMatchObject({ xCache: "MISS", body: "v3" });
  });

  it("max-age alone: fresh for that long, then a miss (no stale window)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at(0);
    const handler = counting(
      (_req, run) => new Response(`v${run}`, { headers: { "cache-control": "max-age=1" } }),
    );
    const serve = cached(handler);
    await serve(get("https://a.test/m"));
    at(900);
    expect((await look(serve, get("https://a.test/m"))).xCache).toBe("HIT");
    at(1_100);
    expect(await look(serve, get("https://a.test/m"))).toMatchObject({ xCache: "MISS", body: "v2" });
  });

  it("Expires minus Date when there is no max-age", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at(0);
    const date = new Date(T0 - 10_000); // the origin's clock is 10 s behind: only the difference counts
    const handler = counting(
      (_req, run) =>
        new Response(`v${run}`, {
          headers: { date: date.toUTCString(), expires: new Date(date.getTime() + 3_000).toUTCString() },
        }),
    );
    const serve = cached(handler);
    await serve(get("https://a.test/e"));
    at(2_500);
    expect((await look(serve, get("https://a.test/e"))).xCache).toBe("HIT");
    at(3_500);
    expect((await look(serve, get("https://a.test/e"))).xCache).toBe("MISS");
  });

  it("subtracts the Age the response arrived with, and counts it in the age it is served with", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at(0);
    const handler = counting(
      (_req, run) => new Response(`v${run}`, { headers: { "cache-control": "max-age=3", age: "1" } }),
    );
    const serve = cached(handler);
    expect((await look(serve, get("https://a.test/a"))).age).toBe("1");
    at(1_500);
    expect(await look(serve, get("https://a.test/a"))).toMatchObject({ xCache: "HIT", age: "2" });
    at(2_100); // 1 s old on arrival + 2.1 s here > max-age=3
    expect((await look(serve, get("https://a.test/a"))).xCache).toBe("MISS");
  });

  it("does not store no-cache, or max-age=0 without stale-while-revalidate; max-age=0 with it is served stale", async () => {
    for (const directive of ["no-cache", "max-age=0", "public, max-age=0"]) {
      const handler = counting(() => new Response("x", { headers: { "cache-control": directive } }));
      const serve = cached(handler);
      await serve(get("https://a.test/n"));
      expect((await look(serve, get("https://a.test/n"))).xCache, directive).toBe("BYPASS");
    }
    const handler = counting(
      (_req, run) =>
        new Response(`v${run}`, { headers: { "cache-control": "max-age=0, stale-while-revalidate=30" } }),
    );
    const serve = cached(handler);
    await serve(get("https://a.test/z"));
    expect(await look(serve, get("https://a.test/z"))).toMatchObject({ xCache: "STALE", body: "v1" });
  });

  it("stale-if-error: a failing handler is answered with the stale response within the window", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at(0);
    let fail = false;
    const serve = cached(async () => {
      if (fail) throw new Error("origin down");
      return new Response("good", { headers: { "cache-control": "max-age=1, stale-if-error=10" } });
    });
    await serve(get("https://a.test/sie"));
    fail = true;
    at(2_000);
    expect(await look(serve, get("https://a.test/sie"))).toMatchObject({ xCache: "STALE", body: "good" });
    at(12_000);
    await expect(serve(get("https://a.test/sie"))).rejects.toThrow("origin down");
  });

  it("the route's ttl still wins over the response's directives", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at(0);
    const handler = counting(
      (_req, run) => new Response(`v${run}`, { headers: { "cache-control": "max-age=1" } }),
    );
    const serve = cached(handler, { ttl: "1m" });
    await serve(get("https://a.test/o"));
    at(30_000);
    expect((await look(serve, get("https://a.test/o"))).xCache).toBe("HIT");
  });
});

describe("route: Vary splits entries", () => {
  it("Accept-Language: one entry per language, each served its own", async () => {
    const handler = counting(
      (req) =>
        new Response(`hello ${req.headers.get("accept-language")}`, {
          headers: { vary: "Accept-Language", "cache-control": "max-age=60" },
        }),
    );
    const serve = cached(handler);
    expect((await look(serve, get("https://a.test/l", { "accept-language": "en" }))).body).toBe("hello en");
    expect(await look(serve, get("https://a.test/l", { "accept-language": "fr" }))).toMatchObject({
      xCache: "MISS",
      body: "hello fr",
    });
    expect(await look(serve, get("https://a.test/l", { "accept-language": "en" }))).toMatchObject({
      xCache: "HIT",
      body: "hello en",
    });
    const fr = await look(serve, get("https://a.test/l", { "accept-language": "fr" }));
    expect(fr).toMatchObject({ xCache: "HIT", body: "hello fr" });
    expect(fr.res.headers.get("vary")).toBe("accept-language");
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it("Accept-Encoding is normalised: browsers' spellings share br / gzip / identity entries", async () => {
    const handler = counting(
      (_req, run) =>
        new Response(`v${run}`, { headers: { vary: "Accept-Encoding", "cache-control": "max-age=60" } }),
    );
    const serve = cached(handler);
    await serve(get("https://a.test/enc", { "accept-encoding": "gzip, deflate, br, zstd" }));
    expect((await look(serve, get("https://a.test/enc", { "accept-encoding": "br" }))).xCache).toBe("HIT");
    expect(
      (await look(serve, get("https://a.test/enc", { "accept-encoding": "br;q=1.0, gzip;q=0.8" }))).xCache,
    ).toBe("HIT");
    expect(
      (await look(serve, get("https://a.test/enc", { "accept-encoding": "gzip, deflate" }))).xCache,
    ).toBe("MISS");
    expect(
      (await look(serve, get("https://a.test/enc", { "accept-encoding": "deflate, gzip" }))).xCache,
    ).toBe("HIT");
    expect((await look(serve, get("https://a.test/enc"))).xCache).toBe("MISS");
    expect(
      (await look(serve, get("https://a.test/enc", { "accept-encoding": "br;q=0, identity" }))).xCache,
    ).toBe("HIT");
    expect(handler).toHaveBeenCalledTimes(3);
  });

  it("concurrent requests with different values never get each other's variant", async () => {
    const handler = counting(
      (req) =>
        new Response(req.headers.get("accept-language") ?? "", {
          headers: { vary: "accept-language", "cache-control": "max-age=60" },
        }),
    );
    const serve = cached(handler);
    const langs = ["en", "fr", "de", "en", "fr", "de"];
    const bodies = await Promise.all(
      langs.map((l) => serve(get("https://a.test/c", { "accept-language": l })).then((r) => r.text())),
    );
    expect(bodies).toEqual(langs);
  });

  it("a POST drops every variant of the URL", async () => {
    const handler = counting(
      (req, run) =>
        new Response(`${req.headers.get("accept-language")} ${run}`, {
          headers: { vary: "accept-language", "cache-control": "max-age=60" },
        }),
    );
    const serve = cached(handler);
    for (const l of ["en", "fr"]) await serve(get("https://a.test/p", { "accept-language": l }));
    expect((await look(serve, get("https://a.test/p", { "accept-language": "fr" }))).xCache).toBe("HIT");
    await serve(new Request("https://a.test/p", { method: "POST" }));
    for (const l of ["en", "fr"]) {
      expect((await look(serve, get("https://a.test/p", { "accept-language": l }))).xCache, l).toBe("MISS");
    }
  });
});

describe("route: conditional and partial requests", () => {
  it("If-Modified-Since against Last-Modified answers 304 from the entry", async () => {
    const modified = new Date(T0 - 60_000).toUTCString();
    const serve = cached(async () => new Response("page", { headers: { "last-modified": modified } }));
    await serve(get("https://a.test/ims"));
    const fresh = await serve(get("https://a.test/ims", { "if-modified-since": new Date(T0).toUTCString() }));
    expect([fresh.status, fresh.headers.get("x-cache"), await fresh.text()]).toEqual([304, "HIT", ""]);
    const older = await serve(
      get("https://a.test/ims", { "if-modified-since": new Date(T0 - 120_000).toUTCString() }),
    );
    expect([older.status, await older.text()]).toEqual([200, "page"]);
    // If-None-Match takes precedence (RFC 9110 §13.2.2): a non-matching tag means a full answer.
    const both = await serve(
      get("https://a.test/ims", {
        "if-none-match": '"nope"',
        "if-modified-since": new Date(T0).toUTCString(),
      }),
    );
    expect(both.status).toBe(200);
  });

  it("Range requests and 206 answers pass through uncached, x-cache BYPASS", async () => {
    const handler = counting((req) =>
      req.headers.has("range")
        ? new Response("par", { status: 206, headers: { "content-range": "bytes 0-2/10" } })
        : new Response("full"),
    );
    const serve = cached(handler);
    await serve(get("https://a.test/r"));
    const part = await serve(get("https://a.test/r", { range: "bytes=0-2" }));
    expect([part.status, part.headers.get("x-cache"), await part.text()]).toEqual([206, "BYPASS", "par"]);
    expect(handler).toHaveBeenCalledTimes(2);
    const always206 = cached(counting(() => new Response("p", { status: 206 })));
    await always206(get("https://a.test/206"));
    expect((await look(always206, get("https://a.test/206"))).xCache).toBe("BYPASS");
  });
});

describe("route: the CDN in front", () => {
  it("emits CDN-Cache-Control and the route's tags as Cache-Tag / Vercel-Cache-Tag", async () => {
    const serve = cached(async () => new Response("x"), {
      tags: (req) => [`page:${new URL(req.url).pathname}`, "pages"],
      cdn: { ttl: "1m", staleWhileRevalidate: "30s" },
    });
    for (const expected of ["MISS", "HIT"]) {
      const res = await serve(get("https://a.test/cdn"));
      expect(res.headers.get("x-cache")).toBe(expected);
      expect(res.headers.get("cdn-cache-control")).toBe("max-age=60, stale-while-revalidate=30");
      expect(res.headers.get("cache-tag")).toBe("page:/cdn,pages");
      expect(res.headers.get("vercel-cache-tag")).toBe("page:/cdn,pages");
    }
    // Any tag the cache accepts travels header-safe and comma-free, and is purged the same way.
    const odd = cached(async () => new Response("x"), {
      tags: ["a,b", "line\nbreak", "ünï 100%"],
      cdn: { ttl: "1m" },
    });
    const res = await odd(get("https://a.test/odd"));
    expect(res.headers.get("cache-tag")).toBe("a%2Cb,line%0Abreak,%C3%BCn%C3%AF%20100%25");
    const plain = await cached(async () => new Response("x"))(get("https://a.test/plain"));
    expect(plain.headers.has("cdn-cache-control")).toBe(false);
  });

  it("onInvalidate hears every invalidation, a route's POST included", async () => {
    const heard: unknown[] = [];
    const cache = l1Cache({ onInvalidate: (invalidation) => heard.push(invalidation) });
    await cache.invalidateTags(["a", "b"]);
    await cache.delete("k");
    await cache.deletePattern("user:*");
    const serve = cached(async () => new Response("ok"), { tags: ["t"] }, cache);
    await serve(new Request("https://a.test/x", { method: "POST" }));
    expect(heard.slice(0, 3)).toEqual([{ tags: ["a", "b"] }, { keys: ["k"] }, { patterns: ["user:*"] }]);
    // The POST's key delete and tag invalidation run side by side.
    expect(heard.slice(3)).toHaveLength(2);
    expect(heard.slice(3)).toEqual(
      expect.arrayContaining([{ keys: ["route:a.test/x"] }, { tags: ["~url:route:a.test/x", "t"] }]),
    );
  });

  it("vercelCdn() calls the purge API of the request context @vercel/functions reads, and fails clearly outside one", async () => {
    const purge = vi.fn(async (_tags: string | string[]) => {});
    await expect(vercelCdn()({ tags: ["a"] })).rejects.toThrow(/no Vercel purge API/);
    (globalThis as Record<symbol, unknown>)[Symbol.for("@vercel/request-context")] = {
      get: () => ({ purge: { invalidateByTag: purge } }),
    };
    const warnings: string[] = [];
    const cache = l1Cache({ onInvalidate: vercelCdn(), logger: { warn: (m) => warnings.push(m) } });
    await cache.invalidateTags(["user:1", "users", "a,b"]);
    expect(purge).toHaveBeenCalledWith(["user:1", "users", "a%2Cb"]);
    expect(warnings).toEqual([]);
  });
});

describe("cloudflareCdn() against a stand-in purge endpoint", () => {
  const token = "cf-token-0123456789-SECRET";
  const zone = "0123456789abcdef0123456789abcdef";
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  async function endpoint(statuses: number[]) {
    const seen: { url: string; auth: string | undefined; body: unknown }[] = [];
    server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (chunk) => {
        body += chunk;
      });
      req.on("end", () => {
        seen.push({ url: req.url ?? "", auth: req.headers.authorization, body: JSON.parse(body) });
        const status = statuses.shift() ?? 200;
        res.writeHead(status, { "content-type": "application/json" });
        res.end(
          JSON.stringify(status === 200 ? { success: true } : { success: false, errors: [{ code: 1234 }] }),
        );
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    return { seen, apiBase: `http://127.0.0.1:${port}/client/v4` };
  }

  it("purges by tag with the bearer token, in chunks", async () => {
    const { seen, apiBase } = await endpoint([]);
    const tags = Array.from({ length: 35 }, (_, i) => `t${i}`);
    await cloudflareCdn({ zoneId: zone, token, apiBase })({ tags, keys: ["ignored"] });
    expect(seen.map((s) => s.url)).toEqual([
      `/client/v4/zones/${zone}/purge_cache`,
      `/client/v4/zones/${zone}/purge_cache`,
    ]);
    expect(seen[0]?.auth).toBe(`Bearer ${token}`);
    expect(seen.flatMap((s) => (s.body as { tags: string[] }).tags)).toEqual(tags);
  });

  it("retries a failure once; a second failure is logged without the token and the request still answers", async () => {
    const retried = await endpoint([500]);
    await cloudflareCdn({ zoneId: zone, token, apiBase: retried.apiBase })({ tags: ["a"] });
    expect(retried.seen).toHaveLength(2);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    const failing = await endpoint([503, 503]);
    const warnings: string[] = [];
    const cache = l1Cache({
      onInvalidate: cloudflareCdn({ zoneId: zone, token, apiBase: failing.apiBase }),
      logger: { warn: (m) => warnings.push(m) },
    });
    const serve = cached(async () => new Response("ok"), { tags: ["page"] }, cache);
    const res = await serve(new Request("https://a.test/x", { method: "POST" }));
    expect(res.status).toBe(200);
    expect(failing.seen).toHaveLength(2);
    expect(warnings.join("\n")).toMatch(
      /cloudflareCdn: purge of 2 tags failed twice: HTTP 503 \(errors 1234\)/,
    );
    expect(warnings.join("\n")).not.toContain(token);
  });

  it("refuses a malformed zone id or token at creation, without echoing the token", () => {
    expect(() => cloudflareCdn({ zoneId: "nope", token })).toThrow(/zoneId/);
    expect(() => cloudflareCdn({ zoneId: zone, token: "bad token\nwith newline-0123" })).toThrow(
      /^cloudflareCdn: token must be/,
    );
  });
});

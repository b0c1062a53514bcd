import { afterEach, describe, expect, it, vi } from "vitest";
import { healthHandler } from "../../src/http/health.js";
import { type RouteHandler, type RouteOptions, route } from "../../src/http/route.js";
import { waitUntilFrom } from "../../src/http/wait-until.js";
import { createCache } from "../../src/index.js";
import type { Transport } from "../../src/transports/types.js";
import type { CacheOptions } from "../../src/types.js";
import { recordingTransport } from "../support/recording-transport.js";

const quiet = { warn: () => {} };

/** L1-only cache: the route's rules do not depend on the tier an entry comes from. */
function l1Cache(options: CacheOptions = {}) {
  return createCache({ redis: false, env: {}, logger: quiet, ...options });
}

/** A handler that counts its runs; `respond` builds each response. */
function counting<A extends unknown[] = []>(respond: (req: Request, run: number, ...rest: A) => Response) {
  let runs = 0;
  const handler = vi.fn(async (req: Request, ...rest: A) => respond(req, ++runs, ...rest));
  return handler;
}

function cached<A extends unknown[]>(handler: RouteHandler<Request, A>, options: RouteOptions = {}) {
  return route(l1Cache(), handler, options) as (req: Request, ...rest: A) => Promise<Response>;
}

const get = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers });

afterEach(() => {
  vi.useRealTimers();
});

describe("route: hits and misses", () => {
  it("answers MISS, then HIT from the entry with the same status, headers and body", async () => {
    const handler = counting(
      (_req, run) =>
        new Response(`body ${run}`, {
          status: 200,
          headers: { "content-type": "text/plain", "x-app": "yes" },
        }),
    );
    const serve = cached(handler);
    const first = await serve(get("https://a.test/x"));
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(first.headers.get("age")).toBe("0");
    expect(await first.text()).toBe("body 1");
    const second = await serve(get("https://a.test/x"));
    expect(second.headers.get("x-cache")).toBe("HIT");
    expect(second.status).toBe(200);
    expect(second.headers.get("content-type")).toBe("text/plain");
    expect(second.headers.get("x-app")).toBe("yes");
    expect(await second.text()).toBe("body 1");
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("counts age in whole seconds since the handler made the response", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(1_700_000_000_000);
    const serve = cached(
      counting(() => new Response("x")),
      { ttl: "1m" },
    );
    await serve(get("https://a.test/age"));
    vi.setSystemTime(1_700_000_003_900);
    const later = await serve(get("https://a.test/age"));
    expect(later.headers.get("x-cache")).toBe("HIT");
    expect(later.headers.get("age")).toBe("3");
  });

  it("hands out a fresh Response each time (bodies are single-use)", async () => {
    const serve = cached(counting(() => new Response("same")));
    await serve(get("https://a.test/fresh"));
    const a = await serve(get("https://a.test/fresh"));
    const b = await serve(get("https://a.test/fresh"));
    expect(a).not.toBe(b);
    expect([await a.text(), await b.text()]).toEqual(["same", "same"]);
  });

  it("does not split the cache on query order, but does on values", async () => {
    const handler = counting((req) => new Response(new URL(req.url).search));
    const serve = cached(handler);
    await serve(get("https://a.test/q?b=2&a=1"));
    const reordered = await serve(get("https://a.test/q?a=1&b=2"));
    expect(reordered.headers.get("x-cache")).toBe("HIT");
    expect(handler).toHaveBeenCalledTimes(1);
    const other = await serve(get("https://a.test/q?a=1&b=3"));
    expect(other.headers.get("x-cache")).toBe("MISS");
  });

  it("does not share entries between hosts", async () => {
    const handler = counting((req) => new Response(new URL(req.url).host));
    const serve = cached(handler);
    await serve(get("https://a.test/same"));
    const other = await serve(get("https://b.test/same"));
    expect(other.headers.get("x-cache")).toBe("MISS");
    expect(await other.text()).toBe("b.test");
  });

  it("splits on the vary headers and tells downstream caches so", async () => {
    const handler = counting((req) => new Response(`hello in ${req.headers.get("accept-language")}`));
    const serve = cached(handler, { vary: ["Accept-Language"] });
    await serve(get("https://a.test/v", { "accept-language": "en" }));
    const fr = await serve(get("https://a.test/v", { "accept-language": "fr" }));
    expect(fr.headers.get("x-cache")).toBe("MISS");
    expect(await fr.text()).toBe("hello in fr");
    const en = await serve(get("https://a.test/v", { "accept-language": "en" }));
    expect(en.headers.get("x-cache")).toBe("HIT");
    expect(en.headers.get("vary")).toBe("accept-language");
  });

  it("runs the handler once for concurrent misses of one URL", async () => {
    const handler = counting(() => new Response("once"));
    const serve = cached(handler);
    const responses = await Promise.all(Array.from({ length: 5 }, () => serve(get("https://a.test/herd"))));
    expect(handler).toHaveBeenCalledTimes(1);
    expect(await Promise.all(responses.map((r) => r.text()))).toEqual(Array(5).fill("once"));
  });

  it("gives each concurrent request its own body when the response is not cacheable", async () => {
    const handler = counting(
      (_req, run) => new Response(`private ${run}`, { headers: { "set-cookie": "s=1" } }),
    );
    const serve = cached(handler);
    const responses = await Promise.all(
      Array.from({ length: 3 }, () => serve(get("https://a.test/herd-pass"))),
    );
    const bodies = await Promise.all(responses.map((r) => r.text()));
    expect(new Set(bodies).size).toBe(3);
    expect(responses.every((r) => r.headers.get("x-cache") === "BYPASS")).toBe(true);
  });

  it("serves STALE within staleWhileRevalidate while one refresh runs, then the new response", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(1_700_000_000_000);
    const handler = counting((_req, run) => new Response(`v${run}`));
    const serve = cached(handler, { ttl: "1s", staleWhileRevalidate: "1m" });
    await serve(get("https://a.test/swr"));
    vi.setSystemTime(1_700_000_002_000);
    const stale = await serve(get("https://a.test/swr"));
    expect(stale.headers.get("x-cache")).toBe("STALE");
    expect(stale.headers.get("age")).toBe("2");
    expect(await stale.text()).toBe("v1");
    // While the refresh runs, others get the stale entry too; then the new one.
    await vi.waitFor(async () => {
      const refreshed = await serve(get("https://a.test/swr"));
      expect([refreshed.headers.get("x-cache"), await refreshed.text()]).toEqual(["HIT", "v2"]);
    });
    expect(handler).toHaveBeenCalledTimes(2);
  });
});

describe("route: keys on the host the client asked for", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  // Under `next start`, req.url is built from the server's own address, whatever the client asked.
  const behindNextStart = (port: number, headers: Record<string, string>) =>
    get(`http://localhost:${port}/page?b=2&a=1`, headers);

  it("keys on Host, not on req.url's host: two ports share, two tenants do not", async () => {
    const handler = counting((req) => new Response(`for ${req.headers.get("host")}`));
    const serve = cached(handler);
    await serve(behindNextStart(3000, { host: "shop.example" }));
    const otherInstance = await serve(behindNextStart(3001, { host: "shop.example" }));
    expect(otherInstance.headers.get("x-cache")).toBe("HIT");
    const otherTenant = await serve(behindNextStart(3000, { host: "blog.example" }));
    expect(otherTenant.headers.get("x-cache")).toBe("MISS");
    expect(await otherTenant.text()).toBe("for blog.example");
    const sameHostOtherCase = await serve(behindNextStart(3000, { host: "SHOP.example" }));
    expect(sameHostOtherCase.headers.get("x-cache")).toBe("HIT");
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it("ignores X-Forwarded-Host unless trusted: any client can send one", async () => {
    const handler = counting((_req, run) => new Response(`run ${run}`));
    const serve = cached(handler);
    await serve(behindNextStart(3000, { host: "shop.example", "x-forwarded-host": "evil.example" }));
    const spoofed = await serve(
      behindNextStart(3000, { host: "shop.example", "x-forwarded-host": "x.example" }),
    );
    expect(spoofed.headers.get("x-cache")).toBe("HIT");
  });

  it("keys on the first X-Forwarded-Host when trustForwardedHost is set", async () => {
    const keys: string[] = [];
    const handler = counting((_req, run) => new Response(`run ${run}`));
    const serve = cached(handler, {
      trustForwardedHost: true,
      key: (_req, key) => {
        keys.push(key);
        return key;
      },
    });
    await serve(
      behindNextStart(3000, { host: "internal:8080", "x-forwarded-host": "a.example, proxy.local" }),
    );
    const other = await serve(
      behindNextStart(3000, { host: "internal:8080", "x-forwarded-host": "b.example" }),
    );
    expect(other.headers.get("x-cache")).toBe("MISS");
    await serve(behindNextStart(3000, { host: "internal:8080" }));
    expect(keys).toEqual([
      "route:a.example/page?a=1&b=2",
      "route:b.example/page?a=1&b=2",
      "route:internal:8080/page?a=1&b=2",
    ]);
  });

  it("trusts X-Forwarded-Host by default on Vercel, whose edge sets it", async () => {
    vi.stubEnv("VERCEL", "1");
    const handler = counting((_req, run) => new Response(`run ${run}`));
    const serve = cached(handler);
    await serve(behindNextStart(3000, { host: "fn.internal", "x-forwarded-host": "a.example" }));
    const other = await serve(
      behindNextStart(3000, { host: "fn.internal", "x-forwarded-host": "b.example" }),
    );
    expect(other.headers.get("x-cache")).toBe("MISS");
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it("falls back to req.url's host when there is no Host header", async () => {
    const keys: string[] = [];
    const key = (_req: Request, k: string) => {
      keys.push(k);
      return k;
    };
    const serve = cached(
      counting(() => new Response("x")),
      { key },
    );
    await serve(get("https://a.test/x"));
    expect(keys).toEqual(["route:a.test/x"]);
  });

  it("lets `key` leave the host out, from the parts it is given", async () => {
    const handler = counting((_req, run) => new Response(`run ${run}`));
    const serve = cached(handler, {
      key: (_req, _key, { path }) => `route:${path}`,
      vary: ["accept-language"],
    });
    await serve(behindNextStart(3000, { host: "a.example", "accept-language": "de" }));
    const otherHost = await serve(behindNextStart(3000, { host: "b.example", "accept-language": "de" }));
    expect(otherHost.headers.get("x-cache")).toBe("HIT");
    const otherLanguage = await serve(behindNextStart(3000, { host: "b.example", "accept-language": "fr" }));
    expect(otherLanguage.headers.get("x-cache")).toBe("MISS");
  });
});

describe("route: what is never cached", () => {
  it("passes a response with Set-Cookie through uncached, cookie intact", async () => {
    const handler = counting(() => new Response("hi", { headers: { "set-cookie": "session=abc" } }));
    const serve = cached(handler);
    const first = await serve(get("https://a.test/cookie"));
    const second = await serve(get("https://a.test/cookie"));
    expect(handler).toHaveBeenCalledTimes(2);
    expect(second.headers.get("x-cache")).toBe("BYPASS");
    expect(first.headers.get("set-cookie")).toBe("session=abc");
  });

  it.each(["authorization", "cookie"])("bypasses requests with %s, in both directions", async (header) => {
    const handler = counting((req) => new Response(req.headers.has(header) ? "for you" : "public"));
    const serve = cached(handler);
    await serve(get("https://a.test/who"));
    const personal = await serve(get("https://a.test/who", { [header]: "secret" }));
    expect(personal.headers.get("x-cache")).toBe("BYPASS");
    expect(await personal.text()).toBe("for you");
    await serve(get("https://a.test/who", { [header]: "secret" }));
    expect(handler).toHaveBeenCalledTimes(3);
    // …and what it got was not stored for anonymous callers.
    expect(await (await serve(get("https://a.test/who"))).text()).toBe("public");
  });

  it("caches credentialed requests under the key the `key` option gives", async () => {
    const handler = counting((req) => new Response(`for ${req.headers.get("authorization")}`));
    const serve = cached(handler, { key: (req, key) => `${key}|user=${req.headers.get("authorization")}` });
    await serve(get("https://a.test/me", { authorization: "alice" }));
    const alice = await serve(get("https://a.test/me", { authorization: "alice" }));
    expect(alice.headers.get("x-cache")).toBe("HIT");
    const bob = await serve(get("https://a.test/me", { authorization: "bob" }));
    expect(bob.headers.get("x-cache")).toBe("MISS");
    expect(await bob.text()).toBe("for bob");
  });

  it("bypasses requests for which `key` returns null", async () => {
    const handler = counting(() => new Response("x"));
    const serve = cached(handler, {
      key: (req, key) => (new URL(req.url).searchParams.has("debug") ? null : key),
    });
    await serve(get("https://a.test/k?debug=1"));
    const again = await serve(get("https://a.test/k?debug=1"));
    expect(again.headers.get("x-cache")).toBe("BYPASS");
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it.each(["no-store", "private, max-age=60", "no-cache"])(
    "does not store Cache-Control: %s",
    async (value) => {
      const handler = counting(() => new Response("x", { headers: { "cache-control": value } }));
      const serve = cached(handler);
      await serve(get("https://a.test/cc"));
      const second = await serve(get("https://a.test/cc"));
      expect(second.headers.get("x-cache")).toBe("BYPASS");
      expect(second.headers.get("cache-control")).toBe(value);
      expect(handler).toHaveBeenCalledTimes(2);
    },
  );

  it("stores a response that allows shared caching", async () => {
    const serve = cached(
      counting(() => new Response("x", { headers: { "cache-control": "public, max-age=60" } })),
    );
    await serve(get("https://a.test/public"));
    expect((await serve(get("https://a.test/public"))).headers.get("x-cache")).toBe("HIT");
  });

  it("does not store statuses outside `statuses`; stores 404 by default", async () => {
    const failing = counting(() => new Response("oops", { status: 500 }));
    const serve = cached(failing);
    await serve(get("https://a.test/500"));
    expect((await serve(get("https://a.test/500"))).headers.get("x-cache")).toBe("BYPASS");
    const missing = cached(counting(() => new Response("none", { status: 404 })));
    await missing(get("https://a.test/404"));
    const again = await missing(get("https://a.test/404"));
    expect([again.status, again.headers.get("x-cache")]).toEqual([404, "HIT"]);
    const only200 = cached(
      counting(() => new Response("none", { status: 404 })),
      { statuses: [200] },
    );
    await only200(get("https://a.test/404"));
    expect((await only200(get("https://a.test/404"))).headers.get("x-cache")).toBe("BYPASS");
  });

  it("does not store a response that varies on everything (Vary: *)", async () => {
    const handler = counting(() => new Response("x", { headers: { vary: "Accept-Language, *" } }));
    const serve = cached(handler);
    await serve(get("https://a.test/vary"));
    expect((await serve(get("https://a.test/vary"))).headers.get("x-cache")).toBe("BYPASS");
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it("passes a body over the cap through whole and uncached (streamed, no content-length)", async () => {
    const payload = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);
    const handler = counting(() => new Response(chunked(payload, 700)));
    const serve = cached(handler, { maxBodyBytes: 1000 });
    const first = await serve(get("https://a.test/big"));
    expect(first.headers.get("x-cache")).toBe("BYPASS");
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(payload);
    const second = await serve(get("https://a.test/big"));
    expect(second.headers.get("x-cache")).toBe("BYPASS");
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it("passes a body over the cap through when its content-length says so, without reading it", async () => {
    const handler = counting(() => new Response("0123456789", { headers: { "content-length": "10" } }));
    const serve = cached(handler, { maxBodyBytes: 9 });
    const first = await serve(get("https://a.test/len"));
    expect([first.headers.get("x-cache"), await first.text()]).toEqual(["BYPASS", "0123456789"]);
    const atCap = cached(
      counting(() => new Response("012345678")),
      { maxBodyBytes: 9 },
    );
    await atCap(get("https://a.test/len"));
    expect((await atCap(get("https://a.test/len"))).headers.get("x-cache")).toBe("HIT");
  });

  it("passes through and marks responses whose headers are immutable", async () => {
    const handler = counting(() => Response.redirect("https://a.test/elsewhere", 302));
    const res = await cached(handler)(get("https://a.test/redirect"));
    expect([res.status, res.headers.get("location"), res.headers.get("x-cache")]).toEqual([
      302,
      "https://a.test/elsewhere",
      "BYPASS",
    ]);
  });
});

describe("route: bodies", () => {
  it("returns a binary body byte-exact, on the miss and on the hit", async () => {
    const bytes = Uint8Array.from({ length: 1024 }, (_, i) => (i * 37 + 11) % 256);
    const serve = cached(
      counting(() => new Response(bytes, { headers: { "content-type": "application/octet-stream" } })),
    );
    const miss = new Uint8Array(await (await serve(get("https://a.test/bin"))).arrayBuffer());
    const hit = await serve(get("https://a.test/bin"));
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(miss).toEqual(bytes);
    expect(new Uint8Array(await hit.arrayBuffer())).toEqual(bytes);
  });

  it("caches a streamed body whole", async () => {
    const text = "chunk-".repeat(500);
    const handler = counting(() => new Response(chunked(new TextEncoder().encode(text), 64)));
    const serve = cached(handler);
    expect(await (await serve(get("https://a.test/stream"))).text()).toBe(text);
    const hit = await serve(get("https://a.test/stream"));
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(await hit.text()).toBe(text);
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("keeps a 204 bodiless", async () => {
    const serve = cached(counting(() => new Response(null, { status: 204 })));
    await serve(get("https://a.test/204"));
    const hit = await serve(get("https://a.test/204"));
    expect([hit.status, hit.headers.get("x-cache"), hit.body]).toEqual([204, "HIT", null]);
  });
});

describe("route: conditional requests and HEAD", () => {
  it("answers If-None-Match with 304 from the ETag it computed", async () => {
    const serve = cached(
      counting(() => new Response("tagged", { headers: { "cache-control": "max-age=5" } })),
    );
    const first = await serve(get("https://a.test/etag"));
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^W\/"[\w-]{24}"$/);
    const revalidated = await serve(get("https://a.test/etag", { "if-none-match": etag! }));
    expect(revalidated.status).toBe(304);
    expect(revalidated.body).toBeNull();
    expect(revalidated.headers.get("etag")).toBe(etag);
    expect(revalidated.headers.get("cache-control")).toBe("max-age=5");
    expect(revalidated.headers.get("x-cache")).toBe("HIT");
    const changed = await serve(get("https://a.test/etag", { "if-none-match": 'W/"other"' }));
    expect([changed.status, await changed.text()]).toEqual([200, "tagged"]);
  });

  it("computes the same ETag for the same bytes and a different one for others", async () => {
    const a = await cached(counting(() => new Response("one")))(get("https://a.test/e1"));
    const b = await cached(counting(() => new Response("one")))(get("https://a.test/e2"));
    const c = await cached(counting(() => new Response("two")))(get("https://a.test/e3"));
    expect(a.headers.get("etag")).toBe(b.headers.get("etag"));
    expect(a.headers.get("etag")).not.toBe(c.headers.get("etag"));
  });

  it("keeps the handler's own ETag and compares weakly, in lists and with *", async () => {
    const serve = cached(counting(() => new Response("v", { headers: { etag: '"v1,rev"' } })));
    const miss = await serve(get("https://a.test/own", { "if-none-match": 'W/"v1,rev"' }));
    expect([miss.status, miss.headers.get("x-cache")]).toEqual([304, "MISS"]);
    const listed = await serve(get("https://a.test/own", { "if-none-match": '"x", W/"v1,rev"' }));
    expect([listed.status, listed.headers.get("etag")]).toEqual([304, '"v1,rev"']);
    expect((await serve(get("https://a.test/own", { "if-none-match": "*" }))).status).toBe(304);
    expect((await serve(get("https://a.test/own", { "if-none-match": '"v1"' }))).status).toBe(200);
  });

  it("serves HEAD from the GET entry: same headers, no body, the GET body's length", async () => {
    const handler = counting(
      () => new Response("twelve bytes", { headers: { "content-type": "text/plain" } }),
    );
    const serve = cached(handler);
    await serve(get("https://a.test/head"));
    const head = await serve(new Request("https://a.test/head", { method: "HEAD" }));
    expect(head.headers.get("x-cache")).toBe("HIT");
    expect(head.headers.get("content-type")).toBe("text/plain");
    expect(head.headers.get("content-length")).toBe("12");
    expect(head.body).toBeNull();
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("does not store what a HEAD miss got (it may have no body), so the next GET misses", async () => {
    const handler = counting((req) => new Response(req.method === "HEAD" ? null : "full"));
    const serve = cached(handler);
    const head = await serve(new Request("https://a.test/head-first", { method: "HEAD" }));
    expect(head.headers.get("x-cache")).toBe("MISS");
    const after = await serve(get("https://a.test/head-first"));
    expect([after.headers.get("x-cache"), await after.text()]).toEqual(["MISS", "full"]);
  });
});

describe("route: request Cache-Control", () => {
  it("no-cache skips the read and refreshes the entry", async () => {
    const handler = counting((_req, run) => new Response(`v${run}`));
    const serve = cached(handler);
    await serve(get("https://a.test/nc"));
    const refreshed = await serve(get("https://a.test/nc", { "cache-control": "no-cache" }));
    expect([refreshed.headers.get("x-cache"), await refreshed.text()]).toEqual(["MISS", "v2"]);
    const next = await serve(get("https://a.test/nc"));
    expect([next.headers.get("x-cache"), await next.text()]).toEqual(["HIT", "v2"]);
  });

  it("no-store neither reads nor writes", async () => {
    const handler = counting((_req, run) => new Response(`v${run}`));
    const serve = cached(handler);
    await serve(get("https://a.test/ns"));
    const bypass = await serve(get("https://a.test/ns", { "cache-control": "no-store" }));
    expect([bypass.headers.get("x-cache"), await bypass.text()]).toEqual(["BYPASS", "v2"]);
    expect(await (await serve(get("https://a.test/ns"))).text()).toBe("v1");
  });
});

describe("route: writes invalidate", () => {
  const post = (url: string) => new Request(url, { method: "POST", body: "{}" });

  it("a successful POST invalidates the route's entry for that URL and its tags", async () => {
    const cache = l1Cache();
    let version = 1;
    const item = route(
      cache,
      async (req: Request) => {
        if (req.method === "POST") {
          version++;
          return new Response(null, { status: 201 });
        }
        return new Response(`item v${version}`);
      },
      { tags: (req) => [`item:${new URL(req.url).pathname}`] },
    );
    const byTag = route(cache, async () => new Response(`list v${version}`), { tags: ["item:/items/1"] });
    await item(get("https://a.test/items/1"));
    await byTag(get("https://a.test/items"));
    expect((await item(get("https://a.test/items/1"))).headers.get("x-cache")).toBe("HIT");
    const created = await item(post("https://a.test/items/1"));
    expect(created.status).toBe(201);
    const after = await item(get("https://a.test/items/1"));
    expect([after.headers.get("x-cache"), await after.text()]).toEqual(["MISS", "item v2"]);
    expect((await byTag(get("https://a.test/items"))).headers.get("x-cache")).toBe("MISS");
  });

  it("invalidates keys, tags and patterns given by `invalidates`, and nothing after a failure", async () => {
    const cache = l1Cache();
    let ok = false;
    const list = route(cache, async () => new Response("list"), { tags: ["list"] });
    const write = route(cache, async () => new Response(null, { status: ok ? 204 : 409 }), {
      invalidates: (req) => ({
        tags: ["list"],
        keys: [`raw:${new URL(req.url).pathname}`],
        patterns: ["pat:*"],
      }),
    });
    await list(get("https://a.test/list"));
    await cache.set("raw:/w", 1);
    await cache.set("pat:one", 1);
    await write(new Request("https://a.test/w", { method: "DELETE" }));
    expect((await list(get("https://a.test/list"))).headers.get("x-cache")).toBe("HIT");
    expect(await cache.get("raw:/w")).toBe(1);
    ok = true;
    await write(new Request("https://a.test/w", { method: "DELETE" }));
    expect((await list(get("https://a.test/list"))).headers.get("x-cache")).toBe("MISS");
    expect(await cache.get("raw:/w")).toBeUndefined();
    expect(await cache.get("pat:one")).toBeUndefined();
  });

  it("OPTIONS (a CORS preflight) invalidates nothing", async () => {
    const cache = l1Cache();
    const serve = route(cache, async () => new Response("x"), { tags: ["t"] });
    await serve(get("https://a.test/o"));
    await serve(new Request("https://a.test/o", { method: "OPTIONS" }));
    expect((await serve(get("https://a.test/o"))).headers.get("x-cache")).toBe("HIT");
  });
});

describe("route: failures", () => {
  const down: Transport = {
    kind: "down",
    send: async () => {
      throw new Error("connection refused");
    },
    pipeline: async () => {
      throw new Error("connection refused");
    },
    close: async () => {},
  };

  it("serves the handler's response when the cache throws (failSilently off)", async () => {
    const cache = createCache({ redis: down, env: {}, failSilently: false, logger: quiet, l1: false });
    const handler = counting(() => new Response("from handler"));
    const res = await route(cache, handler)(get("https://a.test/down"));
    expect([res.status, res.headers.get("x-cache"), await res.text()]).toEqual([
      200,
      "BYPASS",
      "from handler",
    ]);
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("lets the handler's own error through", async () => {
    const serve = cached(async () => {
      throw new Error("handler broke");
    });
    await expect(serve(get("https://a.test/broken"))).rejects.toThrow("handler broke");
  });

  it("rejects a bad ttl when the route is defined", () => {
    expect(() => route(l1Cache(), async () => new Response(""), { ttl: "soon" })).toThrow(/invalid ttl/);
  });
});

describe("route: waitUntil", () => {
  const vercelSlot = Symbol.for("@vercel/request-context");
  afterEach(() => {
    delete (globalThis as Record<symbol, unknown>)[vercelSlot];
  });

  it("takes waitUntil from a context argument, bound to it (Cloudflare's ctx, Hono's executionCtx)", async () => {
    const scheduled: Promise<unknown>[] = [];
    const ctx = {
      waitUntil(this: unknown, promise: Promise<unknown>) {
        if (this !== ctx) throw new TypeError("Illegal invocation");
        scheduled.push(promise);
      },
    };
    const waitUntil = await waitUntilFrom([{ NAME: "env" }, ctx]);
    waitUntil?.(Promise.resolve());
    expect(scheduled).toHaveLength(1);
  });

  it("uses @vercel/functions' waitUntil inside a Vercel request, and nothing outside one", async () => {
    expect(await waitUntilFrom([{ params: Promise.resolve({}) }])).toBeUndefined();
    const received: Promise<unknown>[] = [];
    (globalThis as Record<symbol, unknown>)[vercelSlot] = {
      get: () => ({ waitUntil: (promise: Promise<unknown>) => received.push(promise) }),
    };
    const waitUntil = await waitUntilFrom([{ params: Promise.resolve({}) }]);
    const work = Promise.resolve("written");
    waitUntil?.(work);
    expect(received).toEqual([work]);
  });

  it("hands the miss's Redis write to the request's waitUntil", async () => {
    const { transport: redis, written } = recordingTransport();
    const cache = createCache({ redis, env: {}, logger: quiet });
    const scheduled: Promise<unknown>[] = [];
    const serve = route(cache, async (_req: Request, _env: unknown, _ctx: unknown) => new Response("x"));
    await serve(get("https://a.test/wu"), {}, { waitUntil: (p: Promise<unknown>) => scheduled.push(p) });
    // The write, and the once-per-instance version registration; nothing is left to float.
    expect(scheduled.length).toBeGreaterThanOrEqual(1);
    await Promise.all(scheduled);
    expect(written).toEqual([expect.stringContaining("route:a.test/wu")]);
  });
});

describe("healthHandler", () => {
  it("answers 200 with the report when healthy, never cached", async () => {
    const res = await healthHandler(l1Cache())(get("https://a.test/health"));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toMatchObject({ healthy: true, transport: "none", breaker: "closed" });
  });

  it("answers 503 when unhealthy, masking credentials and leaving out unknown fields", async () => {
    const cache = {
      health: async () => ({
        healthy: false,
        latencyMs: null,
        transport: "node-redis",
        version: "1",
        l1: null,
        breaker: "open" as const,
        error: "connect ECONNREFUSED redis://default:hunter2@10.0.0.1:6379 (Bearer tok123)",
        keys: ["tc:secret"],
      }),
    };
    const res = await healthHandler(cache)(get("https://a.test/health"));
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("tok123");
    expect(text).not.toContain("tc:secret");
    expect(JSON.parse(text)).toMatchObject({
      healthy: false,
      breaker: "open",
      error: expect.stringContaining("***@"),
    });
  });

  it("answers 503 when health() itself throws", async () => {
    const res = await healthHandler({ health: () => Promise.reject(new Error("boom")) })(
      get("https://a.test/health"),
    );
    expect(res.status).toBe(503);
  });
});

/** A body delivered in `size`-byte chunks, with no content-length. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleForWorkerd } from "../support/workerd-bundle.js";

/**
 * route()'s HTTP semantics inside workerd (issue 16): the handler's own Cache-Control decides
 * freshness, Vary splits entries (Accept-Encoding normalised), If-Modified-Since gets a 304, and the
 * CDN headers go out — bundled as wrangler would, L1 only (the tier does not change these rules).
 */
const root = fileURLToPath(new URL("../../", import.meta.url));

const ENTRY = `
import { createCache } from "tiercache";
const cache = createCache({ redis: false, env: {} });
let runs = 0;
const handler = async (req) => {
  runs++;
  const path = new URL(req.url).pathname;
  const headers = { "cache-control": "s-maxage=1, max-age=600", "x-run": String(runs) };
  if (path === "/lang") headers.vary = "Accept-Encoding, Accept-Language";
  if (path === "/modified") headers["last-modified"] = "Tue, 01 Dec 2026 00:00:00 GMT";
  return new Response(path + " " + (req.headers.get("accept-language") ?? ""), { headers });
};
const cached = cache.route(handler, { tags: ["pages"], cdn: { ttl: "1m" } });
// Node's fetch adds "cache-control: no-cache" to any request carrying If-Modified-Since (as the Fetch
// standard says), which a cache must honour; the test sends the date under another name.
export default {
  fetch(req, env, ctx) {
    const since = req.headers.get("x-test-if-modified-since");
    if (since) req = new Request(req.url, { headers: { "if-modified-since": since } });
    return cached(req, env, ctx);
  },
};
`;

describe("route() HTTP semantics in workerd", () => {
  let mf: Miniflare;

  beforeAll(async () => {
    const script = await bundleForWorkerd(ENTRY, "route-http-entry.js");
    mf = new Miniflare({
      modules: [{ type: "ESModule", path: `${root}route-http.mjs`, contents: script }],
      compatibilityDate: "2026-04-01",
    });
    await mf.ready;
  }, 60_000);
  afterAll(() => mf?.dispose());

  const fetchIt = async (path: string, headers: Record<string, string> = {}) => {
    const res = await mf.dispatchFetch(`http://w.test${path}`, { headers });
    return {
      status: res.status,
      xCache: res.headers.get("x-cache"),
      run: res.headers.get("x-run"),
      res,
      body: await res.text(),
    };
  };

  it("fresh for the response's s-maxage, then a miss", async () => {
    expect((await fetchIt("/fresh")).xCache).toBe("MISS");
    const hit = await fetchIt("/fresh");
    expect(hit.xCache).toBe("HIT");
    expect(hit.res.headers.get("cdn-cache-control")).toBe("max-age=60");
    expect(hit.res.headers.get("cache-tag")).toBe("pages");
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await fetchIt("/fresh")).xCache).toBe("MISS");
  });

  it("Vary splits per language and per normalised encoding", async () => {
    const en = await fetchIt("/lang", { "accept-language": "en", "accept-encoding": "gzip, deflate, br" });
    const fr = await fetchIt("/lang", { "accept-language": "fr", "accept-encoding": "br" });
    expect([en.xCache, fr.xCache]).toEqual(["MISS", "MISS"]);
    const enAgain = await fetchIt("/lang", { "accept-language": "en", "accept-encoding": "br;q=1" });
    expect([enAgain.xCache, enAgain.body, enAgain.run]).toEqual(["HIT", "/lang en", en.run]);
    expect((await fetchIt("/lang", { "accept-language": "fr", "accept-encoding": "br" })).body).toBe(
      "/lang fr",
    );
  });

  it("If-Modified-Since is answered 304 from the entry", async () => {
    expect((await fetchIt("/modified")).xCache).toBe("MISS");
    expect((await fetchIt("/modified")).xCache).toBe("HIT");
    const res = await fetchIt("/modified", { "x-test-if-modified-since": "Wed, 02 Dec 2026 00:00:00 GMT" });
    expect([res.status, res.xCache]).toEqual([304, "HIT"]);
  });
});

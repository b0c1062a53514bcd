import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { recordingTransport } from "../support/recording-transport.js";

describe("route() under Hono", () => {
  it("caches a mounted handler and hands its Redis write to Hono's executionCtx.waitUntil", async () => {
    const { transport: redis, written } = recordingTransport();
    const cache = createCache({ redis, env: {}, logger: { warn: () => {} } });
    let renders = 0;
    const app = new Hono();
    app.mount(
      "/api",
      cache.route(
        async (req: Request) => Response.json({ path: new URL(req.url).pathname, renders: ++renders }),
        {
          ttl: "1m",
        },
      ),
    );

    const scheduled: Promise<unknown>[] = [];
    const executionCtx = {
      waitUntil: (p: Promise<unknown>) => {
        scheduled.push(p);
      },
      passThroughOnException() {},
      props: {},
    };
    const first = await app.fetch(new Request("https://h.test/api/items?b=2&a=1"), {}, executionCtx);
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(scheduled.length).toBeGreaterThanOrEqual(1);
    await Promise.all(scheduled);
    // app.mount strips its prefix before the handler sees the URL; the query is keyed sorted.
    expect(written).toEqual([expect.stringContaining("route:h.test/items?a=1&b=2")]);

    const second = await app.fetch(new Request("https://h.test/api/items?a=1&b=2"), {}, executionCtx);
    expect(second.headers.get("x-cache")).toBe("HIT");
    expect(await second.json()).toEqual(await first.json());
    expect(renders).toBe(1);
  });

  it("takes freshness from a Hono handler's own Cache-Control (c.header) when the route gives no ttl", async () => {
    const cache = createCache({ redis: false, env: {}, logger: { warn: () => {} } });
    let renders = 0;
    const api = new Hono();
    api.get("/news", (c) => {
      c.header("cache-control", "public, s-maxage=1");
      c.header("vary", "Accept-Language");
      return c.text(`${c.req.header("accept-language")} ${++renders}`);
    });
    const app = new Hono();
    app.mount(
      "/",
      cache.route((req: Request) => api.fetch(req), { cdn: { ttl: "10s" } }),
    );
    const ask = async (lang: string) => {
      const res = await app.fetch(
        new Request("https://h.test/news", { headers: { "accept-language": lang } }),
      );
      return [res.headers.get("x-cache"), await res.text(), res.headers.get("cdn-cache-control")];
    };
    expect(await ask("en")).toEqual(["MISS", "en 1", "max-age=10"]);
    expect(await ask("de")).toEqual(["MISS", "de 2", "max-age=10"]);
    expect(await ask("en")).toEqual(["HIT", "en 1", "max-age=10"]);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await ask("en")).toEqual(["MISS", "en 3", "max-age=10"]);
  });
});

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
});

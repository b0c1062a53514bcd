/**
 * A Cloudflare Worker caching its responses with tiercache: L1 in the isolate, L2 in Upstash Redis
 * over REST (fetch). The root `wrangler.toml` points here: `npx wrangler dev` / `npx wrangler deploy`.
 *
 *   GET  /products?id=1   cached 5 minutes, tagged `product:1` (x-cache: MISS, then HIT)
 *   POST /products?id=1   "updates" product 1, then invalidates `product:1` everywhere
 *   GET  /health          the cache's health report (200 / 503)
 */
import { createCache } from "tiercache";
import { upstash } from "tiercache/upstash";

export type Env = {
  UPSTASH_REDIS_REST_URL: string;
  /** A secret: `npx wrangler secret put UPSTASH_REDIS_REST_TOKEN` (`.dev.vars` locally). */
  UPSTASH_REDIS_REST_TOKEN: string;
};

/** The part of Cloudflare's ExecutionContext tiercache uses: writes to Redis finish after the response. */
interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

type Handler = (req: Request, env: Env, ctx: ExecutionContext) => Promise<Response>;

const productId = (req: Request) => new URL(req.url).searchParams.get("id") ?? "1";

/** The expensive origin work worth caching (a stand-in for a database or an upstream API). */
async function product(req: Request): Promise<Response> {
  if (req.method === "POST") return new Response(null, { status: 204 });
  const id = productId(req);
  await new Promise((resolve) => setTimeout(resolve, 20));
  return Response.json({ id, name: `Product ${id}`, renderedAt: new Date().toISOString() });
}

/** Workers hand `env` to `fetch`, so the cache is built on the first request and kept by the isolate. */
function build(env: Env): Handler {
  const cache = createCache({
    env,
    redis: upstash({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
  });
  // `ctx` goes through to the route, which hands its Redis writes to `ctx.waitUntil`.
  const products = cache.route((req: Request, _env: Env, _ctx: ExecutionContext) => product(req), {
    ttl: "5m",
    tags: (req) => [`product:${productId(req)}`],
  });
  const health = cache.healthHandler();
  return (req, env, ctx) => {
    const { pathname } = new URL(req.url);
    if (pathname === "/products") return products(req, env, ctx);
    if (pathname === "/health") return health(req);
    return Promise.resolve(new Response("not found", { status: 404 }));
  };
}

let app: Handler | undefined;

export default {
  fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    app ??= build(env);
    return app(req, env, ctx);
  },
};

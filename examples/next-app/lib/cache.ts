import { type Cache, createCache } from "tiercache";

/**
 * One cache per server process. Next bundles each route and page on its own, so a plain
 * module-scope `createCache()` can run once per bundle: separate L1s, one Redis connection each.
 * Keeping the instance on `globalThis` makes every bundle (and `next dev`'s reloads) share one.
 *
 * Everything comes from the environment: UPSTASH_REDIS_REST_URL/TOKEN (or Vercel KV's KV_REST_API_*)
 * for Redis over REST (plain fetch, nothing more to install), REDIS_URL for TCP (`npm i redis`),
 * neither for L1 only. Nothing connects at import or during `next build`.
 */
const shared = globalThis as typeof globalThis & { __tiercache?: Cache };

shared.__tiercache ??= createCache();

export const cache: Cache = shared.__tiercache;

import { createCache } from "tiercache";

/**
 * One cache per function instance, at module scope: warm invocations reuse its L1 and its Redis
 * connection. Everything comes from the environment — UPSTASH_REDIS_REST_URL/TOKEN (or Vercel KV's
 * KV_REST_API_*) for Redis over REST, REDIS_URL for TCP, neither for L1 only. Nothing connects at
 * import, so `next build` never touches Redis.
 */
export const cache = createCache();

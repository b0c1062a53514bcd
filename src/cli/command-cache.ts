import { type Cache, createCache } from "../cache.js";
import { asError } from "../errors.js";
import type { CacheOptions, HealthReport, Logger } from "../types.js";

/**
 * The cache a CLI command works on, configured from the same environment as the app, once Redis has
 * answered — or the exit code when there is nothing to work on: 2 for no Redis or a bad
 * configuration, 1 when Redis is unreachable. Lines name the transport's kind only, never its URL
 * or token. `health()` rather than `connect()`: connecting registers the version and may start an
 * automatic flush, which a dry run must not do and an explicit flush does itself.
 */
export async function commandCache(
  command: string,
  options: CacheOptions,
): Promise<{ cache: Cache; health: HealthReport } | number> {
  const say = (message: string) => console.error(`tiercache ${command}: ${message}`);
  const logger: Logger = { warn: say, error: say };
  let cache: Cache;
  try {
    // Generous per-batch deadline: nobody waits on an operator's command the way a request waits on a read.
    cache = createCache({ logger, timeoutMs: 10_000, ...options });
  } catch (error) {
    say(asError(error).message);
    return 2;
  }
  const health = await cache.health();
  if (health.transport === "none") {
    say("no Redis configured (set REDIS_URL, or UPSTASH_REDIS_REST_URL and its token)");
    return 2;
  }
  if (!health.healthy) {
    say(`Redis unreachable via ${health.transport}: ${health.error}`);
    await cache.close();
    return 1;
  }
  return { cache, health };
}

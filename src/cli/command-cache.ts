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

/** Progress lines at most this often, so a long scan shows it is alive without flooding CI logs. */
const PROGRESS_EVERY_MS = 1000;

/**
 * Runs a command's work on its cache, then closes it: 0 when the work is done, 1 when Redis failed
 * on the way (the reason on stderr — errors crossing the public API are redacted already).
 */
export async function runOn(command: string, cache: Cache, work: () => Promise<void>): Promise<number> {
  try {
    await work();
    return 0;
  } catch (error) {
    console.error(`tiercache ${command}: failed: ${asError(error).message}`);
    return 1;
  } finally {
    await cache.close();
  }
}

/** An `onProgress` callback that prints `line(count)` on stderr at most once every second. */
export function progressLines(line: (count: number) => string): (count: number) => void {
  let reportedAt = performance.now();
  return (count) => {
    if (performance.now() - reportedAt < PROGRESS_EVERY_MS) return;
    reportedAt = performance.now();
    console.error(`  … ${line(count)}`);
  };
}

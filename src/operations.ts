import type { CacheCore } from "./core.js";
import { asError, CacheError } from "./errors.js";
import { runFlush } from "./flush.js";
import type { CacheStats, ConnectResult, FlushOptions, FlushResult, HealthReport } from "./types.js";

/** Operations on the cache as a whole: reachability, health, counts. Never on a request's data path. */

/** Round-trip time to Redis in ms; throws a CacheError when it cannot be reached or there is none. */
export async function ping(core: CacheCore): Promise<number> {
  if (!core.l2) throw new CacheError("UNAVAILABLE", "no Redis configured (L1 only)");
  const started = performance.now();
  await core.l2.send(["PING"]);
  return performance.now() - started;
}

/** Connects now and registers the version; never throws. */
export async function connect(core: CacheCore): Promise<ConnectResult> {
  const base = {
    transport: core.l2?.kind ?? "none",
    version: core.config.version,
    flushedVersions: [] as string[],
  };
  if (!core.l2) return { connected: false, ...base };
  try {
    await ping(core);
    const flushedVersions = await core.ensureRegistered();
    core.config.logger.info?.("Cache connected", { transport: base.transport, version: base.version });
    return { connected: true, ...base, flushedVersions };
  } catch (error) {
    return { connected: false, ...base, error: asError(error).message };
  }
}

/** Removes the keys of one flush scope (flush.ts); Redis failures are thrown. */
export async function flush(core: CacheCore, options: FlushOptions): Promise<FlushResult> {
  // Registered first so that the current version is dated; a dry run writes nothing.
  if (!options.dryRun) {
    await core.ensureRegistered(false);
    // A loader running now must not refill L1 with what the flush removes (stale versions: nothing current).
    if ((options.scope ?? "stale-versions") !== "stale-versions") core.coherence.supersedeAll();
  }
  return runFlush(core.flushContext(), options);
}

/** State of both tiers and Redis, safe to expose: no keys, no secrets. */
export async function health(core: CacheCore): Promise<HealthReport> {
  const { l1: tier, l2, breaker } = core;
  const l1 = tier
    ? { entries: tier.entries, bytes: tier.bytes, maxEntries: tier.maxEntries, maxBytes: tier.maxBytes }
    : null;
  const base = { transport: l2?.kind ?? "none", version: core.config.version, l1 };
  if (!l2) return { healthy: true, latencyMs: null, breaker: breaker.state, ...base };
  try {
    const latencyMs = await ping(core);
    const info = await l2.send(["INFO"]);
    const topology = await l2.topology();
    return {
      healthy: true,
      latencyMs,
      breaker: breaker.state,
      ...base,
      redis: typeof info === "string" ? parseInfo(info) : undefined,
      ...(topology ? { topology } : {}),
    };
  } catch (error) {
    const topology = await l2.topology();
    return {
      healthy: false,
      latencyMs: null,
      breaker: breaker.state,
      ...base,
      error: asError(error).message,
      ...(topology ? { topology } : {}),
    };
  }
}

/** Hits per tier, misses, stale served, loads, errors, hit rate — this instance since it started. */
export function stats(core: CacheCore): CacheStats {
  const { l1, l2, misses, stale, warm, loads, errors } = core.counts;
  const reads = l1 + l2 + stale + warm + misses;
  return {
    hits: { l1, l2 },
    misses,
    staleServed: stale,
    warm,
    loads,
    errors,
    hitRate: reads === 0 ? 0 : (l1 + l2 + stale + warm) / reads,
  };
}

/** The few INFO fields health() reports; Upstash answers a subset, so each is optional. */
function parseInfo(info: string): NonNullable<HealthReport["redis"]> {
  const field = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(info)?.[1]?.trim() ?? "";
  return {
    version: field("redis_version"),
    usedMemory: Number(field("used_memory")) || 0,
    connectedClients: Number(field("connected_clients")) || 0,
    uptimeSeconds: Number(field("uptime_in_seconds")) || 0,
  };
}

import { redact } from "../redact.js";
import type { HealthReport } from "../types.js";

/** What {@link healthHandler} needs of a cache. */
export interface HealthCache {
  health(): Promise<HealthReport>;
}

/**
 * A Web handler answering `cache.health()` as JSON: 200 when healthy, 503 otherwise, never cached.
 * Safe to expose: only the report's known fields go out (no keys), and credentials a Redis URL
 * might carry in an error message are masked.
 */
export function healthHandler(cache: HealthCache): (req: Request) => Promise<Response> {
  return async () => {
    let report: HealthReport;
    try {
      report = await cache.health();
    } catch {
      return json({ healthy: false, error: "health check failed" }, 503);
    }
    return json(publicReport(report), report.healthy ? 200 : 503);
  };
}

function publicReport(report: HealthReport): HealthReport {
  const { healthy, latencyMs, transport, version, redis, l1, breaker, error } = report;
  const shown: HealthReport = { healthy, latencyMs, transport, version, l1, breaker };
  if (redis) {
    const { version: redisVersion, usedMemory, connectedClients, uptimeSeconds } = redis;
    shown.redis = { version: redisVersion, usedMemory, connectedClients, uptimeSeconds };
  }
  if (error !== undefined) shown.error = redact(error);
  return shown;
}

function json(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

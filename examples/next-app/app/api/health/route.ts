import { cache } from "../../../lib/cache";

export const dynamic = "force-dynamic";

/** GET /api/health — the cache's health report: 200 healthy, 503 otherwise; no keys, no secrets. */
export const GET = cache.healthHandler();

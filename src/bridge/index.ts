/**
 * `tiercache/bridge`: an Upstash-REST-compatible HTTP server in front of a TCP Redis, for local
 * development, CI and workerd tests — the real `@upstash/redis` client works against it unchanged.
 *
 * ```ts
 * import { startBridge } from "tiercache/bridge";
 * const bridge = await startBridge({ redisUrl: "redis://127.0.0.1:6379", token: "dev-token-0123456789" });
 * // UPSTASH_REDIS_REST_URL=bridge.url UPSTASH_REDIS_REST_TOKEN=dev-token-0123456789
 * await bridge.close();
 * ```
 *
 * Node only (`node:http`, `redis`).
 * @module
 */
export type { BridgeLogger } from "./logger.js";
export { type Bridge, type BridgeOptions, startBridge } from "./server.js";

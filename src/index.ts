/**
 * tiercache — an in-process LRU (L1) in front of Redis (L2) for serverless and edge functions.
 * This entry is edge-safe (Web APIs only); Node-only parts live behind `tiercache/redis` and
 * `tiercache/bridge`, and the TCP transport it configures from `REDIS_URL` behind the `#tcp`
 * subpath import, which only the `node` condition resolves to code (src/transports/tcp.ts).
 */
export { Cache, createCache } from "./cache.js";
export { type CdnPurger, type CloudflareCdnOptions, cloudflareCdn, vercelCdn } from "./cdn.js";
export type { EncryptionKey, EncryptionOptions } from "./encryption.js";
export { CacheError, type CacheErrorCode } from "./errors.js";
export type { RequestKeyParts } from "./http/cache-key.js";
export type { CdnOptions } from "./http/cdn.js";
export type { RouteHandler, RouteOptions } from "./http/route.js";
export { escapeGlob, KeySpace } from "./keys.js";
export type {
  CacheReport,
  EnvironmentReport,
  NamespaceReport,
  ReportOptions,
  Usage,
  VersionReport,
} from "./report.js";
export type { StandardSchemaV1 } from "./standard-schema.js";
export type { OperationSpan, Telemetry, TelemetryFactory, TelemetryScope } from "./telemetry.js";
export type { RedisArg, RedisReply, Topology, Transport } from "./transports/types.js";
export type * from "./types.js";

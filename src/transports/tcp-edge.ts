/**
 * The `"#tcp"` import under the `workerd`, `worker`, `edge-light` and `browser` conditions (and by
 * default): these runtimes cannot open TCP sockets to Redis, so the bundle carries no TCP code and
 * `createCache` refuses `REDIS_URL`/`REDIS_HOST` with this reason. See tcp.ts.
 */

export const tcpUnavailable: string | undefined =
  "TCP connections to Redis need the Node.js runtime, and this build is for another one (Workers, Edge or a browser)";

export const loadNodeRedis: (() => Promise<typeof import("./node-redis.js")>) | undefined = undefined;

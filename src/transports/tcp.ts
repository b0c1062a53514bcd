/**
 * How the core reaches the TCP transport when it configures itself from `REDIS_URL`/`REDIS_HOST`.
 *
 * The published package maps the core's import of this module through the `"#tcp"` subpath import
 * (package.json `imports`): this file under the `node` condition, `tcp-edge.ts` under `workerd`,
 * `worker`, `edge-light`, `browser` and by default. So a Workers or Edge bundle never contains
 * node-redis at all, while a Node bundle gets it as an ordinary relative import every bundler and
 * file tracer follows. node-redis.ts imports `redis` in a try/catch, which webpack, Turbopack and
 * esbuild bundle when it is installed and otherwise leave to fail at run time (a CONFIG error).
 */

/** Undefined: TCP can work in this build. */
export const tcpUnavailable: string | undefined = undefined;

/** Loads the node-redis transport module on first use (it is not needed before the first command). */
export const loadNodeRedis: (() => Promise<typeof import("./node-redis.js")>) | undefined = () =>
  import("./node-redis.js");

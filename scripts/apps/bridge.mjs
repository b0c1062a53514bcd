/**
 * Redis over the Upstash REST API for the apps: `tiercache bridge`, run from an app that installed the
 * tarball and `redis` (as a user would `npx tiercache bridge`), in front of its own redis-server.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { cleanEnv, freePort, start, waitFor } from "./harness.mjs";
import { startRedis } from "./redis.mjs";

/** `{ url, token, redis, stop() }`: the REST endpoint, its token, and the redis-server behind it. */
export async function startRestBackend(bridgeApp) {
  const redis = await startRedis();
  const token = randomBytes(16).toString("hex");
  const port = await freePort();
  const bridge = start(
    join(bridgeApp, "node_modules/.bin/tiercache"),
    ["bridge", "--port", String(port), "--redis", redis.url],
    // The token through the environment, not argv (which other local users can read).
    { cwd: bridgeApp, env: cleanEnv({ TIERCACHE_BRIDGE_TOKEN: token }), name: `tiercache bridge :${port}` },
  );
  const stop = async () => {
    await bridge.stop();
    await redis.stop();
  };
  try {
    await waitFor("the bridge's URL line", () => /tiercache bridge: http/.test(bridge.output()), {
      timeoutMs: 20_000,
      proc: bridge,
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, token, redis, stop };
}

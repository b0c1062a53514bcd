import { createClient } from "redis";
import { startBridge } from "../../src/bridge/server.js";
import { createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { upstash } from "../../src/transports/upstash.js";
import type { CacheOptions } from "../../src/types.js";

const connectRaw = (url: string) => createClient({ url });
type RawRedis = ReturnType<typeof connectRaw>;

/** One way of reaching L2 the cache suite runs against; `raw` talks to the same Redis directly. */
export interface Backend {
  readonly name: string;
  /** A transport for one cache instance (each instance = one function instance). */
  transport(): Transport | false;
  /** Direct access to the Redis behind it, for assertions; null for L1-only. */
  readonly raw: RawRedis | null;
  close(): Promise<void>;
}

const BRIDGE_TOKEN = "test-token-backends";

export async function openBackend(name: "l1" | "node-redis" | "upstash", redisUrl: string): Promise<Backend> {
  if (name === "l1") return { name, transport: () => false, raw: null, close: async () => {} };
  const raw = connectRaw(redisUrl);
  await raw.connect();
  const transports: Transport[] = [];
  if (name === "node-redis") {
    return {
      name,
      raw,
      transport: () => {
        const t = nodeRedis({ url: redisUrl });
        transports.push(t);
        return t;
      },
      close: async () => {
        await Promise.all(transports.map((t) => t.close()));
        raw.destroy();
      },
    };
  }
  const bridge = await startBridge({ redisUrl, token: BRIDGE_TOKEN, port: 0 });
  return {
    name,
    raw,
    transport: () => {
      const t = upstash({ url: bridge.url, token: BRIDGE_TOKEN });
      transports.push(t);
      return t;
    },
    close: async () => {
      await Promise.all(transports.map((t) => t.close()));
      await bridge.close();
      raw.destroy();
    },
  };
}

let instances = 0;

/** A cache instance on `backend` in an environment prefix of its own unless one is given. */
export function cacheOn(backend: Backend, options: CacheOptions = {}) {
  return createCache({
    redis: backend.transport(),
    env: {},
    prefix: `t${++instances}`,
    logger: { warn: () => {} },
    ...options,
  });
}

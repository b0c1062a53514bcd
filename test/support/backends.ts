import { createClient, createCluster } from "redis";
import { startBridge } from "../../src/bridge/server.js";
import { createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { upstash } from "../../src/transports/upstash.js";
import type { CacheOptions } from "../../src/types.js";
import { type RedisClusterHandle, startRedisCluster } from "./redis-cluster.js";

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

export type BackendName = "l1" | "node-redis" | "upstash" | "cluster";

/**
 * The backend `name`; `redisUrl` is the file's own database on the shared Redis. "cluster" starts a
 * local 3 + 3 node Redis Cluster of its own instead (a few seconds, once per file), stopped by close().
 */
export async function openBackend(name: BackendName, redisUrl: string): Promise<Backend> {
  if (name === "l1") return { name, transport: () => false, raw: null, close: async () => {} };
  if (name === "cluster") return openCluster();
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

/** The cluster as a backend; `raw` is a node-redis cluster client (same command methods, routed by slot). */
async function openCluster(): Promise<Backend & { cluster: RedisClusterHandle }> {
  const cluster = await startRedisCluster();
  const rootNodes = cluster.addresses;
  const raw = createCluster({
    rootNodes: rootNodes.map((address) => ({ url: `redis://${address}` })),
    RESP: 2,
  });
  raw.on("error", () => {});
  await raw.connect();
  const transports: Transport[] = [];
  return {
    name: "cluster",
    cluster,
    raw: raw as unknown as RawRedis,
    transport: () => {
      const t = nodeRedis({ cluster: { rootNodes } });
      transports.push(t);
      return t;
    },
    close: async () => {
      await Promise.all(transports.map((t) => t.close()));
      raw.destroy();
      await cluster.stop();
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

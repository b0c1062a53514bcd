import { createClient, type RedisClientType } from "redis";
import { afterAll, beforeAll } from "vitest";
import { startBridge } from "../../src/bridge/server.js";
import { type RedisServerHandle, startRedisServer } from "./redis-server.js";

/** What reading the stats needs of a client: node-redis clients of any generic shape fit. */
interface InfoClient {
  info(section: string): Promise<string>;
}

/**
 * Calls per command since the last `CONFIG RESETSTAT`, read from `INFO commandstats` of a Redis the
 * test file owns (the counts are server-wide). The INFO and RESETSTAT of the reading itself are left out.
 */
export async function commandCalls(admin: InfoClient): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  const calls: Record<string, number> = {};
  for (const [, name, n] of info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm))
    calls[name as string] = Number(n);
  delete calls.info;
  delete calls["config|resetstat"];
  return calls;
}

export function totalCalls(calls: Record<string, number>): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}

/** A redis-server of the calling describe block's own, an admin client on it, and a REST bridge in front. */
export interface CountedRedis {
  redisUrl: string;
  bridgeUrl: string;
  admin: RedisClientType;
}

/**
 * Starts a {@link CountedRedis} before the block's tests and stops it after them: command counts are
 * server-wide, so a test that counts them needs a Redis nobody else uses. Fields are set in beforeAll.
 */
export function countedRedis(bridgeToken: string): CountedRedis {
  const counted = {} as CountedRedis;
  let server: RedisServerHandle;
  let bridge: Awaited<ReturnType<typeof startBridge>>;
  beforeAll(async () => {
    server = await startRedisServer();
    counted.redisUrl = server.url;
    counted.admin = createClient({ url: server.url });
    await counted.admin.connect();
    bridge = await startBridge({ redisUrl: server.url, token: bridgeToken, port: 0 });
    counted.bridgeUrl = bridge.url;
  });
  afterAll(async () => {
    await bridge.close();
    counted.admin.destroy();
    await server.stop();
  });
  return counted;
}

import type { TestProject } from "vitest/node";
import { hasRedisServerBinary, type RedisServerHandle, startRedisServer } from "./support/redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the Redis the integration tests share (no DB number). */
    redisUrl: string;
  }
}

/** Finds Redis as DESIGN.md says: REDIS_URL → a redis-server binary on PATH → testcontainers. */
export default async function setup(project: TestProject) {
  const fromEnv = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL;
  if (fromEnv) {
    project.provide("redisUrl", fromEnv.replace(/\/\d+$/, ""));
    return;
  }
  let server: RedisServerHandle | undefined;
  let container: { stop(): Promise<unknown> } | undefined;
  if (hasRedisServerBinary()) {
    server = await startRedisServer();
    project.provide("redisUrl", server.url);
  } else {
    const started = await startContainer();
    container = started.container;
    project.provide("redisUrl", started.url);
  }
  return async () => {
    await server?.stop();
    await container?.stop();
  };
}

async function startContainer(): Promise<{ url: string; container: { stop(): Promise<unknown> } }> {
  const moduleName = "testcontainers";
  try {
    const { GenericContainer } = await import(/* @vite-ignore */ moduleName);
    const container = await new GenericContainer("redis:7-alpine").withExposedPorts(6379).start();
    return { url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`, container };
  } catch (cause) {
    throw new Error(
      "No Redis for the integration tests: set REDIS_URL, install redis-server (apt-get install redis-server), " +
        "or install testcontainers with a reachable Docker engine",
      { cause },
    );
  }
}

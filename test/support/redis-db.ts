import { createClient } from "redis";
import { inject } from "vitest";

/**
 * A Redis database of this test file's own, so parallel test files never see each other's keys.
 * The number comes from a counter in DB 0, so files never share one within a run.
 */
export async function isolatedRedisUrl(): Promise<string> {
  const base = inject("redisUrl");
  const admin = createClient({ url: base });
  await admin.connect();
  try {
    const databases = Number((await admin.configGet("databases")).databases ?? 16);
    const n = await admin.incr("tiercache-test:next-db");
    const db = 1 + ((n - 1) % (databases - 1));
    await admin.sendCommand(["SELECT", String(db)]);
    await admin.flushDb();
    return `${base}/${db}`;
  } finally {
    admin.destroy();
  }
}

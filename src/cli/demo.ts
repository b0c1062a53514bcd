import { createCache } from "../index.js";

/**
 * `npm run demo`: a slow "database" behind getOrSet, showing a MISS, then HITs, then what an
 * invalidation does. L1 only by default; with REDIS_URL or the Upstash variables set, through Redis.
 */
export async function main(): Promise<number> {
  const cache = createCache({
    ttl: "1m",
    logger: { ...console, debug: (m: string) => console.log(`  · ${m}`) },
  });
  const db = {
    reads: 0,
    async user(id: number) {
      this.reads++;
      await new Promise((resolve) => setTimeout(resolve, 200)); // a slow query
      return { id, name: `user ${id}`, loadedAt: new Date() };
    },
  };
  const connection = await cache.connect();
  console.log(
    `tiercache demo — L2: ${connection.transport}${connection.error ? ` (unreachable: ${connection.error})` : ""}, version ${cache.version}\n`,
  );

  const timed = async (label: string, work: () => Promise<unknown>) => {
    const started = performance.now();
    const value = await work();
    console.log(
      `${label.padEnd(34)} ${(performance.now() - started).toFixed(2).padStart(8)} ms  → ${JSON.stringify(value)}`,
    );
  };
  const getUser = () => cache.getOrSet("user:42", () => db.user(42), { tags: ["user:42"] });

  await timed("1st getOrSet (MISS: loads)", getUser);
  await timed("2nd getOrSet (HIT)", getUser);
  await timed("3rd getOrSet (HIT)", getUser);
  await timed("100 concurrent getOrSet, other key", () =>
    Promise.all(Array.from({ length: 100 }, () => cache.getOrSet("user:7", () => db.user(7)))).then(
      (v) => v.length,
    ),
  );
  await timed("delete user:42", () => cache.delete("user:42"));
  await timed("getOrSet after delete (MISS)", getUser);

  if (connection.connected) {
    // A second instance (another function instance) has an empty L1: it is served by Redis.
    const other = createCache({ ttl: "1m" });
    await timed("another instance: user:7 (Redis HIT)", () => other.getOrSet("user:7", () => db.user(7)));
    await other.close();
  }

  console.log(`\ndatabase reads: ${db.reads} (4 reads of user:42 and 100 of user:7 cost 3)`);
  console.log("stats:", cache.stats());
  await cache.close();
  return 0;
}

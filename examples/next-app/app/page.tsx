import { cache } from "../lib/cache";

/**
 * A static page: Next renders it once, during `next build`. Its `getOrSet` runs at build time too,
 * where tiercache stays in L1 — no Redis is contacted while building.
 */
export default async function Home() {
  const greeting = await cache.getOrSet(
    "home:greeting",
    async () => ({ text: "Hello from tiercache", renderedAt: new Date().toISOString() }),
    { ttl: "1h" },
  );
  return (
    <main>
      <h1>{greeting.text}</h1>
      <p>Rendered {greeting.renderedAt}.</p>
      <p>
        Cached API: <a href="/api/todos">/api/todos</a> (x-cache: MISS, then HIT) ·{" "}
        <a href="/api/health">/api/health</a>
      </p>
    </main>
  );
}

import { cache } from "../../../lib/cache";

export const dynamic = "force-dynamic";

/**
 * GET /api/greeting — no `ttl` on the route: the handler's own `Cache-Control` decides freshness and
 * its `Vary` splits the entry per language; the CDN in front gets `CDN-Cache-Control` and the tags.
 */
export const GET = cache.route(
  async (req: Request) => {
    const lang = req.headers.get("accept-language")?.startsWith("fr") ? "fr" : "en";
    return Response.json(
      { greeting: lang === "fr" ? "Bonjour" : "Hello", renderedAt: new Date().toISOString() },
      {
        headers: {
          "cache-control": "public, s-maxage=60, stale-while-revalidate=30",
          vary: "Accept-Language",
        },
      },
    );
  },
  { tags: ["greetings"], cdn: { ttl: "1m" } },
);

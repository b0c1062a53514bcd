import { cache } from "../../../lib/cache";

// Rendered per request: the caching is tiercache's, not Next's Data Cache.
export const dynamic = "force-dynamic";

interface Todo {
  id: number;
  title: string;
}

/** Stand-in for a database (one per server process; `next start` runs one). */
const todos: Todo[] = [{ id: 1, title: "Try tiercache" }];

/** GET /api/todos — cached for a minute under the tag `todos` (x-cache: MISS, then HIT, with age). */
export const GET = cache.route(
  async () => {
    await new Promise((resolve) => setTimeout(resolve, 25)); // the slow query caching saves
    return Response.json({ todos, renderedAt: new Date().toISOString() });
  },
  { ttl: "1m", tags: ["todos"] },
);

/** POST /api/todos {"title": "…"} — adds a todo; once it succeeds, the route invalidates `todos`. */
export const POST = cache.route(
  async (req: Request) => {
    const body = (await req.json().catch(() => null)) as { title?: unknown } | null;
    if (typeof body?.title !== "string" || body.title === "") {
      return Response.json({ error: "title (a non-empty string) is required" }, { status: 400 });
    }
    const todo = { id: todos.length + 1, title: body.title };
    todos.push(todo);
    return Response.json(todo, { status: 201 });
  },
  { tags: ["todos"] },
);

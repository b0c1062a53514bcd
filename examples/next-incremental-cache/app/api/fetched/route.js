import { connection } from "next/server";

/** A dynamic route handler whose `fetch` is cached by Next (the incremental cache) under the tag `origin`. */
export async function GET() {
  await connection();
  const origin = process.env.ORIGIN_URL;
  if (!origin) return Response.json({ error: "ORIGIN_URL is not set" }, { status: 500 });
  const res = await fetch(origin, { cache: "force-cache", next: { tags: ["origin"], revalidate: 3600 } });
  return Response.json({ origin: await res.text() });
}

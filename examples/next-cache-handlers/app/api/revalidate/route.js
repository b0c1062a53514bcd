import { revalidatePath, revalidateTag } from "next/cache";

/** POST ?tag=t[&profile=max] → revalidateTag; ?path=/p → revalidatePath. */
export async function POST(request) {
  const params = new URL(request.url).searchParams;
  const tag = params.get("tag");
  const profile = params.get("profile");
  const path = params.get("path");
  if (path) revalidatePath(path);
  else if (tag && profile) revalidateTag(tag, profile);
  else if (tag) revalidateTag(tag);
  else return Response.json({ error: "tag or path" }, { status: 400 });
  return Response.json({ ok: true });
}

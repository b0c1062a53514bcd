import { cacheLife, cacheTag } from "next/cache";
import { rendered } from "../../lib/renders.js";

/** ISR under cacheComponents: a page-level `'use cache'` revalidated hourly. */
export default async function Page() {
  "use cache";
  cacheTag("isr");
  cacheLife({ stale: 30, revalidate: 3600, expire: 86400 });
  return <p>{`render:${await rendered("isr")}:`}</p>;
}

import { unstable_cache } from "next/cache";
import { rendered } from "../../lib/renders.js";

/** ISR the Next 15 way: the page is regenerated hourly; its data is an `unstable_cache` tagged `items`. */
export const revalidate = 3600;

const items = unstable_cache(async () => ({ render: await rendered("items") }), ["items"], {
  tags: ["items"],
  revalidate: 3600,
});

export default async function Page() {
  const page = await rendered("isr");
  const data = await items();
  return (
    <main>
      <p>{`render:${page}:`}</p>
      <p>{`items:${data.render}:`}</p>
    </main>
  );
}

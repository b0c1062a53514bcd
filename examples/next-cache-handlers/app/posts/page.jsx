import { cacheLife, cacheTag } from "next/cache";
import { Suspense } from "react";
import { rendered } from "../../lib/renders.js";

/** A dynamic page (it reads searchParams) around a `'use cache'` component: one entry per `n`. */
export default function Page({ searchParams }) {
  return (
    <main>
      <Suspense fallback={<p>loading</p>}>
        <Body searchParams={searchParams} />
      </Suspense>
    </main>
  );
}

async function Body({ searchParams }) {
  const { n = "0" } = await searchParams;
  return <Posts n={n} />;
}

async function Posts({ n }) {
  "use cache";
  cacheTag("posts", `posts-${n}`);
  cacheLife({ stale: 30, revalidate: 3600, expire: 86400 });
  return <p>{`render:${await rendered("posts")}:`}</p>;
}

import { cacheLife, cacheTag } from "next/cache";
import { connection } from "next/server";
import { rendered } from "../../../lib/renders.js";

async function data() {
  "use cache";
  cacheTag("data");
  cacheLife("hours");
  return { render: await rendered("data") };
}

/** A route handler, dynamic (`connection()`), whose data is a `'use cache'` function. */
export async function GET() {
  await connection();
  return Response.json(await data());
}

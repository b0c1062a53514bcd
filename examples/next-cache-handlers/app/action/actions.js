"use server";
import { updateTag } from "next/cache";

/** A Server Action: read-your-own-writes invalidation of every `posts` entry. */
export async function expirePosts() {
  updateTag("posts");
}

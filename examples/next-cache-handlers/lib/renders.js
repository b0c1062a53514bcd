import { createClient } from "redis";

const CLIENT = Symbol.for("example.renderCounter");

/**
 * Called by every cached function as it renders: an id naming this instance (`INSTANCE`) and the
 * render, and a count per instance in Redis (`renders:<what>:<instance>`, on RENDER_COUNTER_URL), so
 * a test can tell "served from the cache" from "rendered again". Not tiercache: its own client, so it
 * proves what tiercache does without depending on it. Off during `next build` and without the env.
 */
export async function rendered(what) {
  const instance = process.env.INSTANCE ?? "dev";
  const id = `${instance}-${crypto.randomUUID().slice(0, 8)}`;
  const url = process.env.RENDER_COUNTER_URL;
  if (url && process.env.NEXT_PHASE !== "phase-production-build") {
    // Bounded: with Redis down the render goes on uncounted.
    await Promise.race([count(url, `renders:${what}:${instance}`), new Promise((r) => setTimeout(r, 300))]);
  }
  return id;
}

async function count(url, key) {
  try {
    globalThis[CLIENT] ??= createClient({ url, disableOfflineQueue: true })
      .on("error", () => {})
      .connect();
    await (await globalThis[CLIENT]).incr(key);
  } catch {
    // uncounted
  }
}

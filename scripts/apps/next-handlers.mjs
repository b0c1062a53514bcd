/**
 * Next's own caches on tiercache, from the packed tarball: examples/next-cache-handlers (Next 16,
 * `cacheComponents`: `'use cache'` on `tiercache/next/use-cache`, pages and routes on
 * `tiercache/next/incremental`) and examples/next-incremental-cache (no `cacheComponents`: `export
 * const revalidate`, `unstable_cache`, `fetch` tags on `cacheHandler`, the Next 15 way) — the latter
 * on Next 16 and again on the latest Next 15 (NEXT_15), in an install of its own.
 *
 * Each install is a parent directory whose node_modules the apps beneath it resolve from. Each app
 * is built once with REDIS_URL at a listener that counts connection attempts, then started as two
 * instances on one redis-server, each from its own copy of the build output (a shared `.next` would
 * share Next's file cache and hide bugs). The apps count their renders in Redis with their own client
 * (lib/renders.js), so "served without rendering" is a number, not a guess.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { cp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { check, cleanEnv, freePort, run, sleep, start, waitFor } from "./harness.mjs";
import { answers, request } from "./http.mjs";
import { countingListener, startRedis } from "./redis.mjs";
import { copyExample, emptyApp, install } from "./workspace.mjs";

/** The handlers' defaults: tag updates elsewhere are seen within `l1.syncMs`; Redis waits `timeoutMs`. */
const SYNC_MS = 1000;
const TIMEOUT_MS = 500;
/** Slack for a loaded 2-core CI machine on top of the bounds above. */
const SLACK_MS = 700;
/**
 * Requests to an instance started `l1.syncMs` or later after an update, up to the first that shows
 * it: the first may start the background tag check, the next sees its result; one more for a check
 * that was already in flight as the update landed.
 */
const LATE_REQUESTS = 3;

const APPS = { handlers: "next-cache-handlers", incremental: "next-incremental-cache" };

/**
 * The latest Next 15 (engines: Node >= 18.18) and the React its create-next-app pins, for
 * examples/next-incremental-cache in place of the example's own Next 16.
 */
export const NEXT_15 = { next: "15.5.29", react: "19.1.0", "react-dom": "19.1.0" };

/**
 * One install for `apps`: `<work>/<name>/` depends on the union of their dependencies, with
 * `versions` (name → version) over them and tiercache from the tarball, and each example is copied
 * beneath it. Resolves the install's dir.
 */
export async function prepareNextHandlerApps({
  root,
  work,
  tarball,
  name = "next-handlers",
  apps = Object.values(APPS),
  versions = {},
}) {
  const dir = join(work, name);
  const deps = {};
  for (const app of apps) {
    const example = join(root, "examples", app);
    Object.assign(deps, JSON.parse(await readFile(join(example, "package.json"), "utf8")).dependencies);
    // The example's own manifest keeps no dependencies: they resolve from the parent's node_modules.
    await copyExample(example, join(dir, app), { tarball, deps: {} });
  }
  await emptyApp(dir, { tarball, deps: { ...deps, ...versions, tiercache: "tarball" } });
  await install(dir);
  return dir;
}

/** examples/next-incremental-cache alone, on NEXT_15. */
export function prepareNext15App({ root, work, tarball }) {
  return prepareNextHandlerApps({
    root,
    work,
    tarball,
    name: "next15",
    apps: [APPS.incremental],
    versions: NEXT_15,
  });
}

/** Both apps on the example's Next 16. */
export function nextHandlerChecks({ dir, installed }) {
  return onOneRedis(dir, "", async (ctx) => {
    const built = await check(
      "next build of examples/next-cache-handlers (cacheComponents) with REDIS_URL at a listener: no connection attempted",
      () => build(ctx, APPS.handlers),
      { needs: installed },
    );
    await cacheComponentsChecks(ctx, built);
    await stopInstances(ctx);
    const builtIncremental = await check(
      "next build of examples/next-incremental-cache (no cacheComponents) with REDIS_URL at a listener: no connection attempted",
      () => build(ctx, APPS.incremental),
      { needs: installed },
    );
    await incrementalChecks(ctx, builtIncremental);
  });
}

/** examples/next-incremental-cache on NEXT_15: the same checks as on Next 16. */
export function next15Checks({ dir, installed }) {
  return onOneRedis(dir, "Next 15: ", async (ctx) => {
    const built = await check(
      `${ctx.label}next build of examples/next-incremental-cache with REDIS_URL at a listener: no connection attempted`,
      async () => {
        const { version } = JSON.parse(await readFile(join(dir, "node_modules/next/package.json"), "utf8"));
        assert.equal(version, NEXT_15.next, `next ${version} installed`);
        return `next ${version}, ${await build(ctx, APPS.incremental)}`;
      },
      { needs: installed },
    );
    await incrementalChecks(ctx, built);
  });
}

/**
 * Runs `checks(ctx)` with a counting listener, a redis-server and an origin for the apps in `dir`;
 * `label` starts the names of the checks that both Next versions run. Ends what it started.
 */
async function onOneRedis(dir, label, checks) {
  const nextBin = join(dir ?? ".", "node_modules/.bin/next");
  const listener = await countingListener();
  const redis = await startRedis();
  const origin = await originServer();
  const ctx = { dir, nextBin, listener, redis, origin, label, instances: [] };
  try {
    await checks(ctx);
  } finally {
    await stopInstances(ctx);
    await ctx.redis.stop();
    await listener.close();
    origin.close();
  }
}

/** `next build` of one app, REDIS_URL at the counting listener; resolves a note on what it saw. */
async function build({ dir, nextBin, listener }, app) {
  listener.reset();
  const out = await run(nextBin, ["build"], {
    cwd: join(dir, app),
    env: cleanEnv({ REDIS_URL: listener.url, INSTANCE: "build" }),
    timeoutMs: 240_000,
  });
  assert.match(out, /Compiled successfully/, out);
  const attempts = listener.attempts();
  assert.equal(attempts, 0, `${attempts} connection attempt(s) to REDIS_URL during next build`);
  const buildId = (await readFile(join(dir, app, ".next/BUILD_ID"), "utf8")).trim();
  return `build ${buildId}, 0 connection attempts`;
}

/** `next start` of a copy of `app`'s build output (its own `.next`) as instance `name`. */
async function instance(ctx, app, name) {
  const copy = join(ctx.dir, `${app}-${name}`);
  await rm(copy, { recursive: true, force: true });
  await cp(join(ctx.dir, app), copy, {
    recursive: true,
    filter: (source) => !/[/\\]\.next[/\\]cache$/.test(source),
  });
  const port = await freePort();
  const env = {
    INSTANCE: name,
    REDIS_URL: ctx.redis.url,
    RENDER_COUNTER_URL: ctx.redis.url,
    ORIGIN_URL: ctx.origin.url,
  };
  const proc = start(ctx.nextBin, ["start", "-p", String(port), "-H", "127.0.0.1"], {
    cwd: copy,
    env: cleanEnv(env),
    name: `next start ${name} :${port}`,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`next start ${name} on ${port}`, () => answers(base, "/api/revalidate"), {
    timeoutMs: 60_000,
    proc,
  });
  const server = { name, base, proc };
  ctx.instances.push(server);
  return server;
}

async function stopInstances(ctx) {
  await Promise.all(ctx.instances.splice(0).map((server) => server.proc.stop()));
}

/** GET `path` on `server`: 200, and the render ids in it (`render:<instance>-<id>:` and the like). */
async function ids(server, path) {
  const t0 = Date.now();
  const res = await request(server.base, path);
  const ms = Date.now() - t0;
  assert.equal(res.status, 200, `${server.name} ${path}: ${res.status} ${res.text.slice(0, 300)}`);
  const found = {};
  for (const [, kind, id] of res.text.matchAll(/"?(render|items|origin)"?:"?([\w-]+)[:"]/g))
    found[kind] ??= id;
  return { ...found, ms };
}

/** How many times `instance` rendered `what` (lib/renders.js counts in Redis). */
async function renders(redis, what, instance) {
  return Number((await redis.client.get(`renders:${what}:${instance}`)) ?? 0);
}

/**
 * Runs `update`, then polls `server`'s `path` until its `kind` id is no longer `old`. Resolves the
 * ms that took, how many of the requests were late (started `l1.syncMs` or more after the update),
 * and how many answers were still `old` after `server` had rendered `what` again (served stale while
 * re-rendering). Asserts the change came within LATE_REQUESTS late requests.
 */
async function untilChanged(ctx, server, path, { kind = "render", old, what, update }) {
  const before = await renders(ctx.redis, what, server.name);
  await update();
  const since = Date.now();
  let staleWhileRendering = 0;
  let late = 0;
  while (Date.now() - since < SYNC_MS + 5000) {
    if (Date.now() - since >= SYNC_MS) late++;
    const now = await ids(server, path);
    if (now[kind] !== old) {
      const ms = Date.now() - since;
      assert.ok(
        late <= LATE_REQUESTS,
        `${server.name} saw the update at the ${late}th request past l1.syncMs (${ms} ms)`,
      );
      return { ms, late, id: now[kind], staleWhileRendering };
    }
    await sleep(150);
    if ((await renders(ctx.redis, what, server.name)) > before) staleWhileRendering++;
  }
  throw new Error(`${server.name} still served ${old} at ${path} ${SYNC_MS + 5000} ms after the update`);
}

/** POST /api/revalidate?… on `server`. */
async function revalidate(server, query) {
  const res = await request(server.base, `/api/revalidate?${query}`, { method: "POST" });
  assert.equal(res.status, 200, res.text);
}

/** Seeds `path` on A, checks B serves A's render without rendering; resolves the id. */
async function shared(ctx, a, b, path, what, kind = "render") {
  const onA = await ids(a, path);
  assert.match(onA[kind] ?? "", /^A-/, `A did not render ${path} itself: ${JSON.stringify(onA)}`);
  // The L2 write after a render may finish just after the response.
  await sleep(150);
  const rendersOnB = await renders(ctx.redis, what, "B");
  const onB = await ids(b, path);
  assert.equal(onB[kind], onA[kind], `B did not serve A's ${path}: it rendered ${onB[kind]}`);
  assert.equal(await renders(ctx.redis, what, "B"), rendersOnB, `B rendered ${path}`);
  return onA[kind];
}

async function cacheComponentsChecks(ctx, built) {
  let a;
  let b;
  const up = await check(
    "next-cache-handlers: next start ×2, each from its own copy of the build, on one redis-server",
    async () => {
      [a, b] = await Promise.all([instance(ctx, APPS.handlers, "A"), instance(ctx, APPS.handlers, "B")]);
    },
    { needs: built },
  );
  const seeded = {};
  const sharedOk = await check(
    "rendered on A, served by B without rendering: a 'use cache' component, a page-level 'use cache' (ISR), a route handler",
    async () => {
      seeded.posts = await shared(ctx, a, b, "/posts?n=1", "posts");
      seeded.isr = await shared(ctx, a, b, "/isr", "isr");
      seeded.data = await shared(ctx, a, b, "/api/data", "data");
      return `B renders: ${await renders(ctx.redis, "posts", "B")} posts, ${await renders(ctx.redis, "isr", "B")} isr, ${await renders(ctx.redis, "data", "B")} data`;
    },
    { needs: up },
  );
  /** Invalidation on A reaches B, which renders anew (blocking: never the old entry once it knows). */
  const reaches = async (label, invalidate, { path, old, what }) => {
    const seen = await untilChanged(ctx, b, path, { old, what, update: invalidate });
    assert.equal(seen.staleWhileRendering, 0, `B served the entry ${label} removed while re-rendering`);
    // B itself: no other instance re-rendered this entry since.
    assert.match(seen.id ?? "", /^B-/, `B served ${seen.id}, not a render of its own`);
    return `B rendered anew after ${seen.ms} ms, ${seen.late} request(s) past l1.syncMs`;
  };
  await check(
    `updateTag("posts") in a Server Action on A: A renders anew at once, B within l1.syncMs (${SYNC_MS} ms) + one request`,
    async () => {
      const page = await request(a.base, "/action");
      const action = page.text.match(/\$ACTION_ID_([0-9a-f]+)/)?.[1];
      assert.ok(action, "no Server Action id in /action");
      // A re-renders another `posts` entry (its own write read back); B must find out about
      // /posts?n=1 by itself, with nobody rendering it anew into Redis.
      const other = await shared(ctx, a, b, "/posts?n=4", "posts");
      const invoke = async () => {
        const res = await request(a.base, "/action", {
          method: "POST",
          headers: {
            "next-action": action,
            "content-type": "text/plain;charset=UTF-8",
            accept: "text/x-component",
          },
          body: "[]",
        });
        assert.equal(res.status, 200, res.text.slice(0, 300));
        const onA = await ids(a, "/posts?n=4");
        assert.notEqual(onA.render, other, "A served an entry its own updateTag removed");
      };
      return reaches("updateTag", invoke, { path: "/posts?n=1", old: seeded.posts, what: "posts" });
    },
    { needs: sharedOk },
  );
  await check(
    "revalidateTag(tag) on A: B renders anew within l1.syncMs + one request",
    async () => {
      const old = await shared(ctx, a, b, "/posts?n=2", "posts");
      return reaches("revalidateTag", () => revalidate(a, "tag=posts-2"), {
        path: "/posts?n=2",
        old,
        what: "posts",
      });
    },
    { needs: sharedOk },
  );
  await check(
    'revalidateTag(tag, "max") on A: B serves the stale entry once while it re-renders, then the new one',
    async () => {
      const old = await shared(ctx, a, b, "/posts?n=3", "posts");
      const seen = await untilChanged(ctx, b, "/posts?n=3", {
        old,
        what: "posts",
        update: () => revalidate(a, "tag=posts-3&profile=max"),
      });
      assert.ok(seen.staleWhileRendering >= 1, "B never served the stale entry while re-rendering");
      assert.ok(
        seen.staleWhileRendering <= 2,
        `B served the stale entry ${seen.staleWhileRendering} times after re-rendering`,
      );
      return `stale served ${seen.staleWhileRendering}× while B re-rendered; new after ${seen.ms} ms`;
    },
    { needs: sharedOk },
  );
  await check(
    'revalidatePath("/isr") on A reaches B: B renders the page anew within l1.syncMs + one request',
    () =>
      reaches("revalidatePath", () => revalidate(a, "path=/isr"), {
        path: "/isr",
        old: seeded.isr,
        what: "isr",
      }),
    { needs: sharedOk },
  );
  await check(
    "Redis connections do not grow over 500 requests (CLIENT LIST)",
    async () => {
      // Each instance renders once first, so its render counter's own connection is open too.
      await ids(a, "/posts?n=98");
      await ids(b, "/posts?n=99");
      const before = await ctx.redis.otherClients();
      const paths = ["/isr", "/api/data", ...Array.from({ length: 18 }, (_, i) => `/posts?n=${100 + i}`)];
      for (let i = 0; i < 500; i++) await ids(i % 2 ? a : b, paths[i % paths.length]);
      const after = await ctx.redis.otherClients();
      assert.ok(after <= before, `connections grew from ${before} to ${after}`);
      // Per next process: tiercache's one, and the render counter's.
      assert.ok(after <= 4, `${after} connections from 2 next processes`);
      return `${before} → ${after} connections`;
    },
    { needs: up },
  );
  const paths = ["/posts?n=1", "/posts?n=500", "/isr", "/api/data"];
  await check(
    `Redis paused (SIGSTOP: connections open, no answers): every page 200 within timeoutMs (${TIMEOUT_MS} ms) + render time`,
    async () => {
      const slowest = await withRedisDown(
        () => ctx.redis.pause(),
        () => ctx.redis.resume(),
        [a, b],
        paths,
      );
      return `slowest ${slowest} ms`;
    },
    { needs: up },
  );
  await check(
    "Redis stopped (connections refused), every page 200 in time; Redis back on its port: L2 hits resume, no restart",
    async () => {
      const { port } = ctx.redis;
      const slowest = await withRedisDown(
        () => ctx.redis.stop(),
        async () => {
          ctx.redis = await startRedis({ port });
        },
        [a, b],
        paths,
      );
      // Empty again (no persistence): a new entry rendered on A must reach B through Redis.
      const t0 = Date.now();
      for (let n = 1000; ; n++) {
        try {
          await shared(ctx, a, b, `/posts?n=${n}`, "posts");
          return `slowest ${slowest} ms down; L2 shared again ${Date.now() - t0} ms after Redis came back`;
        } catch (error) {
          if (Date.now() - t0 > 20_000) throw error;
          await sleep(300);
        }
      }
    },
    { needs: up },
  );
  await check(
    "a second next build (new build id) does not serve the first build's entries",
    async () => {
      const firstId = (await readFile(join(ctx.dir, APPS.handlers, ".next/BUILD_ID"), "utf8")).trim();
      const seededPosts = await shared(ctx, a, b, "/posts?n=2000", "posts");
      const seededIsr = (await ids(a, "/isr")).render;
      await build(ctx, APPS.handlers);
      const secondId = (await readFile(join(ctx.dir, APPS.handlers, ".next/BUILD_ID"), "utf8")).trim();
      assert.notEqual(secondId, firstId, "the second build has the first's id");
      const c = await instance(ctx, APPS.handlers, "C");
      const posts = await ids(c, "/posts?n=2000");
      const isr = await ids(c, "/isr");
      assert.notEqual(posts.render, seededPosts, "the new build served the old build's 'use cache' entry");
      assert.notEqual(isr.render, seededIsr, "the new build served the old build's page");
      assert.match(isr.render ?? "", /^C-/);
      assert.equal(await renders(ctx.redis, "posts", "C"), 1);
      return `${firstId} → ${secondId}: C rendered ${posts.render}, ${isr.render}`;
    },
    { needs: up },
  );
}

/**
 * Takes Redis down (`down`), checks every `path` on every server answers 200 within timeoutMs +
 * the render's own time, brings it back (`up`); resolves the slowest answer's ms.
 */
async function withRedisDown(down, up, servers, paths) {
  await down();
  let slowest = 0;
  try {
    // Twice round: the first requests find the connection gone, the second the Cache knowing it.
    for (let round = 0; round < 2; round++) {
      for (const server of servers) {
        for (const path of paths) {
          const { ms } = await ids(server, path);
          slowest = Math.max(slowest, ms);
          // The render counter itself waits up to 300 ms on a Redis that does not answer.
          assert.ok(
            ms <= TIMEOUT_MS + 300 + SLACK_MS,
            `${server.name} ${path} took ${ms} ms with Redis down`,
          );
        }
      }
    }
  } finally {
    await up();
  }
  return slowest;
}

async function incrementalChecks(ctx, built) {
  let a;
  let b;
  const up = await check(
    `${ctx.label}next-incremental-cache: next start ×2, each from its own copy of the build, on one redis-server`,
    async () => {
      [a, b] = await Promise.all([
        instance(ctx, APPS.incremental, "A"),
        instance(ctx, APPS.incremental, "B"),
      ]);
    },
    { needs: built },
  );
  let page;
  const sharedOk = await check(
    `${ctx.label}ISR page (export const revalidate) + unstable_cache rendered on A, served by B without rendering`,
    async () => {
      // The build's prerender is in no Redis (the build is L1 only): A renders it.
      page = await ids(a, "/isr");
      assert.match(page.render ?? "", /^A-/, `A served ${JSON.stringify(page)}`);
      assert.match(page.items ?? "", /^A-/, `A served ${JSON.stringify(page)}`);
      await sleep(150);
      const before = [await renders(ctx.redis, "isr", "B"), await renders(ctx.redis, "items", "B")];
      const onB = await ids(b, "/isr");
      assert.deepEqual([onB.render, onB.items], [page.render, page.items], "B did not serve A's page");
      assert.deepEqual(
        [await renders(ctx.redis, "isr", "B"), await renders(ctx.redis, "items", "B")],
        before,
      );
    },
    { needs: up },
  );
  await check(
    `${ctx.label}revalidateTag on unstable_cache's tag on A: B renders the page and the data anew within l1.syncMs + one request`,
    async () => {
      const seen = await untilChanged(ctx, b, "/isr", {
        kind: "items",
        old: page.items,
        what: "items",
        update: () => revalidate(a, "tag=items"),
      });
      assert.match(seen.id ?? "", /^B-/, `B served ${seen.id}, not a render of its own`);
      return `after ${seen.ms} ms, ${seen.late} request(s) past l1.syncMs`;
    },
    { needs: sharedOk },
  );
  await check(
    `${ctx.label}fetch with next: { tags } fetched on A, served to B from the cache; revalidateTag on A: B fetches anew`,
    async () => {
      const onA = await ids(a, "/api/fetched");
      await sleep(150);
      const hits = ctx.origin.hits();
      const onB = await ids(b, "/api/fetched");
      assert.equal(onB.origin, onA.origin, "B fetched for itself");
      assert.equal(ctx.origin.hits(), hits, "B reached the origin");
      const seen = await untilChanged(ctx, b, "/api/fetched", {
        kind: "origin",
        old: onA.origin,
        what: "none",
        update: () => revalidate(a, "tag=origin"),
      });
      return `origin ${onA.origin} → ${seen.id} after ${seen.ms} ms, ${seen.late} request(s) past l1.syncMs`;
    },
    { needs: up },
  );
  await check(
    `${ctx.label}revalidatePath("/isr") on A reaches B: B renders the page anew within l1.syncMs + one request`,
    async () => {
      const old = (await ids(b, "/isr")).render;
      const seen = await untilChanged(ctx, b, "/isr", {
        old,
        what: "isr",
        update: () => revalidate(a, "path=/isr"),
      });
      assert.match(seen.id ?? "", /^B-/, `B served ${seen.id}, not a render of its own`);
      return `after ${seen.ms} ms, ${seen.late} request(s) past l1.syncMs`;
    },
    { needs: sharedOk },
  );
  await check(
    `${ctx.label}Redis connections do not grow over 200 requests (CLIENT LIST)`,
    async () => {
      // Both have rendered (render counter connected) and fetched; now only cached answers.
      await ids(a, "/api/fetched");
      await ids(b, "/api/fetched");
      const before = await ctx.redis.otherClients();
      const paths = ["/isr", "/api/fetched"];
      for (let i = 0; i < 200; i++) await ids(i % 2 ? a : b, paths[(i >> 1) % paths.length]);
      const after = await ctx.redis.otherClients();
      assert.ok(after <= before, `connections grew from ${before} to ${after}`);
      // Per next process: tiercache's one, and the render counter's.
      assert.ok(after <= 4, `${after} connections from 2 next processes`);
      return `${before} → ${after} connections`;
    },
    { needs: up },
  );
}

/** The origin the apps' `fetch` reaches: answers its hit count, so a cached answer shows. */
async function originServer() {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.end(`hit${hits}`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    hits: () => hits,
    close: () => server.close(),
  };
}

#!/usr/bin/env node
/**
 * End-to-end check of `tiercache/next` with a real `next build` + two `next start`s on one redis-server:
 * a small app (written to a temp dir, not part of the repo) built once and started as two instances,
 * each from its own copy of the build output. Next 15 (the repo's dev dependency): an ISR page whose
 * data carries a tag (`cacheHandler`). Next 16 (`NEXT_E2E_MODULES=<node_modules with next 16>`): a
 * `'use cache'` page with `cacheTag` under `cacheComponents` (`cacheHandlers` and `cacheHandler`).
 * Checks: the build makes no Redis connection; a page rendered on A is served by B without rendering;
 * `revalidateTag(tag)` on A makes B render anew within `l1.syncMs` + a request (on 16 also
 * `revalidateTag(tag, "max")`); Redis connections do not grow over 200 requests (CLIENT LIST); with
 * Redis killed both instances answer 200 within 3 s, and once it is back entries reach it again
 * without a restart; a second build (new build id) renders for itself, never serving the first's entry.
 *
 * Needs `redis-server` on PATH and `npm run build` first. `node scripts/next-handlers-e2e.mjs`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const handler = join(root, "dist/next/incremental.js");
const useCacheHandler = join(root, "dist/next/use-cache.js");
// NEXT_E2E_MODULES: a node_modules with another Next (e.g. 16, for `'use cache'`); default the repo's.
const modules = process.env.NEXT_E2E_MODULES ?? join(root, "node_modules");
const next = join(modules, "next/dist/bin/next");
const nextMajor = Number(
  JSON.parse(readFileSync(join(modules, "next/package.json"), "utf8")).version.split(".")[0],
);
const DEADLINE_MS = 300_000;
const started = Date.now();
const log = (m) => console.log(`[next-handlers-e2e +${((Date.now() - started) / 1000).toFixed(1)}s] ${m}`);
const children = [];
const work = mkdtempSync(join(tmpdir(), "tc-next-handlers-"));

function stop() {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}
const deadline = setTimeout(() => {
  console.error("[next-handlers-e2e] over the deadline: giving up");
  stop();
  process.exit(1);
}, DEADLINE_MS);

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

function run(args, options) {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  children.push(child);
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const done = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, done, output: () => output };
}

async function waitFor(url, ms = 30_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${url} did not answer within ${ms} ms`);
}

/** Redis commands as seen by the server: a plain RESP exchange over a socket, no client library. */
async function redis(port, ...command) {
  const { connect } = await import("node:net");
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    socket.on("data", (d) => {
      reply += d;
      if (reply.endsWith("\r\n")) {
        socket.end();
        resolve(reply);
      }
    });
    socket.on("error", reject);
    socket.write(
      `*${command.length}\r\n${command.map((c) => `$${Buffer.byteLength(String(c))}\r\n${c}\r\n`).join("")}`,
    );
  });
}

/** Next 15: an ISR page (`export const revalidate`) whose data carries a tag, via `unstable_cache`. */
const next15 = {
  "next.config.mjs": `export default { cacheHandler: ${JSON.stringify(handler)}, cacheMaxMemorySize: 0 };\n`,
  "app/page/page.js": `import { unstable_cache } from "next/cache";
export const revalidate = 3600;
const data = unstable_cache(async () => ({ at: Date.now() }), ["isr-data"], { tags: ["posts"] });
export default async function Page() {
  const { at } = await data();
  return <p>{\`rendered-by:\${process.env.INSTANCE}:\${at}:\${Date.now()}\`}</p>;
}
`,
};

/** Next 16 with `cacheComponents`: a page-level `'use cache'` with `cacheTag` and `cacheLife`. */
const next16 = {
  "next.config.mjs": `export default {
  cacheComponents: true,
  cacheHandler: ${JSON.stringify(handler)},
  cacheHandlers: { default: ${JSON.stringify(useCacheHandler)}, remote: ${JSON.stringify(useCacheHandler)} },
  cacheMaxMemorySize: 0,
  // node_modules is a symlink out of the app dir: let Turbopack resolve through it.
  turbopack: { root: "/" },
};
`,
  "app/page/page.js": `import { cacheLife, cacheTag } from "next/cache";
export default async function Page() {
  "use cache";
  cacheTag("posts");
  cacheLife({ stale: 30, revalidate: 3600, expire: 86400 });
  return <p>{\`rendered-by:\${process.env.INSTANCE}:\${Date.now()}\`}</p>;
}
`,
};

const files = {
  "package.json": JSON.stringify({ name: "tc-next-handlers-e2e", private: true, type: "module" }),
  "app/layout.js":
    "export default function Layout({ children }) { return <html><body>{children}</body></html>; }\n",
  "app/api/revalidate/route.js": `import { revalidateTag } from "next/cache";
export async function POST(req) {
  const url = new URL(req.url);
  const profile = url.searchParams.get("profile");
  if (profile) revalidateTag(url.searchParams.get("tag"), profile);
  else revalidateTag(url.searchParams.get("tag"));
  return Response.json({ ok: true });
}
`,
  ...(nextMajor >= 16 ? next16 : next15),
};

try {
  const redisPort = await freePort();
  const startRedis = async () => {
    const child = spawn(
      "redis-server",
      ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    children.push(child);
    await new Promise((r) => setTimeout(r, 300));
    return child;
  };
  let redisServer = await startRedis();
  const env = {
    ...process.env,
    NEXT_TELEMETRY_DISABLED: "1",
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    REDIS_ENABLED: "true",
  };
  delete env.REDIS_CACHE_VERSION;
  delete env.VERCEL_GIT_COMMIT_SHA;

  const app = join(work, "app");
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(app, path, ".."), { recursive: true });
    writeFileSync(join(app, path), content);
  }
  symlinkSync(modules, join(app, "node_modules"));

  await redis(redisPort, "CONFIG", "RESETSTAT");
  log("next build");
  const build = run([next, "build"], { cwd: app, env: { ...env, INSTANCE: "build" } });
  const code = await build.done;
  if (code !== 0) throw new Error(`next build failed:\n${build.output()}`);
  const connections = /total_connections_received:(\d+)/.exec(await redis(redisPort, "INFO", "stats"))?.[1];
  // The INFO above is the one connection: the build opened none.
  assert.equal(Number(connections), 1, "next build must not connect to Redis");
  log("built without a Redis connection");

  const instances = {};
  for (const name of ["A", "B"]) {
    const dir = join(work, name);
    cpSync(app, dir, { recursive: true, verbatimSymlinks: true });
    const port = await freePort();
    run([next, "start", "-p", String(port), "-H", "127.0.0.1"], {
      cwd: dir,
      env: { ...env, INSTANCE: name },
    });
    instances[name] = `http://127.0.0.1:${port}`;
  }
  await Promise.all(Object.values(instances).map((url) => waitFor(url)));
  log(`started A ${instances.A}, B ${instances.B}`);

  const page = async (name) => {
    const res = await fetch(`${instances[name]}/page`);
    assert.equal(res.status, 200);
    return /rendered-by:[^<]*/.exec(await res.text())?.[0];
  };

  const first = await page("A");
  assert.ok(first, "A renders the page");
  const onB = await page("B");
  assert.equal(onB, first, "B serves A's render from Redis instead of rendering");
  log(`A rendered ${first}; B served the same`);
  const keys = await redis(redisPort, "KEYS", "*next:i:*");
  assert.match(keys, /next:i:/, "entries are in Redis");

  /** Revalidates on A; resolves with what B serves once it differs from `before`, and what B served first. */
  const revalidateOnA = async (query, before) => {
    const res = await fetch(`${instances.A}/api/revalidate?${query}`, { method: "POST" });
    assert.equal(res.status, 200);
    const firstOnB = await page("B");
    const until = Date.now() + 10_000;
    let now = firstOnB;
    while (now === before && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 300));
      now = await page("B");
    }
    assert.notEqual(now, before, `B renders anew after ${query} on A`);
    return { now, firstOnB };
  };
  const hard = await revalidateOnA("tag=posts", first);
  log(`revalidateTag(posts) on A: B now serves ${hard.now}`);
  if (nextMajor >= 16) {
    const soft = await revalidateOnA("tag=posts&profile=max", hard.now);
    log(`revalidateTag(posts, "max") on A: B served ${soft.firstOnB} first, then ${soft.now}`);
  }

  const clients = async () =>
    (await redis(redisPort, "CLIENT", "LIST")).split("\n").filter((l) => l.includes("id=")).length;
  const before = await clients();
  for (let i = 0; i < 200; i++) await page(i % 2 ? "A" : "B");
  const after = await clients();
  assert.ok(after <= before, `Redis connections grew from ${before} to ${after} over 200 requests`);
  log(`connections: ${before} before 200 requests, ${after} after`);

  redisServer.kill("SIGKILL");
  await new Promise((r) => redisServer.on("exit", r));
  for (const name of ["A", "B", "A", "B"]) {
    const t0 = Date.now();
    await page(name);
    assert.ok(Date.now() - t0 < 3000, `${name} took ${Date.now() - t0} ms with Redis down`);
  }
  log("Redis down: both instances still answer 200 quickly");
  redisServer = await startRedis();
  const resumeBy = Date.now() + 15_000;
  while (!/next:i:/.test(await redis(redisPort, "KEYS", "*next:i:*"))) {
    assert.ok(Date.now() < resumeBy, "entries reach Redis again after it came back");
    await page("A");
    await new Promise((r) => setTimeout(r, 200));
  }
  log("Redis back: entries are written to it again, no restart");

  log("second next build (a new build id)");
  const rebuild = run([next, "build"], { cwd: app, env: { ...env, INSTANCE: "build" } });
  if ((await rebuild.done) !== 0) throw new Error(`second next build failed:\n${rebuild.output()}`);
  const dirC = join(work, "C");
  cpSync(app, dirC, { recursive: true, verbatimSymlinks: true });
  const portC = await freePort();
  run([next, "start", "-p", String(portC), "-H", "127.0.0.1"], { cwd: dirC, env: { ...env, INSTANCE: "C" } });
  instances.C = `http://127.0.0.1:${portC}`;
  await waitFor(instances.C);
  const onC = await page("C");
  assert.match(
    onC,
    /^rendered-by:C:/,
    "the new build renders for itself, never serves the old build's entry",
  );
  log(`new build serves ${onC}`);
  log("ok");
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  stop();
}

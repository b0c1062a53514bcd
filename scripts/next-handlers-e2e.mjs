#!/usr/bin/env node
/**
 * End-to-end check of `tiercache/next/incremental` with a real `next build` + two `next start`s on one
 * redis-server: a small app (written to a temp dir, not part of the repo) with an ISR page whose data
 * carries a tag, built once and started as two instances, each from its own copy of the build output.
 * Checks: the build makes no Redis connection; a page rendered on A is served by B without rendering;
 * `revalidateTag` on A makes B render anew within `l1.syncMs` + a request.
 *
 * Needs `redis-server` on PATH and `npm run build` first. `node scripts/next-handlers-e2e.mjs`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const handler = join(root, "dist/next/incremental.js");
const next = join(root, "node_modules/next/dist/bin/next");
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

const files = {
  "package.json": JSON.stringify({ name: "tc-next-handlers-e2e", private: true, type: "module" }),
  "next.config.mjs": `export default { cacheHandler: ${JSON.stringify(handler)}, cacheMaxMemorySize: 0 };\n`,
  "app/layout.js":
    "export default function Layout({ children }) { return <html><body>{children}</body></html>; }\n",
  "app/isr/page.js": `import { unstable_cache } from "next/cache";
export const revalidate = 3600;
const data = unstable_cache(async () => ({ at: Date.now() }), ["isr-data"], { tags: ["posts"] });
export default async function Page() {
  const { at } = await data();
  return <p id="v">{\`rendered-by:\${process.env.INSTANCE}:\${at}:\${Date.now()}\`}</p>;
}
`,
  "app/api/revalidate/route.js": `import { revalidateTag } from "next/cache";
export const dynamic = "force-dynamic";
export async function POST(req) {
  revalidateTag(new URL(req.url).searchParams.get("tag"));
  return Response.json({ ok: true });
}
`,
};

try {
  const redisPort = await freePort();
  const redisServer = spawn(
    "redis-server",
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  children.push(redisServer);
  await new Promise((r) => setTimeout(r, 300));
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
  symlinkSync(join(root, "node_modules"), join(app, "node_modules"));

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
    const res = await fetch(`${instances[name]}/isr`);
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

  const res = await fetch(`${instances.A}/api/revalidate?tag=posts`, { method: "POST" });
  assert.equal(res.status, 200);
  log("revalidateTag(posts) on A");
  const until = Date.now() + 10_000;
  let fresh;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 300));
    fresh = await page("B");
    if (fresh !== first) break;
  }
  assert.notEqual(fresh, first, "B renders anew after revalidateTag on A");
  log(`B now serves ${fresh}`);
  log("ok");
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  stop();
}

#!/usr/bin/env node
/**
 * End-to-end check of examples/next-app: builds tiercache, `next build`s the example, starts it with
 * `next start` on a free loopback port and checks the cached route handlers over HTTP — MISS then
 * HIT, `age`, HEAD and If-None-Match, a POST that invalidates, the health handler.
 *
 * L1 only by default; with REDIS_URL set, against that Redis (a fresh cache version per run, so an
 * earlier run's entries are never hit). `npm run test:next`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readlinkSync, symlinkSync } from "node:fs";
import { get } from "node:http";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const app = join(root, "examples/next-app");
const next = join(root, "node_modules/.bin/next");
/** The whole run (build included) must fit CI; past this the server is stopped and the run fails. */
const DEADLINE_MS = 240_000;

const started = Date.now();
const seconds = () => ((Date.now() - started) / 1000).toFixed(1);
const log = (message) => console.log(`[next-e2e +${seconds()}s] ${message}`);

const env = {
  ...process.env,
  NEXT_TELEMETRY_DISABLED: "1",
  REDIS_CACHE_VERSION: `e2e${Date.now()}`,
};

let server;
const deadline = setTimeout(() => {
  console.error(`[next-e2e] over ${DEADLINE_MS / 1000}s: giving up`);
  stop();
  process.exit(1);
}, DEADLINE_MS);

try {
  await run("npm", ["run", "build"], root);
  linkTiercache();
  await run(next, ["build"], app);
  const port = await freePort();
  server = spawn(next, ["start", "-p", String(port), "-H", "127.0.0.1"], {
    cwd: app,
    env,
    stdio: ["ignore", "inherit", "inherit"],
    // Its own process group, so stop() ends next and anything it forked, by this PID only.
    detached: true,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitForHealth(base);
  log(`next start is up on ${base} (${env.REDIS_URL ? "L1 + Redis" : "L1 only"})`);
  const passed = await checks(base);
  log(`${passed} passed, 0 failed`);
  process.exitCode = 0;
} catch (error) {
  console.error(`[next-e2e] FAILED: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
  process.exitCode = 1;
} finally {
  stop();
  clearTimeout(deadline);
  log(`done in ${seconds()}s`);
}

async function checks(base) {
  let count = 0;
  const check = async (name, fn) => {
    await fn();
    count++;
    log(`ok - ${name}`);
  };
  const todos = `${base}/api/todos`;

  let first;
  await check("first GET is a MISS with age 0", async () => {
    const res = await fetch(todos);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-cache"), "MISS");
    assert.equal(res.headers.get("age"), "0");
    first = await res.json();
    assert.equal(first.todos.length, 1);
  });

  let etag;
  await check("second GET is a HIT with the same body", async () => {
    const res = await fetch(todos);
    assert.equal(res.headers.get("x-cache"), "HIT");
    assert.deepEqual(await res.json(), first);
    etag = res.headers.get("etag");
    assert.match(etag ?? "", /^W\/".+"$/);
  });

  await check("HEAD is answered from the GET entry", async () => {
    const res = await fetch(todos, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-cache"), "HIT");
  });

  await check("If-None-Match with the ETag gets a 304", async () => {
    // Not fetch(): it adds `Cache-Control: no-cache` to conditional requests, which asks the route
    // to refresh. A browser revalidating its cached copy sends just the condition.
    const res = await rawGet(todos, { "if-none-match": etag });
    assert.equal(res.status, 304);
    assert.equal(res.headers["x-cache"], "HIT");
  });

  await check("age counts the seconds since the response was made", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const res = await fetch(todos);
    assert.equal(res.headers.get("x-cache"), "HIT");
    assert.ok(Number(res.headers.get("age")) >= 1, `age ${res.headers.get("age")}`);
    await res.arrayBuffer();
  });

  await check("a POST succeeds and invalidates the list", async () => {
    const res = await fetch(todos, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "Ship it" }),
    });
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), { id: 2, title: "Ship it" });
  });

  await check("the GET after the POST is a MISS with the new todo", async () => {
    const res = await fetch(todos);
    assert.equal(res.headers.get("x-cache"), "MISS");
    assert.equal(res.headers.get("age"), "0");
    const body = await res.json();
    assert.equal(body.todos.length, 2);
    assert.notEqual(body.renderedAt, first.renderedAt);
  });

  await check("…and the one after that a HIT again", async () => {
    const res = await fetch(todos);
    assert.equal(res.headers.get("x-cache"), "HIT");
    await res.arrayBuffer();
  });

  await check("a failed POST invalidates nothing", async () => {
    const bad = await fetch(todos, { method: "POST", body: "{}" });
    assert.equal(bad.status, 400);
    await bad.arrayBuffer();
    const res = await fetch(todos);
    assert.equal(res.headers.get("x-cache"), "HIT");
    await res.arrayBuffer();
  });

  await check("the health handler answers 200, not cached", async () => {
    const res = await fetch(`${base}/api/health`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const report = await res.json();
    assert.equal(report.healthy, true);
    assert.equal(report.transport, env.REDIS_URL ? "node-redis" : "none");
  });
  return count;
}

/**
 * The example depends on `tiercache` as `file:../..` (a user would `npm i tiercache`); that is
 * this checkout. npm would install it as a link; make that link without a second install.
 */
function linkTiercache() {
  const link = join(app, "node_modules/tiercache");
  const target = join("..", "..", "..");
  if (existsSync(link) && lstatSync(link).isSymbolicLink() && readlinkSync(link) === target) return;
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(target, link, "dir");
}

/** A GET with exactly these headers: status and headers of the answer. */
function rawGet(url, headers) {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      res.resume();
      res.once("end", () => resolve({ status: res.statusCode, headers: res.headers }));
    }).once("error", reject);
  });
}

function run(command, args, cwd) {
  log(`$ ${[command.replace(root, ""), ...args].join(" ")}`);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "inherit", "inherit"] });
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${command} ${args.join(" ")} exited with ${code ?? signal}`)),
    );
  });
}

async function waitForHealth(base) {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    if (server.exitCode !== null) throw new Error(`next start exited with ${server.exitCode}`);
    try {
      const res = await fetch(`${base}/api/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error("next start did not answer /api/health within 60 s");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function stop() {
  if (!server?.pid || server.exitCode !== null) return;
  try {
    process.kill(-server.pid, "SIGTERM");
  } catch {
    // already gone
  }
}

/**
 * examples/next-app, copied out of the repository and installed from the packed tarball, the way a
 * user's app has it. First with `tiercache` as its only cache dependency (builds with Turbopack and
 * webpack, runs L1-only and over REST, a clear error when REDIS_URL names a transport it lacks), then
 * with `redis` added: builds with Redis stopped and a listener counting attempts on its port, two `next start`s
 * on one redis-server, and the `output: "standalone"` server copied elsewhere.
 */
import assert from "node:assert/strict";
import { cp, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { check, cleanEnv, freePort, run, sleep, start, tail, waitFor } from "./harness.mjs";
import { answers, request } from "./http.mjs";
import { countingListener, startRedis } from "./redis.mjs";
import { copyExample, install } from "./workspace.mjs";

/** The default `l1.syncMs`: an invalidation elsewhere is seen within it plus one request. */
const SYNC_MS = 1000;

/**
 * Copies and installs the example with no Redis peer, at the versions of Next and React its
 * package.json names; resolves the app's directory.
 */
export async function prepareNextApp({ root, work, tarball }) {
  const example = join(root, "examples/next-app");
  const app = join(work, "next-app");
  const { dependencies, devDependencies } = JSON.parse(await readFile(join(example, "package.json"), "utf8"));
  await copyExample(example, app, {
    tarball,
    deps: { ...dependencies, tiercache: "tarball" },
    devDeps: devDependencies,
  });
  await install(app);
  return app;
}

export async function nextChecks({ app, work, rest, installed, peers }) {
  // `app` is undefined when the install failed: then every check below reports "not run".
  const nextBin = join(app ?? work, "node_modules/.bin/next");
  const version = `apps${Date.now()}`;

  /** `next build` with `env`; the listener sits where REDIS_URL points (if it does). */
  const build = async ({ bundler, env = {}, listener }) => {
    listener?.reset();
    // No output of an earlier build may stand in for this one's.
    for (const dir of ["server", "standalone"])
      await rm(join(app, ".next", dir), { recursive: true, force: true });
    const args = bundler === "webpack" ? ["build", "--webpack"] : ["build"];
    const out = await run(nextBin, args, { cwd: app, env: cleanEnv(env), timeoutMs: 240_000 });
    const banner = out.match(/Next\.js \S+ \((\w+)\)/)?.[1];
    assert.equal(banner?.toLowerCase(), bundler, `next build ran ${banner ?? "an unnamed bundler"}`);
    // The static page calls getOrSet: it must have been rendered here for "no Redis" to mean anything.
    const page = await readFile(join(app, ".next/server/app/index.html"), "utf8").catch(() => "");
    assert.match(page, /Hello from tiercache/, "the static page / was not prerendered at build time");
    if (listener) {
      const attempts = listener.attempts();
      assert.equal(attempts, 0, `${attempts} connection attempt(s) to REDIS_URL during next build`);
      return "0 connection attempts to REDIS_URL";
    }
  };

  // --- only tiercache installed (no `redis`, no `@upstash/redis`) ---
  const bareTurbo = await check(
    "next build (Turbopack) of the example with only tiercache installed",
    () => build({ bundler: "turbopack" }),
    { needs: installed },
  );
  const bareWebpack = await check(
    "next build --webpack of the example with only tiercache installed",
    () => build({ bundler: "webpack" }),
    { needs: installed },
  );
  await check(
    "next start with no Redis env: L1 only, MISS then HIT",
    async () => {
      const server = await nextStart(nextBin, app, {});
      try {
        const health = (await request(server.base, "/api/health")).json();
        assert.equal(health.transport, "none");
        assert.equal((await request(server.base, "/api/todos")).headers["x-cache"], "MISS");
        assert.equal((await request(server.base, "/api/todos")).headers["x-cache"], "HIT");
      } finally {
        await server.stop();
      }
    },
    { needs: bareWebpack || bareTurbo },
  );
  await check(
    "next start with only UPSTASH_REDIS_REST_* (no peer installed): REST over fetch, the entry in Redis",
    async () => {
      const restVersion = `${version}rest`;
      const server = await nextStart(nextBin, app, {
        UPSTASH_REDIS_REST_URL: rest.url,
        UPSTASH_REDIS_REST_TOKEN: rest.token,
        REDIS_CACHE_VERSION: restVersion,
      });
      try {
        const health = await request(server.base, "/api/health");
        assert.equal(health.status, 200, health.text);
        assert.equal(health.json().transport, "upstash");
        assert.equal((await request(server.base, "/api/todos")).headers["x-cache"], "MISS");
        const pattern = `tc:default:${restVersion}:*`;
        await waitFor(`a key ${pattern} in Redis`, async () => (await rest.redis.keys(pattern)).length > 0, {
          timeoutMs: 3000,
        });
      } finally {
        await server.stop();
      }
    },
    { needs: (bareWebpack || bareTurbo) && rest !== undefined },
  );
  await check(
    "REDIS_URL without `redis` installed: one clear error (once, not per request) naming REDIS_URL and `npm i redis`",
    async () => {
      const listener = await countingListener();
      const server = await nextStart(nextBin, app, { REDIS_URL: listener.url });
      try {
        const statuses = [];
        for (let i = 0; i < 3; i++) statuses.push((await request(server.base, `/api/todos?i=${i}`)).status);
        await sleep(300);
        const output = server.proc.output();
        const mentions = output.split("\n").filter((line) => line.includes("REDIS_URL"));
        assert.ok(mentions.length > 0, `nothing in the server log names REDIS_URL:\n${tail(output, 15)}`);
        assert.match(
          mentions.join("\n"),
          /npm i(nstall)? redis/,
          "the error does not say to install `redis`",
        );
        assert.equal(
          mentions.length,
          1,
          `REDIS_URL named ${mentions.length} times over 3 requests:\n${tail(output, 15)}`,
        );
        assert.doesNotMatch(output, /Cannot find (package|module)/, "a raw module-resolution warning");
        assert.equal(listener.attempts(), 0);
        return `statuses ${statuses.join(", ")}; ${mentions[0].trim().slice(0, 120)}…`;
      } finally {
        await server.stop();
        await listener.close();
      }
    },
    { needs: bareWebpack || bareTurbo },
  );

  // --- tiercache + redis (the TCP setup) ---
  const withRedis = await check(
    "npm install the `redis` peer",
    async () => {
      await install(app, [`redis@${peers.redis}`]);
    },
    { needs: installed },
  );
  const listener = await countingListener();
  const redis = await startRedis();
  try {
    // Both builds standalone: `next start` serves such a build as well, and each bundler's
    // standalone output is checked on its own.
    const tcpWebpack = await check(
      "next build --webpack (output: standalone) with REDIS_URL set and Redis stopped: no connection attempted",
      () =>
        build({ bundler: "webpack", env: { REDIS_URL: listener.url, NEXT_OUTPUT: "standalone" }, listener }),
      { needs: withRedis },
    );
    await twoInstances({ nextBin, app, redis, version, needs: tcpWebpack });
    await standalone({ app, work, redis, version, bundler: "webpack", needs: tcpWebpack });

    const tcpTurbo = await check(
      "next build (Turbopack, output: standalone) with REDIS_URL set and Redis stopped: no connection attempted",
      () =>
        build({
          bundler: "turbopack",
          env: { REDIS_URL: listener.url, NEXT_OUTPUT: "standalone" },
          listener,
        }),
      { needs: withRedis },
    );
    await standalone({ app, work, redis, version, bundler: "Turbopack", needs: tcpTurbo });
  } finally {
    await listener.close();
    await redis.stop();
  }
}

/** `next start` on a free port; resolves once /api/health answers. */
async function nextStart(nextBin, app, env) {
  const port = await freePort();
  const proc = start(nextBin, ["start", "-p", String(port), "-H", "127.0.0.1"], {
    cwd: app,
    env: cleanEnv(env),
    name: `next start :${port}`,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`next start on ${port}`, () => answers(base, "/api/health"), { timeoutMs: 60_000, proc });
  return { base, proc, stop: () => proc.stop() };
}

/** Two `next start`s on one Redis, behind the same public host as a load balancer would send. */
async function twoInstances({ nextBin, app, redis, version, needs }) {
  const env = { REDIS_URL: redis.url, REDIS_CACHE_VERSION: version };
  let a;
  let b;
  const up = await check(
    "next start ×2 (two ports) on one redis-server: both healthy over node-redis",
    async () => {
      [a, b] = await Promise.all([nextStart(nextBin, app, env), nextStart(nextBin, app, env)]);
      for (const server of [a, b]) {
        const res = await request(server.base, "/api/health");
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json().transport, "node-redis");
      }
    },
    { needs },
  );
  const host = { host: "shop.example" };
  let first;
  try {
    await check(
      "a route entry made on A is a HIT on B (same Host header)",
      async () => {
        const miss = await request(a.base, "/api/todos", { headers: host });
        assert.equal(miss.headers["x-cache"], "MISS", "first GET on A");
        first = miss.json();
        // The L2 write after a miss may finish just after the response.
        await sleep(100);
        const hit = await request(b.base, "/api/todos", { headers: host });
        assert.equal(
          hit.headers["x-cache"],
          "HIT",
          "B did not find A's entry: route keys differ per instance",
        );
        assert.deepEqual(hit.json(), first);
      },
      { needs: up },
    );
    await check(
      "HEAD, If-None-Match (304) and age on B from the shared entry",
      async () => {
        const get = await request(b.base, "/api/todos", { headers: host });
        assert.equal(get.headers["x-cache"], "HIT");
        const etag = get.headers.etag;
        assert.match(etag ?? "", /^W\/".+"$/);
        const head = await request(b.base, "/api/todos", { method: "HEAD", headers: host });
        assert.equal(head.status, 200);
        assert.equal(head.headers["x-cache"], "HIT");
        const conditional = await request(b.base, "/api/todos", {
          headers: { ...host, "if-none-match": etag },
        });
        assert.equal(conditional.status, 304);
        await sleep(1100);
        const later = await request(b.base, "/api/todos", { headers: host });
        assert.ok(Number(later.headers.age) >= 1, `age ${later.headers.age}`);
      },
      { needs: up },
    );
    await check(
      "a handler's own Cache-Control and Vary: shared across instances, split per language, CDN headers",
      async () => {
        const ask = (server, lang) =>
          request(server.base, "/api/greeting", { headers: { ...host, "accept-language": lang } });
        const en = await ask(a, "en-GB");
        assert.equal(en.headers["x-cache"], "MISS");
        assert.equal(en.headers["cdn-cache-control"], "max-age=60");
        assert.equal(en.headers["cache-tag"], "greetings");
        const fr = await ask(a, "fr-FR");
        assert.equal(fr.headers["x-cache"], "MISS", "French was served the English entry");
        assert.equal(fr.json().greeting, "Bonjour");
        await sleep(100);
        for (const [lang, greeting] of [
          ["fr-FR", "Bonjour"],
          ["en-GB", "Hello"],
        ]) {
          const hit = await ask(b, lang);
          assert.equal(hit.headers["x-cache"], "HIT", `B did not find A's ${lang} variant`);
          assert.equal(hit.json().greeting, greeting);
        }
      },
      { needs: up },
    );
    await check(
      "another Host is another entry (tenants do not share)",
      async () => {
        const other = await request(a.base, "/api/todos", { headers: { host: "tenant-b.example" } });
        assert.equal(other.headers["x-cache"], "MISS", "tenant-b.example was served shop.example's entry");
      },
      { needs: up },
    );
    await check(
      `a POST on A invalidates: A misses at once, B within l1.syncMs (${SYNC_MS} ms) + one request`,
      async () => {
        // B holds the entry in L1 (served as a HIT above).
        assert.equal((await request(b.base, "/api/todos", { headers: host })).headers["x-cache"], "HIT");
        const post = await request(a.base, "/api/todos", {
          method: "POST",
          headers: { ...host, "content-type": "application/json" },
          body: JSON.stringify({ title: "Ship it" }),
        });
        assert.equal(post.status, 201, post.text);
        const posted = Date.now();
        const onA = await request(a.base, "/api/todos", { headers: host });
        assert.equal(onA.headers["x-cache"], "MISS", "A served its invalidated entry");
        assert.equal(onA.json().todos.length, 2);
        // Poll B; the first answer that is not the old entry ends it.
        let seen;
        while (Date.now() - posted < SYNC_MS + 2000) {
          const res = await request(b.base, "/api/todos", { headers: host });
          if (res.headers["x-cache"] !== "HIT" || res.json().renderedAt !== first.renderedAt) {
            seen = Date.now() - posted;
            break;
          }
          await sleep(50);
        }
        assert.ok(
          seen !== undefined,
          `B still served the invalidated entry ${SYNC_MS + 2000} ms after the POST`,
        );
        // One request past the bound (the one whose epoch check saw the move), plus slack for a
        // loaded CI machine.
        assert.ok(seen <= SYNC_MS + 500, `B saw the invalidation after ${seen} ms`);
        return `B saw it after ${seen} ms`;
      },
      { needs: up },
    );
    await check(
      "a failed POST invalidates nothing",
      async () => {
        await request(a.base, "/api/todos", { headers: host });
        const bad = await request(a.base, "/api/todos", { method: "POST", headers: host, body: "{}" });
        assert.equal(bad.status, 400);
        assert.equal((await request(a.base, "/api/todos", { headers: host })).headers["x-cache"], "HIT");
      },
      { needs: up },
    );
    await check(
      "Redis connections do not grow over 200 requests (one per next process)",
      async () => {
        const before = await redis.otherClients();
        for (let i = 0; i < 200; i++) {
          const server = i % 2 ? a : b;
          const res = await request(server.base, `/api/todos?page=${i % 20}`, { headers: host });
          assert.equal(res.status, 200);
        }
        await request(a.base, "/api/health");
        const after = await redis.otherClients();
        assert.ok(after <= before, `connections grew from ${before} to ${after}`);
        assert.ok(after <= 2, `${after} connections from 2 next processes`);
        return `${before} → ${after} connections`;
      },
      { needs: up },
    );
  } finally {
    await Promise.all([a?.stop(), b?.stop()]);
  }
}

/**
 * The standalone server copied to a directory outside the app and the repository (as a Dockerfile
 * would), with the app's own node_modules moved away while it runs, so it can only use what the
 * build put in it.
 */
async function standalone({ app, work, redis, version, bundler, needs }) {
  const target = join(work, `standalone-${bundler}`);
  const copied = await check(
    `the standalone output (${bundler}) copies elsewhere and carries a server.js`,
    async () => {
      await cp(join(app, ".next/standalone"), target, { recursive: true, dereference: true });
      await cp(join(app, ".next/static"), join(target, ".next/static"), { recursive: true });
      const entries = await readdir(target);
      assert.ok(entries.includes("server.js"), `standalone has ${entries}`);
    },
    { needs },
  );
  const env = { REDIS_URL: redis.url, REDIS_CACHE_VERSION: `${version}${bundler}` };
  const publicHost = { host: "docker.example" };
  const serve = async () => {
    const port = await freePort();
    const proc = start("node", ["server.js"], {
      cwd: target,
      env: cleanEnv({ ...env, PORT: String(port), HOSTNAME: "127.0.0.1" }),
      name: `standalone server.js :${port}`,
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`standalone server on ${port}`, () => answers(base, "/api/health"), {
      timeoutMs: 30_000,
      proc,
    });
    return { base, proc };
  };
  const away = join(work, "next-app-node_modules.away");
  try {
    if (copied) await rename(join(app, "node_modules"), away);
    await check(
      `standalone (${bundler}) \`node server.js\` with REDIS_URL uses Redis: the entry is in Redis, an L2 HIT after a restart`,
      async () => {
        let server = await serve();
        try {
          // The public host a proxy in front of the container sends, the same before and after.
          const miss = await request(server.base, "/api/todos", { headers: publicHost });
          assert.equal(miss.headers["x-cache"], "MISS");
          const pattern = `tc:default:${env.REDIS_CACHE_VERSION}:*`;
          await waitFor("the entry in Redis", async () => (await redis.keys(pattern)).length > 0, {
            timeoutMs: 3000,
          }).catch(() => {
            throw new Error(
              `no key ${pattern} in Redis: the standalone server ran without L2\n${tail(server.proc.output(), 15)}`,
            );
          });
          assert.doesNotMatch(server.proc.output(), /Cannot find (package|module)/);
        } finally {
          await server.proc.stop();
        }
        server = await serve();
        try {
          const hit = await request(server.base, "/api/todos", { headers: publicHost });
          assert.equal(hit.headers["x-cache"], "HIT", "a fresh server (empty L1) did not hit L2");
          const health = (await request(server.base, "/api/health")).json();
          assert.equal(health.transport, "node-redis");
        } finally {
          await server.proc.stop();
        }
      },
      { needs: copied },
    );
  } finally {
    if (copied) await rename(away, join(app, "node_modules"));
  }
}

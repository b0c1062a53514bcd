/**
 * examples/worker under a real `wrangler dev` (wrangler's own esbuild settings, workerd), installed
 * from the tarball with no peer (REST is plain fetch), against `rest` (bridge.mjs: `tiercache bridge`
 * in front of a real redis-server). Then a Worker in an app with only `tiercache` and only REDIS_URL
 * in its env.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { check, cleanEnv, freePort, start, tail, waitFor } from "./harness.mjs";
import { answers, request } from "./http.mjs";
import { countingListener } from "./redis.mjs";
import { copyExample, emptyApp, install } from "./workspace.mjs";

/**
 * wrangler 4.86 is the last release whose engines allow Node 20; later ones need Node 22.
 * Chosen by the Node running this script.
 */
export function wranglerVersion() {
  const major = Number(process.versions.node.split(".")[0]);
  return major >= 22 ? "^4.86.0" : "4.86.0";
}

export async function prepareWorkerApps({ root, work, tarball, peers }) {
  const worker = join(work, "worker");
  const bridge = join(work, "bridge");
  await Promise.all([
    copyExample(join(root, "examples/worker"), worker, {
      tarball,
      // REST is plain fetch: the Worker needs no peer at all.
      deps: { tiercache: "tarball" },
      devDeps: { wrangler: wranglerVersion() },
    }),
    emptyApp(bridge, { tarball, deps: { tiercache: "tarball", redis: peers.redis } }),
  ]);
  await Promise.all([install(worker), install(bridge)]);
  return { worker, bridge };
}

export async function workerChecks({
  root,
  work,
  apps = { worker: work, bridge: work },
  bare,
  rest,
  installed,
  bareInstalled,
}) {
  const wrangler = join(apps.worker, "node_modules/.bin/wrangler");
  const home = join(work, "wrangler-home");
  await mkdir(home, { recursive: true });
  // No login, no telemetry, no user config: what a CI machine (or a new user offline) has.
  const wranglerEnv = cleanEnv({
    WRANGLER_SEND_METRICS: "false",
    XDG_CONFIG_HOME: home,
    WRANGLER_LOG_PATH: join(home, "logs"),
    NO_COLOR: "1",
    CI: "1",
  });
  /** `wrangler dev` in `cwd`, on `port` (a free one if not given). */
  const wranglerDev = async (cwd, port) => {
    port ??= await freePort();
    const inspector = await freePort();
    const proc = start(
      wrangler,
      [
        "dev",
        "--local",
        "--ip",
        "127.0.0.1",
        "--port",
        String(port),
        "--inspector-port",
        String(inspector),
        "--show-interactive-dev-session=false",
        "--log-level",
        "warn",
      ],
      { cwd, env: wranglerEnv, name: `wrangler dev :${port}` },
    );
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`wrangler dev on ${port}`, () => answers(base, "/health"), {
      timeoutMs: 90_000,
      proc,
      failOn: /Build failed|\[ERROR\]/,
    });
    return { base, port, proc };
  };

  if (rest) {
    await writeFile(
      join(apps.worker, ".dev.vars"),
      `UPSTASH_REDIS_REST_URL=${rest.url}\nUPSTASH_REDIS_REST_TOKEN=${rest.token}\n`,
    );
  }
  let dev;
  const up = await check(
    `wrangler dev --local (wrangler ${wranglerVersion()}, offline: no login, no telemetry) serves the example`,
    async () => {
      dev = await wranglerDev(apps.worker);
      const health = await request(dev.base, "/health");
      assert.equal(health.status, 200, health.text);
      assert.equal(health.json().transport, "upstash");
    },
    { needs: installed && rest !== undefined },
  );
  try {
    await check(
      "GET is a MISS, then a HIT",
      async () => {
        const miss = await request(dev.base, "/products?id=7");
        assert.equal(miss.status, 200, miss.text);
        assert.equal(miss.headers["x-cache"], "MISS");
        const hit = await request(dev.base, "/products?id=7");
        assert.equal(hit.headers["x-cache"], "HIT");
        assert.equal(hit.text, miss.text);
      },
      { needs: up },
    );
  } finally {
    await dev?.proc.stop();
  }

  let fresh;
  const again = await check(
    "a fresh wrangler dev (empty L1) gets an L2 HIT",
    async () => {
      // The same address, so the same route keys: a restart, as a new isolate of a deploy would be.
      fresh = await wranglerDev(apps.worker, dev.port);
      const hit = await request(fresh.base, "/products?id=7");
      assert.equal(hit.headers["x-cache"], "HIT", `a fresh isolate answered ${hit.headers["x-cache"]}`);
    },
    { needs: up },
  );
  try {
    await check(
      "POST invalidates: the next GET is a MISS, the one after a HIT",
      async () => {
        const post = await request(fresh.base, "/products?id=7", { method: "POST" });
        assert.equal(post.status, 204, post.text);
        assert.equal((await request(fresh.base, "/products?id=7")).headers["x-cache"], "MISS");
        assert.equal((await request(fresh.base, "/products?id=7")).headers["x-cache"], "HIT");
      },
      { needs: again },
    );
  } finally {
    await fresh?.proc.stop();
  }

  await check(
    "a Worker with only REDIS_URL (app with only tiercache) bundles, and gets one clear CacheError naming REDIS_URL",
    async () => {
      const listener = await countingListener();
      await copyFile(
        join(root, "scripts/apps/fixtures/redis-url-worker.js"),
        join(bare, "redis-url-worker.js"),
      );
      await writeFile(
        join(bare, "wrangler.toml"),
        'name = "redis-url-only"\nmain = "redis-url-worker.js"\ncompatibility_date = "2026-04-01"\n',
      );
      await writeFile(join(bare, ".dev.vars"), `REDIS_URL=${listener.url}\n`);
      let dev;
      try {
        dev = await wranglerDev(bare);
        const report = (await request(dev.base, "/")).json();
        assert.equal(
          report.threw,
          true,
          `no error: createCache and getOrSet ran (${JSON.stringify(report)})\n${tail(dev.proc.output(), 10)}`,
        );
        assert.equal(report.name, "CacheError", JSON.stringify(report));
        assert.match(report.message, /REDIS_URL/, report.message);
        assert.match(
          report.message,
          /UPSTASH_REDIS_REST_URL|tiercache\/upstash|@upstash\/redis/,
          report.message,
        );
        assert.equal(listener.attempts(), 0);
        return report.message;
      } finally {
        await dev?.proc.stop();
        await listener.close();
      }
    },
    { needs: installed && bareInstalled },
  );
}

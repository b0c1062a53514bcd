#!/usr/bin/env node
/**
 * `node bench/next.bench.mjs`: Next.js 16 over HTTP with four caches, on one redis-server —
 * tiercache's handlers (`tiercache/next/use-cache` + `tiercache/next/incremental`), Next's default
 * in-memory handlers, a custom `cacheHandler` that is only a Map (the reference for what Next costs
 * once any `cacheHandler` is set), and `@fortedigital/nextjs-cache-handler` (redis-strings; an
 * incremental `cacheHandler` only, so its `'use cache'` entries stay in Next's default in-memory handler).
 *
 * examples/next-cache-handlers, installed from the packed tarball in a temp dir outside the
 * repository, built once per cache, one `next start` each: p50/p99 of `/posts?n=1` (a cached
 * `'use cache'` component under a PPR shell) and `/isr` (a page-level `'use cache'` page, ISR: the
 * incremental cache's APP_PAGE entry), closed loop on one keep-alive connection after a warm-up, and
 * Redis commands per request (INFO commandstats over the measured requests, background checks
 * included). All four run at once and are measured in BENCH_NEXT_ROUNDS (default 5) alternating
 * rounds: BENCH_NEXT_REQUESTS (default 2000) per page and cache in all, after BENCH_NEXT_WARMUP
 * (default 1000) each.
 */
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanEnv, freePort, run, start, stopAll, waitFor } from "../scripts/apps/harness.mjs";
import { answers } from "../scripts/apps/http.mjs";
import { startRedis } from "../scripts/apps/redis.mjs";
import { emptyApp, install, pack } from "../scripts/apps/workspace.mjs";

const REQUESTS = Number(process.env.BENCH_NEXT_REQUESTS ?? 2000);
const WARMUP = Number(process.env.BENCH_NEXT_WARMUP ?? 1000);
const ROUNDS = Number(process.env.BENCH_NEXT_ROUNDS ?? 5);
const PATHS = ["/posts?n=1", "/isr"];
const root = fileURLToPath(new URL("..", import.meta.url));
const example = join(root, "examples/next-cache-handlers");

const FORTE_HANDLER = `import { CacheHandler } from "@fortedigital/nextjs-cache-handler";
import createRedisHandler from "@fortedigital/nextjs-cache-handler/redis-strings";
import { createClient } from "redis";

CacheHandler.onCreation(async () => {
  const client = createClient({ url: process.env.REDIS_URL });
  client.on("error", () => {});
  await client.connect();
  return { handlers: [createRedisHandler({ client, keyPrefix: "forte:" })] };
});

export default CacheHandler;
`;

/**
 * The least a custom `cacheHandler` can do: a Map, values returned as stored. Not a cache anyone should
 * use (one process, no tags): the reference for what Next itself costs once `cacheHandler` is set.
 */
const MAP_HANDLER = `const entries = new Map();

export default class MapHandler {
  async get(key) {
    return entries.get(key) ?? null;
  }
  async set(key, value, context) {
    entries.set(key, { value, lastModified: Date.now(), cacheControl: context.cacheControl });
  }
  async revalidateTag() {}
  resetRequestCache() {}
}
`;

/** next.config per cache; the pages are the example's. */
const CONFIGS = {
  tiercache: null,
  "next default (in-memory)": `export default { cacheComponents: true };\n`,
  "custom cacheHandler: a Map (reference)": `import { fileURLToPath } from "node:url";
export default {
  cacheComponents: true,
  cacheHandler: fileURLToPath(new URL("./map-handler.mjs", import.meta.url)),
  cacheMaxMemorySize: 0,
};
`,
  "@fortedigital/nextjs-cache-handler": `import { fileURLToPath } from "node:url";
export default {
  cacheComponents: true,
  cacheHandler: fileURLToPath(new URL("./forte-handler.mjs", import.meta.url)),
  cacheMaxMemorySize: 0,
};
`,
};

const work = await mkdtemp(join(tmpdir(), "tiercache-next-bench-"));
const redis = await startRedis();
try {
  const tarball = await pack(root, join(work, "pack"));
  await emptyApp(work, {
    tarball,
    deps: {
      next: "16.4.6",
      react: "19.3.1",
      "react-dom": "19.3.1",
      redis: "^5.8.0",
      tiercache: "tarball",
      "@fortedigital/nextjs-cache-handler": "^3.3.0",
    },
  });
  await install(work);
  // Built one after another, then all started and measured in alternating rounds: neighbours on a
  // shared machine come and go, and measuring one cache after the other charged their load to
  // whichever cache ran at the time — more than the gaps being measured.
  const servers = [];
  for (const [name, config] of Object.entries(CONFIGS)) {
    const app = join(work, name.replace(/[^a-z]+/gi, "-"));
    await cp(example, app, { recursive: true, filter: (s) => !/node_modules|\.next$/.test(s) });
    if (config) await writeFile(join(app, "next.config.mjs"), config);
    await writeFile(join(app, "forte-handler.mjs"), FORTE_HANDLER);
    await writeFile(join(app, "map-handler.mjs"), MAP_HANDLER);
    const env = cleanEnv({ REDIS_URL: redis.url, INSTANCE: "bench" });
    await run(join(work, "node_modules/.bin/next"), ["build"], { cwd: app, env, timeoutMs: 300_000 });
    servers.push({ name, app, env });
  }
  for (const server of servers) {
    const port = await freePort();
    server.proc = start(
      join(work, "node_modules/.bin/next"),
      ["start", "-p", String(port), "-H", "127.0.0.1"],
      {
        cwd: server.app,
        env: server.env,
        name: server.name,
      },
    );
    server.base = `http://127.0.0.1:${port}`;
    await waitFor(`${server.name} on ${port}`, () => answers(server.base, "/isr"), {
      timeoutMs: 60_000,
      proc: server.proc,
    });
  }
  const samples = new Map();
  for (const server of servers)
    for (const path of PATHS) {
      await warmUp(server.base, path);
      samples.set(`${server.name} ${path}`, { times: [], ms: 0, commands: 0 });
    }
  for (let round = 0; round < ROUNDS; round++)
    for (const server of servers)
      for (const path of PATHS) {
        const burst = await measure(server.base, path, Math.ceil(REQUESTS / ROUNDS));
        const into = samples.get(`${server.name} ${path}`);
        into.times.push(...burst.times);
        into.ms += burst.ms;
        into.commands += burst.commands;
      }
  const rows = [];
  for (const server of servers)
    for (const path of PATHS) {
      const { times, ms, commands } = samples.get(`${server.name} ${path}`);
      times.sort((a, b) => a - b);
      const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
      rows.push({
        cache: server.name,
        path,
        p50: at(0.5),
        p99: at(0.99),
        rps: (times.length / ms) * 1000,
        commands: commands / times.length,
      });
      console.log(JSON.stringify(rows.at(-1)));
    }
  console.log("\n| cache | page | p50 | p99 | req/s | Redis commands / request |");
  console.log("|---|---|---:|---:|---:|---:|");
  for (const r of rows)
    console.log(
      `| ${r.cache} | \`${r.path}\` | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${r.rps.toFixed(0)} | ${r.commands.toFixed(3)} |`,
    );
} finally {
  // Redis first: stopAll() would end its server under its client's QUIT.
  await redis.stop().catch(() => {});
  await stopAll();
  await rm(work, { recursive: true, force: true });
}

async function warmUp(base, path) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < WARMUP; i++) await get(agent, base, path);
  agent.destroy();
}

/**
 * `count` sequential GETs on one keep-alive connection, and the Redis commands meanwhile (only the
 * server being driven sends any: tiercache's background checks start from requests).
 */
async function measure(base, path, count) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  await redis.client.sendCommand(["CONFIG", "RESETSTAT"]);
  const times = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await get(agent, base, path);
    times.push(performance.now() - t);
  }
  const ms = performance.now() - t0;
  const stats = await redis.client.sendCommand(["INFO", "commandstats"]);
  let commands = 0;
  for (const [, cmd, calls] of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g))
    if (cmd !== "info" && cmd !== "config|resetstat" && cmd !== "config") commands += Number(calls);
  agent.destroy();
  return { times, ms, commands };
}

function get(agent, base, path) {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { agent }, (res) => {
      res.resume();
      res.once("end", () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${res.statusCode}`)),
      );
    });
    req.once("error", reject);
    req.end();
  });
}

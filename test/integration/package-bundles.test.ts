import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type BuildOptions, build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isolatedRedisUrl } from "../support/redis-db.js";

/**
 * The built package as an app outside this repository sees it: dist/ and package.json in
 * node_modules/tiercache, its one dependency, and no optional peer unless a test adds it. Bundled
 * the way wrangler and Node bundlers do, and run with plain Node. (Next.js builds and `wrangler dev`
 * run in `npm run test:apps`.)
 */
const run = promisify(execFile);
const root = fileURLToPath(new URL("../../", import.meta.url));
let dir: string;
let redisUrl: string;

/** What an app does with a cache from env; prints what it saw as JSON. */
const PROBE = `
import { createCache } from "tiercache";
const errors = [], warns = [];
const logger = { warn: (m) => warns.push(m), error: (m) => errors.push(m) };
let result;
try {
  // A generous deadline: a cold process's first connection on a busy machine is not what this tests.
  const cache = createCache({ logger, timeoutMs: 5000 });
  const values = [];
  for (let i = 0; i < 5; i++) values.push(await cache.getOrSet("probe", () => i));
  // What an earlier process left in Redis, then this one's value for the next.
  const stored = (await cache.get("stored")) ?? null;
  if (process.env.PROBE_VALUE) await cache.set("stored", process.env.PROBE_VALUE);
  const { healthy, transport, error } = await cache.health();
  await cache.close();
  result = { values, stored, healthy, transport, error, errors, warns };
} catch (e) {
  result = { thrown: { code: e.code, message: e.message } };
}
console.log(JSON.stringify(result));
`;

/** An app directory with tiercache installed, and `redis` too when asked. */
async function app(name: string, withRedis: boolean): Promise<string> {
  const home = join(dir, name);
  const modules = join(home, "node_modules");
  await mkdir(join(modules, "tiercache"), { recursive: true });
  await cp(join(dir, "dist"), join(modules, "tiercache", "dist"), { recursive: true });
  await cp(join(root, "package.json"), join(modules, "tiercache", "package.json"));
  await symlink(join(root, "node_modules", "lru-cache"), join(modules, "lru-cache"));
  if (withRedis) {
    await symlink(join(root, "node_modules", "redis"), join(modules, "redis"));
    await symlink(join(root, "node_modules", "@redis"), join(modules, "@redis"));
  }
  await writeFile(join(home, "package.json"), '{ "type": "module" }');
  await writeFile(join(home, "probe.mjs"), PROBE);
  return home;
}

async function probe(home: string, file: string, env: Record<string, string>) {
  const { stdout } = await run(process.execPath, [file], {
    cwd: home,
    env: { PATH: process.env.PATH, ...env },
  });
  return JSON.parse(stdout.trim().split("\n").pop() ?? "null");
}

async function bundle(home: string, options: BuildOptions) {
  const result = await build({
    entryPoints: [join(home, "probe.mjs")],
    bundle: true,
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "silent",
    ...options,
  });
  const file = result.outputFiles?.[0];
  if (!file || !result.metafile) throw new Error("esbuild produced no output");
  const out = join(home, `bundle-${options.platform}.mjs`);
  await writeFile(out, file.text);
  return { out, inputs: Object.keys(result.metafile.inputs), text: file.text, warnings: result.warnings };
}

/** wrangler's esbuild settings for a module Worker. */
const WORKERD: BuildOptions = {
  platform: "neutral",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["browser", "module", "main"],
  target: "es2022",
};

beforeAll(async () => {
  redisUrl = await isolatedRedisUrl();
  dir = await mkdtemp(join(tmpdir(), "tiercache-package-"));
  await run(process.execPath, [join(root, "scripts/build.mjs"), join(dir, "dist")], { cwd: root });
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const MISSING =
  /^tiercache: REDIS_URL is set, but the package "redis" could not be loaded: install it .*npm i redis/;

describe("an app with tiercache alone and REDIS_URL", () => {
  const env = { REDIS_URL: "redis://127.0.0.1:1" };

  it("on plain Node: one clear error, then L1 and loaders; health() says why", async () => {
    const home = await app("plain", false);
    const seen = await probe(home, "probe.mjs", env);
    expect(seen.values).toEqual([0, 0, 0, 0, 0]);
    expect(seen.errors).toEqual([expect.stringMatching(MISSING)]);
    expect(seen.warns).toEqual([]);
    expect(seen).toMatchObject({
      healthy: false,
      transport: "node-redis",
      error: expect.stringMatching(MISSING),
    });
  });

  it("bundles for Node with esbuild without redis installed, and behaves the same", async () => {
    const home = await app("esbuild-node", false);
    const { out, warnings } = await bundle(home, { platform: "node", target: "node20" });
    expect(warnings).toEqual([]);
    const seen = await probe(home, out, env);
    expect(seen.errors).toEqual([expect.stringMatching(MISSING)]);
    expect(seen.healthy).toBe(false);
  });

  it("bundles for workerd (wrangler's settings) and the browser without any TCP code", async () => {
    const home = await app("workerd", false);
    for (const options of [WORKERD, { platform: "browser" as const }]) {
      const { inputs, text } = await bundle(home, options);
      expect(inputs.filter((input) => /node-redis|transports\/tcp\.js/.test(input))).toEqual([]);
      expect(inputs.some((input) => input.endsWith("transports/tcp-edge.js"))).toBe(true);
      expect(text).not.toMatch(/(import\s*\(\s*|from\s*)["'](redis|@upstash\/redis|node:)/);
    }
  });

  it("in a workerd bundle, REDIS_URL is a CONFIG error at createCache naming what to use instead", async () => {
    const home = await app("workerd-run", false);
    const { out } = await bundle(home, WORKERD);
    const seen = await probe(home, out, env);
    expect(seen.thrown.code).toBe("CONFIG");
    expect(seen.thrown.message).toMatch(
      /REDIS_URL is set, but TCP connections to Redis need the Node\.js runtime/,
    );
    expect(seen.thrown.message).toContain("UPSTASH_REDIS_REST_URL");
  });
});

describe("an app with tiercache alone and the Upstash REST variables", () => {
  it("bundles for Node and workerd without @upstash/redis and configures itself for REST", async () => {
    const home = await app("rest", false);
    const env = {
      UPSTASH_REDIS_REST_URL: "http://127.0.0.1:1",
      UPSTASH_REDIS_REST_TOKEN: "probe-token-0123456789",
    };
    for (const options of [WORKERD, { platform: "node" as const }]) {
      const { out, inputs } = await bundle(home, options);
      expect(inputs.filter((input) => input.includes("@upstash"))).toEqual([]);
      const seen = await probe(home, out, env);
      expect(seen.values).toEqual([0, 0, 0, 0, 0]);
      expect(seen.transport).toBe("upstash");
    }
  });
});

describe("an app with tiercache and redis", () => {
  it("uses Redis from REDIS_URL on plain Node and bundled for Node", async () => {
    const home = await app("with-redis", true);
    const plain = await probe(home, "probe.mjs", { REDIS_URL: redisUrl, PROBE_VALUE: "first" });
    expect(plain).toMatchObject({
      stored: null,
      healthy: true,
      transport: "node-redis",
      errors: [],
      warns: [],
    });
    // redis is CommonJS: an ESM bundle for Node needs `require` (esbuild's documented banner).
    const banner = {
      js: 'import { createRequire } from "node:module"; const require = createRequire(import.meta.url);',
    };
    const { out, inputs } = await bundle(home, { platform: "node", target: "node20", banner });
    expect(inputs.some((input) => input.includes("@redis/client"))).toBe(true);
    // Another process, bundled this time, finds the first one's value in Redis.
    const bundled = await probe(home, out, { REDIS_URL: redisUrl, PROBE_VALUE: "second" });
    expect(bundled).toMatchObject({ stored: "first", healthy: true, errors: [], warns: [] });
  });
});

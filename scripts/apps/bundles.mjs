/**
 * esbuild bundles of the core in an app that installed only `tiercache` (no optional peer): for
 * workerd/browsers (wrangler's settings: platform neutral, conditions workerd/worker/browser) and
 * for Node. No bundler may be asked to resolve a peer the app did not install.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";
import { check, cleanEnv, run } from "./harness.mjs";

const ENTRY = `import { createCache } from "tiercache";
const cache = createCache({ env: {} });
const value = await cache.getOrSet("k", async () => "loaded", { ttl: "1m" });
const again = await cache.getOrSet("k", async () => "loaded twice", { ttl: "1m" });
console.log(JSON.stringify({ value, again, transport: (await cache.health()).transport }));
`;

const TARGETS = [
  {
    name: "platform neutral, conditions workerd/worker/browser (as wrangler bundles)",
    options: {
      platform: "neutral",
      conditions: ["workerd", "worker", "browser"],
      mainFields: ["module", "main"],
    },
    webOnly: true,
  },
  {
    name: "platform browser, condition workerd",
    options: { platform: "browser", conditions: ["workerd"] },
    webOnly: true,
  },
  { name: "platform node", options: { platform: "node" }, runs: true },
];

export async function bundleChecks({ bare, needs }) {
  for (const target of TARGETS) {
    await check(
      `esbuild bundle of the core, ${target.name}, only tiercache installed`,
      async () => {
        await writeFile(join(bare, "entry.mjs"), ENTRY);
        const outfile = join(bare, `out-${target.options.platform}.mjs`);
        const result = await build({
          absWorkingDir: bare,
          entryPoints: ["entry.mjs"],
          outfile,
          bundle: true,
          format: "esm",
          target: "es2022",
          logLevel: "silent",
          ...target.options,
        });
        assert.deepEqual(result.errors, []);
        const code = await readFile(outfile, "utf8");
        if (target.webOnly) {
          const nodeImports = code.match(/(?:from|import\(|require\()\s*["']node:[a-z_/]+["']/g);
          assert.equal(nodeImports, null, `the web bundle imports Node built-ins: ${nodeImports}`);
        }
        if (target.runs) {
          const out = await run("node", [outfile], { cwd: bare, env: cleanEnv(), timeoutMs: 20_000 });
          assert.deepEqual(JSON.parse(out.trim().split("\n").at(-1)), {
            value: "loaded",
            again: "loaded",
            transport: "none",
          });
        }
      },
      { needs },
    );
  }
}

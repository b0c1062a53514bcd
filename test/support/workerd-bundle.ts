import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** `tiercache` and `tiercache/upstash` resolve to this checkout's sources, as a user's bundler would to the package. */
const tiercacheSources: Plugin = {
  name: "tiercache-sources",
  setup(b) {
    const entries: Record<string, string> = {
      tiercache: "src/index.ts",
      "tiercache/upstash": "src/transports/upstash.ts",
    };
    b.onResolve({ filter: /^tiercache(\/upstash)?$/ }, (args) => ({ path: `${root}${entries[args.path]}` }));
    tcpAsOnWorkerd.setup(b);
  },
};

/**
 * For bundling the sources for workerd: the core's TCP loader as the package's `#tcp` import resolves
 * under the `workerd` condition (scripts/build.mjs, package.json), i.e. the stub without node-redis.
 */
export const tcpAsOnWorkerd: Plugin = {
  name: "tcp-as-on-workerd",
  setup(b) {
    b.onResolve({ filter: /^\.\/tcp\.js$/ }, (args) =>
      args.importer.endsWith("from-env.ts") ? { path: `${root}src/transports/tcp-edge.ts` } : undefined,
    );
  },
};

/**
 * Bundles worker source (an ES module, paths relative to the repository root) for workerd as wrangler
 * would. `platform: "neutral"` has no Node built-ins, so a `node:` import anywhere in the SDK fails it.
 */
export async function bundleForWorkerd(source: string, sourcefile: string): Promise<string> {
  const result = await build({
    stdin: { contents: source, resolveDir: root, sourcefile, loader: "js" },
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    plugins: [tiercacheSources],
    logLevel: "silent",
  });
  const [file] = result.outputFiles;
  if (!file) throw new Error("esbuild produced no output");
  return file.text;
}

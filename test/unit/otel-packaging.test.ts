import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Fails the build at any attempt to resolve an OpenTelemetry package: an app that does not install one. */
const noOpenTelemetry: Plugin = {
  name: "no-opentelemetry",
  setup(b) {
    b.onResolve({ filter: /^@opentelemetry\// }, (args) => ({
      errors: [{ text: `${args.path} is not installed (imported by ${args.importer})` }],
    }));
  },
};

const bundle = (entry: string, plugins: Plugin[] = [], external: string[] = []) =>
  build({
    entryPoints: [`${root}${entry}`],
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    external: ["redis", "@upstash/redis", ...external],
    plugins,
    logLevel: "silent",
  });

describe("@opentelemetry/api stays an optional peer", () => {
  it("the core bundles for the edge without the package: never named, never resolved", async () => {
    const result = await bundle("src/index.ts", [noOpenTelemetry]);
    const text = result.outputFiles[0]?.text ?? "";
    expect(text.length).toBeGreaterThan(10_000);
    expect(text).not.toContain("opentelemetry");
  });

  it("tiercache/otel is where the import lives", async () => {
    await expect(bundle("src/otel.ts", [noOpenTelemetry])).rejects.toThrow(
      /@opentelemetry\/api is not installed/,
    );
    const result = await bundle("src/otel.ts", [], ["@opentelemetry/api"]);
    expect(result.outputFiles[0]?.text).toMatch(/from "@opentelemetry\/api"/);
  });
});

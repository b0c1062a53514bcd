/**
 * The apps under test, as a user would have them: the package packed (`npm pack`) into a temp dir
 * outside the repository, and fresh copies of the examples that install that tarball with only the
 * peers each one needs.
 */
import { cp, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanEnv, run } from "./harness.mjs";

/** Builds dist/ and packs it: the path of the tarball, in `dir`. */
export async function pack(root, dir) {
  await run("npm", ["run", "build"], { cwd: root, env: cleanEnv(), timeoutMs: 120_000 });
  await mkdir(dir, { recursive: true });
  const out = await run("npm", ["pack", "--pack-destination", dir, "--silent"], {
    cwd: root,
    env: cleanEnv(),
    timeoutMs: 60_000,
  });
  const name = out.trim().split("\n").at(-1);
  const files = await readdir(dir);
  if (!files.includes(name)) throw new Error(`npm pack printed ${JSON.stringify(name)}; ${dir} has ${files}`);
  return join(dir, name);
}

/**
 * A copy of `example` (without node_modules or build output) at `dir`, whose package.json depends on
 * the tarball instead of the checkout, with `dependencies` replaced by exactly `deps` (name → range;
 * "tiercache" gets the tarball) and `devDependencies` by `devDeps`.
 */
export async function copyExample(example, dir, { tarball, deps, devDeps = {} }) {
  await cp(example, dir, {
    recursive: true,
    filter: (source) => !/[/\\](node_modules|\.next|\.wrangler|dist)$/.test(source),
  });
  const manifestPath = join(dir, "package.json");
  const manifest = JSON.parse(await readFile(manifestPath, "utf8").catch(() => "{}"));
  manifest.name ??= "tiercache-app-under-test";
  manifest.private = true;
  manifest.dependencies = withTarball(deps, tarball);
  manifest.devDependencies = devDeps;
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
}

/** An empty app that depends on `deps` only (for bundler checks and fixtures). */
export async function emptyApp(dir, { tarball, deps }) {
  await mkdir(dir, { recursive: true });
  const manifest = { name: "tiercache-app-under-test", private: true, type: "module", dependencies: {} };
  manifest.dependencies = withTarball(deps, tarball);
  await writeFile(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
}

function withTarball(deps, tarball) {
  return Object.fromEntries(
    Object.entries(deps).map(([name, range]) => [name, name === "tiercache" ? `file:${tarball}` : range]),
  );
}

/** `npm install` in `dir`: from the cache when it can (CI's cache is cold, this machine's warm). */
export function install(dir, args = []) {
  return run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", ...args], {
    cwd: dir,
    env: cleanEnv(),
    timeoutMs: 240_000,
    name: `npm install ${args.join(" ")} (in ${dir})`,
  });
}

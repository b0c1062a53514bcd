#!/usr/bin/env node
/**
 * `npm run test:apps`: the package as users get it. Packs it (`npm pack`) into a temp dir outside the
 * repository, installs the tarball into fresh copies of the examples with only the peers each needs,
 * and checks esbuild bundles, `next build` / `next start` / the standalone server (Next 16), and
 * `wrangler dev` — against real redis-servers on free loopback ports.
 *
 * One line per check, then `N passed, M failed`. Bounded: past TEST_APPS_DEADLINE_S (default 600)
 * every process it started is ended (by process group) and the run fails. TEST_APPS_KEEP=1 keeps
 * the temp dir.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { startRestBackend } from "./apps/bridge.mjs";
import { bundleChecks } from "./apps/bundles.mjs";
import { check, elapsed, killAllNow, log, stopAll, summary } from "./apps/harness.mjs";
import { nextChecks, prepareNextApp } from "./apps/next.mjs";
import { prepareWorkerApps, workerChecks } from "./apps/worker.mjs";
import { emptyApp, install, pack } from "./apps/workspace.mjs";

const DEADLINE_S = Number(process.env.TEST_APPS_DEADLINE_S ?? 600);

const root = fileURLToPath(new URL("..", import.meta.url));
const work = await mkdtemp(join(tmpdir(), "tiercache-apps-"));
if (!relative(root, work).startsWith("..")) throw new Error(`temp dir ${work} is inside the repository`);

process.once("exit", killAllNow);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    killAllNow();
    process.exit(130);
  });
}
const deadline = setTimeout(async () => {
  console.log(`not ok - the whole run within ${DEADLINE_S}s: out of time`);
  await stopAll();
  console.log(`${summary().passed} passed, ${summary().failed + 1} failed`);
  process.exit(1);
}, DEADLINE_S * 1000);

log(`node ${process.version}, work dir ${work}`);
/** Redis over REST (bridge + redis-server), shared by the Worker and the Next app. */
let rest;
try {
  let tarball;
  const packed = await check(
    "npm run build && npm pack (into a temp dir outside the repository)",
    async () => {
      tarball = await pack(root, join(work, "pack"));
      return tarball;
    },
  );
  const peers = JSON.parse(await readFile(join(root, "package.json"), "utf8")).peerDependencies;

  const bare = join(work, "bare");
  let nextApp;
  let workerApps;
  // Installs first, side by side: they wait on the network and the disk, not the CPU.
  const [bareInstalled, nextInstalled, workerInstalled] = await Promise.all([
    check(
      "install the tarball alone into an empty app",
      async () => {
        await emptyApp(bare, { tarball, deps: { tiercache: "tarball" } });
        await install(bare);
      },
      { needs: packed },
    ),
    check(
      "copy examples/next-app out of the repo; install its next/react + the tarball (no Redis peer)",
      async () => {
        nextApp = await prepareNextApp({ root, work, tarball });
      },
      { needs: packed },
    ),
    check(
      "copy examples/worker out of the repo; install wrangler + the tarball (no peer); a bridge app (+ redis)",
      async () => {
        workerApps = await prepareWorkerApps({ root, work, tarball, peers });
      },
      { needs: packed },
    ),
  ]);

  await check(
    "`tiercache bridge` from the installed tarball (+ redis) in front of a redis-server",
    async () => {
      rest = await startRestBackend(workerApps.bridge);
    },
    { needs: workerInstalled },
  );

  // Each suite on its own: one that breaks (a harness bug, a port taken) is one failed line.
  const suite = (name, run) => check(`${name}: the suite ran to its end`, run);
  await suite("bundles", () => bundleChecks({ bare, needs: bareInstalled }));
  await suite("worker", () =>
    workerChecks({ root, work, apps: workerApps, bare, rest, installed: workerInstalled, bareInstalled }));
  await suite("next", () => nextChecks({ app: nextApp, work, rest, installed: nextInstalled, peers }));
} catch (error) {
  await check("the run itself", () => Promise.reject(error));
} finally {
  clearTimeout(deadline);
  await rest?.stop();
  await stopAll();
  if (process.env.TEST_APPS_KEEP === "1") log(`kept ${work}`);
  else await rm(work, { recursive: true, force: true, maxRetries: 3 });
}
const { failed, line } = summary();
log(`done in ${elapsed()}`);
console.log(line);
process.exitCode = failed === 0 ? 0 : 1;

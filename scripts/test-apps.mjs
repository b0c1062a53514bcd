#!/usr/bin/env node
/**
 * `npm run test:apps`: the package as users get it. Packs it (`npm pack`) into a temp dir outside the
 * repository, installs the tarball into fresh copies of the examples with only the peers each needs,
 * and checks esbuild bundles, `next build` / `next start` / the standalone server (Next 16),
 * `wrangler dev`, and Next's own caches on `tiercache/next` (apps/next-handlers.mjs: Next 16, and the
 * incremental cache again on the latest Next 15) — against real redis-servers on free loopback ports.
 *
 * One line per check, then `N passed, M failed`. Bounded: past TEST_APPS_DEADLINE_S (default 900)
 * every process it started is ended (by process group) and the run fails. TEST_APPS_KEEP=1 keeps
 * the temp dir. TEST_APPS_SUITES=next-handlers,… runs only those suites (default all: bundles,
 * worker, next, next-handlers, next15).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { startRestBackend } from "./apps/bridge.mjs";
import { bundleChecks } from "./apps/bundles.mjs";
import { check, elapsed, killAllNow, log, stopAll, summary } from "./apps/harness.mjs";
import { nextChecks, prepareNextApp } from "./apps/next.mjs";
import {
  NEXT_15,
  next15Checks,
  nextHandlerChecks,
  prepareNext15App,
  prepareNextHandlerApps,
} from "./apps/next-handlers.mjs";
import { prepareWorkerApps, workerChecks } from "./apps/worker.mjs";
import { emptyApp, install, pack } from "./apps/workspace.mjs";

const DEADLINE_S = Number(process.env.TEST_APPS_DEADLINE_S ?? 900);
const SUITES = (process.env.TEST_APPS_SUITES ?? "bundles,worker,next,next-handlers,next15").split(",");
const only = (suite) => SUITES.includes(suite);

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
  let handlerApps;
  let next15App;
  const skipped = Promise.resolve(false);
  const restNeeded = only("worker") || only("next");
  // Installs first, side by side: they wait on the network and the disk, not the CPU.
  const [bareInstalled, nextInstalled, workerInstalled, handlersInstalled, next15Installed] =
    await Promise.all([
      !(only("bundles") || only("worker"))
        ? skipped
        : check(
            "install the tarball alone into an empty app",
            async () => {
              await emptyApp(bare, { tarball, deps: { tiercache: "tarball" } });
              await install(bare);
            },
            { needs: packed },
          ),
      !only("next")
        ? skipped
        : check(
            "copy examples/next-app out of the repo; install its next/react + the tarball (no Redis peer)",
            async () => {
              nextApp = await prepareNextApp({ root, work, tarball });
            },
            { needs: packed },
          ),
      !restNeeded
        ? skipped
        : check(
            "copy examples/worker out of the repo; install wrangler + the tarball (no peer); a bridge app (+ redis)",
            async () => {
              workerApps = await prepareWorkerApps({ root, work, tarball, peers });
            },
            { needs: packed },
          ),
      !only("next-handlers")
        ? skipped
        : check(
            "copy examples/next-cache-handlers and examples/next-incremental-cache out of the repo; one install (next/react/redis + the tarball) for both",
            async () => {
              handlerApps = await prepareNextHandlerApps({ root, work, tarball });
            },
            { needs: packed },
          ),
      !only("next15")
        ? skipped
        : check(
            `copy examples/next-incremental-cache out of the repo again; its own install of next@${NEXT_15.next} (react ${NEXT_15.react}, redis) + the tarball`,
            async () => {
              next15App = await prepareNext15App({ root, work, tarball });
            },
            { needs: packed },
          ),
    ]);

  if (restNeeded)
    await check(
      "`tiercache bridge` from the installed tarball (+ redis) in front of a redis-server",
      async () => {
        rest = await startRestBackend(workerApps.bridge);
      },
      { needs: workerInstalled },
    );

  // Each suite on its own: one that breaks (a harness bug, a port taken) is one failed line.
  const suite = (name, run) => check(`${name}: the suite ran to its end`, run);
  if (only("bundles")) await suite("bundles", () => bundleChecks({ bare, needs: bareInstalled }));
  if (only("worker"))
    await suite("worker", () =>
      workerChecks({ root, work, apps: workerApps, bare, rest, installed: workerInstalled, bareInstalled }));
  if (only("next"))
    await suite("next", () => nextChecks({ app: nextApp, work, rest, installed: nextInstalled, peers }));
  if (only("next-handlers"))
    await suite("next-handlers", () => nextHandlerChecks({ dir: handlerApps, installed: handlersInstalled }));
  if (only("next15"))
    await suite("next15", () => next15Checks({ dir: next15App, installed: next15Installed }));
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

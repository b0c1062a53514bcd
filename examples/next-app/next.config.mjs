import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Inside the tiercache repository `tiercache` is `file:../..`, a link out of this app. */
const inRepository = existsSync(new URL("../../src/index.ts", import.meta.url));

/** @type {import("next").NextConfig} */
const nextConfig = {
  // Only in the repository: trace (and let Turbopack resolve) from the checkout the link points at.
  // A copy of this app elsewhere, with tiercache from npm, needs none of it.
  ...(inRepository && { outputFileTracingRoot: fileURLToPath(new URL("../..", import.meta.url)) }),
  // `NEXT_OUTPUT=standalone next build` makes the self-contained server a Docker image copies
  // (.next/standalone, plus .next/static); see the README's standalone note.
  ...(process.env.NEXT_OUTPUT === "standalone" && { output: "standalone" }),
};

export default nextConfig;

import { fileURLToPath } from "node:url";

/** @type {import("next").NextConfig} */
const nextConfig = {
  // This example lives inside the tiercache repository, whose lockfile is two levels up.
  outputFileTracingRoot: fileURLToPath(new URL("../..", import.meta.url)),
  // node-redis (loaded only when REDIS_URL is set) stays a plain Node dependency, not bundled.
  serverExternalPackages: ["redis", "@redis/client"],
};

export default nextConfig;

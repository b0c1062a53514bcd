import { createCache } from "../cache.js";
import { asError } from "../errors.js";

/**
 * `tiercache health`: prints `cache.health()` as JSON for the Redis the environment configures
 * (the report holds no keys and no secrets). Exit code 0 healthy, 1 not, 2 bad configuration.
 */
export async function main(args: string[]): Promise<number> {
  if (args.length > 0) {
    const help = args.length === 1 && (args[0] === "--help" || args[0] === "-h");
    (help ? console.log : console.error)(
      "usage: tiercache health   (reads the same environment as createCache())",
    );
    return help ? 0 : 2;
  }
  let cache: ReturnType<typeof createCache>;
  try {
    cache = createCache({ logger: { warn: () => {} } });
  } catch (error) {
    console.error(`tiercache health: ${asError(error).message}`);
    return 2;
  }
  try {
    const report = await cache.health();
    console.log(JSON.stringify(report, null, 2));
    return report.healthy ? 0 : 1;
  } finally {
    await cache.close();
  }
}

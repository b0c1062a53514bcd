import { parseArgs } from "node:util";
import { redactUrl } from "./redis-pool.js";
import { startBridge } from "./server.js";

const USAGE = `usage: tiercache bridge [--port 8079] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379] (--token <token> | --insecure)

  --token     clients send it as 'Authorization: Bearer <token>' (env BRIDGE_TOKEN, UPSTASH_REDIS_REST_TOKEN)
  --redis     the Redis behind the bridge (env REDIS_URL; default redis://127.0.0.1:6379)
  --port      0 picks a free port (default 8079)
  --host      interface to listen on (default 127.0.0.1)
  --insecure  accept requests without a token`;

/**
 * `tiercache bridge`: serves the Upstash REST protocol until SIGINT/SIGTERM, then shuts down
 * cleanly and resolves 0. Prints one line with the URL; the token is never printed.
 */
export async function main(args: string[]): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(args).values;
  } catch (error) {
    console.error(`tiercache bridge: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const token = values.token || process.env.BRIDGE_TOKEN || process.env.UPSTASH_REDIS_REST_TOKEN || undefined;
  if (!token && !values.insecure) {
    console.error(
      "tiercache bridge: refusing to start without a token: pass --token <token> (or set BRIDGE_TOKEN or " +
        "UPSTASH_REDIS_REST_TOKEN), or --insecure to accept requests from anyone who can reach the port",
    );
    return 2;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    console.error(`tiercache bridge: --port must be a port number, got ${JSON.stringify(values.port)}`);
    return 2;
  }
  const redisUrl = values.redis ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

  // Listen before starting, so a signal during start-up is not lost. After the first signal the
  // default handlers are back, so a second Ctrl-C kills a shutdown that hangs.
  let stop = () => {};
  const signalled = new Promise<void>((resolve) => {
    stop = () => resolve();
  });
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const bridge = await startBridge({ redisUrl, token, insecure: values.insecure, host: values.host, port });
    const mode = token ? "" : " (insecure: no token required)";
    console.log(`tiercache bridge: ${bridge.url} → ${redactUrl(redisUrl)}${mode}`);
    await signalled;
    await bridge.close();
    return 0;
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 1;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    options: {
      port: { type: "string", default: "8079" },
      host: { type: "string", default: "127.0.0.1" },
      token: { type: "string" },
      redis: { type: "string" },
      insecure: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
}

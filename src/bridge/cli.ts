import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { MIN_TOKEN_LENGTH, tokenProblem } from "./auth.js";
import { redactUrl } from "./redis-pool.js";
import { startBridge } from "./server.js";

const USAGE = `usage: tiercache bridge [--port 8079] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379]
                        (--token-file <path> | --token <token> | --insecure) [options]

  --token-file    read the token from a file (surrounding whitespace is ignored)
  --token         the token on the command line (other local users can read argv: prefer
                  --token-file or the TIERCACHE_BRIDGE_TOKEN environment variable)
                  without either: env TIERCACHE_BRIDGE_TOKEN, BRIDGE_TOKEN, UPSTASH_REDIS_REST_TOKEN
                  clients send it as 'Authorization: Bearer <token>'; ${MIN_TOKEN_LENGTH}+ visible ASCII characters
  --insecure      accept requests without a token
  --redis         the Redis behind the bridge (env REDIS_URL; default redis://127.0.0.1:6379)
  --port          0 picks a free port (default 8079)
  --host          interface to listen on (default 127.0.0.1; others are warned about)
  --allow-host    also answer requests for this Host name (repeatable; '*': any)
  --allow-origin  let this browser origin call the bridge, e.g. http://localhost:3000 (repeatable; '*': any)
  --allow-admin   let server administration through (CONFIG, ACL, SHUTDOWN, DEBUG, CLIENT KILL…)`;

/** Environment variables holding the token, in order of precedence. */
const TOKEN_VARIABLES = ["TIERCACHE_BRIDGE_TOKEN", "BRIDGE_TOKEN", "UPSTASH_REDIS_REST_TOKEN"];

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
  const found = findToken(values);
  if ("error" in found) {
    console.error(`tiercache bridge: ${found.error}`);
    return 2;
  }
  const { token } = found;
  if (token === undefined && !values.insecure) {
    console.error(
      "tiercache bridge: refusing to start without a token: pass --token <token> or --token-file <path> " +
        `(or set ${TOKEN_VARIABLES.join(", ")}), or --insecure to accept requests from anyone who can reach the port`,
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
    const bridge = await startBridge({
      redisUrl,
      token,
      insecure: values.insecure,
      host: values.host,
      port,
      allowedHosts: values["allow-host"],
      allowedOrigins: values["allow-origin"],
      allowAdmin: values["allow-admin"],
    });
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

/**
 * The token from --token, --token-file or the environment (in that order; both flags at once is
 * an error), checked against the token policy. Messages name where the token came from, never it.
 */
function findToken(values: {
  token?: string;
  "token-file"?: string;
}): { token?: string } | { error: string } {
  if (values.token !== undefined && values["token-file"] !== undefined)
    return { error: "pass either --token or --token-file, not both" };
  let token: string | undefined;
  let source: string;
  if (values["token-file"] !== undefined) {
    source = `token in ${values["token-file"]}`;
    try {
      token = readFileSync(values["token-file"], "utf8").trim();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
      return { error: `cannot read --token-file ${values["token-file"]} (${code})` };
    }
  } else if (values.token !== undefined) {
    source = "--token";
    token = values.token;
  } else {
    const name = TOKEN_VARIABLES.find((variable) => process.env[variable]);
    if (name === undefined) return {};
    source = name;
    token = process.env[name];
  }
  const problem = tokenProblem(token ?? "", MIN_TOKEN_LENGTH);
  return problem ? { error: `the ${source} ${problem}` } : { token };
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    options: {
      port: { type: "string", default: "8079" },
      host: { type: "string", default: "127.0.0.1" },
      token: { type: "string" },
      "token-file": { type: "string" },
      redis: { type: "string" },
      insecure: { type: "boolean", default: false },
      "allow-host": { type: "string", multiple: true },
      "allow-origin": { type: "string", multiple: true },
      "allow-admin": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
}

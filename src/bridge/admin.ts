import type { Command } from "./commands.js";
import { HttpError } from "./http-error.js";

/**
 * Server administration, refused unless the bridge runs with `allowAdmin`: the Upstash REST
 * API gives a database's clients its data, not the server. These read or change the server's
 * configuration and credentials (`CONFIG GET requirepass`), stop or stall it (`SHUTDOWN`,
 * `DEBUG SLEEP`, `CLIENT PAUSE`), touch persistence or replication, load code, or read what other
 * clients send (`SLOWLOG`, `CLIENT LIST`). `MIGRATE` is here too: it makes Redis connect to any
 * host the request names. `FLUSHDB`/`FLUSHALL`, `INFO`, `KEYS`, `SCRIPT` and `FUNCTION` are
 * data-level and stay allowed, as on Upstash. (`MONITOR`, `SYNC`, `PSYNC` and `REPLCONF` are
 * refused before this, whatever `allowAdmin` says: they would take over a shared connection.)
 */
const ADMIN = new Set([
  "ACL",
  "BGREWRITEAOF",
  "BGSAVE",
  "CONFIG",
  "DEBUG",
  "FAILOVER",
  "LASTSAVE",
  "LATENCY",
  "MIGRATE",
  "MODULE",
  "PFDEBUG",
  "PFSELFTEST",
  "REPLICAOF",
  "ROLE",
  "SAVE",
  "SHUTDOWN",
  "SLAVEOF",
  "SLOWLOG",
]);

/**
 * Container commands with both harmless and administrative subcommands: only the listed
 * subcommands pass. An allowlist, so a subcommand a later Redis adds is refused until judged.
 * (CLIENT subcommands that would change the shared connection are refused separately, with
 * their own message.)
 */
const ALLOWED_SUBCOMMANDS = new Map<string, Set<string>>([
  ["CLIENT", new Set(["GETNAME", "GETREDIR", "HELP", "ID", "INFO", "TRACKINGINFO"])],
  ["MEMORY", new Set(["HELP", "USAGE"])],
  [
    "CLUSTER",
    new Set([
      "COUNTKEYSINSLOT",
      "GETKEYSINSLOT",
      "HELP",
      "INFO",
      "KEYSLOT",
      "LINKS",
      "MYID",
      "MYSHARDID",
      "NODES",
      "SHARDS",
      "SLOTS",
    ]),
  ],
]);

/** Throws a 400 (`ERR …`, like a Redis error) for a server administration command. */
export function assertNotAdmin(name: string, command: Command): void {
  const allowed = ALLOWED_SUBCOMMANDS.get(name);
  let refused: string | undefined;
  if (ADMIN.has(name)) refused = name;
  else if (allowed) {
    const sub = command.length > 1 ? String(command[1]).toUpperCase() : "";
    if (!allowed.has(sub)) refused = sub ? `${name} ${sub}` : name;
  }
  if (refused !== undefined) {
    throw new HttpError(
      400,
      `ERR ${refused} is server administration, which the bridge refuses like the Upstash REST API; ` +
        "start it with --allow-admin (allowAdmin: true) to allow every command",
    );
  }
}

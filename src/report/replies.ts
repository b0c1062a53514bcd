import { CacheError } from "../errors.js";
import type { L2 } from "../tiers/l2.js";
import type { RedisArg, RedisReply } from "../transports/types.js";

const PIPELINE_CHUNK = 100;

/** Commands in pipelines of {@link PIPELINE_CHUNK}, one in flight at a time. */
export async function pipelined(l2: L2, commands: RedisArg[][]): Promise<(RedisReply | Error)[]> {
  const replies: (RedisReply | Error)[] = [];
  for (let i = 0; i < commands.length; i += PIPELINE_CHUNK) {
    replies.push(...(await l2.pipeline(commands.slice(i, i + PIPELINE_CHUNK), "stats")));
  }
  return replies;
}

/** Field/value pairs of an HGETALL reply (a flat array on both transports). */
export function pairs(reply: RedisReply | Error | undefined): [string, string][] {
  if (reply instanceof Error) throw new CacheError("UNAVAILABLE", `stats: ${reply.message}`);
  const out: [string, string][] = [];
  if (Array.isArray(reply))
    for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), String(reply[i + 1])]);
  return out;
}

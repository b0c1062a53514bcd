import type { RedisArg } from "./transports/types.js";

/**
 * Per-key markers that let Redis refuse a stale write-back. A delete (or a value too large for Redis)
 * leaves a short-lived tombstone `~d:<ms>:<instance>` at the key instead of removing it, and a
 * loader's write-back is a single-key script that does not overwrite a tombstone or an entry newer
 * than the load's start. Entries already carry their creation time at the head of the stored text
 * (`[1,<created>,…` and, compressed, `z:<created>:…`), so the script reads only a few bytes.
 */

/**
 * How long a tombstone lives, which bounds the protection: a loader running longer than this
 * (minus {@link CLOCK_SKEW_MS}) is not written back to Redis at all.
 */
export const TOMBSTONE_MS = 60_000;

/**
 * How far apart instance clocks may be for a delete or set on one instance to still beat a
 * loader on another: marks from other instances count from this long before the load started.
 * Kept small: a load starting this soon after a write of its key elsewhere is not cached.
 */
export const CLOCK_SKEW_MS = 100;

const PREFIX = "~d:";

let instance: string | undefined;

/**
 * Something only this process can have written, to tell its own tombstones from others'. Drawn on
 * first use: workerd forbids random values at module scope.
 */
function instanceId(): string {
  instance ??= randomToken();
  return instance;
}

export function tombstone(at: number): string {
  return `${PREFIX}${at}:${instanceId()}`;
}

/** Whether stored text is a tombstone rather than an entry (entries start with `[` or `z:`). */
export function isTombstone(stored: string): boolean {
  return stored.startsWith(PREFIX);
}

/** The SET that leaves a tombstone at `full`, returning what was there (`GET`). */
export function tombstoneCommand(full: string, at: number): RedisArg[] {
  return ["SET", full, tombstone(at), "PX", TOMBSTONE_MS, "GET"];
}

/**
 * KEYS[1] the entry; ARGV: stored text, PX, the load's start, the start with the clock-skew
 * allowance, the creation time of the entry the load replaces (or ""), this instance's id.
 * Returns 1 when written, 0 when a newer tombstone stands, 2 when a newer entry stands.
 */
const WRITE_BACK = `
local head = redis.call('GETRANGE', KEYS[1], 0, 63)
local at, owner = string.match(head, '^~d:(%d+):(%w+)')
if at then
  local since = owner == ARGV[6] and ARGV[3] or ARGV[4]
  if tonumber(at) >= tonumber(since) then return 0 end
else
  local created = string.match(head, '^%[%d+,(%d+),') or string.match(head, '^z:(%d+):')
  if created and created ~= ARGV[5] and tonumber(created) >= tonumber(ARGV[4]) then return 2 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** What a conditional write-back answered. */
export type WriteBackReply = "written" | "deleted" | "overwritten";

export function parseWriteBack(reply: unknown): WriteBackReply | undefined {
  return reply === 1 ? "written" : reply === 0 ? "deleted" : reply === 2 ? "overwritten" : undefined;
}

/**
 * Turns a write's `SET <full> <stored> PX <ms>` into the conditional script: written only if no
 * delete, set or load of the key happened since `startedAt` (other than the entry it replaces).
 */
export function writeBackCommand(
  command: readonly RedisArg[],
  startedAt: number,
  replaces: number | undefined,
): readonly RedisArg[] {
  if (command[0] !== "SET") return command;
  const [, full, stored, , px] = command as RedisArg[];
  return [
    "EVAL",
    WRITE_BACK,
    1,
    full as RedisArg,
    stored as RedisArg,
    px as RedisArg,
    startedAt,
    startedAt - CLOCK_SKEW_MS,
    replaces === undefined ? "" : replaces,
    instanceId(),
  ];
}

/** The creation time at the head of stored text, if it is an entry that says it. */
export function createdOf(stored: string): number | undefined {
  const match = /^(?:\[\d+,|z:)(\d+)[,:]/.exec(stored);
  return match ? Number(match[1]) : undefined;
}

/** Random and alphanumeric: epochs and instance ids that cannot repeat after Redis loses its data. */
export function randomToken(): string {
  const words = crypto.getRandomValues(new Uint32Array(3));
  // Never all digits: a REST client may hand a numeric reply back as a number.
  return `r${[...words].map((word) => word.toString(36).padStart(7, "0")).join("")}`;
}

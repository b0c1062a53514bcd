import { base64ToBytes, bytesToBase64, decodeValue, encode } from "./codec.js";

/**
 * A cached value with its own metadata, identical in L1 and L2. Times are epoch milliseconds:
 * fresh until `fresh`, servable as stale until `stale` (which is also the Redis PX).
 */
export interface Entry {
  value: unknown;
  created: number;
  fresh: number;
  stale: number;
  tags: readonly string[];
  /** Bytes of the encoded form, which bounds L1 by `maxBytes`. */
  size: number;
}

const FORMAT = 1;
const COMPRESSED = "z:";

/** The text written to Redis: `[format, created, fresh, stale, tags, value]`. */
export function serializeEntry(entry: Omit<Entry, "size">, valueJson: string): string {
  return `[${FORMAT},${entry.created},${entry.fresh},${entry.stale},${JSON.stringify(entry.tags)},${valueJson}]`;
}

/**
 * Encodes a value into an entry and its stored text; throws a CacheError for unserializable values.
 * The entry holds what a Redis read of the text returns: the value itself when encoding keeps it
 * (the common case, no copy), else its decoded form — so L1 and L2 serve the same thing.
 */
export function createEntry(
  key: string,
  value: unknown,
  times: { created: number; fresh: number; stale: number },
  tags: readonly string[],
): { entry: Entry; text: string; valueJson: string } {
  const { text: valueJson, exact } = encode(value, key);
  const meta = { value: exact ? value : decodeValue(valueJson), ...times, tags };
  const text = serializeEntry(meta, valueJson);
  return { entry: { ...meta, size: text.length }, text, valueJson };
}

/**
 * Reads stored text back; throws on anything that is not an entry this library wrote. Synchronous
 * unless the text is compressed, so the common L2 hit costs no extra microtask.
 */
export function parseEntry(stored: string): Entry | Promise<Entry> {
  if (stored.startsWith(COMPRESSED)) {
    // `z:<created>:<base64>` (the time is for Redis-side write guards, see tombstone.ts) or, older, `z:<base64>`.
    const body = stored.slice(COMPRESSED.length);
    const colon = body.indexOf(":");
    // Sized by the decompressed text: that is what L1 holds, and what `l1.maxBytes` must bound.
    return gunzip(colon === -1 ? body : body.slice(colon + 1)).then((text) => parseText(text, text.length));
  }
  return parseText(stored, stored.length);
}

/** `[1,` — the envelope of every entry this version writes. */
const HEAD = `[${FORMAT},`;
const NO_TAGS = "[],";
const UNTAGGED: readonly string[] = Object.freeze([]);

/**
 * The envelope as this library writes it, `[1,<created>,<fresh>,<stale>,[],<value>]` with integer
 * times and no tags, read by hand: JSON.parse sees only the value, and no shape check is left to do.
 * Anything else (tags, fractional times, foreign text) returns undefined for the general parse.
 */
function parseUntagged(text: string, size: number): Entry | undefined {
  if (!text.startsWith(HEAD) || text.charCodeAt(text.length - 1) !== 93 /* ] */) return undefined;
  const created = readInteger(text, HEAD.length);
  if (created < 0) return undefined;
  const fresh = readInteger(text, integerEnd);
  if (fresh < 0) return undefined;
  const stale = readInteger(text, integerEnd);
  if (stale < 0 || !text.startsWith(NO_TAGS, integerEnd)) return undefined;
  const value = decodeValue(text.slice(integerEnd + NO_TAGS.length, -1));
  return { created, fresh, stale, tags: UNTAGGED, value, size };
}

/** Where the text after the last {@link readInteger} starts (past its comma). */
let integerEnd = 0;

/**
 * The JSON integer at `start`, followed by a comma, or -1: up to 15 digits (exact in a double),
 * a leading zero only alone.
 */
function readInteger(text: string, start: number): number {
  let at = start;
  let value = 0;
  let code = text.charCodeAt(at);
  while (code >= 48 && code <= 57) {
    value = value * 10 + (code - 48);
    code = text.charCodeAt(++at);
  }
  const digits = at - start;
  if (digits === 0 || digits > 15 || code !== 44 /* , */ || (digits > 1 && text.charCodeAt(start) === 48)) {
    return -1;
  }
  integerEnd = at + 1;
  return value;
}

function parseText(text: string, size: number): Entry {
  const untagged = parseUntagged(text, size);
  if (untagged) return untagged;
  const parsed = decodeValue(text);
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 6 ||
    parsed[0] !== FORMAT ||
    typeof parsed[1] !== "number" ||
    typeof parsed[2] !== "number" ||
    typeof parsed[3] !== "number" ||
    !Array.isArray(parsed[4]) ||
    !parsed[4].every((tag) => typeof tag === "string")
  ) {
    throw new TypeError("not a tiercache entry");
  }
  return {
    created: parsed[1],
    fresh: parsed[2],
    stale: parsed[3],
    tags: parsed[4] as string[],
    value: parsed[5],
    size,
  };
}

/**
 * Gzips text for L2 (edge-safe CompressionStream); the result is still a string Redis stores as-is,
 * headed by the entry's creation time, which a Redis script can read without decompressing.
 */
export async function compressText(text: string, created?: number): Promise<string> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  return `${COMPRESSED}${created === undefined ? "" : `${created}:`}${bytesToBase64(bytes)}`;
}

async function gunzip(base64: string): Promise<string> {
  const stream = new Blob([base64ToBytes(base64)]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

/**
 * Whether an entry carries one of `wanted`. Never throws, whatever the entry holds: one bad entry
 * must not stop an invalidation from reaching the others (one that cannot be read counts as a match).
 */
export function carriesTag(entry: Entry, wanted: ReadonlySet<string>): boolean {
  const { tags } = entry;
  if (!Array.isArray(tags)) return true;
  for (const tag of tags) if (wanted.has(tag)) return true;
  return false;
}

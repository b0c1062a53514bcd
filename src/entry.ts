import { base64ToBytes, bytesToBase64, decodeValue, encodeValue } from "./codec.js";

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

/** Encodes a value into an entry and its stored text; throws a CacheError for unserializable values. */
export function createEntry(
  key: string,
  value: unknown,
  times: { created: number; fresh: number; stale: number },
  tags: readonly string[],
): { entry: Entry; text: string } {
  const valueJson = encodeValue(value, key);
  const meta = { value, ...times, tags };
  const text = serializeEntry(meta, valueJson);
  return { entry: { ...meta, size: text.length }, text };
}

/**
 * Reads stored text back; throws on anything that is not an entry this library wrote. Synchronous
 * unless the text is compressed, so the common L2 hit costs no extra microtask.
 */
export function parseEntry(stored: string): Entry | Promise<Entry> {
  if (stored.startsWith(COMPRESSED)) {
    // Sized by the decompressed text: that is what L1 holds, and what `l1.maxBytes` must bound.
    return gunzip(stored.slice(COMPRESSED.length)).then((text) => parseText(text, text.length));
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
  const createdEnd = integerEnd(text, HEAD.length);
  const freshEnd = integerEnd(text, createdEnd + 1);
  const staleEnd = integerEnd(text, freshEnd + 1);
  if (staleEnd < 0 || !text.startsWith(NO_TAGS, staleEnd + 1)) return undefined;
  return {
    created: Number(text.slice(HEAD.length, createdEnd)),
    fresh: Number(text.slice(createdEnd + 1, freshEnd)),
    stale: Number(text.slice(freshEnd + 1, staleEnd)),
    tags: UNTAGGED,
    value: decodeValue(text.slice(staleEnd + 1 + NO_TAGS.length, -1)),
    size,
  };
}

/** Where the JSON integer at `start` ends (at a comma), or -1: digits, a leading zero only alone. */
function integerEnd(text: string, start: number): number {
  if (start <= 0) return -1;
  let at = start;
  let code = text.charCodeAt(at);
  while (code >= 48 && code <= 57) code = text.charCodeAt(++at);
  if (at === start || code !== 44 /* , */ || (at - start > 1 && text.charCodeAt(start) === 48)) return -1;
  return at;
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
    !Array.isArray(parsed[4])
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

/** Gzips text for L2 (edge-safe CompressionStream); the result is still a string Redis stores as-is. */
export async function compressText(text: string): Promise<string> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  return COMPRESSED + bytesToBase64(bytes);
}

async function gunzip(base64: string): Promise<string> {
  const stream = new Blob([base64ToBytes(base64)]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

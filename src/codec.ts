import { CacheError } from "./errors.js";

/**
 * Values travel as JSON text. Types JSON cannot carry are written as one-key objects whose key is
 * a tag (`{"$d": "2024-…"}` is a Date); a user object that happens to look like a tag is escaped, so
 * decoding never turns user data into something else.
 */
const TAGS = new Set(["$u", "$d", "$b", "$m", "$s", "$8", "$n", "$o"]);

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  switch (typeof raw) {
    case "undefined":
      return { $u: 0 };
    case "bigint":
      return { $b: raw.toString() };
    case "number":
      return Number.isFinite(raw) ? raw : { $n: String(raw) };
    case "object": {
      if (raw === null) return null;
      if (raw instanceof Date) return { $d: Number.isNaN(raw.getTime()) ? null : raw.toISOString() };
      if (raw instanceof Uint8Array) return { $8: bytesToBase64(raw) };
      if (ArrayBuffer.isView(raw) || raw instanceof ArrayBuffer) {
        throw new TypeError(`${raw.constructor.name} is not supported: store binary data as a Uint8Array`);
      }
      if (raw instanceof Map) return { $m: [...raw] };
      if (raw instanceof Set) return { $s: [...raw] };
      if (!Array.isArray(value) && value !== null && typeof value === "object" && looksLikeTag(value)) {
        return { $o: Object.entries(value) };
      }
      return value;
    }
    default:
      return value;
  }
}

function looksLikeTag(value: object): boolean {
  let count = 0;
  let only = "";
  for (const k in value) {
    only = k;
    if (++count > 1) return false;
  }
  return count === 1 && TAGS.has(only);
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  let count = 0;
  let tag = "";
  for (const k in value) {
    tag = k;
    if (++count > 1) return value;
  }
  if (count !== 1 || tag.charCodeAt(0) !== 36 /* $ */) return value;
  const inner = (value as Record<string, unknown>)[tag];
  switch (tag) {
    case "$u":
      return undefined;
    case "$d":
      return new Date(inner === null ? Number.NaN : (inner as string));
    case "$b":
      return BigInt(inner as string);
    case "$n":
      return Number(inner);
    case "$m":
      return new Map(inner as [unknown, unknown][]);
    case "$s":
      return new Set(inner as unknown[]);
    case "$8":
      return base64ToBytes(inner as string);
    case "$o":
      return Object.fromEntries(inner as [string, unknown][]);
    default:
      return value;
  }
}

/** JSON text of `value`, carrying Date, undefined, BigInt, Map, Set, NaN/±Infinity and Uint8Array. */
export function encodeValue(value: unknown, key: string): string {
  try {
    return JSON.stringify(value, replacer) as string;
  } catch (cause) {
    throw new CacheError(
      "SERIALIZE",
      `value for key "${key}" cannot be cached: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}

/**
 * The inverse of {@link encodeValue}. Throws on text that is not JSON. An `undefined` inside an
 * array comes back as a hole and inside an object as a missing key, as JSON callers expect.
 */
export function decodeValue(text: string): unknown {
  // Tagged objects always open with `{"$`, which no JSON string can contain unescaped: without it,
  // the (several times slower) reviver has nothing to do.
  return text.includes('{"$') ? JSON.parse(text, reviver) : JSON.parse(text);
}

const CHUNK = 0x8000;

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

export function base64ToBytes(base64: string): Uint8Array<ArrayBuffer> {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

import { CacheError } from "./errors.js";

/**
 * Values travel as JSON text. Types JSON cannot carry are written as one-key objects whose key is
 * a tag (`{"$d": "2024-…"}` is a Date, `{"$n": "-0"}` is minus zero); a user object that happens to
 * look like a tag is escaped, so decoding never turns user data into something else.
 */
const TAGS = new Set(["$u", "$d", "$b", "$m", "$s", "$8", "$n", "$o"]);

/**
 * Set while {@link encode} runs when the text will not decode to an equal value (a class instance,
 * `toJSON`, an `undefined` member, a symbol key…): L1 must then hold the decoded value, as Redis will.
 */
let changed = false;

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  switch (typeof raw) {
    case "undefined":
      // Comes back as a missing key (or an array hole); only a top-level undefined is itself again.
      changed = true;
      return { $u: 0 };
    case "bigint":
      return { $b: raw.toString() };
    case "number":
      if (Number.isFinite(raw)) return raw === 0 && 1 / raw < 0 ? { $n: "-0" } : raw;
      return { $n: String(raw) };
    case "function":
    case "symbol":
      throw unstorable(raw, key);
    case "object":
      return raw === null ? null : replaceObject(raw, value, key);
    default:
      return value;
  }
}

/** JSON would drop it silently (or write nothing at all at the top level), in Redis only. */
function unstorable(value: unknown, key: string): TypeError {
  return new TypeError(
    `a ${typeof value} cannot be cached${key === "" ? "" : ` (at ${JSON.stringify(key)})`}`,
  );
}

/** `raw` as it is in the value; `value` is what JSON made of it (its `toJSON` result, if any). */
function replaceObject(raw: object, value: unknown, key: string): unknown {
  const proto = Object.getPrototypeOf(raw);
  if (proto === Array.prototype) return value;
  if (proto === Object.prototype && raw === value) {
    // A plain object comes back as itself, minus its symbol-keyed properties.
    if (Object.getOwnPropertySymbols(raw).length > 0) changed = true;
    return looksLikeTag(raw) ? { $o: Object.entries(raw) } : value;
  }
  if (raw instanceof Date) {
    if (proto !== Date.prototype) changed = true;
    return { $d: Number.isNaN(raw.getTime()) ? null : raw.toISOString() };
  }
  if (raw instanceof Uint8Array) {
    if (proto !== Uint8Array.prototype) changed = true; // a Buffer comes back as a Uint8Array
    return { $8: bytesToBase64(raw) };
  }
  if (ArrayBuffer.isView(raw) || raw instanceof ArrayBuffer) {
    throw new TypeError(`${raw.constructor.name} is not supported: store binary data as a Uint8Array`);
  }
  if (raw instanceof Map) {
    if (proto !== Map.prototype) changed = true;
    return { $m: [...raw] };
  }
  if (raw instanceof Set) {
    if (proto !== Set.prototype) changed = true;
    return { $s: [...raw] };
  }
  // A class instance, a null-prototype object, a toJSON result: what comes back is a plain object
  // or array of what JSON saw, not this.
  changed = true;
  if (typeof value === "function" || typeof value === "symbol") throw unstorable(value, key);
  if (value !== null && typeof value === "object" && !Array.isArray(value) && looksLikeTag(value)) {
    return { $o: Object.entries(value) };
  }
  return value;
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

/** An encoded value: its JSON text, and whether decoding the text gives back an equal value. */
export interface Encoded {
  text: string;
  /** False when a Redis read returns something else than `value` (see {@link encode}). */
  exact: boolean;
}

/**
 * JSON text of `value`, carrying Date, undefined, BigInt, Map, Set, NaN/±Infinity, -0 and Uint8Array.
 * Functions and symbols (anywhere in the value) are a SERIALIZE error: JSON would drop them silently.
 * `exact` is false when {@link decodeValue} of the text is not an equal value — class instances
 * (which come back as plain objects), values with `toJSON` (which come back as its result), `undefined`
 * members, symbol keys — so that the caller can keep the decoded form instead.
 */
export function encode(value: unknown, key: string): Encoded {
  // Saved and restored: a toJSON may itself encode something (it runs inside JSON.stringify).
  const outer = changed;
  changed = false;
  let text: string | undefined;
  let exact: boolean;
  try {
    text = JSON.stringify(value, replacer);
  } catch (cause) {
    throw new CacheError(
      "SERIALIZE",
      `value for key "${key}" cannot be cached: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  } finally {
    exact = !changed || value === undefined;
    changed = outer;
  }
  if (text === undefined) {
    // A toJSON that returned nothing JSON can write.
    throw new CacheError("SERIALIZE", `value for key "${key}" cannot be cached: it encodes to nothing`);
  }
  return { text, exact };
}

/** The JSON text of {@link encode}. */
export function encodeValue(value: unknown, key: string): string {
  return encode(value, key).text;
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

import { bytesToBase64 } from "./codec.js";
import { CacheError } from "./errors.js";

/** Library root: every key tiercache writes starts with `[<env>:]tc:`. */
const ROOT = "tc";
/** Version slot of entries that survive deploys; `~` is outside the version charset, so no clash. */
const UNVERSIONED = "~";
/** Keys longer than this are replaced by a hash, keeping Redis memory and MGET payloads bounded. */
export const MAX_PLAIN_KEY_LENGTH = 256;

const SEGMENT = /^[A-Za-z0-9_.-]{1,64}$/;

/** Throws a clear error unless `value` can be one `:`-free segment of a key (prefix, namespace, version). */
export function validateSegment(what: string, value: string): string {
  if (!SEGMENT.test(value)) {
    throw new CacheError(
      "CONFIG",
      `${what} ${JSON.stringify(value)} must be 1–64 characters of letters, digits, "_", "." or "-"`,
    );
  }
  return value;
}

/** Escapes glob metacharacters so user input matches itself in SCAN MATCH / KEYS patterns. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

/**
 * The key layout `[<prefix>:]tc:<namespace>:<version>:<key>`. Every key this library touches is built
 * here, so there is no way to write an unprefixed key by accident.
 */
export class KeySpace {
  /** `[<prefix>:]tc:` — everything this library wrote in this environment starts with it. */
  readonly root: string;
  /** `[<prefix>:]tc:<namespace>:` */
  readonly namespaceRoot: string;
  private readonly versionedSpace: string;
  private readonly unversionedSpace: string;

  constructor(
    readonly prefix: string | undefined,
    readonly namespace: string,
    readonly version: string,
  ) {
    this.root = `${prefix ? `${prefix}:` : ""}${ROOT}:`;
    this.namespaceRoot = `${this.root}${namespace}:`;
    this.versionedSpace = `${this.namespaceRoot}${version}:`;
    this.unversionedSpace = `${this.namespaceRoot}${UNVERSIONED}:`;
  }

  /** The Redis key of a cache entry; a promise only for keys long enough to be hashed. */
  entry(key: string, versioned = true): string | Promise<string> {
    const space = versioned ? this.versionedSpace : this.unversionedSpace;
    assertKey(key);
    if (key.length <= MAX_PLAIN_KEY_LENGTH) return space + key;
    return hashKey(key).then((hash) => `${space}#${hash}`);
  }

  /** Counters survive deploys, so they live outside the versioned space. */
  counter(key: string): string | Promise<string> {
    return this.entry(`#count:${key}`, false);
  }

  /** When each tag was last invalidated (outside the versioned space: data changes cross deploys). */
  tag(tag: string): string {
    return `${this.namespaceRoot}~t:${tag}`;
  }

  /** The counter every invalidation in this namespace bumps, for cross-instance L1 coherence. */
  get epoch(): string {
    return `${this.namespaceRoot}~e`;
  }

  /** The short stampede lease for a full entry key. */
  lease(fullKey: string): string {
    return `${this.namespaceRoot}~l:${fullKey.slice(this.namespaceRoot.length)}`;
  }

  /** A SCAN pattern for the user glob within this namespace and version. */
  pattern(glob: string, versioned = true): string {
    return `${escapeGlob(this.namespaceRoot)}${versioned ? escapeGlob(this.version) : UNVERSIONED}:${glob}`;
  }
}

function assertKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0) {
    throw new TypeError(`tiercache: a cache key must be a non-empty string, got ${typeof key}`);
  }
}

async function hashKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return bytesToBase64(new Uint8Array(digest)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** A RegExp matching exactly what the Redis glob `pattern` matches (for dropping L1 copies). */
export function globToRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] as string;
    if (char === "\\" && i + 1 < pattern.length) source += escapeRegExp(pattern[++i] as string);
    else if (char === "*") source += "[\\s\\S]*";
    else if (char === "?") source += "[\\s\\S]";
    else if (char === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end === -1) source += "\\[";
      else {
        const body = pattern.slice(i + 1, end);
        source += `[${body.startsWith("^") ? `^${body.slice(1)}` : body.replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else source += escapeRegExp(char);
  }
  return new RegExp(`^${source}$`);
}

function escapeRegExp(char: string): string {
  return char.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

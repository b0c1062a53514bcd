import { bytesToBase64 } from "./codec.js";
import { CacheError } from "./errors.js";
import { checkKey } from "./input.js";
import { slotOf, tagForSlot } from "./slots.js";

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
 * What follows the version slot. User keys always sit behind a kind marker, so that no key a
 * caller can pass produces another kind's Redis key: a plain key `k:<key>`, a key too long to
 * store plainly `h:<hash>` (no plain key can look like a hash), a counter `c:` followed by its
 * key encoded the same way. Internal keys (`~t:` tag marks, `~e` epoch, `~l:` leases,
 * `~flush-lock`) sit in the version slot itself, under names no version can take.
 */
const PLAIN = "k:";
const HASHED = "h:";
const COUNTER = "c:";

/**
 * The key layout `[<prefix>:]tc:<namespace>:<version>:k:<key>` (see {@link KeySpace.entry}). Every
 * key this library touches is built here, so there is no way to write an unprefixed key by accident.
 *
 * On a Redis Cluster (`slotted`) the bookkeeping keys carry hash tags, so that what one command
 * touches together sits in one slot: a namespace's epoch and tag marks share
 * `{[<prefix>:]tc:<namespace>}` (one MSET of any number of marks, plus the epoch, on one node), and a
 * lease takes its entry's slot. Entries carry none: they spread over the whole cluster. On one node
 * the names stay as they always were, so an upgrade keeps every mark and epoch.
 */
export class KeySpace {
  /** `[<prefix>:]tc:` — everything this library wrote in this environment starts with it. */
  readonly root: string;
  /** `[<prefix>:]tc:<namespace>:` */
  readonly namespaceRoot: string;
  private readonly versionedSpace: string;
  private readonly unversionedSpace: string;
  /** `{[<prefix>:]tc:<namespace>}:` on a cluster, else empty: what follows `~e` and `~t:`. */
  private readonly bookkeepingTag: string;

  constructor(
    readonly prefix: string | undefined,
    readonly namespace: string,
    readonly version: string,
    /** Keys for a Redis Cluster: bookkeeping keys carry hash tags (see the class comment). */
    readonly slotted = false,
  ) {
    this.root = `${prefix ? `${prefix}:` : ""}${ROOT}:`;
    this.namespaceRoot = `${this.root}${namespace}:`;
    this.versionedSpace = `${this.namespaceRoot}${version}:`;
    this.unversionedSpace = `${this.namespaceRoot}${UNVERSIONED}:`;
    this.bookkeepingTag = slotted ? `{${this.root}${namespace}}:` : "";
  }

  /**
   * The Redis key of a cache entry: `<space>k:<key>`, or `<space>h:<sha256>` for a key over
   * {@link MAX_PLAIN_KEY_LENGTH} characters (then a promise). `<space>` is
   * `[<prefix>:]tc:<namespace>:<version>:`, or `…:~:` for unversioned entries.
   */
  entry(key: string, versioned = true): string | Promise<string> {
    return userKey(versioned ? this.versionedSpace : this.unversionedSpace, key);
  }

  /** Both entry keys of `key`, versioned then unversioned: what a delete or `exists` has to reach. */
  entries(key: string): Promise<[string, string]> {
    return Promise.all([this.entry(key, true), this.entry(key, false)]);
  }

  /**
   * The same entry key in another version of this namespace, or undefined when `full` is not a
   * versioned entry of this key space (unversioned entries are shared by every version already).
   */
  inVersion(full: string, version: string): string | undefined {
    if (!full.startsWith(this.versionedSpace)) return undefined;
    return `${this.namespaceRoot}${version}:${full.slice(this.versionedSpace.length)}`;
  }

  /** Counters survive deploys, so they live outside the versioned space: `…:~:c:k:<key>`. */
  counter(key: string): string | Promise<string> {
    return userKey(`${this.unversionedSpace}${COUNTER}`, key);
  }

  /** When each tag was last invalidated (outside the versioned space: data changes cross deploys). */
  tag(tag: string): string {
    return `${this.namespaceRoot}~t:${this.bookkeepingTag}${tag}`;
  }

  /**
   * The counter every invalidation in this namespace bumps, for cross-instance L1 coherence:
   * `…:~e`, or `…:~e:{[<prefix>:]tc:<namespace>}` on a cluster.
   */
  get epoch(): string {
    return this.slotted
      ? `${this.namespaceRoot}~e:${this.bookkeepingTag.slice(0, -1)}`
      : `${this.namespaceRoot}~e`;
  }

  /** The short stampede lease for a full entry key; on a cluster `…:~l:{<tag>}:…`, in the entry's slot. */
  lease(fullKey: string): string {
    const slot = this.slotted ? `{${tagForSlot(slotOf(fullKey))}}:` : "";
    return `${this.namespaceRoot}~l:${slot}${fullKey.slice(this.namespaceRoot.length)}`;
  }

  /**
   * A SCAN pattern for the user glob within this namespace and version. It covers plain keys only:
   * hashed keys and counters sit behind other markers, so no glob can reach them.
   */
  pattern(glob: string, versioned = true): string {
    checkKey(glob, "pattern");
    return `${escapeGlob(this.namespaceRoot)}${versioned ? escapeGlob(this.version) : UNVERSIONED}:${PLAIN}${glob}`;
  }
}

function userKey(space: string, key: string): string | Promise<string> {
  checkKey(key);
  if (key.length <= MAX_PLAIN_KEY_LENGTH) return space + PLAIN + key;
  return hashKey(key).then((hash) => space + HASHED + hash);
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

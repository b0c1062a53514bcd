import { base64ToBytes, bytesToBase64, decodeValue } from "./codec.js";
import type { Entry } from "./entry.js";
import { CacheError } from "./errors.js";

/**
 * Encryption at rest: the value slot of an entry sealed with AES-256-GCM (Web Crypto, so the same
 * code runs on Node, Vercel Edge and workerd). The envelope stays readable so Redis-side scripts and
 * the stats command can read the times and tags:
 *
 *     [2,<created>,<fresh>,<stale>,<tags>,"<kid>:<j|z>:<base64(iv ‖ ciphertext ‖ tag)>"]
 *
 * Format 2 marks a sealed entry, so no plain (format 1) string value can ever be mistaken for one,
 * and an instance without the key sees it for what it is. `kid` is the first 8 hex digits of the
 * SHA-256 of the key (it names the key without revealing it), `j` a JSON value and `z` a gzipped one
 * (compressed before encryption: ciphertext does not compress). The IV is 12 fresh random bytes per
 * write. The associated data is the full Redis key and the envelope head before the value, so a
 * ciphertext moved to another key, or given other times or tags, fails to open.
 */

/** Key material as options take it: 32 bytes, or their base64 (standard or URL-safe). */
export type EncryptionKey = string | Uint8Array;

/** `createCache({ encryption })`, else `CACHE_ENCRYPTION_KEY` and `CACHE_ENCRYPTION_KEYS_PREVIOUS`. */
export interface EncryptionOptions {
  /** The key new entries are written with: 32 random bytes, or their base64. */
  key: EncryptionKey;
  /** Older keys entries may still be written with: read, never written (rotation). */
  previousKeys?: readonly EncryptionKey[];
}

const SEALED_HEAD = "[2,";
/** Sealed values longer than this (as JSON) are gzipped before encryption, as plain entries are. */
const COMPRESS_ABOVE = 16 * 1024;
const IV_BYTES = 12;
const KEY_BYTES = 32;
/** 32 bytes in base64, either alphabet, padding optional (also what the environment schema checks). */
export const KEY_PATTERN = "[A-Za-z0-9+/_-]{43}=?";
const BASE64_KEY = new RegExp(`^${KEY_PATTERN}$`);

/** Whether stored text is a sealed (format 2) entry. */
export function isSealed(stored: string): boolean {
  return stored.startsWith(SEALED_HEAD);
}

/** Checks key material; the error names where it came from, never the key. */
export function keyBytes(what: string, key: unknown): Uint8Array<ArrayBuffer> {
  if (key instanceof Uint8Array) {
    if (key.length === KEY_BYTES) return new Uint8Array(key);
  } else if (typeof key === "string" && BASE64_KEY.test(key)) {
    const standard = key.replace(/-/g, "+").replace(/_/g, "/");
    return base64ToBytes(standard.endsWith("=") ? standard : `${standard}=`);
  }
  throw new CacheError(
    "CONFIG",
    `${what} must be 32 random bytes, base64-encoded (44 characters; e.g. \`openssl rand -base64 32\`)`,
  );
}

interface Keys {
  current: { id: string; key: CryptoKey };
  byId: Map<string, CryptoKey>;
}

/** Why a sealed entry could not be opened; a miss, never thrown out of a read. */
export class UnreadableEntry extends Error {}

/**
 * The keys of one cache: imported on first use (Web Crypto is asynchronous), then sealing and
 * opening cost one AES-GCM call each.
 */
export class Keyring {
  private keys: Promise<Keys> | undefined;
  /** The raw key bytes until they are imported (as non-extractable CryptoKeys), then dropped. */
  private material: Uint8Array<ArrayBuffer>[] | undefined;

  constructor(current: Uint8Array<ArrayBuffer>, previous: readonly Uint8Array<ArrayBuffer>[]) {
    this.material = [current, ...previous];
  }

  /** The sealed text of an entry whose value encodes as `valueJson`, stored at `full`. */
  async seal(full: string, entry: Omit<Entry, "size" | "value">, valueJson: string): Promise<string> {
    const { current } = await this.load();
    const compress = valueJson.length > COMPRESS_ABOVE;
    const plain = new TextEncoder().encode(valueJson);
    const data = compress ? await gzip(plain) : plain;
    const head = `${SEALED_HEAD}${entry.created},${entry.fresh},${entry.stale},${JSON.stringify(entry.tags)},`;
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: associated(full, head) },
      current.key,
      data,
    );
    const out = new Uint8Array(IV_BYTES + sealed.byteLength);
    out.set(iv);
    out.set(new Uint8Array(sealed), IV_BYTES);
    return `${head}"${current.id}:${compress ? "z" : "j"}:${bytesToBase64(out)}"]`;
  }

  /** The entry sealed in `stored` at `full`; an {@link UnreadableEntry} when it cannot be opened. */
  async open(full: string, stored: string): Promise<Entry> {
    const cut = stored.lastIndexOf(',"');
    const head = stored.slice(0, cut + 1);
    const payload = stored.slice(cut + 2, -2);
    const [kid, mode, base64] = payload.split(":");
    let meta: unknown;
    try {
      meta = JSON.parse(`${head}0]`);
    } catch {
      meta = undefined;
    }
    if (
      cut < 0 ||
      !stored.endsWith('"]') ||
      !Array.isArray(meta) ||
      meta.length !== 6 ||
      !meta.slice(1, 4).every((n) => typeof n === "number") ||
      !Array.isArray(meta[4]) ||
      (mode !== "j" && mode !== "z") ||
      !kid ||
      !base64
    ) {
      throw new UnreadableEntry("not a sealed tiercache entry");
    }
    const key = (await this.load()).byId.get(kid);
    if (!key) throw new UnreadableEntry(`sealed with an unknown key (id ${kid})`);
    let bytes: Uint8Array;
    try {
      const sealed = base64ToBytes(base64);
      const opened = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: sealed.subarray(0, IV_BYTES), additionalData: associated(full, head) },
        key,
        sealed.subarray(IV_BYTES),
      );
      bytes = new Uint8Array(opened);
      if (mode === "z") bytes = await gunzip(bytes);
    } catch {
      // GCM says only "does not authenticate": wrong key bytes under a known id, tampering, a move.
      throw new UnreadableEntry("does not decrypt (tampered, moved, or another key with the same id)");
    }
    const valueJson = new TextDecoder().decode(bytes);
    return {
      created: meta[1],
      fresh: meta[2],
      stale: meta[3],
      tags: meta[4] as string[],
      value: decodeValue(valueJson),
      size: head.length + valueJson.length,
    };
  }

  private load(): Promise<Keys> {
    this.keys ??= (async () => {
      const material = this.material ?? [];
      this.material = undefined;
      const [current, ...previous] = await Promise.all(material.map(importKey));
      for (const bytes of material) bytes.fill(0);
      if (!current) throw new CacheError("CONFIG", "no encryption key");
      const byId = new Map<string, CryptoKey>();
      // The current key wins an id clash: it is the one every new entry is written with.
      for (const { id, key } of [...previous.reverse(), current]) byId.set(id, key);
      return { current, byId };
    })();
    return this.keys;
  }
}

/** The key id: first 8 hex digits of SHA-256 of the key bytes. */
export async function keyId(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function importKey(bytes: Uint8Array<ArrayBuffer>): Promise<{ id: string; key: CryptoKey }> {
  const [id, key] = await Promise.all([
    keyId(bytes),
    crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]),
  ]);
  return { id, key };
}

function associated(full: string, head: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${full}\n${head}`);
}

async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>])
    .stream()
    .pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * At most one warning line per minute for entries that do not open, with how many were skipped: a
 * wrong key on one instance would otherwise write a line per read.
 */
export class WarningLimiter {
  private last = -Infinity;
  private suppressed = 0;

  constructor(private readonly intervalMs = 60_000) {}

  /** The line to write now (with the count of lines held back since the last one), or undefined. */
  next(message: string, now = Date.now()): string | undefined {
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return undefined;
    }
    this.last = now;
    const held = this.suppressed;
    this.suppressed = 0;
    return held > 0 ? `${message} (${held} similar warnings suppressed)` : message;
  }
}

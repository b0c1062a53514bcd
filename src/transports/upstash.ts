// Type-only: the fetch client below speaks the protocol itself, so neither this module nor the core
// needs @upstash/redis at run time (or at build time: bundlers never see a value import of it).
import type { Redis, Requester, UpstashRequest } from "@upstash/redis";
import { redact, redactError } from "../redact.js";
import { abortable, abortError } from "./abort.js";
import { type RedisArg, type RedisReply, replyError, type Transport } from "./types.js";

/** Options of {@link upstash}: the REST endpoint and token, or an `@upstash/redis` client of your own. */
export type UpstashOptions = { url: string; token: string } | { client: Redis };

/** One command's answer in the Upstash REST protocol. */
type Slot = { result: unknown; error?: undefined } | { error: string };

/** Sends one JSON body to `/` (a command) or `/pipeline` (a list of them) and returns the parsed answer. */
type Exchange = (
  path: "" | "pipeline",
  body: string[] | string[][],
  signal?: AbortSignal,
) => Promise<unknown>;

/**
 * A transport over the Upstash REST API (fetch; runs on every edge runtime). Each command is one
 * HTTP request and each pipeline one request to `/pipeline`; nothing is sent before the first one.
 *
 * With `{ url, token }` tiercache speaks the protocol itself over `fetch` (one attempt per command,
 * base64 replies decoded as strict UTF-8, the `upstash-sync-token` for read-your-writes), so
 * `@upstash/redis` need not be installed. With `{ client }` it goes through that client's own
 * requester (its retries and encoding settings apply).
 *
 * @throws Error when `url` is not an http(s) URL or `token` is empty or holds characters an HTTP
 * header cannot carry (spaces, line breaks, control or non-ASCII characters); the message names the
 * option, never its value.
 */
export function upstash(options: UpstashOptions): Transport {
  if ("client" in options) {
    const requester = requesterOf(options.client);
    return new UpstashTransport(clientExchange(requester), scrubber(secretsOf(requester)));
  }
  const { url, token } = checked(options);
  return new UpstashTransport(restExchange(url, token), scrubber([token]));
}

function checked({ url, token }: { url: unknown; token: unknown }): { url: string; token: string } {
  let parsed: URL | undefined;
  try {
    parsed = typeof url === "string" ? new URL(url) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== "https:" && parsed.protocol !== "http:")) {
    throw new Error("upstash: the `url` option must be an http(s) URL");
  }
  if (typeof token !== "string" || !/^[\x21-\x7e]+$/.test(token)) {
    throw new Error(
      "upstash: the `token` option must be non-empty printable ASCII without spaces or line breaks (it is sent in an Authorization header)",
    );
  }
  return { url: (url as string).replace(/\/+$/, ""), token };
}

/**
 * The Upstash REST protocol over `fetch`, as @upstash/redis 1.x speaks it (pkg/http.ts). The token
 * lives in this closure only, so no inspection or log of the transport object shows it.
 */
function restExchange(url: string, token: string): Exchange {
  // Read-your-writes: the last token the server gave, sent back so a replica answers at least that fresh.
  let syncToken = "";
  return async (path, body, signal) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      // Bytes survive JSON only as base64; decoded below as strict UTF-8 (see `decode`).
      "upstash-encoding": "base64",
    };
    if (syncToken) headers["upstash-sync-token"] = syncToken;
    const init: RequestInit = { method: "POST", headers, body: JSON.stringify(body), signal };
    // Next.js must never cache these POSTs; but workerd before compatibility date 2024-11-11
    // rejects every fetch that carries a `cache` field at all.
    if (!isWorkerd()) init.cache = "no-store";
    let response: Response;
    try {
      response = await fetch(path ? `${url}/${path}` : url, init);
    } catch (thrown) {
      if (signal?.aborted) throw abortError(signal);
      const cause = thrown instanceof Error && thrown.cause instanceof Error ? thrown.cause : thrown;
      throw new Error(`upstash: request failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    }
    const text = await response.text();
    const parsed = parseJson(text);
    if (response.ok) {
      const sync = response.headers.get("upstash-sync-token");
      if (sync) syncToken = sync;
      if (parsed === undefined)
        throw new Error(`upstash: HTTP ${response.status} with a body that is not JSON`);
      return decodeAnswer(parsed);
    }
    // Upstash (and the bridge) answer a command Redis refused with 400 {"error"}: Redis answered.
    // Everything else — 5xx in an outage, 408, 429, 401, a proxy's HTML page — is the transport failing.
    const message = isErrorSlot(parsed) ? parsed.error : undefined;
    if (response.status === 400 && message !== undefined) throw replyError(message);
    throw new Error(
      `upstash: HTTP ${response.status}${message !== undefined ? `: ${message.slice(0, 200)}` : ""}`,
    );
  };
}

/** Masks `secrets` (held in this closure only) in a text. */
function scrubber(secrets: readonly string[]): (text: string) => string {
  return (text) => redact(text, secrets);
}

function isWorkerd(): boolean {
  return typeof navigator !== "undefined" && navigator.userAgent === "Cloudflare-Workers";
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Decodes the base64 strings of an answer; anything not shaped like slots is left for the caller to refuse. */
function decodeAnswer(answer: unknown): unknown {
  if (Array.isArray(answer)) return answer.map(decodeSlot);
  return decodeSlot(answer);
}

function decodeSlot(slot: unknown): unknown {
  if (!isSlot(slot) || slot.error !== undefined) return slot;
  try {
    return { result: decode(slot.result, true) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * Base64 strings at any depth back to text. A status `OK` arrives unencoded from Upstash. Bytes that
 * are not UTF-8 (written by another client) make that reply an error rather than a silently
 * replaced string: tiercache stores text only, and a corrupted entry must never look valid.
 */
function decode(value: unknown, top: boolean): unknown {
  if (typeof value === "string") return top && value === "OK" ? value : fromBase64(value);
  if (Array.isArray(value)) return value.map((item) => decode(item, false));
  return value;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function fromBase64(text: string): string {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new Error("upstash: a reply was not base64 although base64 was asked for");
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Error("upstash: a stored value is not UTF-8 text (tiercache reads text only)");
  }
}

/**
 * The client's requester: every command helper ends in `requester.request`, which takes a per-request
 * signal and raw command arrays, and is the only way to pipeline arbitrary commands (the Pipeline
 * builder has no generic command). `client` is protected in the typings but is that requester.
 */
function requesterOf(redis: Redis): Requester {
  const requester = (redis as unknown as { client?: Requester }).client;
  if (typeof requester?.request !== "function") {
    throw new Error("upstash: this @upstash/redis client has no requester (unsupported version?)");
  }
  return requester;
}

/** The token inside a client's Authorization header, known only so errors can be scrubbed of it. */
function secretsOf(requester: Requester): string[] {
  const header = (requester as { headers?: Record<string, unknown> }).headers?.authorization;
  return typeof header === "string" ? [header.replace(/^bearer\s+/i, "")] : [];
}

function clientExchange(requester: Requester): Exchange {
  return async (path, body, signal) => {
    const request: UpstashRequest = path ? { path: [path], body, signal } : { body, signal };
    try {
      return await requester.request(request);
    } catch (thrown) {
      throw clientError(thrown, request);
    }
  };
}

/**
 * The client hides the HTTP status: any non-2xx answer becomes "<error>, command was: <body>". An
 * error worded as Redis words its replies (an upper-case code first: ERR, WRONGTYPE, NOSCRIPT…) is
 * taken as a reply; anything else (the bridge's "Redis unavailable", a gateway's text, a body that
 * is not JSON, a failed fetch) as the transport failing.
 */
function clientError(thrown: unknown, request: UpstashRequest): Error {
  if (!(thrown instanceof Error)) return new Error(String(thrown));
  if (thrown.name === "AbortError") return thrown;
  // The echoed body would put cached values into log lines.
  const echo = `, command was: ${JSON.stringify(request.body)}`;
  if (thrown.message.endsWith(echo)) {
    const message = thrown.message.slice(0, -echo.length);
    return /^[A-Z][A-Z0-9_]+(\s|$)/.test(message) ? replyError(message) : new Error(`upstash: ${message}`);
  }
  if (thrown.message === "fetch failed" && thrown.cause instanceof Error) {
    return new Error(`upstash: request failed: ${thrown.cause.message}`);
  }
  return new Error(`upstash: ${thrown.message}`);
}

class UpstashTransport implements Transport {
  readonly kind = "upstash";

  constructor(
    private readonly exchange: Exchange,
    private readonly scrub: (text: string) => string,
  ) {}

  async send(command: readonly RedisArg[], signal?: AbortSignal): Promise<RedisReply> {
    const answer = await this.request("", toArgs(command), signal);
    if (!isSlot(answer)) throw new Error("upstash: the answer is not a command reply");
    return this.toReply(answer);
  }

  async pipeline(
    commands: readonly (readonly RedisArg[])[],
    signal?: AbortSignal,
  ): Promise<(RedisReply | Error)[]> {
    if (commands.length === 0) return [];
    const answer = await this.request("pipeline", commands.map(toArgs), signal);
    if (!Array.isArray(answer) || answer.length !== commands.length || !answer.every(isSlot)) {
      throw new Error(`upstash: the pipeline of ${commands.length} commands got a malformed answer`);
    }
    return answer.map((slot) => {
      try {
        return this.toReply(slot);
      } catch (error) {
        return error as Error;
      }
    });
  }

  async close(): Promise<void> {
    // Stateless HTTP: the runtime's fetch owns (and reuses) the connections.
  }

  redact(text: string): string {
    return this.scrub(text);
  }

  private async request(
    path: "" | "pipeline",
    body: string[] | string[][],
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    if (signal?.aborted) throw abortError(signal);
    try {
      // The caller's signal also cancels the fetch. Aborted, @upstash/redis RESOLVES with a made-up
      // `{ result: reason }` (a timed-out GET would look like a value or a miss); `abortable` has
      // rejected by then, so that answer is dropped.
      return await abortable(this.exchange(path, body, signal), signal);
    } catch (thrown) {
      throw redactError(thrown instanceof Error ? thrown : new Error(String(thrown)), (text) =>
        this.redact(text),
      );
    }
  }

  /** A reply, or the error it carries. A missing result is an error, never a miss. */
  private toReply(slot: Slot): RedisReply {
    if (slot.error !== undefined) throw replyError(this.scrub(slot.error));
    if (slot.result === undefined) throw new Error("upstash: the answer carried no result");
    return slot.result as RedisReply;
  }
}

function isSlot(value: unknown): value is Slot {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  return "result" in value || isErrorSlot(value);
}

function isErrorSlot(value: unknown): value is { error: string } {
  return (
    typeof value === "object" && value !== null && typeof (value as { error?: unknown }).error === "string"
  );
}

/**
 * Arguments as JSON strings. A lone surrogate cannot be encoded as UTF-8: the server would store
 * U+FFFD, so two different keys would meet in one. Refused instead (an error reply: Redis is fine).
 */
function toArgs(command: readonly RedisArg[]): string[] {
  return command.map((arg) => {
    const text = String(arg);
    if (/\p{Cs}/u.test(text))
      throw replyError("upstash: an argument is not well-formed Unicode (a lone surrogate)");
    return text;
  });
}

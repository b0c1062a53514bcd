import type { IncomingMessage, ServerResponse } from "node:http";
import {
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  ErrorReply,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
} from "redis";
import { parseJson, readBody } from "./body.js";
import { assertAllowed, type Command, commandName, parseCommand, parseCommandList } from "./commands.js";
import { toItem, toJson } from "./encode.js";
import { runCommand, runPipeline, runTransaction } from "./execute.js";
import { HttpError } from "./http-error.js";
import type { BridgeLogger } from "./logger.js";
import type { RedisPool } from "./redis-pool.js";
import { streamSubscription } from "./subscribe.js";
import type { SyncTokens } from "./sync-token.js";

export interface HandlerContext {
  pool: RedisPool;
  /** Refuses foreign Hosts and browser origins; true when it answered (a CORS preflight) itself. */
  checkExposure(req: IncomingMessage, res: ServerResponse): boolean;
  /** Throws a 401 `HttpError` unless the `Authorization` header carries the token. */
  authorize(header: string | undefined): void;
  maxBodyBytes: number;
  /** Whether a lower-case name is a Redis command, to tell the GET path form from an unknown path. */
  isCommand(name: string): boolean;
  /** Whether an upper-case command name may write (anything Redis does not flag read-only). */
  mayWrite(name: string): boolean;
  /** Let server administration through (see `assertNotAdmin`). */
  allowAdmin: boolean;
  syncTokens: SyncTokens;
  logger: BridgeLogger;
}

const SYNC_TOKEN = "upstash-sync-token";

/** The HTTP handler speaking the Upstash REST protocol; every failure is a JSON `{"error": …}`. */
export function createHandler(context: HandlerContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(context, req, res).catch((error: unknown) => fail(context.logger, res, error));
  };
}

async function handle(context: HandlerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // Every answer carries a sync token, refusals included; only an authorized client's counts.
  res.setHeader(SYNC_TOKEN, context.syncTokens.observe(undefined));
  if (context.checkExposure(req, res)) return;
  context.authorize(req.headers.authorization);
  const sent = req.headers[SYNC_TOKEN];
  res.setHeader(SYNC_TOKEN, context.syncTokens.observe(Array.isArray(sent) ? sent[0] : sent));
  const rawPath = req.url ?? "/";
  const query = rawPath.indexOf("?");
  const path = query === -1 ? rawPath : rawPath.slice(0, query);
  const reply: Reply = {
    res,
    base64: req.headers["upstash-encoding"] === "base64",
    clientGone: abortOnClose(res),
  };
  if (path === "/" || path === "/pipeline" || path === "/multi-exec") {
    if (req.method !== "POST") throw new HttpError(405, `${path} accepts POST only`);
    return serveJson(context, path, parseJson(await readBody(req, context.maxBodyBytes)), reply);
  }
  if (req.method !== "GET" && req.method !== "POST") throw new HttpError(405, "use GET or POST");
  return servePath(context, req, decodeSegments(path), reply);
}

interface Reply {
  res: ServerResponse;
  base64: boolean;
  /** Aborts when the HTTP client disconnects before its answer was sent. */
  clientGone: AbortSignal;
}

/** `POST /` (one command), `/pipeline` and `/multi-exec` (several), all JSON. */
async function serveJson(context: HandlerContext, path: string, body: unknown, reply: Reply): Promise<void> {
  const { res, base64, clientGone } = reply;
  if (path === "/") {
    const command = parseCommand(body);
    assertAllowed(command, context.allowAdmin);
    const result = await tracked(context, res, [command], () =>
      runCommand(context.pool, command, clientGone),
    );
    return sendJson(res, 200, { result: toJson(result, base64) });
  }
  const commands = parseCommandList(body);
  for (const command of commands) assertAllowed(command, context.allowAdmin);
  const replies = await tracked(context, res, commands, () =>
    path === "/pipeline"
      ? runPipeline(context.pool, commands, clientGone)
      : runTransaction(context.pool, commands),
  );
  sendJson(
    res,
    200,
    replies.map((r) => toItem(r, base64)),
  );
}

/** The path form (`GET /set/key/value`) and the Pub/Sub streams (`/subscribe/<channel>`). */
async function servePath(context: HandlerContext, req: IncomingMessage, segments: string[], reply: Reply) {
  const { res, base64, clientGone } = reply;
  const name = segments[0]!.toLowerCase();
  if (name === "subscribe" || name === "psubscribe") {
    // The Upstash client does not encode the channel, so a "/" in it splits the path.
    const channel = segments.slice(1).join("/");
    if (!channel)
      throw new HttpError(400, `missing ${name === "subscribe" ? "channel" : "pattern"}: /${name}/<name>`);
    return streamSubscription(context.pool, res, name, channel, clientGone);
  }
  if (!context.isCommand(name)) {
    throw new HttpError(
      404,
      `unknown path /${segments.join("/")}: POST a JSON command to /, or use /<command>/<arg>…`,
    );
  }
  // A POST body, if any, is the last argument, as raw bytes.
  const command: Command = segments;
  if (req.method === "POST") {
    const body = await readBody(req, context.maxBodyBytes);
    if (body.length > 0) command.push(body);
  }
  assertAllowed(command, context.allowAdmin);
  const result = await tracked(context, res, [command], () => runCommand(context.pool, command, clientGone));
  sendJson(res, 200, { result: toJson(result, base64) });
}

/**
 * Runs `run`; if any of `commands` may write, the answer (success or not: a script can fail
 * after writing, a lost connection leaves it unknown) carries a new sync token.
 */
async function tracked<T>(
  context: HandlerContext,
  res: ServerResponse,
  commands: Command[],
  run: () => Promise<T>,
): Promise<T> {
  if (!commands.some((command) => context.mayWrite(commandName(command)))) return run();
  try {
    return await run();
  } finally {
    res.setHeader(SYNC_TOKEN, context.syncTokens.advance());
  }
}

function decodeSegments(path: string): string[] {
  try {
    return path.slice(1).split("/").map(decodeURIComponent);
  } catch {
    throw new HttpError(400, "malformed percent-encoding in the path");
  }
}

/** Aborts when the client disconnects before its answer was sent (frees a blocked connection). */
function abortOnClose(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function fail(logger: BridgeLogger, res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    // A stream already under way cannot carry a status any more; cut it so the client notices.
    res.destroy();
    return;
  }
  const [status, message] = describe(logger, error);
  // The rest of an oversized body is not worth reading on a kept-alive connection.
  if (status === 413) res.setHeader("connection", "close");
  sendJson(res, status, { error: message });
}

function describe(logger: BridgeLogger, error: unknown): [status: number, message: string] {
  if (error instanceof HttpError) return [error.status, error.message];
  if (error instanceof ErrorReply) return [400, error.message];
  const message = error instanceof Error ? error.message : String(error);
  if (isConnectionError(error)) return [503, `Redis unavailable: ${message}`];
  logger.error(`tiercache bridge: internal error: ${error instanceof Error ? error.stack : message}`);
  return [500, `internal bridge error: ${message}`];
}

const CONNECTION_ERRORS = [
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
];

/** node-redis's connection errors, and socket errors (`ECONNREFUSED`…) of a dedicated connection. */
function isConnectionError(error: unknown): boolean {
  return (
    CONNECTION_ERRORS.some((type) => error instanceof type) || (error instanceof Error && "code" in error)
  );
}

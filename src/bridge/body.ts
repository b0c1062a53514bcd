import type { IncomingMessage } from "node:http";
import { HttpError } from "./http-error.js";

/**
 * Reads the whole request body, refusing (413) as soon as it would exceed `maxBytes`, so an
 * oversized upload never sits in memory. The rest of an oversized body is drained, not
 * destroyed, so the client still receives the 413.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers["content-length"]) > maxBytes) {
      req.resume();
      reject(tooLarge(maxBytes));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      req.off("data", onData);
      req.off("end", onEnd);
      req.resume();
      reject(tooLarge(maxBytes));
    };
    const onEnd = () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", reject);
  });
}

/** Parses a JSON body; malformed JSON is the client's fault (400), not the bridge's. */
export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new HttpError(400, "empty body: expected a JSON array");
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new HttpError(400, "malformed JSON body");
  }
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, `request body exceeds ${maxBytes} bytes`);
}

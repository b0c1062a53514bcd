import { createHash, timingSafeEqual } from "node:crypto";
import { HttpError } from "./http-error.js";

/**
 * Returns a check for the `Authorization` header: `Bearer <token>`, compared in constant time.
 * Both sides are hashed first so the comparison never leaks the token's length either.
 * With no token (`insecure`), every request passes.
 */
export function bearerCheck(token: string | undefined): (header: string | undefined) => void {
  if (token === undefined) return () => {};
  const expected = digest(token);
  return (header) => {
    const match = header === undefined ? null : /^Bearer[ \t]+(.+)$/i.exec(header.trim());
    if (!match) throw new HttpError(401, "missing token: send an 'Authorization: Bearer <token>' header");
    if (!timingSafeEqual(digest(match[1]!), expected)) throw new HttpError(401, "invalid token");
  };
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** Tokens shorter than this are refused by the CLI: a guessable token is no protection. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Why `token` cannot be used, or undefined. Never contains the token. Visible ASCII only: a
 * space or line break could never match the header (it is trimmed, and CR/LF cannot be sent).
 */
export function tokenProblem(token: string, minLength = 1): string | undefined {
  if (token.trim() === "") return "is blank";
  if (!/^[\x21-\x7e]+$/.test(token)) return "must be visible ASCII characters, without spaces or line breaks";
  if (token.length < minLength) return `is shorter than ${minLength} characters`;
  return undefined;
}

/** Throws (without the token in the message) unless `tokenProblem` finds nothing. */
export function assertUsableToken(token: string, name: string): void {
  const problem = tokenProblem(token);
  if (problem) throw new Error(`tiercache bridge: the ${name} ${problem}`);
}

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

import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { HttpError } from "./http-error.js";

/**
 * What a web page in the user's browser must not be able to do to the bridge, token or not:
 * - DNS rebinding: a page on `evil.example` whose name then resolves to 127.0.0.1 talks to the
 *   bridge as if same-origin and reads the answers. Its requests carry `Host: evil.example`, so
 *   only Host names that mean this machine (or that the operator allowed) are answered (421).
 *   Only the name is checked, not the port: the attacker picks a name, not the port, and a
 *   port mapping (Docker `-p 18079:8079`) would otherwise break honest clients.
 * - Cross-site requests: a page can POST `text/plain` or load `<img src=…/set/k/v>` without any
 *   CORS preflight; the bridge would run the command even though the page cannot read the
 *   answer. Browsers mark such requests with `Origin` (every CORS and every non-GET request) or
 *   `Sec-Fetch-Site` (every request of a current browser), so those are refused (403) unless
 *   the origin was allowed. Server-side clients (`@upstash/redis` in Node or workerd, curl) send
 *   neither.
 */
export interface ExposureOptions {
  /** The address the bridge listens on. */
  bindHost: string;
  /** Extra `Host` names to answer (`*`: any). */
  allowedHosts?: readonly string[];
  /** Browser origins allowed to call the bridge, e.g. `http://localhost:3000` (`*`: any). */
  allowedOrigins?: readonly string[];
}

/**
 * Returns a check run before anything else on every request: throws an `HttpError` for a
 * foreign Host or a browser request from an origin not allowed; adds the CORS headers for an
 * allowed origin; and answers a CORS preflight itself (then returns true: nothing more to do).
 */
export function exposureCheck(
  options: ExposureOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const hosts = allowedHostNames(options.bindHost, options.allowedHosts ?? []);
  const anyHost = hosts.has("*");
  const origins = new Set((options.allowedOrigins ?? []).map(normalizeOrigin));
  const anyOrigin = origins.has("*");

  return (req, res) => {
    const host = req.headers.host;
    // HTTP/1.0 clients may omit Host; browsers never do.
    if (host !== undefined && !anyHost) {
      const name = hostName(host);
      if (!(hosts.has(name) || isLoopbackName(name))) {
        throw new HttpError(
          421,
          `ERR Host '${host}' is not this bridge's address; start it with --allow-host <name> (allowedHosts) to answer it`,
        );
      }
    }
    const origin = header(req, "origin");
    if (origin !== undefined) {
      if (!(anyOrigin || origins.has(normalizeOrigin(origin)))) {
        throw new HttpError(
          403,
          `ERR cross-origin request from '${origin}' refused; start the bridge with --allow-origin <origin> (allowedOrigins) to allow it`,
        );
      }
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("vary", "origin");
      res.setHeader("access-control-expose-headers", "upstash-sync-token");
      if (req.method === "OPTIONS" && header(req, "access-control-request-method") !== undefined) {
        preflight(req, res);
        return true;
      }
      return false;
    }
    // A browser request without Origin (a no-cors GET: <img>, <script>, a link) from another site.
    const site = header(req, "sec-fetch-site");
    if (site !== undefined && site !== "none" && site !== "same-origin") {
      throw new HttpError(
        403,
        `ERR browser request from another site (Sec-Fetch-Site: ${site}) refused; the bridge answers server-side clients only`,
      );
    }
    return false;
  };
}

function preflight(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader("access-control-allow-methods", "GET, POST");
  const requested = header(req, "access-control-request-headers");
  if (requested !== undefined) res.setHeader("access-control-allow-headers", requested);
  // Chrome's Private Network Access asks before a public page may reach a loopback address.
  if (header(req, "access-control-request-private-network") === "true")
    res.setHeader("access-control-allow-private-network", "true");
  res.setHeader("access-control-max-age", "600");
  res.writeHead(204);
  res.end();
}

/** True for addresses only this machine can reach: `localhost`, 127.0.0.0/8, `::1`. */
export function isLoopbackHost(host: string): boolean {
  return isLoopbackName(hostName(host));
}

function isLoopbackName(name: string): boolean {
  if (name === "localhost" || name.endsWith(".localhost") || name === "::1") return true;
  const v4 = name.startsWith("::ffff:") ? name.slice(7) : name;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

/** Names that mean this bridge: the bind address and, on a wildcard bind, this machine's addresses. */
function allowedHostNames(bindHost: string, extra: readonly string[]): Set<string> {
  const names = new Set(extra.map((name) => (name === "*" ? name : hostName(name))));
  const bind = hostName(bindHost);
  if (bind === "" || bind === "0.0.0.0" || bind === "::") {
    names.add(hostName(hostname()));
    for (const addresses of Object.values(networkInterfaces()))
      for (const { address } of addresses ?? []) names.add(hostName(address));
  } else {
    names.add(bind);
  }
  return names;
}

/** The lower-case name of a `Host` value or address, without port, IPv6 brackets or final dot. */
function hostName(value: string): string {
  let name = value.trim().toLowerCase();
  if (name.startsWith("[")) {
    const end = name.indexOf("]");
    name = end === -1 ? name.slice(1) : name.slice(1, end);
  } else if (isIP(name) !== 6) {
    const colon = name.lastIndexOf(":");
    if (colon !== -1 && /^\d*$/.test(name.slice(colon + 1))) name = name.slice(0, colon);
  }
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

function normalizeOrigin(origin: string): string {
  const trimmed = origin.trim().toLowerCase();
  return trimmed.endsWith("/") ? trimmed.slice(0, -1) : trimmed;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

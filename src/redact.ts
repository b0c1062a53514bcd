/** What a secret is replaced with. */
const MASK = "***";
/** Fragments shorter than this are not masked on their own: too likely to be ordinary text. */
const MIN_FRAGMENT = 4;

/**
 * Removes secrets from text that is about to cross a public boundary (a log line, a CacheError, a
 * health report): each of the known `secrets` wherever it appears (also URL-encoded, and each
 * piece of it between line breaks, since an error may quote a multi-line token only up to a break),
 * then whatever follows `Bearer` and the user info of any `scheme://user:pass@` URL.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let clean = text;
  for (const secret of expand(secrets)) clean = clean.replaceAll(secret, MASK);
  return clean
    .replace(/(bearer\s+)[^\s"',;]+/gi, `$1${MASK}`)
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, `$1${MASK}@`);
}

/**
 * `error` when `scrub` leaves its message and stack alone, else a clean copy of it (same name, no
 * cause: the original would carry the secret along).
 */
export function redactError(error: Error, scrub: (text: string) => string): Error {
  const message = scrub(error.message);
  const stack = error.stack === undefined ? undefined : scrub(error.stack);
  if (message === error.message && stack === error.stack) return error;
  const clean = new Error(message);
  clean.name = error.name;
  if (stack !== undefined) clean.stack = stack;
  return clean;
}

/** Every form a secret may appear in, longest first so a fragment never masks half of a whole. */
function expand(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (!secret) continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    for (const piece of secret.split(/[\r\n\0]+/)) if (piece.length >= MIN_FRAGMENT) forms.add(piece);
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

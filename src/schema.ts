import type { Schema } from "./types.js";

export type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

/** Runs a Standard Schema (zod, valibot, arktype…) and flattens its verdict. */
export async function validate<T>(schema: Schema<T>, value: unknown): Promise<Checked<T>> {
  const result = await schema["~standard"].validate(value);
  if (!result.issues) return { ok: true, value: result.value };
  const message = result.issues
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path?.map((p) => (typeof p === "object" ? String(p.key) : String(p))).join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
  return { ok: false, message };
}

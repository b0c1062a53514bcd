import { Buffer } from "node:buffer";

/** The whole of a byte stream in one array; rejects when the stream errors (a partial entry is no entry). */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.byteLength;
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/**
 * A new stream over a copy of `bytes`: the stored bytes are shared by every reader of the entry, and
 * a consumer that transfers or overwrites its chunk must not damage them.
 */
export function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes.slice());
      controller.close();
    },
  });
}

/**
 * A copy of `value` in which every byte array is a Buffer again (the codec brings them back as plain
 * Uint8Arrays, and Next calls Buffer methods on `rscData`, segment data and bodies). Containers are
 * new, bytes are shared (Buffer views, no copy), so callers may change the result freely.
 */
export function withBuffers<T>(value: T): T {
  return convert(value) as T;
}

function convert(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array) {
    return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, convert(v)]));
  if (Array.isArray(value)) return value.map(convert);
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) copy[k] = convert(v);
  return copy;
}

/** A body read up to a cap: all its bytes, or a stream that still yields every byte for the caller. */
export type CappedBody =
  | { complete: true; bytes: Uint8Array<ArrayBuffer> }
  | { complete: false; stream: ReadableStream<Uint8Array> };

/**
 * Reads a response body (streamed or not) into one buffer, giving up once it passes `cap` bytes or
 * the stream fails; then the chunks already read are replayed ahead of the rest of the stream, so
 * the response still goes through whole (or fails the way the handler's stream fails).
 */
export async function readCapped(body: ReadableStream<Uint8Array> | null, cap: number): Promise<CappedBody> {
  if (body === null) return { complete: true, bytes: new Uint8Array(0) };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      // Anything but bytes (a handler enqueuing strings) is left for the runtime to reject as it would.
      if (!(value instanceof Uint8Array)) return { complete: false, stream: replay(chunks, reader) };
      size += value.byteLength;
      if (size > cap) return { complete: false, stream: replay(chunks, reader) };
    }
  } catch {
    return { complete: false, stream: replay(chunks, reader) };
  }
  return { complete: true, bytes: concat(chunks, size) };
}

function replay(
  chunks: Uint8Array[],
  rest: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  let next = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffered = chunks[next];
      if (buffered !== undefined) {
        chunks[next++] = EMPTY; // let it be collected once sent
        controller.enqueue(buffered);
        return;
      }
      const { done, value } = await rest.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return rest.cancel(reason);
    },
  });
}

const EMPTY = new Uint8Array(0);

/** The chunks, `size` bytes in all, in one new array. */
export function concat(chunks: readonly Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

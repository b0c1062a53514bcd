/**
 * Redis Cluster hash slots (CRC16/XMODEM of the key, or of its `{hash tag}`, mod 16384), so that
 * keys that must travel together can be given one slot by construction.
 */

const SLOTS = 16384;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

const encoder = new TextEncoder();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc;
}

/** The cluster slot of `key`, as Redis computes it (a non-empty first `{…}` hashes alone). */
export function slotOf(key: string): number {
  const open = key.indexOf("{");
  if (open !== -1) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) return crc16(encoder.encode(key.slice(open + 1, close))) % SLOTS;
  }
  return crc16(encoder.encode(key)) % SLOTS;
}

/** Shortest known tag of each slot, filled on demand (base-36 counters, ~160k CRCs to cover all). */
const tags = new Map<number, string>();
let next = 0;

/**
 * A short hash-tag body whose slot is `slot`: `{<tag>}` in another key puts that key in the slot,
 * whatever braces the rest of it holds.
 */
export function tagForSlot(slot: number): string {
  let tag = tags.get(slot);
  while (tag === undefined) {
    const candidate = (next++).toString(36);
    const found = crc16(encoder.encode(candidate)) % SLOTS;
    if (!tags.has(found)) tags.set(found, candidate);
    if (found === slot) tag = tags.get(slot);
  }
  return tag;
}

// The key hash: MurmurHash3 x86 32-bit over the UTF-8 bytes of a key.
// Gotcha: every node must hash identically. Changing this function, its seed use or the
// string encoding changes the partition of every key and the owner of every partition, so
// it is versioned (HASH_VERSION) and the version is part of the cluster config.

/**
 * Identifies the hash and score functions, and the placement rule built on them; nodes with a
 * different value refuse each other. `+caps/1`: placement honours the admission fronts of
 * members that join step by step (placement.ts admitted), which a node without it ignores.
 */
export const HASH_VERSION = "murmur3-32-hrw/1+caps/1";

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const utf8 = new TextEncoder();

function mixK(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mixH(h: number, k: number): number {
  h ^= mixK(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number, length: number): number {
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32 of `bytes` with `seed`; an unsigned 32-bit integer. */
export function murmur3Bytes(bytes: Uint8Array, seed = 0): number {
  const len = bytes.length;
  const blocks = len & ~3;
  let h = seed | 0;
  let i = 0;
  for (; i < blocks; i += 4) {
    h = mixH(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
  }
  const rem = len & 3;
  if (rem > 0) {
    let k = bytes[i]!;
    if (rem > 1) k |= bytes[i + 1]! << 8;
    if (rem > 2) k |= bytes[i + 2]! << 16;
    h ^= mixK(k);
  }
  return finish(h, len);
}

/**
 * MurmurHash3 x86_32 of the UTF-8 encoding of `s`. ASCII strings (the common key) are hashed
 * straight from their char codes without allocating; anything else goes through TextEncoder,
 * so the result always equals `murmur3Bytes(utf8(s), seed)`.
 */
export function murmur3String(s: string, seed = 0): number {
  const len = s.length;
  const blocks = len & ~3;
  let h = seed | 0;
  let i = 0;
  for (; i < blocks; i += 4) {
    const c0 = s.charCodeAt(i);
    const c1 = s.charCodeAt(i + 1);
    const c2 = s.charCodeAt(i + 2);
    const c3 = s.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) > 0x7f) return murmur3Bytes(utf8.encode(s), seed);
    h = mixH(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
  }
  const rem = len & 3;
  if (rem > 0) {
    const t0 = s.charCodeAt(i);
    const t1 = rem > 1 ? s.charCodeAt(i + 1) : 0;
    const t2 = rem > 2 ? s.charCodeAt(i + 2) : 0;
    if ((t0 | t1 | t2) > 0x7f) return murmur3Bytes(utf8.encode(s), seed);
    h ^= mixK(t0 | (t1 << 8) | (t2 << 16));
  }
  return finish(h, len);
}

/** A key: a string (hashed as UTF-8) or raw bytes. */
export type Key = string | Uint8Array;

/** The 32-bit hash of a key. */
export function hashKey(key: Key, seed = 0): number {
  return typeof key === "string" ? murmur3String(key, seed) : murmur3Bytes(key, seed);
}

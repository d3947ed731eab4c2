// Key hash functions as twemproxy (nutcracker 0.5, src/hashkit/) computes them, so that a pool hashed
// here maps keys to the servers twemproxy would choose. libmemcached's libhashkit has the same
// functions (twemproxy took them from there) with the same quirks, except hsieh (see hashHsieh).
//
// Each function takes the key bytes and returns the unsigned 32-bit value twemproxy hands to its
// distribution (ketama or modula). None allocates.
//
// Signed char: twemproxy reads keys as `const char *` and several functions widen a byte with
// `(uint32_t)key[i]`, which sign-extends bytes >= 0x80 where char is signed (x86-64, the platform
// Debian's nutcracker runs on here). fnv1_32, fnv1a_32, fnv1_64, fnv1a_64, one_at_a_time and
// hsieh's 3-byte tail therefore mix 0xffffff80..0xffffffff instead of 0x80..0xff; this module does
// the same (`signed`). On arm64, where char is unsigned, twemproxy maps such keys differently; keys
// of ASCII bytes hash the same everywhere.

/** A key hash: key bytes in, unsigned 32-bit hash out. */
export type HashFunction = (key: Uint8Array) => number;

// A byte as the int32 a signed char widens to on x86-64.
function signed(byte: number): number {
  return (byte << 24) >> 24;
}

// Little-endian 16- and 32-bit reads (the 32-bit one as int32).
function halfAt(key: Uint8Array, at: number): number {
  return (key[at] as number) | ((key[at + 1] as number) << 8);
}

function wordAt(key: Uint8Array, at: number): number {
  return (
    (key[at] as number) |
    ((key[at + 1] as number) << 8) |
    ((key[at + 2] as number) << 16) |
    ((key[at + 3] as number) << 24)
  );
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

const digest = new Uint8Array(16); // scratch for md5; JavaScript is single-threaded, so one is enough
const digestWords = new DataView(digest.buffer);

/**
 * Writes the MD5 digest of `bytes` into `out` as four little-endian words (out[0] = digest bytes
 * 0..3, byte 0 lowest): ketama's point values and twemproxy's md5 key hash read the digest this way.
 */
export function md5Words(bytes: Uint8Array, out: Uint32Array): void {
  Bun.MD5.hash(bytes, digest);
  out[0] = digestWords.getUint32(0, true);
  out[1] = digestWords.getUint32(4, true);
  out[2] = digestWords.getUint32(8, true);
  out[3] = digestWords.getUint32(12, true);
}

/** twemproxy `md5`: the first four bytes of the MD5 digest, little-endian. */
export function hashMd5(key: Uint8Array): number {
  Bun.MD5.hash(key, digest);
  return digestWords.getUint32(0, true);
}

// FNV (Fowler, Noll, Vo). The 64-bit variants return the low 32 bits of the 64-bit hash; those
// depend only on the low 32 bits of the state and of the prime (multiplication and xor carry
// nothing downwards), so 32-bit arithmetic with the truncated offset basis and prime gives them
// exactly. twemproxy's own fnv1a_64 is written that way; its fnv1_64 uses uint64_t and truncates.
const FNV64_OFFSET_LOW = 0x84222325; // low 32 bits of 0xcbf29ce484222325
const FNV64_PRIME_LOW = 0x000001b3; // low 32 bits of 0x100000001b3
const FNV32_OFFSET = 0x811c9dc5;
const FNV32_PRIME = 0x01000193;

/** twemproxy `fnv1a_64` (its default): low 32 bits of 64-bit FNV-1a, signed-char bytes. */
export function hashFnv1a_64(key: Uint8Array): number {
  let hash = FNV64_OFFSET_LOW;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash ^ signed(key[i] as number), FNV64_PRIME_LOW);
  }
  return hash >>> 0;
}

/** twemproxy `fnv1_64`: low 32 bits of 64-bit FNV-1, signed-char bytes. */
export function hashFnv1_64(key: Uint8Array): number {
  let hash = FNV64_OFFSET_LOW;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash, FNV64_PRIME_LOW) ^ signed(key[i] as number);
  }
  return hash >>> 0;
}

/** twemproxy `fnv1a_32`: 32-bit FNV-1a, signed-char bytes. */
export function hashFnv1a_32(key: Uint8Array): number {
  let hash = FNV32_OFFSET;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash ^ signed(key[i] as number), FNV32_PRIME);
  }
  return hash >>> 0;
}

/** twemproxy `fnv1_32`: 32-bit FNV-1, signed-char bytes. */
export function hashFnv1_32(key: Uint8Array): number {
  let hash = FNV32_OFFSET;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash, FNV32_PRIME) ^ signed(key[i] as number);
  }
  return hash >>> 0;
}

// CRC-32 (IEEE 802.3) table, reflected polynomial 0xedb88320.
const CRC32_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let crc = n;
  for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  return crc;
});

// CRC-16/XMODEM (CCITT polynomial 0x1021, not reflected) table.
const CRC16_TABLE = Uint16Array.from({ length: 256 }, (_, n) => {
  let crc = n << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

function crc32Register(key: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < key.length; i++) {
    crc = (crc >>> 8) ^ (CRC32_TABLE[(crc ^ (key[i] as number)) & 0xff] as number);
  }
  return crc;
}

/**
 * twemproxy `crc32`: libmemcached's variant, bits 16..30 of the standard CRC-32, so the result
 * is below 2^15 (twemproxy: "this implementation does not return CRC-32 as per spec").
 */
export function hashCrc32(key: Uint8Array): number {
  return (~crc32Register(key) >>> 16) & 0x7fff;
}

/** twemproxy `crc32a`: the standard CRC-32 (IEEE 802.3; "123456789" -> 0xcbf43926). */
export function hashCrc32a(key: Uint8Array): number {
  return ~crc32Register(key) >>> 0;
}

/**
 * twemproxy 0.5 `crc16`: CRC-16/XMODEM kept in a 32-bit register that is never masked, so the low
 * 16 bits are the CRC ("123456789" -> 0x31c3) and the high 16 bits hold earlier register values
 * shifted up. twemproxy after 0.5.0 replaced it with a 16-bit CRC-16/ARC (different results).
 */
export function hashCrc16(key: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < key.length; i++) {
    crc = (crc << 8) ^ (CRC16_TABLE[((crc >>> 8) ^ (key[i] as number)) & 0xff] as number);
  }
  return crc >>> 0;
}

/** twemproxy `one_at_a_time`: Bob Jenkins' one-at-a-time hash, signed-char bytes. */
export function hashOneAtATime(key: Uint8Array): number {
  let value = 0;
  for (let i = 0; i < key.length; i++) {
    value = (value + signed(key[i] as number)) | 0;
    value = (value + (value << 10)) | 0;
    value ^= value >>> 6;
  }
  value = (value + (value << 3)) | 0;
  value ^= value >>> 11;
  value = (value + (value << 15)) | 0;
  return value >>> 0;
}

/**
 * twemproxy `hsieh`: Paul Hsieh's SuperFastHash, but with the state starting at 0 where the
 * original starts at the key length, and a signed-char third byte in a 3-byte tail. An empty key
 * hashes to 0. (libmemcached builds hsieh only when configured to; treat this one as twemproxy's.)
 */
export function hashHsieh(key: Uint8Array): number {
  const length = key.length;
  if (length === 0) return 0;
  let hash = 0;
  let at = 0;
  for (let blocks = length >>> 2; blocks > 0; blocks--) {
    hash = (hash + halfAt(key, at)) | 0;
    const tmp = (halfAt(key, at + 2) << 11) ^ hash;
    hash = (hash << 16) ^ tmp;
    at += 4;
    hash = (hash + (hash >>> 11)) | 0;
  }
  switch (length & 3) {
    case 3:
      hash = (hash + halfAt(key, at)) | 0;
      hash ^= hash << 16;
      hash ^= signed(key[at + 2] as number) << 18;
      hash = (hash + (hash >>> 11)) | 0;
      break;
    case 2:
      hash = (hash + halfAt(key, at)) | 0;
      hash ^= hash << 11;
      hash = (hash + (hash >>> 17)) | 0;
      break;
    case 1:
      hash = (hash + (key[at] as number)) | 0;
      hash ^= hash << 10;
      hash = (hash + (hash >>> 1)) | 0;
      break;
  }
  hash ^= hash << 3;
  hash = (hash + (hash >>> 5)) | 0;
  hash ^= hash << 4;
  hash = (hash + (hash >>> 17)) | 0;
  hash ^= hash << 25;
  hash = (hash + (hash >>> 6)) | 0;
  return hash >>> 0;
}

const MURMUR_M = 0x5bd1e995;

/**
 * twemproxy `murmur`: MurmurHash2 (Austin Appleby) with seed `0xdeadbeef * length`, reading
 * little-endian words (twemproxy reads native words; Debian's nutcracker runs little-endian).
 */
export function hashMurmur(key: Uint8Array): number {
  let length = key.length;
  let hash = Math.imul(0xdeadbeef, length) ^ length;
  let at = 0;
  while (length >= 4) {
    let k = Math.imul(wordAt(key, at), MURMUR_M);
    k ^= k >>> 24;
    k = Math.imul(k, MURMUR_M);
    hash = Math.imul(hash, MURMUR_M) ^ k;
    at += 4;
    length -= 4;
  }
  // The 1..3 tail bytes (the C original's switch falls through from case 3 to case 1).
  if (length === 3) hash ^= (key[at + 2] as number) << 16;
  if (length >= 2) hash ^= (key[at + 1] as number) << 8;
  if (length >= 1) hash = Math.imul(hash ^ (key[at] as number), MURMUR_M);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, MURMUR_M);
  hash ^= hash >>> 15;
  return hash >>> 0;
}

/**
 * Bob Jenkins' lookup3 `hashlittle(key, length, initval)` (2006), as a little-endian machine
 * computes it. twemproxy's `jenkins` is this with initval 13.
 */
export function lookup3(key: Uint8Array, initval: number): number {
  let length = key.length;
  let a = (0xdeadbeef + length + initval) | 0;
  let b = a;
  let c = a;
  let at = 0;
  while (length > 12) {
    a = (a + wordAt(key, at)) | 0;
    b = (b + wordAt(key, at + 4)) | 0;
    c = (c + wordAt(key, at + 8)) | 0;
    // mix(a, b, c)
    a = (a - c) | 0;
    a ^= rotl(c, 4);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= rotl(a, 6);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= rotl(b, 8);
    b = (b + a) | 0;
    a = (a - c) | 0;
    a ^= rotl(c, 16);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= rotl(a, 19);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= rotl(b, 4);
    b = (b + a) | 0;
    length -= 12;
    at += 12;
  }
  if (length === 0) return c >>> 0; // zero-length input (or tail) needs no final mixing
  // The last 1..12 bytes, zero-padded, go into a, b, c as little-endian words.
  for (let i = 0; i < length; i++) {
    const byte = (key[at + i] as number) << ((i & 3) << 3);
    if (i < 4) a = (a + byte) | 0;
    else if (i < 8) b = (b + byte) | 0;
    else c = (c + byte) | 0;
  }
  // final(a, b, c)
  c ^= b;
  c = (c - rotl(b, 14)) | 0;
  a ^= c;
  a = (a - rotl(c, 11)) | 0;
  b ^= a;
  b = (b - rotl(a, 25)) | 0;
  c ^= b;
  c = (c - rotl(b, 16)) | 0;
  a ^= c;
  a = (a - rotl(c, 4)) | 0;
  b ^= a;
  b = (b - rotl(a, 14)) | 0;
  c ^= b;
  c = (c - rotl(b, 24)) | 0;
  return c >>> 0;
}

/** twemproxy `jenkins`: lookup3 hashlittle with initval 13 (JENKINS_INITVAL). */
export function hashJenkins(key: Uint8Array): number {
  return lookup3(key, 13);
}

/** Every twemproxy key hash, by the name its `hash:` setting uses. */
export const HashFunctions = {
  one_at_a_time: hashOneAtATime,
  md5: hashMd5,
  crc16: hashCrc16,
  crc32: hashCrc32,
  crc32a: hashCrc32a,
  fnv1_64: hashFnv1_64,
  fnv1a_64: hashFnv1a_64,
  fnv1_32: hashFnv1_32,
  fnv1a_32: hashFnv1a_32,
  hsieh: hashHsieh,
  murmur: hashMurmur,
  jenkins: hashJenkins,
} as const satisfies Record<string, HashFunction>;

/** The name of a twemproxy key hash, as in its `hash:` setting. */
export type HashName = keyof typeof HashFunctions;

/** twemproxy's default `hash:`. */
export const DEFAULT_HASH: HashName = "fnv1a_64";

/** Whether `name` names a hash in HashFunctions (for config validation). */
export function isHashName(name: string): name is HashName {
  return Object.hasOwn(HashFunctions, name);
}

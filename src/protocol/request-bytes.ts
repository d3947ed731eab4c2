// Byte ranges of a request line as memcached reads them: token comparison, util.c's safe_strto*
// numbers and base64.c's decoder. Every function takes a buffer and a [start, end) range and
// allocates only what it returns.

export const LF = 0x0a;
export const CR = 0x0d;
export const SPACE = 0x20;
const DASH = 0x2d;

const TWO_64 = 1n << 64n;
const TWO_63 = 1n << 63n;

/** Latin-1 bytes of `text` (every char below 256). */
export const bytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** Whether buf[start, end) is exactly `word`. */
export function matches(buf: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[start + i] !== word[i]) return false;
  return true;
}

/** Whether buf[start, end) begins with `word`. */
export function startsWith(buf: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  return end - start >= word.length && matches(buf, start, start + word.length, word);
}

/** buf[start, end) as a string, a char per byte. */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) text += String.fromCharCode(buf[i] as number);
  return text;
}

// C isspace() in the "C" locale.
function isCSpace(byte: number): boolean {
  return byte === SPACE || (byte >= 0x09 && byte <= 0x0d);
}

// ---- numbers: util.c safe_strtoull / safe_strtoul / safe_strtol on a 64-bit long ----

// Digits only and at most 15 of them: the value fits a double exactly.
function plainDigits(buf: Uint8Array, start: number, end: number): number {
  if (start >= end || end - start > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (buf[i] as number) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

let scannedNegative = false; // the sign of the last scanMagnitude()

// strtoull/strtoll's grammar (C whitespace, a sign, base-10 digits) and util.c's rule that the number
// ends the token or is followed by whitespace. The magnitude, or -1n when there are no digits, it
// exceeds 2^64 - 1 (ERANGE), or other bytes follow.
function scanMagnitude(buf: Uint8Array, start: number, end: number): bigint {
  let i = start;
  while (i < end && isCSpace(buf[i] as number)) i++;
  scannedNegative = false;
  if (i < end && (buf[i] === 0x2b || buf[i] === DASH)) {
    scannedNegative = buf[i] === DASH;
    i++;
  }
  const first = i;
  while (i < end && (buf[i] as number) >= 0x30 && (buf[i] as number) <= 0x39) i++;
  if (i === first) return -1n;
  if (i < end && !isCSpace(buf[i] as number)) return -1n;
  const magnitude = BigInt(latin1(buf, first, i));
  return magnitude < TWO_64 ? magnitude : -1n;
}

/** safe_strtoull: an unsigned 64-bit number, or undefined. */
export function parseU64(buf: Uint8Array, start: number, end: number): bigint | undefined {
  const plain = plainDigits(buf, start, end);
  if (plain >= 0) return BigInt(plain);
  const magnitude = scanMagnitude(buf, start, end);
  if (magnitude < 0n) return undefined;
  const value = scannedNegative ? (TWO_64 - magnitude) % TWO_64 : magnitude; // strtoull negates
  // "only check for negative signs in the uncommon case when the unsigned number is so big that
  // it's negative as a signed number"
  if (value >= TWO_63 && buf.subarray(start, end).includes(DASH)) return undefined;
  return value;
}

/** safe_strtoul into a uint32_t: the low 32 bits, or -1. */
export function parseU32(buf: Uint8Array, start: number, end: number): number {
  const plain = plainDigits(buf, start, end);
  if (plain >= 0) return plain >>> 0;
  const value = parseU64(buf, start, end);
  return value === undefined ? -1 : Number(BigInt.asUintN(32, value));
}

/** safe_strtol into an int32_t: the low 32 bits as signed, or NaN. */
export function parseI32(buf: Uint8Array, start: number, end: number): number {
  const negative = buf[start] === DASH;
  const plain = plainDigits(buf, negative ? start + 1 : start, end);
  if (plain >= 0) return (negative ? -plain : plain) | 0;
  const magnitude = scanMagnitude(buf, start, end);
  if (magnitude < 0n) return Number.NaN;
  if (scannedNegative ? magnitude > TWO_63 : magnitude >= TWO_63) return Number.NaN; // ERANGE
  return Number(BigInt.asIntN(32, scannedNegative ? -magnitude : magnitude));
}

// ---- memcached base64.c base64_decode ----

const BASE64_INVALID = 0x80;
const BASE64 = (() => {
  const table = new Uint8Array(256).fill(BASE64_INVALID);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < 64; i++) table[alphabet.charCodeAt(i)] = i;
  table[0x3d] = 0; // '='
  return table;
})();

/**
 * Bytes outside the alphabet are skipped; decoding stops after the first block with padding ("=" or
 * "==" drop one or two bytes, more is an error). null when nothing decodes (memcached: length 0).
 */
export function decodeBase64(buf: Uint8Array, start: number, end: number): Uint8Array | null {
  let count = 0;
  for (let i = start; i < end; i++) if (BASE64[buf[i] as number] !== BASE64_INVALID) count++;
  if (count === 0 || count % 4 !== 0) return null;
  const out = new Uint8Array((count / 4) * 3);
  let length = 0;
  let block = 0;
  let filled = 0;
  let pad = 0;
  for (let i = start; i < end; i++) {
    const value = BASE64[buf[i] as number] as number;
    if (value === BASE64_INVALID) continue;
    if (buf[i] === 0x3d) pad++;
    block = (block << 6) | value;
    if (++filled < 4) continue;
    out[length++] = block >>> 16;
    out[length++] = (block >>> 8) & 0xff;
    out[length++] = block & 0xff;
    block = 0;
    filled = 0;
    if (pad !== 0) {
      if (pad > 2) return null;
      length -= pad;
      break;
    }
  }
  return length === 0 ? null : out.subarray(0, length);
}

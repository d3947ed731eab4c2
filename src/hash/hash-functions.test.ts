import { describe, expect, test } from "bun:test";
import {
  DEFAULT_HASH,
  HashFunctions,
  hashCrc16,
  hashCrc32,
  hashCrc32a,
  hashFnv1_32,
  hashFnv1_64,
  hashFnv1a_32,
  hashFnv1a_64,
  hashJenkins,
  hashMd5,
  hashOneAtATime,
  isHashName,
  lookup3,
  md5Words,
} from "./hash-functions.ts";

const ascii = (text: string) => new TextEncoder().encode(text);

// Deterministic byte strings of every length 0..300, all byte values.
function randomKeys(count: number): Uint8Array[] {
  let state = 0x2545f491;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  return Array.from({ length: count }, (_, i) => Uint8Array.from({ length: i % 301 }, () => next() & 0xff));
}

describe("md5", () => {
  // RFC 1321, appendix A.5; twemproxy's md5 key hash is the first four digest bytes, little-endian.
  test("RFC 1321 test suite", () => {
    const words = new Uint32Array(4);
    md5Words(ascii(""), words);
    expect([...words]).toEqual([0xd98c1dd4, 0x04b2008f, 0x980980e9, 0x7e42f8ec]); // d41d8cd98f00b204e9800998ecf8427e
    expect(hashMd5(ascii(""))).toBe(0xd98c1dd4);
    expect(hashMd5(ascii("abc"))).toBe(0x98500190); // 900150983cd24fb0...
    expect(hashMd5(ascii("message digest"))).toBe(0x7d696bf9); // f96b697d7cb7938d...
    md5Words(
      ascii("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
      words,
    );
    expect([...words]).toEqual([0xa2f4ed57, 0x55c9e32b, 0x2eda49ac, 0x7ab60721]); // 57edf4a22be3c955ac49da2e2107b67a
  });
});

describe("FNV", () => {
  // Landon Curt Noll's FNV test vectors; the 64-bit hashes' low 32 bits.
  test("published 32-bit vectors", () => {
    expect(hashFnv1_32(ascii(""))).toBe(0x811c9dc5);
    expect(hashFnv1_32(ascii("a"))).toBe(0x050c5d7e);
    expect(hashFnv1_32(ascii("foobar"))).toBe(0x31f0b262);
    expect(hashFnv1a_32(ascii(""))).toBe(0x811c9dc5);
    expect(hashFnv1a_32(ascii("a"))).toBe(0xe40c292c);
    expect(hashFnv1a_32(ascii("foobar"))).toBe(0xbf9cf968);
  });

  test("published 64-bit vectors, truncated to uint32_t as twemproxy does", () => {
    expect(hashFnv1_64(ascii(""))).toBe(0x84222325); // 0xcbf29ce484222325
    expect(hashFnv1_64(ascii("a"))).toBe(0x8601b7be); // 0xaf63bd4c8601b7be
    expect(hashFnv1_64(ascii("foobar"))).toBe(0xa4dda9c2); // 0x340d8765a4dda9c2
    expect(hashFnv1a_64(ascii(""))).toBe(0x84222325);
    expect(hashFnv1a_64(ascii("a"))).toBe(0x8601ec8c); // 0xaf63dc4c8601ec8c
    expect(hashFnv1a_64(ascii("foobar"))).toBe(0xf73967e8); // 0x85944171f73967e8
  });

  test("the 64-bit variants equal the low 32 bits of full 64-bit FNV over signed-char bytes", () => {
    // A BigInt model of twemproxy's uint64_t code: `hash ^= (uint64_t)key[i]` sign-extends a char
    // to 64 bits. Only the low 32 bits survive `(uint32_t)hash`, and 32-bit arithmetic gets them.
    const offset = 0xcbf29ce484222325n;
    const prime = 0x100000001b3n;
    const widen = (byte: number) => BigInt.asUintN(64, BigInt((byte << 24) >> 24));
    for (const key of randomKeys(400)) {
      let fnv1 = offset;
      let fnv1a = offset;
      for (const byte of key) {
        fnv1 = BigInt.asUintN(64, fnv1 * prime) ^ widen(byte);
        fnv1a = BigInt.asUintN(64, (fnv1a ^ widen(byte)) * prime);
      }
      expect(hashFnv1_64(key)).toBe(Number(BigInt.asUintN(32, fnv1)));
      expect(hashFnv1a_64(key)).toBe(Number(BigInt.asUintN(32, fnv1a)));
    }
  });

  test("bytes >= 0x80 are widened as signed chars (x86-64 twemproxy)", () => {
    const key = Uint8Array.of(0xe9);
    expect(hashFnv1a_32(key)).toBe(Math.imul(0x811c9dc5 ^ 0xffffffe9, 0x01000193) >>> 0);
    expect(hashFnv1a_32(key)).not.toBe(Math.imul(0x811c9dc5 ^ 0xe9, 0x01000193) >>> 0);
    expect(hashFnv1_32(key)).toBe((Math.imul(0x811c9dc5, 0x01000193) ^ 0xffffffe9) >>> 0);
  });
});

describe("CRC", () => {
  test("crc32a is the standard CRC-32", () => {
    expect(hashCrc32a(ascii("123456789"))).toBe(0xcbf43926); // the CRC-32 check value
    expect(hashCrc32a(ascii("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
    expect(hashCrc32a(ascii(""))).toBe(0);
  });

  test("crc32 is libmemcached's: bits 16..30 of CRC-32", () => {
    expect(hashCrc32(ascii("123456789"))).toBe(0x4bf4); // (0xcbf43926 >> 16) & 0x7fff
    for (const key of randomKeys(200)) {
      expect(hashCrc32(key)).toBe((hashCrc32a(key) >>> 16) & 0x7fff);
    }
  });

  test("crc16 keeps CRC-16/XMODEM in its low 16 bits and the unmasked register above", () => {
    expect(hashCrc16(ascii("A"))).toBe(0x58e5); // one byte: just the table entry
    const check = hashCrc16(ascii("123456789"));
    expect(check & 0xffff).toBe(0x31c3); // the CRC-16/XMODEM check value
    expect(check).toBeGreaterThan(0xffff);
    // After two bytes the register is ("A"'s CRC << 8) ^ a table entry: 0x58 is left above bit 16.
    const ab = hashCrc16(ascii("AB"));
    expect(ab >>> 16).toBe(0x58);
    expect(ab & 0xffff).toBe(0x567b); // CRC-16/XMODEM("AB")
    // The low 16 bits against a bitwise (table-free) CRC-16/XMODEM.
    const xmodem = (key: Uint8Array) => {
      let crc = 0;
      for (const byte of key) {
        crc ^= byte << 8;
        for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1) & 0xffff;
      }
      return crc;
    };
    for (const key of randomKeys(300)) expect(hashCrc16(key) & 0xffff).toBe(xmodem(key));
  });
});

describe("Jenkins", () => {
  // lookup3.c (Bob Jenkins, 2006), driver5's expected values for hashlittle.
  test("lookup3 hashlittle vectors", () => {
    expect(lookup3(ascii(""), 0)).toBe(0xdeadbeef);
    expect(lookup3(ascii(""), 0xdeadbeef)).toBe(0xbd5b7dde);
    expect(lookup3(ascii("Four score and seven years ago"), 0)).toBe(0x17770551);
    expect(lookup3(ascii("Four score and seven years ago"), 1)).toBe(0xcd628161);
  });

  test("twemproxy's jenkins is hashlittle with initval 13", () => {
    expect(hashJenkins(ascii(""))).toBe((0xdeadbeef + 13) >>> 0);
    expect(hashJenkins(ascii("foobar"))).toBe(lookup3(ascii("foobar"), 13));
  });

  // en.wikipedia.org/wiki/Jenkins_hash_function, one_at_a_time examples.
  test("one-at-a-time vectors", () => {
    expect(hashOneAtATime(ascii("a"))).toBe(0xca2e9442);
    expect(hashOneAtATime(ascii("The quick brown fox jumps over the lazy dog"))).toBe(0x519e91f5);
  });
});

describe("every hash", () => {
  test("returns an unsigned 32-bit integer for any key, empty included", () => {
    for (const [name, hash] of Object.entries(HashFunctions)) {
      for (const key of randomKeys(320)) {
        const value = hash(key);
        if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
          throw new Error(`${name} returned ${value} for a ${key.length}-byte key`);
        }
      }
    }
  });

  test("depends only on the key bytes, not on the view's offset in its buffer", () => {
    const key = ascii("user:profile:12345-\u00e9");
    const shifted = new Uint8Array(key.length + 3);
    shifted.set(key, 3);
    for (const [name, hash] of Object.entries(HashFunctions)) {
      expect([name, hash(shifted.subarray(3))]).toEqual([name, hash(key)]);
    }
  });

  test("names", () => {
    expect(Object.keys(HashFunctions).sort()).toEqual(
      [
        "crc16",
        "crc32",
        "crc32a",
        "fnv1_32",
        "fnv1_64",
        "fnv1a_32",
        "fnv1a_64",
        "hsieh",
        "jenkins",
        "md5",
        "murmur",
        "one_at_a_time",
      ].sort(),
    );
    expect(DEFAULT_HASH).toBe("fnv1a_64");
    expect(isHashName("md5")).toBe(true);
    expect(isHashName("sha1")).toBe(false);
    expect(isHashName("toString")).toBe(false);
  });
});

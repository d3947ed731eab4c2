// The hand-written protobuf codec against encodings worked out by hand from the wire format spec
// (protobuf.dev/programming-guides/encoding), round trips, unknown fields of every wire type, and
// malformed input.
import { describe, expect, test } from "bun:test";
import * as cache from "./cache-messages.ts";
import {
  decodeGroupCacheGetRequest,
  decodeGroupCacheGetResponse,
  encodeGroupCacheGetRequest,
  encodeGroupCacheGetResponse,
} from "./groupcache-messages.ts";
import { MalformedMessageError, ProtoReader, ProtoWriter } from "./protobuf.ts";

const utf8 = new TextEncoder();

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex").replace(/(..)/g, "$1 ").trim();
}

function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/\s+/g, ""), "hex"));
}

function ascii(text: string): string {
  return hex(utf8.encode(text));
}

describe("known encodings", () => {
  // Each expected string is tag, length or value, field by field: tag = field << 3 | wire type.
  test("strings: tag 0x0a is field 1 length-delimited, 0x12 field 2", () => {
    expect(hex(cache.encodeGetRequest({ group: "users", key: "42" }))).toBe(
      `0a 05 ${ascii("users")} 12 02 ${ascii("42")}`,
    );
    expect(hex(cache.encodeGetRequest({ group: "é", key: new Uint8Array([0xff, 0x01]) }))).toBe(
      "0a 02 c3 a9 12 02 ff 01",
    );
  });

  test("a varint of 150 is 96 01; a negative int32 is sign-extended to 10 bytes", () => {
    const set = { group: "g", key: "k", value: new Uint8Array([1, 2, 3]) };
    expect(hex(cache.encodeSetRequest({ ...set, ttlSeconds: 150 }))).toBe(
      "0a 01 67 12 01 6b 1a 03 01 02 03 20 96 01",
    );
    expect(hex(cache.encodeSetRequest({ ...set, ttlSeconds: -1 }))).toBe(
      "0a 01 67 12 01 6b 1a 03 01 02 03 20 ff ff ff ff ff ff ff ff ff 01",
    );
    expect(hex(cache.encodeSetRequest({ ...set, ttlSeconds: -2_147_483_648 }))).toBe(
      "0a 01 67 12 01 6b 1a 03 01 02 03 20 80 80 80 80 f8 ff ff ff ff 01",
    );
    expect(hex(cache.encodeTouchRequest({ group: "g", key: "k", ttlSeconds: 2_147_483_647 }))).toBe(
      "0a 01 67 12 01 6b 18 ff ff ff ff 07",
    );
  });

  test("lengths of 128 and more take two varint bytes; a string's length is its UTF-8 bytes", () => {
    expect(hex(cache.encodeGetRequest({ group: "g", key: "k".repeat(200) }))).toBe(
      `0a 01 67 12 c8 01 ${ascii("k".repeat(200))}`,
    );
    // 50 UTF-16 units could need 150 bytes (a 2-byte length); ASCII needs 50 (a 1-byte length).
    expect(hex(cache.encodeStatsRequest({ group: "x".repeat(50) }))).toBe(`0a 32 ${ascii("x".repeat(50))}`);
    expect(hex(cache.encodeStatsRequest({ group: "€".repeat(50) }))).toBe(
      `0a 96 01 ${"e2 82 ac ".repeat(50).trim()}`,
    );
  });

  test("proto3 defaults are not written; bool true is 01", () => {
    expect(hex(cache.encodeGetResponse({ found: false, value: new Uint8Array(0) }))).toBe("");
    expect(hex(cache.encodeGetResponse({ found: true, value: utf8.encode("hi") }))).toBe("08 01 12 02 68 69");
    expect(hex(cache.encodeDeleteResponse({ deleted: true }))).toBe("08 01");
    expect(hex(cache.encodeTouchResponse({ touched: false }))).toBe("");
    expect(hex(cache.encodeSetResponse({}))).toBe("");
  });

  test("repeated fields and embedded messages; an empty element is still written", () => {
    expect(hex(cache.encodeGetMultiRequest({ group: "g", keys: ["a", "", "bc"] }))).toBe(
      "0a 01 67 12 01 61 12 00 12 02 62 63",
    );
    const items = [
      { found: true, value: utf8.encode("a") },
      { found: false, value: new Uint8Array(0) },
    ];
    expect(hex(cache.encodeGetMultiResponse({ items }))).toBe("0a 05 08 01 12 01 61 0a 00");
  });

  test("a map is repeated entries { key = 1; value = 2 }", () => {
    const stats = new Map([
      ["a", "1"],
      ["bb", ""],
    ]);
    expect(hex(cache.encodeStatsResponse({ stats }))).toBe("0a 06 0a 01 61 12 01 31 0a 04 0a 02 62 62");
  });

  test("groupcache: required request fields always written; optional response fields when set", () => {
    expect(hex(encodeGroupCacheGetRequest({ group: "", key: "" }))).toBe("0a 00 12 00");
    expect(hex(encodeGroupCacheGetRequest({ group: "g", key: "k" }))).toBe("0a 01 67 12 01 6b");
    // 1.5 is 0x3ff8000000000000, written little-endian after tag 0x11 (field 2, 64-bit).
    expect(hex(encodeGroupCacheGetResponse({ value: new Uint8Array(0), minuteQps: 1.5 }))).toBe(
      "0a 00 11 00 00 00 00 00 00 f8 3f",
    );
    expect(hex(encodeGroupCacheGetResponse({}))).toBe("");
  });
});

describe("decoding", () => {
  test("the known encodings decode to their messages", () => {
    expect(
      cache.decodeSetRequest(fromHex("0a 01 67 12 01 6b 1a 03 01 02 03 20 ff ff ff ff ff ff ff ff ff 01")),
    ).toEqual({
      group: "g",
      key: utf8.encode("k"),
      value: new Uint8Array([1, 2, 3]),
      ttlSeconds: -1,
    });
    expect(cache.decodeGetMultiResponse(fromHex("0a 05 08 01 12 01 61 0a 00"))).toEqual({
      items: [
        { found: true, value: utf8.encode("a") },
        { found: false, value: new Uint8Array(0) },
      ],
    });
    expect(decodeGroupCacheGetResponse(fromHex("0a 00 11 00 00 00 00 00 00 f8 3f"))).toEqual({
      value: new Uint8Array(0),
      minuteQps: 1.5,
    });
    expect(decodeGroupCacheGetResponse(new Uint8Array(0))).toEqual({});
    const stats = cache.decodeStatsResponse(fromHex("0a 06 0a 01 61 12 01 31 0a 04 0a 02 62 62 0a 00"));
    expect([...stats.stats]).toEqual([
      ["a", "1"],
      ["bb", ""],
      ["", ""],
    ]);
  });

  test("an empty message is every field at its default", () => {
    const none = new Uint8Array(0);
    expect(cache.decodeSetRequest(none)).toEqual({ group: "", key: none, value: none, ttlSeconds: 0 });
    expect(cache.decodeGetMultiRequest(none)).toEqual({ group: "", keys: [] });
    expect(cache.decodeDeleteResponse(none)).toEqual({ deleted: false });
  });

  test("unknown fields of every wire type are skipped, groups nested", () => {
    const unknown = [
      "18 96 01", // field 3 varint
      "21 01 02 03 04 05 06 07 08", // field 4 fixed64
      "2d 01 02 03 04", // field 5 fixed32
      "32 02 aa bb", // field 6 length-delimited
      "3b 08 01 43 48 05 44 3c", // field 7 group holding a varint and group 8 holding a varint
      "f8 ff ff ff 0f 01", // field 536870911 (the largest) varint
      "10 05", // field 2 (key) as a varint: a wire type mismatch is an unknown field
    ].join(" ");
    const decoded = cache.decodeGetRequest(fromHex(`0a 01 67 ${unknown} 12 01 6b ${unknown}`));
    expect(decoded).toEqual({ group: "g", key: utf8.encode("k") });
    expect(decodeGroupCacheGetRequest(fromHex(`${unknown} 0a 01 67 12 01 6b`))).toEqual({
      group: "g",
      key: utf8.encode("k"),
    });
  });

  test("a repeated scalar field keeps its last value; booleans are any non-zero varint", () => {
    expect(cache.decodeGetRequest(fromHex("0a 01 61 12 01 6b 0a 01 62")).group).toBe("b");
    expect(cache.decodeGetResponse(fromHex("08 02")).found).toBe(true);
    expect(cache.decodeGetResponse(fromHex("08 80 80 80 80 80 80 80 80 80 01")).found).toBe(true);
    expect(cache.decodeGetResponse(fromHex("08 80 00")).found).toBe(false);
  });

  test("an int32 keeps the low 32 bits of a longer varint", () => {
    // 2^32 + 5 as a varint: the int32 is 5.
    expect(cache.decodeTouchRequest(fromHex("18 85 80 80 80 10")).ttlSeconds).toBe(5);
    expect(cache.decodeTouchRequest(fromHex("18 ff ff ff ff 0f")).ttlSeconds).toBe(-1);
  });

  test("decoded bytes are copies, not views of the input", () => {
    const input = fromHex("0a 01 67 12 01 6b");
    const decoded = cache.decodeGetRequest(input);
    input.fill(0);
    expect(decoded.key).toEqual(utf8.encode("k"));
  });

  test("malformed input throws MalformedMessageError naming the message", () => {
    const cases: [string, RegExp][] = [
      ["0a 05 61 62", /length 5 past the end/],
      ["0a", /truncated varint/],
      ["08 ff", /truncated varint/],
      ["08 ff ff ff ff ff ff ff ff ff ff 01", /longer than 10 bytes/],
      ["00 01", /field number 0/],
      ["0e", /wire type 6/],
      ["0f", /wire type 7/],
      ["21 01 02", /truncated field/],
      ["3c", /end of group 7 without a start/],
      ["3b 08 01", /group 7 has no end/],
      ["3b 44", /group 7 ended by 8/],
      [`${"3b ".repeat(100)}`, /nested too deeply/],
    ];
    for (const [input, message] of cases) {
      const decode = () => cache.decodeGetRequest(fromHex(input));
      expect(decode).toThrow(MalformedMessageError);
      expect(decode).toThrow(message);
      expect(decode).toThrow(/malformed gravity\.v1\.GetRequest/);
    }
    expect(() => cache.decodeGetMultiResponse(fromHex("0a 02 12 05"))).toThrow(
      /malformed gravity\.v1\.GetResponse: length 5/,
    );
    expect(() => decodeGroupCacheGetResponse(fromHex("11 00 00"))).toThrow(/truncated double/);
  });
});

describe("round trips", () => {
  // A small deterministic generator (xorshift32), so a failure reproduces.
  let seed = 0x9e3779b9;
  function random(limit: number): number {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % limit;
  }
  function randomBytes(limit: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(random(limit));
    for (let i = 0; i < out.length; i++) out[i] = random(256);
    return out;
  }
  function randomText(limit: number): string {
    const alphabet = ["a", "Z", "9", "-", "é", "€", "😀", "_"];
    let text = "";
    for (let i = random(limit); i > 0; i--) text += alphabet[random(alphabet.length)];
    return text;
  }
  const ttls = [0, 1, -1, 127, 128, 16_383, 16_384, 2_592_000, 2_147_483_647, -2_147_483_648];

  test("every message survives encode then decode", () => {
    for (let i = 0; i < 300; i++) {
      const set = {
        group: randomText(40),
        key: randomBytes(300),
        value: randomBytes(5000),
        ttlSeconds: ttls[random(ttls.length)] as number,
      };
      expect(cache.decodeSetRequest(cache.encodeSetRequest(set))).toEqual(set);
      const multi = { group: randomText(8), keys: Array.from({ length: random(20) }, () => randomBytes(40)) };
      expect(cache.decodeGetMultiRequest(cache.encodeGetMultiRequest(multi))).toEqual(multi);
      const items = multi.keys.map((key) => ({ found: key.length > 0, value: key }));
      expect(cache.decodeGetMultiResponse(cache.encodeGetMultiResponse({ items }))).toEqual({ items });
      const stats = new Map(
        Array.from({ length: random(10) }, (_, n) => [`${randomText(10)}${n}`, randomText(20)]),
      );
      expect(cache.decodeStatsResponse(cache.encodeStatsResponse({ stats })).stats).toEqual(stats);
      const touch = {
        group: randomText(5),
        key: randomBytes(10),
        ttlSeconds: ttls[random(ttls.length)] as number,
      };
      expect(cache.decodeTouchRequest(cache.encodeTouchRequest(touch))).toEqual(touch);
      const response = { value: randomBytes(100), minuteQps: random(1_000_000) / 7 };
      expect(decodeGroupCacheGetResponse(encodeGroupCacheGetResponse(response))).toEqual(response);
    }
  });

  test("doubles round trip exactly, special values included", () => {
    for (const minuteQps of [0, -0, 1e-300, 1.7976931348623157e308, Number.POSITIVE_INFINITY, -2.5]) {
      expect(decodeGroupCacheGetResponse(encodeGroupCacheGetResponse({ minuteQps })).minuteQps).toBe(
        minuteQps,
      );
    }
    const nan = decodeGroupCacheGetResponse(encodeGroupCacheGetResponse({ minuteQps: Number.NaN }));
    expect(nan.minuteQps).toBeNaN();
  });

  test("the writer grows past its first buffer and is reusable after finish", () => {
    const writer = new ProtoWriter();
    const big = randomBytes(1);
    const value = new Uint8Array(100_000).fill(7);
    writer.bytes(1, big);
    writer.bytes(2, value);
    const first = writer.finish().slice();
    const reader = new ProtoReader(first, "test");
    expect(reader.next()).toBe(true);
    expect(reader.bytes()).toEqual(big);
    expect(reader.next()).toBe(true);
    expect(reader.bytes()).toEqual(value);
    expect(reader.next()).toBe(false);
    writer.reset().int32(1, 1);
    expect(hex(writer.finish())).toBe("08 01");
  });
});

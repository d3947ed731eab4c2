// Request encoding: exact bytes for each command, and the checks that refuse a request before
// anything is sent.
import { describe, expect, test } from "bun:test";
import { InvalidRequestError } from "../errors.ts";
import {
  encodeArithmetic,
  encodeCas,
  encodeDelete,
  encodeFlushAll,
  encodeGat,
  encodeGet,
  encodeKey,
  encodeMetaArithmetic,
  encodeMetaDebug,
  encodeMetaDelete,
  encodeMetaGet,
  encodeMetaNoop,
  encodeMetaSet,
  encodeStats,
  encodeStore,
  encodeTouch,
  encodeVersion,
  MAX_KEY_BYTES,
} from "./encoder.ts";

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

describe("text commands", () => {
  const cases: [string, () => Uint8Array, string][] = [
    ["get one key", () => encodeGet(["k"]), "get k\r\n"],
    ["get many keys", () => encodeGet(["a", "bb", "a"]), "get a bb a\r\n"],
    ["gets", () => encodeGet(["a", "b"], "gets"), "gets a b\r\n"],
    ["gat", () => encodeGat(100, ["a", "b"]), "gat 100 a b\r\n"],
    ["gats with a negative exptime", () => encodeGat(-1, ["a"], "gats"), "gats -1 a\r\n"],
    ["set with defaults", () => encodeStore("set", "k", "v"), "set k 0 0 1\r\nv\r\n"],
    [
      "set with flags, exptime and noreply",
      () => encodeStore("set", "k", "hello", { flags: 4294967295, exptime: 60, noreply: true }),
      "set k 4294967295 60 5 noreply\r\nhello\r\n",
    ],
    ["add", () => encodeStore("add", "k", "", { exptime: -1 }), "add k 0 -1 0\r\n\r\n"],
    ["replace", () => encodeStore("replace", "k", "x"), "replace k 0 0 1\r\nx\r\n"],
    ["append", () => encodeStore("append", "k", "x"), "append k 0 0 1\r\nx\r\n"],
    ["prepend", () => encodeStore("prepend", "k", "x"), "prepend k 0 0 1\r\nx\r\n"],
    ["cas", () => encodeCas("k", "xy", 12345n, { flags: 3 }), "cas k 3 0 2 12345\r\nxy\r\n"],
    [
      "cas with the largest unique and noreply",
      () => encodeCas("k", "x", 18446744073709551615n, { noreply: true }),
      "cas k 0 0 1 18446744073709551615 noreply\r\nx\r\n",
    ],
    ["delete", () => encodeDelete("k"), "delete k\r\n"],
    ["delete noreply", () => encodeDelete("k", { noreply: true }), "delete k noreply\r\n"],
    ["touch", () => encodeTouch("k", 30), "touch k 30\r\n"],
    ["incr", () => encodeArithmetic("incr", "k", 5), "incr k 5\r\n"],
    [
      "decr with a 64-bit delta and noreply",
      () => encodeArithmetic("decr", "k", 18446744073709551615n, { noreply: true }),
      "decr k 18446744073709551615 noreply\r\n",
    ],
    ["version", () => encodeVersion(), "version\r\n"],
    ["flush_all", () => encodeFlushAll(), "flush_all\r\n"],
    [
      "flush_all with delay",
      () => encodeFlushAll({ delaySeconds: 10, noreply: true }),
      "flush_all 10 noreply\r\n",
    ],
    ["stats", () => encodeStats(), "stats\r\n"],
    ["stats settings", () => encodeStats("settings"), "stats settings\r\n"],
  ];
  for (const [name, encode, bytes] of cases) {
    test(name, () => expect(text(encode())).toBe(bytes));
  }

  test("values are bytes, or strings as UTF-8", () => {
    const binary = Uint8Array.of(0, 13, 10, 255, 128);
    expect([...encodeStore("set", "k", binary)]).toEqual([
      ...Buffer.from("set k 0 0 5\r\n", "latin1"),
      ...binary,
      13,
      10,
    ]);
    expect(Buffer.from(encodeStore("set", "k", "é€")).toString("utf8")).toBe("set k 0 0 5\r\né€\r\n");
  });

  test("keys are bytes, or strings as UTF-8", () => {
    expect(Buffer.from(encodeGet(["ключ"])).toString("utf8")).toBe("get ключ\r\n");
    expect(text(encodeGet([Uint8Array.of(0x80, 0xff, 0x41)]))).toBe("get \x80\xffA\r\n");
    expect([...encodeKey("é")]).toEqual([0xc3, 0xa9]);
  });

  test("a long multi-get grows the buffer and keeps every key", () => {
    const keys = Array.from({ length: 500 }, (_, i) => `key-${i}-${"x".repeat(200)}`);
    expect(text(encodeGet(keys))).toBe(`get ${keys.join(" ")}\r\n`);
    expect(text(encodeGet(["short"]))).toBe("get short\r\n");
  });

  test("a 900 KB value is copied whole", () => {
    const value = Uint8Array.from({ length: 900 * 1024 }, (_, i) => i & 0xff);
    const request = encodeStore("set", "big", value);
    const header = `set big 0 0 ${value.length}\r\n`;
    expect(request.length).toBe(header.length + value.length + 2);
    expect(Buffer.compare(request.subarray(header.length, header.length + value.length), value)).toBe(0);
  });
});

describe("meta commands", () => {
  const cases: [string, () => Uint8Array, string][] = [
    ["mg without flags", () => encodeMetaGet("k"), "mg k\r\n"],
    [
      "mg with flags",
      () => encodeMetaGet("k", ["v", "f", "t", "T30", "O123", "q"]),
      "mg k v f t T30 O123 q\r\n",
    ],
    ["ms", () => encodeMetaSet("k", "hi", ["F5", "T0", "MA"]), "ms k 2 F5 T0 MA\r\nhi\r\n"],
    ["ms empty", () => encodeMetaSet("k", ""), "ms k 0\r\n\r\n"],
    ["md", () => encodeMetaDelete("k", ["q", "I"]), "md k q I\r\n"],
    ["ma", () => encodeMetaArithmetic("k", ["MD", "D5", "v"]), "ma k MD D5 v\r\n"],
    ["me", () => encodeMetaDebug("k"), "me k\r\n"],
    ["mn", () => encodeMetaNoop(), "mn\r\n"],
  ];
  for (const [name, encode, bytes] of cases) {
    test(name, () => expect(text(encode())).toBe(bytes));
  }
});

describe("bad input is refused before anything is sent", () => {
  const longest = "k".repeat(MAX_KEY_BYTES);
  test("a key of 250 bytes is fine, 251 is not", () => {
    expect(text(encodeGet([longest]))).toBe(`get ${longest}\r\n`);
    expect(() => encodeGet([`${longest}k`])).toThrow(InvalidRequestError);
    expect(() => encodeGet([new Uint8Array(251).fill(0x6b)])).toThrow(InvalidRequestError);
  });

  test("the limit counts UTF-8 bytes, not characters", () => {
    expect(encodeKey("é".repeat(125)).length).toBe(250);
    expect(() => encodeKey("é".repeat(126))).toThrow(/252 bytes/);
  });

  const badKeys: [string, string | Uint8Array][] = [
    ["empty", ""],
    ["empty bytes", new Uint8Array(0)],
    ["a space", "a b"],
    ["a tab", "a\tb"],
    ["CR", "a\r"],
    ["LF", "a\nget other"],
    ["NUL", "a\0"],
    ["DEL", "a\x7f"],
    ["a control byte", Uint8Array.of(0x61, 0x01)],
  ];
  for (const [name, key] of badKeys) {
    test(`a key with ${name}`, () => {
      expect(() => encodeGet([key])).toThrow(InvalidRequestError);
      expect(() => encodeStore("set", key, "v")).toThrow(InvalidRequestError);
      expect(() => encodeMetaGet(key, ["v"])).toThrow(InvalidRequestError);
      expect(() => encodeDelete(key)).toThrow(InvalidRequestError);
    });
  }

  test("a bad key anywhere in a multi-get", () => {
    expect(() => encodeGet(["a", "b c", "d"])).toThrow(InvalidRequestError);
    expect(() => encodeGet([])).toThrow(InvalidRequestError);
  });

  const badNumbers: [string, () => Uint8Array][] = [
    ["negative flags", () => encodeStore("set", "k", "v", { flags: -1 })],
    ["flags above 32 bits", () => encodeStore("set", "k", "v", { flags: 2 ** 32 })],
    ["fractional flags", () => encodeStore("set", "k", "v", { flags: 1.5 })],
    ["exptime above 32 bits", () => encodeStore("set", "k", "v", { exptime: 2 ** 31 })],
    ["fractional exptime", () => encodeTouch("k", 0.5)],
    ["NaN exptime", () => encodeGat(Number.NaN, ["k"])],
    ["negative delta", () => encodeArithmetic("incr", "k", -1)],
    ["unsafe delta number", () => encodeArithmetic("incr", "k", 2 ** 60)],
    ["delta above 64 bits", () => encodeArithmetic("incr", "k", 2n ** 64n)],
    ["negative cas", () => encodeCas("k", "v", -1n)],
    ["cas above 64 bits", () => encodeCas("k", "v", 2n ** 64n)],
    ["a meta flag with a space", () => encodeMetaGet("k", ["v f"])],
    ["an empty meta flag", () => encodeMetaGet("k", [""])],
    ["a meta flag with CRLF", () => encodeMetaGet("k", ["v\r\nflush_all"])],
    ["a stats group with a space", () => encodeStats("a b")],
    ["a value that is neither bytes nor a string", () => encodeStore("set", "k", 5 as unknown as string)],
  ];
  for (const [name, encode] of badNumbers) {
    test(name, () => expect(encode).toThrow(InvalidRequestError));
  }

  test("a refused request leaves the encoder usable", () => {
    expect(() => encodeStore("set", "k", "v", { flags: -1 })).toThrow(InvalidRequestError);
    expect(() => encodeGet(["ok", "not ok"])).toThrow(InvalidRequestError);
    expect(text(encodeGet(["ok"]))).toBe("get ok\r\n");
  });
});

// The addon's direct store operations (get/set/delete/touch) in this process: round trips with
// string and byte keys, the out-buffer contract, TTL through advanceClock, memcached's key rules,
// the item size limit, argument errors, and the stats each call counts. The store is configured
// here as the leaf configures it; keys are prefixed per test so tests do not see each other's items.
import { beforeAll, describe, expect, test } from "bun:test";
import { getValue, type NativeStats, native, StoreStatus } from "../src/native/index.ts";
import { fromLatin1, latin1 } from "./helpers/mc-client.ts";

const MIB = 1024 * 1024;
const utf8 = new TextEncoder();

let itemSizeMax = 0;
beforeAll(() => {
  // The first configure() in a process wins; another in-process test may have configured it first.
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
  itemSizeMax = native.stats().item_size_max;
});

function bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

/** The change in each counter while `body` runs. */
function delta(body: () => void): Partial<Record<keyof NativeStats, number>> {
  const before = native.stats();
  body();
  const after = native.stats();
  const out: Partial<Record<keyof NativeStats, number>> = {};
  for (const name of Object.keys(after) as (keyof NativeStats)[]) {
    if (after[name] !== before[name]) out[name] = after[name] - before[name];
  }
  return out;
}

/** What a text `get` through a connection answers for `key` (shows the flags). */
function textGet(key: string): string {
  const conn = native.openConnection();
  try {
    const out = new Uint8Array(64 * 1024);
    const result = native.feed(conn, latin1(`get ${key}\r\n`), out);
    return fromLatin1(out.subarray(0, Math.floor(result / 4)));
  } finally {
    native.closeConnection(conn);
  }
}

describe("round trips", () => {
  test("set then get copies the value into the caller's buffer and counts as text get/set do", () => {
    const out = new Uint8Array(64);
    let length = 0;
    const counted = delta(() => {
      expect(native.get("rt:a", out)).toBe(-1);
      expect(native.set("rt:a", bytes("hello"))).toBe(StoreStatus.Stored);
      length = native.get("rt:a", out);
    });
    expect(length).toBe(5);
    expect(new TextDecoder().decode(out.subarray(0, length))).toBe("hello");
    expect(counted).toMatchObject({ cmd_get: 2, get_hits: 1, get_misses: 1, cmd_set: 1, curr_items: 1 });
  });

  test("a string key and its UTF-8 bytes name the same item", () => {
    expect(native.set("rt:clé", bytes("v1"))).toBe(StoreStatus.Stored);
    expect(getValue(bytes("rt:clé"))).toEqual(bytes("v1"));
    expect(native.set(bytes("rt:clé"), bytes("v2"))).toBe(StoreStatus.Stored);
    expect(getValue("rt:clé")).toEqual(bytes("v2"));
  });

  test("values are binary-safe, empty values are values, and the text protocol sees flags", () => {
    const binary = new Uint8Array(300);
    for (let i = 0; i < binary.length; i++) binary[i] = (i * 7) & 0xff;
    expect(native.set("rt:bin", binary, 0, 4242)).toBe(StoreStatus.Stored);
    expect(getValue("rt:bin")).toEqual(binary);
    expect(textGet("rt:bin").startsWith("VALUE rt:bin 4242 300\r\n")).toBe(true);
    expect(native.set("rt:empty", new Uint8Array(0))).toBe(StoreStatus.Stored);
    expect(native.get("rt:empty", new Uint8Array(0))).toBe(0);
    expect(getValue("rt:empty")).toEqual(new Uint8Array(0));
  });

  test("a value set through the text protocol is read directly", () => {
    const conn = native.openConnection();
    try {
      const out = new Uint8Array(256);
      const result = native.feed(conn, latin1("set rt:text 0 0 5\r\nworld\r\n"), out);
      expect(fromLatin1(out.subarray(0, Math.floor(result / 4)))).toBe("STORED\r\n");
    } finally {
      native.closeConnection(conn);
    }
    expect(getValue("rt:text")).toEqual(bytes("world"));
  });

  test("delete removes once", () => {
    native.set("rt:del", bytes("v"));
    const counted = delta(() => {
      expect(native.delete("rt:del")).toBe(true);
      expect(native.delete("rt:del")).toBe(false);
    });
    expect(counted).toMatchObject({ delete_hits: 1, delete_misses: 1, curr_items: -1 });
    expect(native.get("rt:del", new Uint8Array(8))).toBe(-1);
    expect(getValue("rt:del")).toBeUndefined();
  });
});

describe("the out buffer", () => {
  test("a value longer than out returns its length, copies nothing and counts nothing", () => {
    native.set("buf:long", bytes("0123456789"));
    const short = new Uint8Array(4).fill(0xee);
    let length = 0;
    const counted = delta(() => {
      length = native.get("buf:long", short);
    });
    expect(length).toBe(10);
    expect(short).toEqual(new Uint8Array(4).fill(0xee));
    expect(counted).toEqual({});
    const exact = new Uint8Array(length);
    expect(delta(() => expect(native.get("buf:long", exact)).toBe(10))).toMatchObject({ get_hits: 1 });
    expect(new TextDecoder().decode(exact)).toBe("0123456789");
  });

  test("getValue reads a value longer than its scratch buffer in full", () => {
    const big = new Uint8Array(100_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    expect(native.set("buf:big", big)).toBe(StoreStatus.Stored);
    const counted = delta(() => expect(getValue("buf:big")).toEqual(big));
    expect(counted).toMatchObject({ cmd_get: 1, get_hits: 1 });
  });
});

describe("expiry", () => {
  test("a TTL expires once the store clock passes it", () => {
    expect(native.set("ttl:a", bytes("v"), 10)).toBe(StoreStatus.Stored);
    native.advanceClock(9);
    expect(getValue("ttl:a")).toEqual(bytes("v"));
    native.advanceClock(1);
    expect(getValue("ttl:a")).toBeUndefined();
  });

  test("a negative TTL is expired at once; 0 never expires", () => {
    native.set("ttl:neg", bytes("v"), -1);
    native.set("ttl:zero", bytes("v"), 0);
    expect(getValue("ttl:neg")).toBeUndefined();
    native.advanceClock(100 * 24 * 3600);
    expect(getValue("ttl:zero")).toEqual(bytes("v"));
  });

  test("touch sets a new expiry, and counts as memcached's touch", () => {
    native.set("ttl:touch", bytes("v"), 5);
    const counted = delta(() => {
      expect(native.touch("ttl:touch", 100)).toBe(true);
      expect(native.touch("ttl:absent", 100)).toBe(false);
    });
    expect(counted).toMatchObject({ cmd_touch: 2, touch_hits: 1, touch_misses: 1 });
    native.advanceClock(50);
    expect(getValue("ttl:touch")).toEqual(bytes("v"));
    native.advanceClock(50);
    expect(getValue("ttl:touch")).toBeUndefined();
  });
});

describe("the item size limit", () => {
  // memcached items.c item_size_ok: 56 header bytes + key + NUL + value + CRLF; flags cost 4 more.
  test("the largest value is stored and one byte more is too large", () => {
    const key = "size:edge";
    const largest = itemSizeMax - 56 - key.length - 1 - 2;
    expect(native.set(key, new Uint8Array(largest))).toBe(StoreStatus.Stored);
    expect(native.get(key, new Uint8Array(largest))).toBe(largest);
    expect(native.set(key, new Uint8Array(largest - 4), 0, 1)).toBe(StoreStatus.Stored);
    const counted = delta(() => {
      expect(native.set(key, new Uint8Array(largest - 3), 0, 1)).toBe(StoreStatus.TooLarge);
    });
    expect(counted).toMatchObject({ store_too_large: 1 });
    expect(counted.cmd_set).toBeUndefined();
  });

  test("a too-large set drops the key's old value, as memcached's set does", () => {
    native.set("size:old", bytes("old"));
    expect(native.set("size:old", new Uint8Array(itemSizeMax))).toBe(StoreStatus.TooLarge);
    expect(getValue("size:old")).toBeUndefined();
  });
});

describe("bad arguments throw a TypeError", () => {
  const out = new Uint8Array(8);
  const keyRule = /key must be 1 to 250 bytes without spaces or control characters/;

  test("keys that break memcached's rules", () => {
    const bad = ["", "k".repeat(251), "a b", "a\r\nb", "tab\t", "nul\0", "del\x7f", `${"k".repeat(249)}é`];
    for (const key of bad) {
      expect(() => native.get(key, out)).toThrow(keyRule);
      expect(() => native.get(key, out)).toThrow(TypeError);
      expect(() => native.set(key, out)).toThrow(keyRule);
      expect(() => native.delete(key)).toThrow(keyRule);
      expect(() => native.touch(key, 0)).toThrow(keyRule);
      if (key !== "") expect(() => native.get(bytes(key), out)).toThrow(keyRule);
    }
    // Longer than the binding's key buffer: napi truncates it, which must not make it pass.
    expect(() => native.get("é".repeat(1000), out)).toThrow(keyRule);
    expect(() => native.get(new Uint8Array(0), out)).toThrow(keyRule);
  });

  test("the longest keys pass, counted in UTF-8 bytes", () => {
    const ascii = "k".repeat(250);
    const accented = "é".repeat(125); // 250 bytes
    expect(native.set(ascii, bytes("a"))).toBe(StoreStatus.Stored);
    expect(native.set(accented, bytes("b"))).toBe(StoreStatus.Stored);
    expect(getValue(ascii)).toEqual(bytes("a"));
    expect(getValue(bytes(accented))).toEqual(bytes("b"));
  });

  test("keys, buffers and numbers of the wrong type or range", () => {
    const cases: [() => unknown, RegExp][] = [
      [
        () => native.get(42 as unknown as string, out),
        /get\(key, out\): key must be a string or a Uint8Array/,
      ],
      [() => native.get(undefined as unknown as string, out), /key must be a string or a Uint8Array/],
      [() => native.get("k", "buffer" as unknown as Uint8Array), /get\(key, out\): out must be a Uint8Array/],
      [() => native.get("k", new Uint16Array(4) as unknown as Uint8Array), /out must be a Uint8Array/],
      [() => native.set("k", "value" as unknown as Uint8Array), /value must be a Uint8Array/],
      [() => native.set("k", out, 1.5), /ttlSeconds must be an integer/],
      [() => native.set("k", out, Number.NaN), /ttlSeconds must be an integer/],
      [() => native.set("k", out, "10" as unknown as number), /ttlSeconds must be an integer/],
      [() => native.set("k", out, 0, -1), /flags must be an integer in \[0, 4294967295\]/],
      [() => native.set("k", out, 0, 2 ** 32), /flags must be an integer in \[0, 4294967295\]/],
      [() => native.touch("k", undefined as unknown as number), /ttlSeconds must be an integer/],
    ];
    for (const [call, message] of cases) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(message);
    }
  });

  test("a rejected call changes nothing", () => {
    native.set("bad:keep", bytes("kept"));
    const counted = delta(() => {
      expect(() => native.set("bad:keep", bytes("new"), 0, -1)).toThrow(TypeError);
      expect(() => native.get("bad keep", out)).toThrow(TypeError);
    });
    expect(counted).toEqual({});
    expect(getValue("bad:keep")).toEqual(bytes("kept"));
  });
});

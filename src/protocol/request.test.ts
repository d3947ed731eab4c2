// A Request's wire form and derive(): what the router sends a leaf, computed from the parsed fields.
// Every command is parsed, then re-encoded: a loud request goes out as received, a noreply or q
// request without them, and derive({}) reproduces the client's bytes, so one encoding serves both.
import { describe, expect, test } from "bun:test";
import { Op, type Request } from "./request.ts";
import { RequestParser } from "./request-parser.ts";

const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
const text = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");

function parseOne(input: string): Request {
  const requests: Request[] = [];
  const parser = new RequestParser(
    {
      onRequest: (request) => requests.push(request),
      onError: (reply) => {
        throw new Error(`parse error: ${text(reply)}`);
      },
    },
    { maxItemBytes: 1024 * 1024 },
  );
  parser.feed(latin1(input));
  expect(requests.length).toBe(1);
  return requests[0] as Request;
}

// [as the client sent it, what a leaf is sent]
const CASES: [string, string][] = [
  ["get a\r\n", "get a\r\n"],
  ["gets a b\x1bc d\r\n", "gets a b\x1bc d\r\n"],
  ["gat 30 a b\r\n", "gat 30 a b\r\n"],
  ["gats -1 a\r\n", "gats -1 a\r\n"],
  ["set k 4294967295 -1 3\r\nabc\r\n", "set k 4294967295 -1 3\r\nabc\r\n"],
  ["set k 1 2 3 noreply\r\nabc\r\n", "set k 1 2 3\r\nabc\r\n"],
  ["add k 0 0 0 noreply\r\n\r\n", "add k 0 0 0\r\n\r\n"],
  ["replace k 5 0 2\r\nxy\r\n", "replace k 5 0 2\r\nxy\r\n"],
  ["append k 0 0 1 noreply\r\nz\r\n", "append k 0 0 1\r\nz\r\n"],
  ["prepend k 0 0 1\r\nz\r\n", "prepend k 0 0 1\r\nz\r\n"],
  ["cas k 3 100 2 18446744073709551615 noreply\r\nab\r\n", "cas k 3 100 2 18446744073709551615\r\nab\r\n"],
  ["delete k noreply\r\n", "delete k\r\n"],
  ["delete k\r\n", "delete k\r\n"],
  ["touch k 10 noreply\r\n", "touch k 10\r\n"],
  ["incr k 18446744073709551615 noreply\r\n", "incr k 18446744073709551615\r\n"],
  ["decr k 1\r\n", "decr k 1\r\n"],
  ["mg k v t q\r\n", "mg k v t\r\n"],
  ["mg Zm9v b v\r\n", "mg Zm9v b v\r\n"],
  ["ms k 2 T10 q\r\nhi\r\n", "ms k 2 T10\r\nhi\r\n"],
  ["md k q O5\r\n", "md k O5\r\n"],
  ["ma k D3 q\r\n", "ma k D3\r\n"],
  ["flush_all 10 noreply\r\n", "flush_all 10\r\n"],
  ["flush_all\r\n", "flush_all\r\n"],
];

describe("wire", () => {
  for (const [sent, wire] of CASES) {
    test(JSON.stringify(sent), () => {
      const request = parseOne(sent);
      expect(text(request.wire)).toBe(wire);
      // Computed once.
      expect(request.wire).toBe(request.wire);
      // derive with no changes is the client's request again, noreply and q included.
      if (request.op !== Op.FlushAll) {
        const copy = request.derive({});
        expect(text(copy.raw)).toBe(sent);
        expect(text(copy.wire)).toBe(wire);
        expect(copy.noreply).toBe(request.noreply);
      }
    });
  }
});

describe("derive", () => {
  test("a key of a multi-get keeps the command, the exptime of gat and the affinity", () => {
    const request = parseOne("gat 30 a b c\r\n");
    request.affinity = 7;
    const one = request.derive({ keys: [latin1("b")] });
    expect(text(one.raw)).toBe("gat 30 b\r\n");
    expect(one.op).toBe(Op.Gat);
    expect(one.affinity).toBe(7);
  });

  test("a capped TTL, and a meta command of the route's own for the same base64 key", () => {
    const set = parseOne("set k 0 0 1 noreply\r\nv\r\n").derive({ exptime: 60 });
    expect(text(set.raw)).toBe("set k 0 60 1 noreply\r\nv\r\n");
    expect(text(set.wire)).toBe("set k 0 60 1\r\nv\r\n");
    const get = parseOne("mg Zm9v b v q\r\n");
    const lease = get.derive({ op: Op.MetaGet, metaFlags: ["b", "v", "c", "N30"] });
    expect(text(lease.raw)).toBe("mg Zm9v b v c N30\r\n");
    expect(lease.noreply).toBe(false);
    expect(text(lease.itemKey)).toBe("foo");
    const store = get.derive({ op: Op.MetaSet, value: latin1("bar"), metaFlags: ["b", "q", "T5"] });
    expect(text(store.raw)).toBe("ms Zm9v 3 b q T5\r\nbar\r\n");
    expect(store.noreply).toBe(true);
    expect(text(store.wire)).toBe("ms Zm9v 3 b T5\r\nbar\r\n");
  });
});

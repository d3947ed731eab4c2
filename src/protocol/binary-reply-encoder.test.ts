import { describe, expect, test } from "bun:test";
import { encodeBinaryFailure, encodeBinaryReply } from "./binary-reply-encoder.ts";
import { BinaryOp, BinaryRequest } from "./binary-request.ts";
import { Expect, Reply, ReplyType } from "./reply.ts";
import { ReplyParser } from "./reply-parser.ts";
import { Op } from "./request.ts";

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

function request(opcode: number, command = opcode, key = "k"): BinaryRequest {
  const out = new BinaryRequest(Op.MetaGet, opcode, command, 0x0a0b0c0d);
  out.keys = [ascii(key)];
  return out;
}

// A leaf's reply line(s) as the router's reply parser hands them over.
function leaf(text: string, expects: Expect = Expect.Meta): Reply {
  const replies: Reply[] = [];
  const parser = new ReplyParser({
    nextExpect: () => (replies.length === 0 ? expects : undefined),
    onReply: (reply) => replies.push(reply),
  });
  parser.feed(ascii(text));
  expect(replies.length).toBe(1);
  return replies[0] as Reply;
}

// header fields of a reply frame, and its body as latin1
function decode(bytes: Uint8Array) {
  const b = Buffer.from(bytes);
  return {
    magic: b[0],
    opcode: b[1],
    keylen: b.readUInt16BE(2),
    extlen: b[4],
    status: b.readUInt16BE(6),
    bodylen: b.readUInt32BE(8),
    opaque: b.readUInt32BE(12),
    cas: b.readBigUInt64BE(16),
    body: b.subarray(24).toString("latin1"),
  };
}

describe("encodeBinaryReply", () => {
  test("get hit: flags extras, value, CAS, opaque and opcode echoed", () => {
    const got = decode(encodeBinaryReply(request(BinaryOp.Get), leaf("VA 2 f7 c42\r\nhi\r\n")));
    expect(got).toEqual({
      magic: 0x81,
      opcode: 0,
      keylen: 0,
      extlen: 4,
      status: 0,
      bodylen: 6,
      opaque: 0x0a0b0c0d,
      cas: 42n,
      body: "\0\0\0\x07hi",
    });
  });

  test("getk hit carries the key; getk miss the key and no text; get miss 'Not found'", () => {
    expect(decode(encodeBinaryReply(request(BinaryOp.GetK), leaf("VA 1 f0 c1\r\nv\r\n"))).body).toBe(
      "\0\0\0\0kv",
    );
    const miss = decode(encodeBinaryReply(request(BinaryOp.GetK), leaf("EN\r\n")));
    expect([miss.status, miss.keylen, miss.body]).toEqual([1, 1, "k"]);
    expect(decode(encodeBinaryReply(request(BinaryOp.Get), leaf("EN\r\n"))).body).toBe("Not found");
  });

  test("quiet opcodes: nothing on success or a get miss, errors still sent", () => {
    expect(encodeBinaryReply(request(BinaryOp.GetQ, BinaryOp.Get), leaf("EN\r\n")).length).toBe(0);
    expect(encodeBinaryReply(request(BinaryOp.SetQ, BinaryOp.Set), leaf("HD c5\r\n")).length).toBe(0);
    expect(decode(encodeBinaryReply(request(BinaryOp.SetQ, BinaryOp.Set), leaf("EX\r\n"))).status).toBe(2);
    expect(
      decode(encodeBinaryReply(request(BinaryOp.GetKQ, BinaryOp.GetK), leaf("VA 1 c1\r\nv\r\n"))).status,
    ).toBe(0);
  });

  test("touch: flags and CAS, no value", () => {
    const got = decode(encodeBinaryReply(request(BinaryOp.Touch), leaf("HD f3 c9\r\n")));
    expect([got.extlen, got.body, got.cas]).toEqual([4, "\0\0\0\x03", 9n]);
  });

  test("stores: HD carries the CAS; NS per command; EX, NF", () => {
    expect(decode(encodeBinaryReply(request(BinaryOp.Set), leaf("HD c77\r\n"))).cas).toBe(77n);
    const ns = (opcode: number) => decode(encodeBinaryReply(request(opcode), leaf("NS\r\n")));
    expect(ns(BinaryOp.Add)).toMatchObject({ status: 2, body: "Data exists for key." });
    expect(ns(BinaryOp.Replace)).toMatchObject({ status: 1, body: "Not found" });
    expect(ns(BinaryOp.Append)).toMatchObject({ status: 5, body: "Not stored." });
    expect(decode(encodeBinaryReply(request(BinaryOp.Set), leaf("NF\r\n"))).status).toBe(1);
  });

  test("incr/decr: the value as 8 bytes; non-numeric 0x06; NF", () => {
    const got = decode(
      encodeBinaryReply(request(BinaryOp.Increment), leaf("VA 20 c3\r\n18446744073709551615\r\n")),
    );
    expect([got.status, got.bodylen, got.cas, Buffer.from(got.body, "latin1").readBigUInt64BE()]).toEqual([
      0,
      8,
      3n,
      0xffff_ffff_ffff_ffffn,
    ]);
    const bad = leaf("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    expect(decode(encodeBinaryReply(request(BinaryOp.Increment), bad)).status).toBe(0x06);
    expect(decode(encodeBinaryReply(request(BinaryOp.Decrement), leaf("NF\r\n"))).status).toBe(1);
  });

  test("delete, flush, noop, version, quit", () => {
    expect(decode(encodeBinaryReply(request(BinaryOp.Delete), leaf("HD\r\n"))).status).toBe(0);
    expect(decode(encodeBinaryReply(request(BinaryOp.Delete), leaf("EX\r\n"))).status).toBe(2);
    expect(decode(encodeBinaryReply(request(BinaryOp.Flush), leaf("OK\r\n", Expect.Line))).bodylen).toBe(0);
    expect(encodeBinaryReply(request(BinaryOp.FlushQ, BinaryOp.Flush), new Reply(ReplyType.Ok)).length).toBe(
      0,
    );
    expect(decode(encodeBinaryReply(request(BinaryOp.Noop), new Reply(ReplyType.MetaNoop))).opcode).toBe(
      0x0a,
    );
    const version = new Reply(ReplyType.Version);
    version.rest = ascii("1.2.3");
    expect(decode(encodeBinaryReply(request(BinaryOp.Version), version)).body).toBe("1.2.3");
    expect(encodeBinaryReply(request(BinaryOp.QuitQ, BinaryOp.Quit), new Reply(ReplyType.Ok)).length).toBe(0);
  });

  test("stats: one frame per statistic, then an empty one; an unknown group is not found", () => {
    const stats = new Reply(ReplyType.Stats);
    stats.stats = new Map([["pid", "12"]]);
    const bytes = encodeBinaryReply(request(BinaryOp.Stat), stats);
    expect(bytes.length).toBe(24 + 5 + 24);
    expect(decode(bytes.subarray(0, 29))).toMatchObject({ keylen: 3, body: "pid12" });
    expect(decode(bytes.subarray(29))).toMatchObject({ keylen: 0, bodylen: 0 });
    expect(decode(encodeBinaryReply(request(BinaryOp.Stat), new Reply(ReplyType.Error))).status).toBe(1);
  });

  test("errors: out of memory 0x82, too large 0x03, other leaf errors and route failures 0x84", () => {
    const oom = leaf("SERVER_ERROR out of memory storing object\r\n");
    expect(decode(encodeBinaryReply(request(BinaryOp.Set), oom)).status).toBe(0x82);
    const large = leaf("SERVER_ERROR object too large for cache\r\n");
    expect(decode(encodeBinaryReply(request(BinaryOp.Set), large)).status).toBe(0x03);
    expect(
      decode(encodeBinaryFailure(request(BinaryOp.GetQ, BinaryOp.Get), "pool main: down")),
    ).toMatchObject({
      status: 0x84,
      body: "pool main: down",
    });
  });

  test("a reply the request cannot have is an internal error, never a success", () => {
    expect(decode(encodeBinaryReply(request(BinaryOp.Get), leaf("HD c1\r\n"))).status).toBe(0);
    expect(decode(encodeBinaryReply(request(BinaryOp.Set), leaf("EN\r\n"))).status).toBe(0x84);
  });
});

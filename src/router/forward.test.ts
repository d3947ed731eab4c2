import { expect, test } from "bun:test";
import { Item, Reply, ReplyType } from "../protocol/reply.ts";
import { Op, Request } from "../protocol/request.ts";
import { isFailure, isMiss, quietReply, routingKey } from "./forward.ts";
import { type RouteHandle, unavailableRoute } from "./handles/handle.ts";
import { PrefixRoute } from "./handles/prefix.ts";

const text = (bytes: Uint8Array) => new TextDecoder("latin1").decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

function request(op: Op, fields: Partial<Request>): Request {
  return Object.assign(new Request(op), fields);
}

test("quiet replies: noreply hides everything, q hides what memcached 1.6.18 hides", () => {
  const hd = new Reply(ReplyType.MetaHeader);
  const en = new Reply(ReplyType.MetaMiss);
  const nf = new Reply(ReplyType.MetaNotFound);
  const ex = new Reply(ReplyType.MetaExists);
  const va = new Reply(ReplyType.MetaValue);
  const error = new Reply(ReplyType.ServerError);
  const quiet = (op: Op) => (reply: Reply) => quietReply(request(op, { noreply: true }), reply);
  const replies = [en, hd, va, nf, ex, error];
  expect(replies.map(quiet(Op.MetaGet))).toEqual([true, false, false, false, false, false]);
  expect(replies.map(quiet(Op.MetaSet))).toEqual([false, true, false, false, false, false]);
  expect(replies.map(quiet(Op.MetaDelete))).toEqual([false, true, false, false, false, false]);
  expect(replies.map(quiet(Op.MetaArithmetic))).toEqual([false, true, true, false, false, false]);
  expect(quietReply(request(Op.Set, { noreply: true }), new Reply(ReplyType.Stored))).toBe(true);
  expect(quietReply(request(Op.Set, {}), new Reply(ReplyType.Stored))).toBe(false);
});

test("misses and failures", () => {
  const hit = new Reply(ReplyType.Values);
  hit.items = [new Item(bytes("k"), 0, undefined, bytes("v"))];
  const miss = new Reply(ReplyType.Values);
  miss.items = [];
  expect(isMiss(hit)).toBe(false);
  expect(isMiss(miss)).toBe(true);
  expect(isMiss(new Reply(ReplyType.MetaMiss))).toBe(true);
  expect(isMiss(new Reply(ReplyType.Stored))).toBe(false);
  expect(isFailure(new Reply(ReplyType.ServerError))).toBe(true);
  expect(isFailure(new Reply(ReplyType.ClientError))).toBe(false);
});

test("a base64 meta key routes by its decoded bytes", () => {
  const encoded = request(Op.MetaGet, {
    keys: [bytes(Buffer.from("user:42").toString("base64"))],
    base64Key: true,
    decodedKey: bytes("user:42"),
  });
  expect(text(routingKey(encoded))).toBe("user:42");
  const plain = request(Op.Get, { keys: [bytes("user:42")] });
  expect(routingKey(plain)).toBe(plain.key);
});

test("the longest matching prefix wins; * takes the rest", () => {
  const route = (name: string): RouteHandle => unavailableRoute(new Error(name));
  const a = route("a");
  const ab = route("ab");
  const fallback = route("*");
  const prefix = new PrefixRoute(
    new Map([
      ["a", a],
      ["ab", ab],
    ]),
    fallback,
  );
  expect(prefix.select(bytes("abc"))).toBe(ab);
  expect(prefix.select(bytes("axe"))).toBe(a);
  expect(prefix.select(bytes("ba"))).toBe(fallback);
  expect(prefix.select(bytes(""))).toBe(fallback);
});

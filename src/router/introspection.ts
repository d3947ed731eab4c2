// Questions a client can ask the router about its routing, as gets of special keys (mcrouter's
// `get __mcrouter__.route(get,KEY)`), so any memcached client or `printf ... | nc` can ask:
//
//   get __gravity__.route(OP,KEY)   one line per leaf the command OP on KEY would reach now, in the
//                                   order tried: "host:port role" (role: shard, read, hedge, write,
//                                   failover read, gutter shard, warm read...)
//   get __gravity__.tree            the route tree, one handle per line, children indented
//
// The answer is a VALUE whose lines end in CRLF. A question that cannot be answered (an unknown
// OP, a key that is not a key) answers CLIENT_ERROR, as a bad command does.
import { Item, Reply, ReplyType } from "../protocol/reply.ts";
import { Op, Request } from "../protocol/request.ts";
import { describeTree, type RouteHandle } from "./handles/handle.ts";

/** The prefix of every introspection key. */
export const INTROSPECTION_PREFIX = "__gravity__.";

const OPS: Readonly<Record<string, Op>> = {
  get: Op.Get,
  gets: Op.Gets,
  gat: Op.Gat,
  gats: Op.Gats,
  set: Op.Set,
  add: Op.Add,
  replace: Op.Replace,
  append: Op.Append,
  prepend: Op.Prepend,
  cas: Op.Cas,
  delete: Op.Delete,
  touch: Op.Touch,
  incr: Op.Incr,
  decr: Op.Decr,
  mg: Op.MetaGet,
  ms: Op.MetaSet,
  md: Op.MetaDelete,
  ma: Op.MetaArithmetic,
};

const PREFIX_BYTES = new TextEncoder().encode(INTROSPECTION_PREFIX);
const utf8 = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Whether `key` asks the router a question (starts with __gravity__.). */
export function isIntrospection(key: Uint8Array): boolean {
  if (key.length < PREFIX_BYTES.length) return false;
  for (let i = 0; i < PREFIX_BYTES.length; i++) if (key[i] !== PREFIX_BYTES[i]) return false;
  return true;
}

/** The reply to the question in `key` (isIntrospection(key) holds), asked of the tree `root`. */
export function introspect(key: Uint8Array, root: RouteHandle): Reply {
  const question = latin1.decode(key.subarray(PREFIX_BYTES.length));
  if (question === "tree") return valueReply(key, describeTree(root).replace(/\n/g, "\r\n"));
  const route = /^route\(([a-z]+),(.+)\)$/.exec(question);
  if (route === null)
    return clientError(`unknown question ${JSON.stringify(question)}: try route(OP,KEY) or tree`);
  const op = OPS[route[1] as string];
  if (op === undefined)
    return clientError(
      `unknown operation ${JSON.stringify(route[1])}: one of ${Object.keys(OPS).join(", ")}`,
    );
  const request = new Request(op);
  request.keys = [
    key.subarray(PREFIX_BYTES.length + "route(".length + (route[1] as string).length + 1, key.length - 1),
  ];
  const lines: string[] = [];
  root.traverse(request, (destination, role) => lines.push(`${destination.name} ${role}\r\n`));
  return valueReply(key, lines.join(""));
}

function valueReply(key: Uint8Array, text: string): Reply {
  const reply = new Reply(ReplyType.Values);
  reply.items = [new Item(key, 0, undefined, utf8.encode(text))];
  return reply;
}

function clientError(message: string): Reply {
  const reply = new Reply(ReplyType.ClientError);
  reply.rest = utf8.encode(message);
  return reply;
}

// The NATS ingress: the original design's interface, served by a router. A NATS client sends a
// request and gets the result as the reply; the router routes it through its route tree like a
// memcached client's request.
//
//   request  subject  {prefix}.ingress.{pool}          key in header `key` (UTF-8, spaces too) or
//                                                      `key-b64` (base64: any bytes)
//                     {prefix}.ingress.{pool}.{key}    key in the subject (no spaces; dots are fine)
//            headers  op: get | set | del   ttl: seconds (set; memcached exptime)   flags: u32 (set)
//            payload  the value (set); ignored otherwise
//   reply    get      hit: payload = value, `status: hit`, `flags`     miss: empty, `status: miss`
//            set      `status: stored` | `status: not_stored`
//            del      `status: deleted` | `status: not_found`
//            any      `status: error` and `error: <text>` (bad request, no route, leaf error)
//
// Why the header form: the original `{pool}.{key}` puts the key in the subject, but a subject
// cannot hold spaces or control characters, an empty token ("a..b") or a `*`/`>` token, and a
// memcached key may be any bytes. The subject form is kept for keys that fit (the key is
// everything after the pool token, dots included); the header carries any other key (NATS trims
// header values, hence `key-b64` for keys with leading or trailing whitespace, or not UTF-8).
//
// Keys that memcached's text protocol accepts (1..250 bytes, no space or control byte) become
// get/set/delete; any other key becomes mg/ms/md with the key in base64 (the b flag), which the
// leaf stores under the decoded bytes (at most 186 of them), so `get k` over TCP and an ingress
// get of k name one item. Requests subscribe with a queue group, so several routers share the load.
import { headers, type Msg, type MsgHdrs, type Subscription } from "nats";
import {
  encodeDelete,
  encodeGet,
  encodeMetaDelete,
  encodeMetaGet,
  encodeMetaSet,
  encodeStore,
  MAX_KEY_BYTES,
} from "../protocol/encoder.ts";
import { type Reply, ReplyType } from "../protocol/reply.ts";
import { Op, Request } from "../protocol/request.ts";
import type { NatsLink } from "./nats-link.ts";
import { checkPrefix, IngressStatus, NatsHeader, tokenName } from "./nats-subjects.ts";

/** The ingress ops (header `op`). */
export const IngressOp = { Get: "get", Set: "set", Del: "del" } as const;
export type IngressOp = (typeof IngressOp)[keyof typeof IngressOp];

export interface IngressOptions {
  link: NatsLink;
  /** Subject prefix (default "gravity"). */
  prefix?: string;
  /** Queue group shared by the routers that serve the ingress (default "gravity-ingress"). */
  queue?: string;
  /**
   * Routes one request for the pool its subject names (the router's route tree for that pool);
   * rejects when the pool is unknown or no leaf could answer.
   */
  route: (request: Request, pool: string) => Promise<Reply>;
}

export interface Ingress {
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** A request the ingress refuses before routing it: answered with `status: error`. */
class BadIngressRequest extends Error {}

const utf8 = new TextEncoder();
const NO_BYTES = new Uint8Array(0);
const MAX_INT32 = 0x7fff_ffff;
const MIN_INT32 = -0x8000_0000;

/** Serves `{prefix}.ingress.>` now, or as soon as the link connects. */
export function serveIngress(options: IngressOptions): Ingress {
  const base = `${checkPrefix(options.prefix ?? "gravity")}.ingress`;
  let subscriptions: Subscription[] = [];
  let closed = false;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  const answer = async (msg: Msg) => {
    let reply: { status: IngressStatus; value?: Uint8Array; flags?: number; error?: string };
    try {
      const { pool, request, op } = parseIngress(base, msg);
      reply = judge(op, await options.route(request, pool));
    } catch (error) {
      reply = { status: IngressStatus.Error, error: error instanceof Error ? error.message : String(error) };
    }
    if (msg.reply === undefined || msg.reply === "") return;
    const h = headers();
    h.set(NatsHeader.Status, reply.status);
    if (reply.flags !== undefined) h.set(NatsHeader.Flags, String(reply.flags));
    if (reply.error !== undefined) h.set(NatsHeader.Error, oneLine(reply.error));
    msg.respond(reply.value ?? NO_BYTES, { headers: h });
  };

  const stopListening = options.link.onConnection((nc) => {
    if (closed) return;
    const queue = options.queue ?? "gravity-ingress";
    const callback = (error: unknown, msg: Msg) => {
      if (error === null) void answer(msg);
    };
    subscriptions = [
      nc.subscribe(`${base}.*`, { queue, callback }),
      nc.subscribe(`${base}.*.>`, { queue, callback }),
    ];
    nc.flush().then(markReady, () => {});
  });

  return {
    ready,
    async close() {
      closed = true;
      stopListening();
      for (const subscription of subscriptions) if (!subscription.isClosed()) subscription.unsubscribe();
      subscriptions = [];
    },
  };
}

// The pool, key, op and request of an ingress message; BadIngressRequest if it is not one.
function parseIngress(base: string, msg: Msg): { pool: string; request: Request; op: IngressOp } {
  const rest = msg.subject.slice(base.length + 1);
  const dot = rest.indexOf(".");
  const pool = tokenName(dot < 0 ? rest : rest.slice(0, dot));
  const subjectKey = dot < 0 ? undefined : rest.slice(dot + 1);
  const h = msg.headers;
  const given: Uint8Array[] = [];
  if (subjectKey !== undefined) given.push(utf8.encode(subjectKey));
  if (h?.has(NatsHeader.Key) === true) given.push(utf8.encode(h.get(NatsHeader.Key)));
  if (h?.has(NatsHeader.KeyBase64) === true) given.push(decodeKeyHeader(h.get(NatsHeader.KeyBase64)));
  if (given.length > 1) {
    throw new BadIngressRequest(
      `the key is given ${given.length} times: give it once, in the subject, "${NatsHeader.Key}" or "${NatsHeader.KeyBase64}"`,
    );
  }
  const key = given[0];
  if (key === undefined || key.length === 0) {
    throw new BadIngressRequest(
      `no key: put it after the pool in the subject, or in the "${NatsHeader.Key}" or "${NatsHeader.KeyBase64}" header`,
    );
  }
  const op = parseOp(h);
  switch (op) {
    case IngressOp.Get:
      return { pool, op, request: ingressGet(key) };
    case IngressOp.Set:
      return {
        pool,
        op,
        request: ingressSet(
          key,
          msg.data,
          intHeader(h, NatsHeader.Ttl, MIN_INT32, MAX_INT32),
          intHeader(h, NatsHeader.Flags, 0, 0xffff_ffff),
        ),
      };
    default:
      return { pool, op, request: ingressDelete(key) };
  }
}

function decodeKeyHeader(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new BadIngressRequest(`header "${NatsHeader.KeyBase64}" is not base64: ${JSON.stringify(text)}`);
  }
  return new Uint8Array(Buffer.from(text, "base64"));
}

function parseOp(h: MsgHdrs | undefined): IngressOp {
  const op = h?.has(NatsHeader.Op) === true ? h.get(NatsHeader.Op).toLowerCase() : "";
  if (op === IngressOp.Get || op === IngressOp.Set || op === IngressOp.Del) return op;
  if (op === "delete") return IngressOp.Del;
  throw new BadIngressRequest(`header "${NatsHeader.Op}" must be get, set or del, got ${JSON.stringify(op)}`);
}

function intHeader(h: MsgHdrs | undefined, name: string, min: number, max: number): number {
  if (h === undefined || !h.has(name)) return 0;
  const text = h.get(name).trim();
  const value = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BadIngressRequest(
      `header "${name}" must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

// A key the text protocol carries as it is (memcached's rules); others go base64 in meta commands.
function isTextKey(key: Uint8Array): boolean {
  if (key.length === 0 || key.length > MAX_KEY_BYTES) return false;
  for (const byte of key) if (byte <= 0x20 || byte === 0x7f) return false;
  return true;
}

// The key in base64 for the meta b flag; throws if even that is longer than memcached allows.
function base64Key(key: Uint8Array): Uint8Array {
  const encoded = utf8.encode(Buffer.from(key).toString("base64"));
  if (encoded.length > MAX_KEY_BYTES) {
    throw new BadIngressRequest(
      `key of ${key.length} bytes is too long: a key with spaces or control characters may have at most 186 bytes, others ${MAX_KEY_BYTES}`,
    );
  }
  return encoded;
}

function metaRequest(op: Op, key: Uint8Array, flags: string[]): Request {
  const request = new Request(op);
  request.keys = [base64Key(key)];
  request.base64Key = true;
  request.decodedKey = key;
  request.metaFlags = ["b", ...flags];
  return request;
}

/** A get of `key` (any bytes): `get` for a text key, else `mg <base64> b v f`. */
export function ingressGet(key: Uint8Array): Request {
  if (isTextKey(key)) {
    const request = new Request(Op.Get);
    request.keys = [key];
    request.raw = encodeGet([key]);
    return request;
  }
  const request = metaRequest(Op.MetaGet, key, ["v", "f"]);
  request.raw = encodeMetaGet(request.key, request.metaFlags);
  return request;
}

/** A set of `key` (any bytes): `set` for a text key, else `ms <base64> <n> b T<ttl> F<flags>`. */
export function ingressSet(key: Uint8Array, value: Uint8Array, ttlSeconds: number, flags: number): Request {
  let request: Request;
  if (isTextKey(key)) {
    request = new Request(Op.Set);
    request.keys = [key];
    request.raw = encodeStore("set", key, value, { flags, exptime: ttlSeconds });
  } else {
    request = metaRequest(Op.MetaSet, key, [`T${ttlSeconds}`, `F${flags}`]);
    request.raw = encodeMetaSet(request.key, value, request.metaFlags);
  }
  request.value = value;
  request.flags = flags;
  request.exptime = ttlSeconds;
  return request;
}

/** A delete of `key` (any bytes): `delete` for a text key, else `md <base64> b`. */
export function ingressDelete(key: Uint8Array): Request {
  if (isTextKey(key)) {
    const request = new Request(Op.Delete);
    request.keys = [key];
    request.raw = encodeDelete(key);
    return request;
  }
  const request = metaRequest(Op.MetaDelete, key, []);
  request.raw = encodeMetaDelete(request.key, request.metaFlags);
  return request;
}

// What a leaf's reply means for the ingress client.
function judge(
  op: IngressOp,
  reply: Reply,
): { status: IngressStatus; value?: Uint8Array; flags?: number; error?: string } {
  if (reply.isError) {
    const kind =
      reply.type === ReplyType.ClientError
        ? "CLIENT_ERROR"
        : reply.type === ReplyType.ServerError
          ? "SERVER_ERROR"
          : "ERROR";
    return { status: IngressStatus.Error, error: reply.text === "" ? kind : `${kind} ${reply.text}` };
  }
  switch (reply.type) {
    case ReplyType.Values: {
      const item = reply.items?.[0];
      if (item === undefined) return { status: IngressStatus.Miss };
      return { status: IngressStatus.Hit, value: item.value, flags: item.flags };
    }
    case ReplyType.MetaValue:
      return {
        status: IngressStatus.Hit,
        value: reply.value ?? NO_BYTES,
        flags: Number(reply.metaFlag("f") ?? "0"),
      };
    case ReplyType.MetaMiss:
      return { status: IngressStatus.Miss };
    case ReplyType.Stored:
      return { status: IngressStatus.Stored };
    case ReplyType.NotStored:
    case ReplyType.MetaNotStored:
      return { status: IngressStatus.NotStored };
    case ReplyType.Deleted:
      return { status: IngressStatus.Deleted };
    case ReplyType.NotFound:
    case ReplyType.MetaNotFound:
      return { status: IngressStatus.NotFound };
    case ReplyType.MetaHeader:
      return { status: op === IngressOp.Set ? IngressStatus.Stored : IngressStatus.Deleted };
    default:
      return { status: IngressStatus.Error, error: `unexpected reply type ${reply.type} to ${op}` };
  }
}

// A header value cannot hold CR or LF.
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}

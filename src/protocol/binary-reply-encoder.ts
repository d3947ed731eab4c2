// Replies of the memcached binary protocol (memcached protocol_binary.h, proto_bin.c 1.6) made from
// the text and meta replies a leaf sends: what a router writes back to a binary client. Each reply
// echoes its request's opcode and opaque; a quiet opcode's success (and a quiet get's miss) is
// answered with nothing, its errors are always sent.
//
//   leaf reply (mg VA/HD/EN, ms HD/NS/EX/NF, md, ma VA, OK, stats...) ──encodeBinaryReply──>
//       24-byte header (magic 0x81, opcode, key/extras/body lengths, status, opaque, cas) + body
import { BinaryOp, type BinaryRequest, BinaryStatus } from "./binary-request.ts";
import { type Reply, ReplyType } from "./reply.ts";

const HEADER_BYTES = 24;
const RESPONSE_MAGIC = 0x81;
const EMPTY = new Uint8Array(0);
const NO_KEY = new Uint8Array(0);

// memcached write_bin_error's text for each status.
function statusText(status: number): string {
  switch (status) {
    case BinaryStatus.OutOfMemory:
      return "Out of memory";
    case BinaryStatus.UnknownCommand:
      return "Unknown command";
    case BinaryStatus.KeyNotFound:
      return "Not found";
    case BinaryStatus.InvalidArguments:
      return "Invalid arguments";
    case BinaryStatus.KeyExists:
      return "Data exists for key.";
    case BinaryStatus.TooLarge:
      return "Too large.";
    case BinaryStatus.DeltaBadValue:
      return "Non-numeric server-side value for incr or decr";
    case BinaryStatus.NotStored:
      return "Not stored.";
    case BinaryStatus.AuthError:
      return "Auth failure.";
    default:
      return "";
  }
}

/** One reply frame: header, then extras, key and value; `cas` an unsigned 64-bit number. */
export function encodeBinaryFrame(
  opcode: number,
  opaque: number,
  status: number,
  cas: bigint,
  extras: Uint8Array,
  key: Uint8Array,
  value: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + extras.length + key.length + value.length);
  out[0] = RESPONSE_MAGIC;
  out[1] = opcode;
  out[2] = key.length >>> 8;
  out[3] = key.length & 0xff;
  out[4] = extras.length;
  out[6] = status >>> 8;
  out[7] = status & 0xff;
  writeU32(out, 8, extras.length + key.length + value.length);
  writeU32(out, 12, opaque);
  writeU32(out, 16, Number((cas >> 32n) & 0xffff_ffffn));
  writeU32(out, 20, Number(cas & 0xffff_ffffn));
  out.set(extras, HEADER_BYTES);
  out.set(key, HEADER_BYTES + extras.length);
  out.set(value, HEADER_BYTES + extras.length + key.length);
  return out;
}

/** memcached write_bin_error: `status` with its text (memcached's wording unless `text` is given). */
export function encodeBinaryError(opcode: number, opaque: number, status: number, text?: string): Uint8Array {
  return encodeBinaryFrame(opcode, opaque, status, 0n, EMPTY, NO_KEY, ascii(text ?? statusText(status)));
}

/**
 * The binary reply to `request` for the leaf's (or the router's) `reply`; empty when a quiet
 * opcode's outcome is not sent.
 */
export function encodeBinaryReply(request: BinaryRequest, reply: Reply): Uint8Array {
  if (reply.isError) return errorReply(request, reply);
  switch (request.command) {
    case BinaryOp.Get:
    case BinaryOp.GetK:
    case BinaryOp.Gat:
    case BinaryOp.GatK:
    case BinaryOp.Touch:
      return retrievalReply(request, reply);
    case BinaryOp.Set:
    case BinaryOp.Add:
    case BinaryOp.Replace:
    case BinaryOp.Append:
    case BinaryOp.Prepend:
      return storeReply(request, reply);
    case BinaryOp.Delete:
      if (reply.type === ReplyType.MetaHeader) return success(request, cas(reply), EMPTY);
      return missOrExists(request, reply);
    case BinaryOp.Increment:
    case BinaryOp.Decrement:
      return deltaReply(request, reply);
    case BinaryOp.Version:
      return success(request, 0n, reply.rest);
    case BinaryOp.Stat:
      return statsReply(request, reply);
    default:
      // flush (OK), noop (MN), quit.
      return success(request, 0n, EMPTY);
  }
}

/** The reply to a request the router could not route (no destination answered): an internal error. */
export function encodeBinaryFailure(request: BinaryRequest, message: string): Uint8Array {
  return encodeBinaryError(request.opcode, request.opaque, BinaryStatus.InternalError, message);
}

function success(request: BinaryRequest, casUnique: bigint, value: Uint8Array): Uint8Array {
  if (request.quiet) return EMPTY;
  return encodeBinaryFrame(
    request.opcode,
    request.opaque,
    BinaryStatus.Success,
    casUnique,
    EMPTY,
    NO_KEY,
    value,
  );
}

function error(request: BinaryRequest, status: number): Uint8Array {
  return encodeBinaryError(request.opcode, request.opaque, status);
}

// get(k)(q), gat(k)(q), touch: an mg's VA (or HD for touch) is a hit, EN a miss.
function retrievalReply(request: BinaryRequest, reply: Reply): Uint8Array {
  if (reply.type !== ReplyType.MetaValue && reply.type !== ReplyType.MetaHeader) {
    if (reply.type !== ReplyType.MetaMiss) return unexpected(request, reply);
    if (request.quiet) return EMPTY;
    if (request.command === BinaryOp.GetK || request.command === BinaryOp.GatK) {
      // memcached write_bin_miss_response: the key, and no error text.
      const key = request.itemKey;
      return encodeBinaryFrame(
        request.opcode,
        request.opaque,
        BinaryStatus.KeyNotFound,
        0n,
        EMPTY,
        key,
        EMPTY,
      );
    }
    return error(request, BinaryStatus.KeyNotFound);
  }
  const extras = new Uint8Array(4);
  writeU32(extras, 0, metaNumber(reply.rest, 0x66 /* f */));
  const withKey = request.command === BinaryOp.GetK || request.command === BinaryOp.GatK;
  const value = request.command === BinaryOp.Touch ? EMPTY : (reply.value ?? EMPTY);
  return encodeBinaryFrame(
    request.opcode,
    request.opaque,
    BinaryStatus.Success,
    cas(reply),
    extras,
    withKey ? request.itemKey : NO_KEY,
    value,
  );
}

// ms: HD stored; NS is what memcached's complete_update_bin says for the requested command (an add
// that finds the key "exists", a replace that does not "not found", the rest "not stored").
function storeReply(request: BinaryRequest, reply: Reply): Uint8Array {
  switch (reply.type) {
    case ReplyType.MetaHeader:
      return success(request, cas(reply), EMPTY);
    case ReplyType.MetaNotStored:
      if (request.command === BinaryOp.Add) return error(request, BinaryStatus.KeyExists);
      if (request.command === BinaryOp.Replace) return error(request, BinaryStatus.KeyNotFound);
      return error(request, BinaryStatus.NotStored);
    default:
      return missOrExists(request, reply);
  }
}

// ma: VA carries the new value in decimal, sent as an unsigned 64-bit number.
function deltaReply(request: BinaryRequest, reply: Reply): Uint8Array {
  if (reply.type === ReplyType.MetaValue) {
    const value = new Uint8Array(8);
    const digits = reply.value ?? EMPTY;
    let number = 0n;
    for (const digit of digits) number = number * 10n + BigInt(digit - 0x30);
    writeU32(value, 0, Number((number >> 32n) & 0xffff_ffffn));
    writeU32(value, 4, Number(number & 0xffff_ffffn));
    return success(request, cas(reply), value);
  }
  if (reply.type === ReplyType.MetaNotStored) return error(request, BinaryStatus.NotStored);
  return missOrExists(request, reply);
}

function missOrExists(request: BinaryRequest, reply: Reply): Uint8Array {
  if (reply.type === ReplyType.MetaNotFound) return error(request, BinaryStatus.KeyNotFound);
  if (reply.type === ReplyType.MetaExists) return error(request, BinaryStatus.KeyExists);
  return unexpected(request, reply);
}

// memcached append_bin_stats: one frame per statistic (key = name, value = value), then an empty
// frame; an unknown group (ERROR) is "Not found".
function statsReply(request: BinaryRequest, reply: Reply): Uint8Array {
  if (reply.type !== ReplyType.Stats) return unexpected(request, reply);
  const frames: Uint8Array[] = [];
  let length = 0;
  for (const [name, value] of reply.stats ?? []) {
    const frame = encodeBinaryFrame(request.opcode, request.opaque, 0, 0n, EMPTY, ascii(name), ascii(value));
    frames.push(frame);
    length += frame.length;
  }
  const end = encodeBinaryFrame(request.opcode, request.opaque, 0, 0n, EMPTY, NO_KEY, EMPTY);
  frames.push(end);
  length += end.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const frame of frames) {
    out.set(frame, at);
    at += frame.length;
  }
  return out;
}

// A leaf's error line in binary: memcached's status for what it says, else an internal error with
// the leaf's words.
function errorReply(request: BinaryRequest, reply: Reply): Uint8Array {
  const text = reply.text;
  if (reply.type === ReplyType.Error) {
    if (request.command === BinaryOp.Stat) return error(request, BinaryStatus.KeyNotFound);
    return error(request, BinaryStatus.UnknownCommand);
  }
  if (reply.type === ReplyType.ClientError && text.includes("non-numeric"))
    return error(request, BinaryStatus.DeltaBadValue);
  if (reply.type === ReplyType.ServerError && text.startsWith("out of memory"))
    return error(request, BinaryStatus.OutOfMemory);
  if (reply.type === ReplyType.ServerError && text.startsWith("object too large"))
    return error(request, BinaryStatus.TooLarge);
  return encodeBinaryError(request.opcode, request.opaque, BinaryStatus.InternalError, text);
}

// A reply the request cannot have (a leaf that answered out of step): an internal error, never a
// wrong success.
function unexpected(request: BinaryRequest, reply: Reply): Uint8Array {
  return encodeBinaryError(
    request.opcode,
    request.opaque,
    BinaryStatus.InternalError,
    `unexpected reply type ${reply.type}`,
  );
}

function cas(reply: Reply): bigint {
  return metaBigint(reply.rest, 0x63 /* c */);
}

// The decimal token of meta return flag `flag` in `rest` ("f30 c7": f -> 30), 0 when absent.
function metaNumber(rest: Uint8Array, flag: number): number {
  return Number(metaBigint(rest, flag) & 0xffff_ffffn);
}

function metaBigint(rest: Uint8Array, flag: number): bigint {
  let at = 0;
  while (at < rest.length) {
    if (rest[at] === flag) {
      let value = 0n;
      for (let i = at + 1; i < rest.length && rest[i] !== 0x20; i++)
        value = value * 10n + BigInt((rest[i] as number) - 0x30);
      return value;
    }
    while (at < rest.length && rest[at] !== 0x20) at++;
    at++;
  }
  return 0n;
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

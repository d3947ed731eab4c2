// A streaming parser for memcached binary requests as a server receives them (the router's side of
// a binary connection): memcached proto_bin.c try_read_command_binary and dispatch_bin_command,
// with the same header checks and the same replies to bad frames, as the leaf's binary.cc. Each
// frame becomes the meta Request a leaf understands, so the route tree and the transport see one
// kind of request whichever protocol the client speaks.
//
//   feed(chunk) ─> 24-byte header ─bad magic─> close, no reply
//                     │ wait for extras + key
//                     v
//                  length checks ─bad─> error reply, close (as memcached)
//                     │ fold quiet opcode, per-opcode shape checks ─bad─> "Invalid arguments", close
//                     ├─ set/add/replace/append/prepend: too large? "Too large." and swallow the
//                     │   value; else wait for the whole value ──> ms
//                     ├─ get(k)(q) ─> mg f c v     gat(k)(q) ─> mg T f c v     touch ─> mg T f c
//                     ├─ delete ─> md [C]          incr/decr ─> ma D M v c [N J] [C]
//                     ├─ flush ─> flush_all, noop ─> mn, version, quit, stat ─> stats <group>
//                     ├─ SASL (with the sasl option): list mechanisms, PLAIN auth, answered here
//                     └─ unknown (verbosity, and SASL without the option) ─> "Unknown command", body swallowed
//
// With the sasl option (memcached -S) every frame but version and the SASL ones, before a PLAIN
// authentication succeeds, gets "Auth failure." and the connection closes, as memcached does.
//
// A key memcached's text rules refuse (a space or control byte) goes base64 with the meta b flag.
// Quiet opcodes carry the meta q flag (noreply): the router hides what q hides, which is what the
// quiet opcodes hide. Keys and values are views of the request's `raw`, never of the caller's chunk.

import { encodeBinaryError, encodeBinaryFrame } from "./binary-reply-encoder.ts";
import { BinaryOp, BinaryRequest, BinaryStatus } from "./binary-request.ts";
import { Op } from "./request.ts";
import type { RequestParserOptions, RequestSink } from "./request-framing.ts";
import { plainAuthenticates, type SaslPasswords } from "./sasl-plain.ts";

const HEADER_BYTES = 24;
const REQUEST_MAGIC = 0x80;
/** memcached KEY_MAX_LENGTH ("binprot supports 16bit keys, but internals are still 8bit"). */
const MAX_KEY_BYTES = 250;
/** complete_incr_bin: an expiration of all ones means "do not create a missing item". */
const NO_AUTO_CREATE = 0xffff_ffff;
/** memcached MAX_SASL_MECH_LEN: a longer mechanism name is "Invalid arguments". */
const MAX_MECHANISM_BYTES = 32;
const EMPTY = new Uint8Array(0);
const latin1 = new TextDecoder("latin1");
const PLAIN = asciiBytes("PLAIN");
const AUTHENTICATED = asciiBytes("Authenticated");

export interface BinaryRequestParserOptions extends RequestParserOptions {
  /** memcached -S: these users must authenticate with SASL PLAIN before any other command. */
  sasl?: SaslPasswords;
}

/** The binary framing state of one client connection. */
export class BinaryRequestParser {
  private readonly sink: RequestSink;
  private readonly maxItemBytes: number;
  private readonly sasl: SaslPasswords | undefined;
  private authenticated = false; // with sasl: a PLAIN authentication succeeded on this connection
  private pending = EMPTY; // bytes of an incomplete frame, gathered across chunks
  private pendingLength = 0;
  private swallow = 0; // bytes still to discard (a refused value, an unknown command's body)
  private closed = false;
  private held = false; // the sink asked to stop: feed() returns after the current frame

  constructor(sink: RequestSink, options: BinaryRequestParserOptions = { maxItemBytes: 1 << 30 }) {
    this.sink = sink;
    this.maxItemBytes = options.maxItemBytes;
    this.sasl = options.sasl;
  }

  /** As RequestParser.hold(): the running feed() returns right after the current frame. */
  hold(): void {
    this.held = true;
  }

  /**
   * Parses every complete frame of `chunk` (the caller may reuse it after this returns); returns
   * how many of its bytes were taken: all of them unless the sink called hold(), and then the
   * caller feeds the rest again later.
   */
  feed(chunk: Uint8Array): number {
    if (this.closed) return chunk.length;
    this.held = false;
    if (this.pendingLength === 0) {
      const used = this.parse(chunk, chunk.length);
      if (this.held) return used;
      if (!this.closed && used < chunk.length) this.keep(chunk.subarray(used));
      return chunk.length;
    }
    this.keep(chunk);
    const used = this.parse(this.pending, this.pendingLength);
    if (this.closed) return chunk.length;
    // Held after a frame: that frame began with the bytes kept from earlier chunks, so every byte
    // not used is from `chunk`, which the caller keeps.
    const left = this.held ? 0 : this.pendingLength - used;
    const taken = chunk.length - (this.pendingLength - used - left);
    this.pending.copyWithin(0, used, used + left);
    this.pendingLength = left;
    if (this.pendingLength === 0 && this.pending.length > 64 * 1024) this.pending = EMPTY;
    return taken;
  }

  // Appends `bytes` to the pending frame, growing the buffer to what the frame needs.
  private keep(bytes: Uint8Array): void {
    const needed = this.pendingLength + bytes.length;
    if (needed > this.pending.length) {
      const grown = new Uint8Array(Math.max(needed, this.pending.length * 2, 256));
      grown.set(this.pending.subarray(0, this.pendingLength));
      this.pending = grown;
    }
    this.pending.set(bytes, this.pendingLength);
    this.pendingLength = needed;
  }

  // Frames in buf[0, end); returns the bytes used.
  private parse(buf: Uint8Array, end: number): number {
    let pos = 0;
    while (pos < end && !this.closed && !this.held) {
      if (this.swallow > 0) {
        const n = Math.min(this.swallow, end - pos);
        pos += n;
        this.swallow -= n;
        continue;
      }
      const used = this.frame(buf, pos, end);
      if (used === 0) break;
      pos += used;
    }
    return this.closed ? end : pos;
  }

  // One frame at buf[at]: the bytes it used, 0 when more must arrive.
  private frame(buf: Uint8Array, at: number, end: number): number {
    const available = end - at;
    if (available < HEADER_BYTES) return 0;
    if (buf[at] !== REQUEST_MAGIC) {
      // memcached: "Invalid magic", the connection closes without a reply.
      this.close(EMPTY);
      return 0;
    }
    const opcode = buf[at + 1] as number;
    const keylen = ((buf[at + 2] as number) << 8) | (buf[at + 3] as number);
    const extlen = buf[at + 4] as number;
    const bodylen = u32(buf, at + 8);
    const opaque = u32(buf, at + 12);
    const headBytes = HEADER_BYTES + extlen + keylen;
    if (available < headBytes) return 0;
    if (keylen > bodylen || keylen + extlen > bodylen) {
      this.close(encodeBinaryError(opcode, opaque, BinaryStatus.UnknownCommand));
      return 0;
    }
    // memcached dispatch_bin_command: authenticated() before anything else is looked at.
    if (this.sasl !== undefined && !this.authenticated && !saslExempt(opcode)) {
      this.close(encodeBinaryError(opcode, opaque, BinaryStatus.AuthError));
      return 0;
    }
    const command = loudOf(opcode);
    if (keylen > MAX_KEY_BYTES) return this.invalid(opcode, opaque);
    const extras = at + HEADER_BYTES;
    const key = buf.subarray(extras + extlen, extras + extlen + keylen);
    const cas = (BigInt(u32(buf, at + 16)) << 32n) | BigInt(u32(buf, at + 20));
    const noBody = extlen === 0 && keylen === 0 && bodylen === 0;
    switch (command) {
      case BinaryOp.Version:
        if (!noBody) return this.invalid(opcode, opaque);
        this.sink.onRequest(simple(Op.Version, opcode, command, opaque, "version"));
        return headBytes;
      case BinaryOp.Noop:
        if (!noBody) return this.invalid(opcode, opaque);
        this.sink.onRequest(simple(Op.MetaNoop, opcode, command, opaque, "mn"));
        return headBytes;
      case BinaryOp.Quit:
        if (!noBody) return this.invalid(opcode, opaque);
        this.sink.onRequest(simple(Op.Quit, opcode, command, opaque, "quit"));
        this.closed = true; // nothing after quit is read
        return headBytes;
      case BinaryOp.Flush: {
        if (keylen !== 0 || bodylen !== extlen || (extlen !== 0 && extlen !== 4))
          return this.invalid(opcode, opaque);
        const request = simple(Op.FlushAll, opcode, command, opaque, "");
        if (extlen === 4) {
          request.exptime = u32(buf, extras) | 0;
          request.args = [String(u32(buf, extras))];
        }
        request.noreply = request.quiet;
        const delay = request.args.length > 0 ? ` ${request.args[0]}` : "";
        request.raw = asciiBytes(`flush_all${delay}${request.quiet ? " noreply" : ""}\r\n`);
        this.sink.onRequest(request);
        return headBytes;
      }
      case BinaryOp.Stat: {
        if (extlen !== 0) return this.invalid(opcode, opaque);
        const group = latin1.decode(key);
        const request = simple(Op.Stats, opcode, command, opaque, group === "" ? "stats" : `stats ${group}`);
        request.args = group === "" ? [] : group.split(" ");
        this.sink.onRequest(request);
        return headBytes; // memcached reads no value: the rest of the body is the next frame
      }
      case BinaryOp.Get:
      case BinaryOp.GetK:
        if (extlen !== 0 || bodylen !== keylen || keylen === 0) return this.invalid(opcode, opaque);
        return this.meta(Op.MetaGet, opcode, command, opaque, key, ["f", "c", "v"], EMPTY, headBytes);
      case BinaryOp.Touch:
      case BinaryOp.Gat:
      case BinaryOp.GatK: {
        if (extlen !== 4 || keylen === 0) return this.invalid(opcode, opaque);
        const exptime = u32(buf, extras) | 0;
        const flags = command === BinaryOp.Touch ? [`T${exptime}`, "f", "c"] : [`T${exptime}`, "f", "c", "v"];
        return this.meta(Op.MetaGet, opcode, command, opaque, key, flags, EMPTY, headBytes, exptime);
      }
      case BinaryOp.Delete: {
        if (keylen === 0 || extlen !== 0 || bodylen !== keylen) return this.invalid(opcode, opaque);
        const flags = cas !== 0n ? [`C${cas}`] : [];
        return this.meta(Op.MetaDelete, opcode, command, opaque, key, flags, EMPTY, headBytes);
      }
      case BinaryOp.Increment:
      case BinaryOp.Decrement: {
        if (keylen === 0 || extlen !== 20 || bodylen !== keylen + extlen) return this.invalid(opcode, opaque);
        const delta = u64(buf, extras);
        const initial = u64(buf, extras + 8);
        const expiration = u32(buf, extras + 16);
        const flags = [`D${delta}`, command === BinaryOp.Increment ? "MI" : "MD", "v", "c"];
        if (expiration !== NO_AUTO_CREATE) flags.push(`N${expiration | 0}`, `J${initial}`);
        if (cas !== 0n) flags.push(`C${cas}`);
        return this.meta(Op.MetaArithmetic, opcode, command, opaque, key, flags, EMPTY, headBytes);
      }
      case BinaryOp.Set:
      case BinaryOp.Add:
      case BinaryOp.Replace:
        if (extlen !== 8 || keylen === 0 || bodylen < keylen + 8) return this.invalid(opcode, opaque);
        return this.store(buf, at, available, opcode, command, opaque, key, cas, extlen, bodylen);
      case BinaryOp.Append:
      case BinaryOp.Prepend:
        if (keylen === 0 || extlen !== 0) return this.invalid(opcode, opaque);
        return this.store(buf, at, available, opcode, command, opaque, key, cas, extlen, bodylen);
      case BinaryOp.SaslListMechs:
        if (!noBody) return this.invalid(opcode, opaque);
        if (this.sasl === undefined) break;
        this.sink.onError(
          encodeBinaryFrame(opcode, opaque, BinaryStatus.Success, 0n, EMPTY, EMPTY, PLAIN),
          false,
        );
        return headBytes;
      case BinaryOp.SaslAuth:
      case BinaryOp.SaslStep:
        if (extlen !== 0 || keylen === 0) return this.invalid(opcode, opaque);
        if (this.sasl === undefined) break;
        return this.saslAuth(this.sasl, buf, at, available, opcode, opaque, key, bodylen);
    }
    // Unknown opcodes (verbosity, which memcached 1.6 does not serve, and SASL without the sasl
    // option): "Unknown command", and the rest of this frame is discarded.
    this.sink.onError(encodeBinaryError(opcode, opaque, BinaryStatus.UnknownCommand), false);
    this.swallow = bodylen - extlen - keylen;
    return headBytes;
  }

  // memcached process_bin_sasl_auth and process_bin_complete_sasl_auth: the mechanism is the key,
  // the client's message the value. Each attempt starts over: a failed one leaves the connection
  // unauthenticated (and open). PLAIN has one step, so a SASL step never succeeds.
  private saslAuth(
    passwords: SaslPasswords,
    buf: Uint8Array,
    at: number,
    available: number,
    opcode: number,
    opaque: number,
    mechanism: Uint8Array,
    bodylen: number,
  ): number {
    const headBytes = HEADER_BYTES + mechanism.length;
    const valueBytes = bodylen - mechanism.length;
    let refused: number | undefined;
    if (mechanism.length > MAX_MECHANISM_BYTES) refused = BinaryStatus.InvalidArguments;
    else if (valueBytes > this.maxItemBytes) refused = BinaryStatus.OutOfMemory;
    if (refused !== undefined) {
      this.sink.onError(encodeBinaryError(opcode, opaque, refused), false);
      this.swallow = valueBytes;
      return headBytes;
    }
    const frameBytes = HEADER_BYTES + bodylen;
    if (available < frameBytes) return 0;
    this.authenticated =
      opcode === BinaryOp.SaslAuth &&
      latin1.decode(mechanism) === "PLAIN" &&
      plainAuthenticates(passwords, buf.subarray(at + headBytes, at + frameBytes));
    this.sink.onError(
      this.authenticated
        ? encodeBinaryFrame(opcode, opaque, BinaryStatus.Success, 0n, EMPTY, EMPTY, AUTHENTICATED)
        : encodeBinaryError(opcode, opaque, BinaryStatus.AuthError),
      false,
    );
    return frameBytes;
  }

  // set/add/replace/append/prepend: refused from the header when too large (memcached replies E2BIG
  // and swallows the value), else stored with ms once the whole value is in.
  private store(
    buf: Uint8Array,
    at: number,
    available: number,
    opcode: number,
    command: number,
    opaque: number,
    key: Uint8Array,
    cas: bigint,
    extlen: number,
    bodylen: number,
  ): number {
    const valueBytes = bodylen - key.length - extlen;
    const clientFlags = extlen === 8 ? u32(buf, at + HEADER_BYTES) : 0;
    const headBytes = HEADER_BYTES + extlen + key.length;
    if (56 + key.length + 1 + valueBytes + 2 + (clientFlags !== 0 ? 4 : 0) > this.maxItemBytes) {
      if (command === BinaryOp.Set) {
        // "Avoid stale data persisting in cache because we failed alloc": the router deletes it.
        const refused = new BinaryRequest(Op.MetaSet, opcode, command, opaque);
        if (setKey(refused, key.slice())) this.sink.onTooLarge?.(refused);
      }
      this.sink.onError(encodeBinaryError(opcode, opaque, BinaryStatus.TooLarge), false);
      this.swallow = valueBytes;
      return headBytes;
    }
    const frameBytes = HEADER_BYTES + bodylen;
    if (available < frameBytes) return 0;
    const flags: string[] = [];
    if (extlen === 8) {
      const exptime = u32(buf, at + HEADER_BYTES + 4) | 0;
      flags.push(`F${clientFlags}`, `T${exptime}`);
    }
    flags.push("c");
    // A CAS turns set/add/replace into a compare-and-swap (memcached NREAD_CAS); append and prepend
    // compare it too, keeping their mode.
    if (cas !== 0n) flags.push(`C${cas}`);
    const mode = cas !== 0n && extlen === 8 ? "MS" : STORE_MODES[command];
    if (mode !== undefined) flags.push(mode);
    const value = buf.subarray(at + headBytes, at + frameBytes);
    return this.meta(Op.MetaSet, opcode, command, opaque, key, flags, value, frameBytes);
  }

  // A meta request for `key` with `flags` (plus b for a key text cannot carry, q when quiet).
  private meta(
    op: Op,
    opcode: number,
    command: number,
    opaque: number,
    key: Uint8Array,
    flags: string[],
    value: Uint8Array,
    used: number,
    exptime = 0,
  ): number {
    const request = new BinaryRequest(op, opcode, command, opaque);
    if (!setKey(request, key)) {
      // A key of control bytes whose base64 is longer than memcached's meta commands allow.
      this.sink.onError(encodeBinaryError(opcode, opaque, BinaryStatus.InvalidArguments), false);
      return used;
    }
    if (request.base64Key) flags.unshift("b");
    if (request.quiet) flags.push("q");
    request.metaFlags = flags;
    request.noreply = request.quiet;
    request.exptime = exptime;
    const size = op === Op.MetaSet ? ` ${value.length}` : "";
    const head = `${META_COMMANDS[op]} `;
    const tail = `${size}${flags.length > 0 ? ` ${flags.join(" ")}` : ""}\r\n`;
    const valueBytes = op === Op.MetaSet ? value.length + 2 : 0;
    const raw = new Uint8Array(head.length + request.key.length + tail.length + valueBytes);
    writeAscii(raw, 0, head);
    raw.set(request.key, head.length);
    writeAscii(raw, head.length + request.key.length, tail);
    request.keys = [raw.subarray(head.length, head.length + request.key.length)];
    if (op === Op.MetaSet) {
      const start = raw.length - valueBytes;
      raw.set(value, start);
      raw[raw.length - 2] = 0x0d;
      raw[raw.length - 1] = 0x0a;
      request.value = raw.subarray(start, start + value.length);
    }
    request.raw = raw;
    this.sink.onRequest(request);
    return used;
  }

  // memcached handle_binary_protocol_error: "Invalid arguments", then close.
  private invalid(opcode: number, opaque: number): number {
    this.close(encodeBinaryError(opcode, opaque, BinaryStatus.InvalidArguments));
    return 0;
  }

  private close(reply: Uint8Array): void {
    this.closed = true;
    this.pending = EMPTY;
    this.pendingLength = 0;
    this.sink.onError(reply, true);
  }
}

const META_COMMANDS: Partial<Record<Op, string>> = {
  [Op.MetaGet]: "mg",
  [Op.MetaSet]: "ms",
  [Op.MetaDelete]: "md",
  [Op.MetaArithmetic]: "ma",
};

// ms's M token for each storage command (set is ms's default).
const STORE_MODES: Partial<Record<number, string>> = {
  [BinaryOp.Add]: "ME",
  [BinaryOp.Replace]: "MR",
  [BinaryOp.Append]: "MA",
  [BinaryOp.Prepend]: "MP",
};

// memcached authenticated(): what a connection may send before it authenticates.
function saslExempt(opcode: number): boolean {
  return (
    opcode === BinaryOp.SaslListMechs ||
    opcode === BinaryOp.SaslAuth ||
    opcode === BinaryOp.SaslStep ||
    opcode === BinaryOp.Version
  );
}

// The loud opcode of a quiet one (memcached dispatch_bin_command's first switch).
function loudOf(opcode: number): number {
  switch (opcode) {
    case BinaryOp.SetQ:
      return BinaryOp.Set;
    case BinaryOp.AddQ:
      return BinaryOp.Add;
    case BinaryOp.ReplaceQ:
      return BinaryOp.Replace;
    case BinaryOp.DeleteQ:
      return BinaryOp.Delete;
    case BinaryOp.IncrementQ:
      return BinaryOp.Increment;
    case BinaryOp.DecrementQ:
      return BinaryOp.Decrement;
    case BinaryOp.QuitQ:
      return BinaryOp.Quit;
    case BinaryOp.FlushQ:
      return BinaryOp.Flush;
    case BinaryOp.AppendQ:
      return BinaryOp.Append;
    case BinaryOp.PrependQ:
      return BinaryOp.Prepend;
    case BinaryOp.GetQ:
      return BinaryOp.Get;
    case BinaryOp.GetKQ:
      return BinaryOp.GetK;
    case BinaryOp.GatQ:
      return BinaryOp.Gat;
    case BinaryOp.GatKQ:
      return BinaryOp.GatK;
    default:
      return opcode;
  }
}

// A request without a key, its raw the text command `line`.
function simple(op: Op, opcode: number, command: number, opaque: number, line: string): BinaryRequest {
  const request = new BinaryRequest(op, opcode, command, opaque);
  request.raw = asciiBytes(`${line}\r\n`);
  return request;
}

// The request's key as a meta command carries it: as sent when memcached's text rules allow it,
// else base64 with `decodedKey` the key (false when even base64 is too long). `keys[0]` is replaced
// by its view in `raw` once raw is built.
function setKey(request: BinaryRequest, key: Uint8Array): boolean {
  let text = true;
  for (const byte of key) if (byte <= 0x20 || byte === 0x7f) text = false;
  if (text) {
    request.keys = [key];
    return true;
  }
  const encoded = asciiBytes(Buffer.from(key).toString("base64"));
  if (encoded.length > MAX_KEY_BYTES) return false;
  request.keys = [encoded];
  request.base64Key = true;
  request.decodedKey = key.slice();
  return true;
}

function u32(buf: Uint8Array, at: number): number {
  return (
    (((buf[at] as number) << 24) |
      ((buf[at + 1] as number) << 16) |
      ((buf[at + 2] as number) << 8) |
      (buf[at + 3] as number)) >>>
    0
  );
}

function u64(buf: Uint8Array, at: number): bigint {
  return (BigInt(u32(buf, at)) << 32n) | BigInt(u32(buf, at + 4));
}

function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  writeAscii(out, 0, text);
  return out;
}

function writeAscii(out: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
}

// A streaming parser for memcached requests (text and meta protocol) as a server receives them: the
// router's side of a client connection. It answers malformed input exactly as memcached 1.6 does
// (proto_text.c; ported from native/src/protocol, which passes test/corpus), so a router in front
// of a pool is indistinguishable from memcached to a client sending bad bytes.
//
//   feed(chunk) ─> LINE ─"set/add/.../cas/ms" line, value fits─> DATA (bytes + CRLF) ─> onRequest
//                   │  ^     └─ value too large, or an ms flag error ─> SWALLOW (bytes + 2) ─> onError
//                   │  └──────────────────────────────────────────────────────────────────┘
//                   ├─ any other well-formed line ─> onRequest
//                   ├─ a line memcached answers with an error ─> onError(reply, false)
//                   └─ quit, an HTTP request line, a line too long ─> CLOSED (nothing more is parsed)
//
// Framing (lines, data blocks, tokens) follows memcached's rules; request-framing.ts, the base
// class, describes them. Numbers are read as util.c's safe_strto* read them (a 32-bit field takes
// the low 32 bits of a 64-bit parse). Every request's bytes are copied once, into `raw`; keys and
// the value are views of that copy, never of the caller's chunk (the socket reuses it).
//
// The other parts: request-meta-flags.ts (meta flag checks), request-bytes.ts (token bytes,
// numbers, base64), request-error-replies.ts (memcached's error replies).

import { ProtocolError } from "../errors.ts";
import { Op, Request } from "./request.ts";
import {
  bytes,
  decodeBase64,
  matches,
  parseI32,
  parseU32,
  parseU64,
  SPACE,
  startsWith,
} from "./request-bytes.ts";
import {
  BAD_FORMAT,
  DELETE_USAGE,
  ERROR,
  FLAGS_TOO_LONG,
  INVALID_DELTA_ARGUMENT,
  INVALID_EXPTIME,
  INVALID_OR_DUPLICATE_FLAG,
  MA_INVALID_MODE,
  MG_FLAGS_TOO_LONG,
  MS_INVALID_MODE,
  OPAQUE_TOO_LONG,
  SHUTDOWN_NOT_ENABLED,
  TOO_LARGE,
} from "./request-error-replies.ts";
import type { RequestParserOptions } from "./request-framing.ts";
import { RequestFraming, State } from "./request-framing.ts";
import { MetaFlags, opaqueTooLong } from "./request-meta-flags.ts";

export type { RequestParserOptions, RequestSink } from "./request-framing.ts";

/** memcached KEY_MAX_LENGTH. */
const MAX_KEY_BYTES = 250;
/** memcached MFLAG_MAX_OPT_LENGTH (a token count with the terminal token). */
const META_MAX_TOKENS = 20;
const INT_MAX = 0x7fff_ffff;

const GET = bytes("get");
const GETS = bytes("gets");
const GAT = bytes("gat");
const GATS = bytes("gats");
const BGET = bytes("bget");
const SET = bytes("set");
const ADD = bytes("add");
const REPLACE = bytes("replace");
const APPEND = bytes("append");
const PREPEND = bytes("prepend");
const CAS = bytes("cas");
const DELETE = bytes("delete");
const TOUCH = bytes("touch");
const INCR = bytes("incr");
const DECR = bytes("decr");
const STATS = bytes("stats");
const SHUTDOWN = bytes("shutdown");
const FLUSH_ALL = bytes("flush_all");
const VERSION = bytes("version");
const QUIT = bytes("quit");
const VERBOSITY = bytes("verbosity");
const LRU_CRAWLER = bytes("lru_crawler");
const HTTP = bytes("HTTP/");

/** A streaming request parser: one per client connection. */
export class RequestParser extends RequestFraming {
  private readonly flags = new MetaFlags(); // the meta flags of the current line, reset per command

  // ---- dispatch: memcached proto_text.c process_command_ascii ----

  protected onCommand(buf: Uint8Array, start: number, lf: number) {
    // "There are also no valid commands shorter than two bytes."
    if (this.count === 0 || this.tokenLength(0) < 2) return this.error(ERROR);
    const c0 = this.starts[0] as number;
    const c1 = this.ends[0] as number;
    const first = buf[c0];
    if (first === 0x6d /* m */ && c1 - c0 === 2) return this.meta(buf, start, lf, buf[c0 + 1] as number);
    if (first === 0x67 /* g */) {
      if (this.ntokens < 3) return this.error(ERROR);
      if (matches(buf, c0, c1, GET)) return this.get(buf, start, lf, Op.Get);
      if (matches(buf, c0, c1, GETS)) return this.get(buf, start, lf, Op.Gets);
      if (matches(buf, c0, c1, GAT)) return this.get(buf, start, lf, Op.Gat);
      if (matches(buf, c0, c1, GATS)) return this.get(buf, start, lf, Op.Gats);
      return this.error(ERROR);
    }
    // An unknown command under one of these first letters is ERROR, without the HTTP check below.
    const n = this.ntokens;
    switch (first) {
      case 0x73 /* s */:
        if (matches(buf, c0, c1, SET)) {
          return n === 6 || n === 7 ? this.update(buf, start, lf, Op.Set) : this.error(ERROR);
        }
        if (matches(buf, c0, c1, STATS)) return this.stats(buf, start, lf);
        if (matches(buf, c0, c1, SHUTDOWN)) return this.error(SHUTDOWN_NOT_ENABLED);
        return this.error(ERROR);
      case 0x61 /* a */:
        if (n !== 6 && n !== 7) return this.error(ERROR);
        if (matches(buf, c0, c1, ADD)) return this.update(buf, start, lf, Op.Add);
        if (matches(buf, c0, c1, APPEND)) return this.update(buf, start, lf, Op.Append);
        return this.error(ERROR);
      case 0x63 /* c */:
        if (matches(buf, c0, c1, CAS) && (n === 7 || n === 8)) return this.update(buf, start, lf, Op.Cas);
        return this.error(ERROR);
      case 0x69 /* i */:
        if (matches(buf, c0, c1, INCR) && (n === 4 || n === 5))
          return this.arithmetic(buf, start, lf, Op.Incr);
        return this.error(ERROR);
      case 0x64 /* d */:
        if (matches(buf, c0, c1, DELETE) && n >= 3 && n <= 5) return this.delete(buf, start, lf);
        if (matches(buf, c0, c1, DECR) && (n === 4 || n === 5))
          return this.arithmetic(buf, start, lf, Op.Decr);
        return this.error(ERROR);
      case 0x74 /* t */:
        if (matches(buf, c0, c1, TOUCH) && (n === 4 || n === 5)) return this.touch(buf, start, lf);
        return this.error(ERROR);
    }
    if (matches(buf, c0, c1, REPLACE) || matches(buf, c0, c1, PREPEND)) {
      if (n !== 6 && n !== 7) return this.error(ERROR);
      return this.update(buf, start, lf, buf[c0] === 0x72 /* r */ ? Op.Replace : Op.Prepend);
    }
    // "ancient binary get command ... keeping for compatibility reasons"
    if (matches(buf, c0, c1, BGET)) return n < 3 ? this.error(ERROR) : this.get(buf, start, lf, Op.Get);
    if (matches(buf, c0, c1, FLUSH_ALL)) {
      return n >= 2 && n <= 4 ? this.flushAll(buf, start, lf) : this.error(ERROR);
    }
    if (matches(buf, c0, c1, VERSION)) return this.emit(new Request(Op.Version), buf, start, lf);
    if (matches(buf, c0, c1, QUIT)) {
      this.state = State.Closed;
      return this.emit(new Request(Op.Quit), buf, start, lf);
    }
    if (matches(buf, c0, c1, VERBOSITY)) {
      return n === 3 || n === 4 ? this.verbosity(buf, start, lf) : this.error(ERROR);
    }
    if (matches(buf, c0, c1, LRU_CRAWLER)) {
      // process_lru_crawler_command: its subcommands and their errors are the leaves' to judge.
      const request = new Request(Op.LruCrawler);
      request.args = this.args(buf, 1, false);
      return this.emit(request, buf, start, lf);
    }
    const last = this.count - 1;
    if (startsWith(buf, this.starts[last] as number, this.ends[last] as number, HTTP)) {
      this.closeSilently(); // memcached closes a connection that speaks HTTP to it
      return;
    }
    this.error(ERROR);
  }

  // ---- text commands ----

  // process_get_command: get, gets, gat, gats (and bget). Keys may run past MAX_TOKENS.
  private get(buf: Uint8Array, start: number, lf: number, op: Op) {
    const request = new Request(op);
    let firstKey = 1;
    if (op === Op.Gat || op === Op.Gats) {
      const exptime = parseI32(buf, this.starts[1] as number, this.ends[1] as number);
      if (Number.isNaN(exptime)) return this.error(INVALID_EXPTIME);
      request.exptime = exptime;
      firstKey = 2;
    }
    const end = this.lineEnd;
    let at = firstKey < this.count ? (this.starts[firstKey] as number) : end;
    const raw = buf.slice(start, lf + 1);
    const keys = request.keys;
    while (at < end) {
      while (at < end && buf[at] === SPACE) at++;
      const keyStart = at;
      while (at < end && buf[at] !== SPACE) at++;
      if (at === keyStart) break;
      if (at - keyStart > MAX_KEY_BYTES) return this.error(BAD_FORMAT);
      keys.push(raw.subarray(keyStart - start, at - start));
    }
    request.raw = raw;
    this.sink.onRequest(request);
  }

  // process_update_command: set add replace append prepend cas. The value comes next (DATA), or is
  // swallowed when it cannot fit.
  private update(buf: Uint8Array, start: number, lf: number, op: Op) {
    const starts = this.starts;
    const ends = this.ends;
    const noreply = this.lastIsNoreply(buf);
    const keyLength = this.tokenLength(1);
    if (keyLength > MAX_KEY_BYTES) return this.error(BAD_FORMAT, noreply);
    const flags = parseU32(buf, starts[2] as number, ends[2] as number);
    const exptime = parseI32(buf, starts[3] as number, ends[3] as number);
    const size = parseI32(buf, starts[4] as number, ends[4] as number);
    if (flags < 0 || Number.isNaN(exptime) || Number.isNaN(size)) return this.error(BAD_FORMAT, noreply);
    let casUnique = 0n;
    if (op === Op.Cas) {
      const unique = parseU64(buf, starts[5] as number, ends[5] as number);
      if (unique === undefined) return this.error(BAD_FORMAT, noreply);
      casUnique = unique;
    }
    if (size < 0 || size > INT_MAX - 2) return this.error(BAD_FORMAT, noreply);
    const request = new Request(op);
    request.flags = flags;
    request.exptime = exptime;
    request.casUnique = casUnique;
    request.noreply = noreply;
    if (!this.fits(keyLength, size, flags)) return this.refuse(request, buf, start, lf, 0, size);
    this.startData(request, false, buf, start, lf, size);
    request.keys.push(this.keyOf(request, 1, start));
  }

  // A store whose value cannot fit: its block swallowed and answered (meta errors ignore q; a text
  // noreply silences it). A set or an ms, whose refusal drops the key's current item in memcached,
  // is told to the sink first (with the key and, for ms, the flags); add, replace, append, prepend
  // and cas leave the item alone.
  private refuse(
    request: Request,
    buf: Uint8Array,
    start: number,
    lf: number,
    firstFlag: number,
    size: number,
  ) {
    const dropsOld = request.op === Op.Set || request.op === Op.MetaSet;
    if (dropsOld && this.sink.onTooLarge !== undefined) {
      request.raw = buf.slice(start, lf + 1);
      if (firstFlag === 0) request.keys.push(this.keyOf(request, 1, start));
      else this.fillMeta(request, buf, start, firstFlag);
      this.sink.onTooLarge(request);
    }
    this.swallow(size + 2, request.noreply && request.op !== Op.MetaSet ? null : TOO_LARGE);
  }

  // memcached item_size_ok: a 48-byte header, the CAS, the key and a NUL, the value and its CRLF,
  // and 4 bytes for non-zero client flags.
  private fits(keyLength: number, size: number, flags: number): boolean {
    return 56 + keyLength + 1 + size + 2 + (flags !== 0 ? 4 : 0) <= this.maxItemBytes;
  }

  // process_delete_command: "delete <key> 0" is accepted for backwards compatibility.
  private delete(buf: Uint8Array, start: number, lf: number) {
    const n = this.ntokens;
    let noreply = false;
    if (n > 3) {
      const holdIsZero = this.tokenLength(2) === 1 && buf[this.starts[2] as number] === 0x30;
      noreply = this.lastIsNoreply(buf);
      const valid = (n === 4 && (holdIsZero || noreply)) || (n === 5 && holdIsZero && noreply);
      if (!valid) return this.error(DELETE_USAGE, noreply);
    }
    if (this.tokenLength(1) > MAX_KEY_BYTES) return this.error(BAD_FORMAT, noreply);
    const request = new Request(Op.Delete);
    request.noreply = noreply;
    this.emitWithKey(request, buf, start, lf);
  }

  private emitWithKey(request: Request, buf: Uint8Array, start: number, lf: number) {
    request.raw = buf.slice(start, lf + 1);
    request.keys.push(this.keyOf(request, 1, start));
    this.sink.onRequest(request);
  }

  private touch(buf: Uint8Array, start: number, lf: number) {
    const noreply = this.lastIsNoreply(buf);
    if (this.tokenLength(1) > MAX_KEY_BYTES) return this.error(BAD_FORMAT, noreply);
    const exptime = parseI32(buf, this.starts[2] as number, this.ends[2] as number);
    if (Number.isNaN(exptime)) return this.error(INVALID_EXPTIME, noreply);
    const request = new Request(Op.Touch);
    request.exptime = exptime;
    request.noreply = noreply;
    this.emitWithKey(request, buf, start, lf);
  }

  private arithmetic(buf: Uint8Array, start: number, lf: number, op: Op) {
    const noreply = this.lastIsNoreply(buf);
    if (this.tokenLength(1) > MAX_KEY_BYTES) return this.error(BAD_FORMAT, noreply);
    const delta = parseU64(buf, this.starts[2] as number, this.ends[2] as number);
    if (delta === undefined) return this.error(INVALID_DELTA_ARGUMENT, noreply);
    const request = new Request(op);
    request.delta = delta;
    request.noreply = noreply;
    this.emitWithKey(request, buf, start, lf);
  }

  private stats(buf: Uint8Array, start: number, lf: number) {
    const request = new Request(Op.Stats);
    request.args = this.args(buf, 1, false);
    this.emit(request, buf, start, lf);
  }

  // process_flush_all_command: an optional delay, then an optional noreply.
  private flushAll(buf: Uint8Array, start: number, lf: number) {
    const noreply = this.lastIsNoreply(buf);
    const request = new Request(Op.FlushAll);
    if (this.ntokens !== (noreply ? 3 : 2)) {
      const delay = parseI32(buf, this.starts[1] as number, this.ends[1] as number);
      if (Number.isNaN(delay)) return this.error(INVALID_EXPTIME, noreply);
      request.exptime = delay;
    }
    request.noreply = noreply;
    request.args = this.args(buf, 1, noreply);
    this.emit(request, buf, start, lf);
  }

  private verbosity(buf: Uint8Array, start: number, lf: number) {
    const noreply = this.lastIsNoreply(buf);
    if (parseU32(buf, this.starts[1] as number, this.ends[1] as number) < 0) {
      return this.error(BAD_FORMAT, noreply);
    }
    const request = new Request(Op.Verbosity);
    request.noreply = noreply;
    request.args = this.args(buf, 1, noreply);
    this.emit(request, buf, start, lf);
  }

  // ---- meta commands (memcached protocol.txt, "Meta Commands"); their errors ignore q ----

  private meta(buf: Uint8Array, start: number, lf: number, which: number) {
    switch (which) {
      case 0x67 /* g */:
        return this.metaGet(buf, start, lf);
      case 0x73 /* s */:
        return this.metaSet(buf, start, lf);
      case 0x64 /* d */:
        return this.metaDeleteOrArithmetic(buf, start, lf, Op.MetaDelete);
      case 0x61 /* a */:
        return this.metaDeleteOrArithmetic(buf, start, lf, Op.MetaArithmetic);
      case 0x65 /* e */:
        return this.metaDebug(buf, start, lf);
      case 0x6e /* n */:
        return this.emit(new Request(Op.MetaNoop), buf, start, lf);
      default:
        return this.error(ERROR);
    }
  }

  // process_mget_command.
  private metaGet(buf: Uint8Array, start: number, lf: number) {
    if (this.ntokens < 3) return this.error(ERROR);
    if (this.tokenLength(1) > MAX_KEY_BYTES) return this.error(BAD_FORMAT);
    if (this.ntokens > META_MAX_TOKENS) return this.error(MG_FLAGS_TOO_LONG);
    if (!this.flags.preparse(buf, this.starts, this.ends, 2, this.count)) return this.error(this.flags.error);
    if (opaqueTooLong(buf, this.starts, this.ends, 2, this.count)) return this.error(OPAQUE_TOO_LONG);
    this.emitMeta(new Request(Op.MetaGet), buf, start, lf, 2);
  }

  // process_mset_command. Once the size is known, an error swallows the data block ("We need to at
  // least try to get the size to properly slurp bad bytes after an error") and answers after it.
  private metaSet(buf: Uint8Array, start: number, lf: number) {
    if (this.ntokens < 3) return this.error(ERROR);
    if (this.tokenLength(1) > MAX_KEY_BYTES || this.ntokens === 3) return this.error(BAD_FORMAT);
    if (this.ntokens > META_MAX_TOKENS) return this.error(FLAGS_TOO_LONG);
    const size = parseI32(buf, this.starts[2] as number, this.ends[2] as number);
    if (Number.isNaN(size) || size < 0 || size > INT_MAX - 2) return this.error(BAD_FORMAT);
    if (!this.flags.preparse(buf, this.starts, this.ends, 3, this.count))
      return this.swallow(size + 2, this.flags.error);
    const mode = this.flags.mode;
    // S(et) E(add) A(ppend) P(repend) R(eplace), or none.
    if (mode !== 0 && mode !== 0x53 && mode !== 0x45 && mode !== 0x41 && mode !== 0x50 && mode !== 0x52) {
      return this.swallow(size + 2, MS_INVALID_MODE);
    }
    if (opaqueTooLong(buf, this.starts, this.ends, 3, this.count))
      return this.swallow(size + 2, OPAQUE_TOO_LONG);
    const keyLength = this.flags.key?.length ?? this.tokenLength(1);
    const request = new Request(Op.MetaSet);
    if (!this.fits(keyLength, size, this.flags.clientFlags))
      return this.refuse(request, buf, start, lf, 3, size);
    this.startData(request, true, buf, start, lf, size);
    this.fillMeta(request, buf, start, 3);
  }

  // process_mdelete_command and process_marithmetic_command: any flag error is one message.
  private metaDeleteOrArithmetic(buf: Uint8Array, start: number, lf: number, op: Op) {
    if (this.ntokens < 3) return this.error(ERROR);
    if (this.tokenLength(1) > MAX_KEY_BYTES) return this.error(BAD_FORMAT);
    if (this.ntokens > META_MAX_TOKENS) return this.error(FLAGS_TOO_LONG);
    if (!this.flags.preparse(buf, this.starts, this.ends, 2, this.count))
      return this.error(INVALID_OR_DUPLICATE_FLAG);
    if (op === Op.MetaArithmetic) {
      // I(ncrement) + D(ecrement) -, or none.
      const mode = this.flags.mode;
      if (mode !== 0 && mode !== 0x49 && mode !== 0x2b && mode !== 0x44 && mode !== 0x2d) {
        return this.error(MA_INVALID_MODE);
      }
    }
    // memcached checks ma's opaque only while writing its reply, after the arithmetic: a non-numeric
    // value is answered "cannot increment or decrement" first. That needs the item; this cannot.
    if (opaqueTooLong(buf, this.starts, this.ends, 2, this.count)) return this.error(OPAQUE_TOO_LONG);
    this.emitMeta(new Request(op), buf, start, lf, 2);
  }

  // process_meta_command ("me"): a "b" token right after the key marks it base64.
  private metaDebug(buf: Uint8Array, start: number, lf: number) {
    if (this.ntokens < 3 || this.tokenLength(1) > MAX_KEY_BYTES) return this.error(BAD_FORMAT);
    const request = new Request(Op.MetaDebug);
    if (this.ntokens >= 4 && this.tokenLength(2) === 1 && buf[this.starts[2] as number] === 0x62 /* b */) {
      const decoded = decodeBase64(buf, this.starts[1] as number, this.ends[1] as number);
      if (decoded === null) return this.error(BAD_FORMAT);
      request.base64Key = true;
      request.decodedKey = decoded;
    }
    request.raw = buf.slice(start, lf + 1);
    request.keys.push(this.keyOf(request, 1, start));
    request.metaFlags = this.args(buf, 2, false);
    this.sink.onRequest(request);
  }

  private emitMeta(request: Request, buf: Uint8Array, start: number, lf: number, firstFlag: number) {
    request.raw = buf.slice(start, lf + 1);
    this.fillMeta(request, buf, start, firstFlag);
    this.sink.onRequest(request);
  }

  // The key and what the flag pass found; request.raw is set.
  private fillMeta(request: Request, buf: Uint8Array, start: number, firstFlag: number) {
    request.keys.push(this.keyOf(request, 1, start));
    request.metaFlags = this.args(buf, firstFlag, false);
    request.noreply = this.flags.quiet;
    request.flags = this.flags.clientFlags;
    request.exptime = this.flags.exptime;
    request.casUnique = this.flags.cas;
    if (request.op === Op.MetaArithmetic) request.delta = this.flags.delta;
    if (this.flags.key !== null) {
      request.base64Key = true;
      request.decodedKey = this.flags.key;
    }
  }
}

/**
 * The one complete request in `bytes` (as a router sends a leaf: what a delete spool stored, what
 * a test builds with the encoder). Throws ProtocolError if `bytes` is not exactly one valid request.
 */
export function parseRequest(
  bytes: Uint8Array,
  options: RequestParserOptions = { maxItemBytes: 1 << 30 },
): Request {
  const requests: Request[] = [];
  let error: string | undefined;
  const parser = new RequestParser(
    {
      onRequest: (request) => requests.push(request),
      onError: (reply) => {
        error ??= new TextDecoder("latin1").decode(reply).trim() || "closed";
      },
    },
    options,
  );
  parser.feed(bytes);
  if (error !== undefined) throw new ProtocolError(`not a request: ${error}`);
  if (requests.length !== 1) throw new ProtocolError(`expected one complete request, got ${requests.length}`);
  return requests[0] as Request;
}

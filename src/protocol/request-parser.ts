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
// Framing follows memcached: a line ends at LF (the CR before it is dropped only when the line has
// more than one byte), a NUL ends the command, tokens split on spaces only, numbers are read as
// util.c's safe_strto* read them (a 32-bit field takes the low 32 bits of a 64-bit parse). A data
// block is exactly <bytes> + 2 bytes whatever it holds; when its last two are not CRLF the command
// is answered "CLIENT_ERROR bad data chunk" and parsing resumes right after the block.
//
// Every request's bytes are copied once, into `raw`; keys and the value are views of that copy,
// never of the caller's chunk (the socket reuses it).
import { Op, Request } from "./request.ts";

/** Where parsed requests go, in input order; usually the router's connection. Must not call feed(). */
export interface RequestSink {
  /** A complete, well-formed request. */
  onRequest(request: Request): void;
  /**
   * Input memcached answers with an error: `reply` is that reply, CRLF included (shared and
   * immutable: do not modify it), or empty when memcached closes without a word. Send it after the
   * replies to every earlier request; with `close`, close the connection after that.
   */
  onError(reply: Uint8Array, close: boolean): void;
  /**
   * Optional: a storage request (text or ms) refused because its value cannot fit in maxItemBytes,
   * told when its line is read; its data block is then swallowed and, unless a text noreply silences
   * it, onError answers "SERVER_ERROR object too large for cache". `value` is empty and `raw` is the
   * command line only. memcached also drops the key's current item for a text set and for every ms
   * ("Avoid stale data persisting in cache because we failed alloc"): a router that wants the same
   * deletes `request.itemKey` in its pool.
   */
  onTooLarge?(request: Request): void;
}

export interface RequestParserOptions {
  /**
   * memcached's item size limit (-I, 1 MiB by default): a value is refused with "SERVER_ERROR
   * object too large for cache" unless memcached's item would fit in it: 56 bytes of header and CAS,
   * the key and a NUL, the value and its CRLF, and 4 bytes more when the client flags are non-zero.
   */
  maxItemBytes: number;
  /**
   * A command line longer than this (bytes before its LF) closes the connection, as memcached's
   * 2048-byte read buffer check does (default 2048). Decided on the line's length alone, so it does
   * not depend on how the line was split into reads.
   */
  maxLineBytes?: number;
  /**
   * memcached lets a get/gets line grow past maxLineBytes without bound; this bounds it (default
   * the larger of 64 KiB and maxItemBytes, as the leaf does).
   */
  maxGetLineBytes?: number;
}

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const DASH = 0x2d;

/** memcached KEY_MAX_LENGTH. */
const MAX_KEY_BYTES = 250;
/** memcached MAX_TOKENS - 1: tokens split off a line; the rest is seen only by get. */
const MAX_TOKENS = 23;
/** memcached MFLAG_MAX_OPT_LENGTH (a token count with the terminal token) and MFLAG_MAX_OPAQUE_LENGTH. */
const META_MAX_TOKENS = 20;
const META_MAX_OPAQUE = 32;
/** A too-long partial line stays open if it is a get after at most this many spaces (memcached). */
const MAX_LEADING_SPACES = 100;
const INT_MAX = 0x7fff_ffff;
/** A gathered-line buffer larger than this is dropped once its line is parsed. */
const KEEP_LINE_BYTES = 16 * 1024;
const TWO_64 = 1n << 64n;
const TWO_63 = 1n << 63n;

const State = { Line: 0, Data: 1, Swallow: 2, Closed: 3 } as const;
type State = (typeof State)[keyof typeof State];

const bytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const reply = (text: string) => bytes(`${text}\r\n`);

const NO_BYTES = new Uint8Array(0);
const ERROR = reply("ERROR");
const SHUTDOWN_NOT_ENABLED = reply("ERROR: shutdown not enabled");
const BAD_FORMAT = reply("CLIENT_ERROR bad command line format");
const DELETE_USAGE = reply("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]");
const INVALID_EXPTIME = reply("CLIENT_ERROR invalid exptime argument");
const INVALID_DELTA_ARGUMENT = reply("CLIENT_ERROR invalid numeric delta argument");
const BAD_DATA_CHUNK = reply("CLIENT_ERROR bad data chunk");
const TOO_LARGE = reply("SERVER_ERROR object too large for cache");
const MG_FLAGS_TOO_LONG = reply("CLIENT_ERROR options flags are too long");
const FLAGS_TOO_LONG = reply("CLIENT_ERROR options flags too long");
const BAD_TOKEN = reply("CLIENT_ERROR bad token in command line format");
const DUPLICATE_FLAG = reply("CLIENT_ERROR duplicate flag");
const INVALID_FLAG = reply("CLIENT_ERROR invalid flag");
const DECODING_KEY = reply("CLIENT_ERROR error decoding key");
const M_TOKEN_LENGTH = reply("CLIENT_ERROR incorrect length for M token");
const INVALID_INITIAL = reply("CLIENT_ERROR invalid numeric initial value");
const INVALID_DELTA_VALUE = reply("CLIENT_ERROR invalid numeric delta value");
const OPAQUE_TOO_LONG = reply("CLIENT_ERROR opaque token too long");
const MS_INVALID_MODE = reply("CLIENT_ERROR invalid mode for ms M token");
const MA_INVALID_MODE = reply("CLIENT_ERROR invalid mode for ma M token");
const INVALID_OR_DUPLICATE_FLAG = reply("CLIENT_ERROR invalid or duplicate flag");

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
const NOREPLY = bytes("noreply");
const HTTP = bytes("HTTP/");
const GET_SPACE = bytes("get ");
const GETS_SPACE = bytes("gets ");

function matches(buf: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[start + i] !== word[i]) return false;
  return true;
}

function startsWith(buf: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  return end - start >= word.length && matches(buf, start, start + word.length, word);
}

function latin1(buf: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) text += String.fromCharCode(buf[i] as number);
  return text;
}

// C isspace() in the "C" locale.
function isCSpace(byte: number): boolean {
  return byte === SPACE || (byte >= 0x09 && byte <= 0x0d);
}

// ---- numbers: util.c safe_strtoull / safe_strtoul / safe_strtol on a 64-bit long ----

// Digits only and at most 15 of them: the value fits a double exactly.
function plainDigits(buf: Uint8Array, start: number, end: number): number {
  if (start >= end || end - start > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (buf[i] as number) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

let scannedNegative = false; // the sign of the last scanMagnitude()

// strtoull/strtoll's grammar (C whitespace, a sign, base-10 digits) and util.c's rule that the number
// ends the token or is followed by whitespace. The magnitude, or -1n when there are no digits, it
// exceeds 2^64 - 1 (ERANGE), or other bytes follow.
function scanMagnitude(buf: Uint8Array, start: number, end: number): bigint {
  let i = start;
  while (i < end && isCSpace(buf[i] as number)) i++;
  scannedNegative = false;
  if (i < end && (buf[i] === 0x2b || buf[i] === DASH)) {
    scannedNegative = buf[i] === DASH;
    i++;
  }
  const first = i;
  while (i < end && (buf[i] as number) >= 0x30 && (buf[i] as number) <= 0x39) i++;
  if (i === first) return -1n;
  if (i < end && !isCSpace(buf[i] as number)) return -1n;
  const magnitude = BigInt(latin1(buf, first, i));
  return magnitude < TWO_64 ? magnitude : -1n;
}

/** safe_strtoull: an unsigned 64-bit number, or undefined. */
function parseU64(buf: Uint8Array, start: number, end: number): bigint | undefined {
  const plain = plainDigits(buf, start, end);
  if (plain >= 0) return BigInt(plain);
  const magnitude = scanMagnitude(buf, start, end);
  if (magnitude < 0n) return undefined;
  const value = scannedNegative ? (TWO_64 - magnitude) % TWO_64 : magnitude; // strtoull negates
  // "only check for negative signs in the uncommon case when the unsigned number is so big that
  // it's negative as a signed number"
  if (value >= TWO_63 && buf.subarray(start, end).includes(DASH)) return undefined;
  return value;
}

/** safe_strtoul into a uint32_t: the low 32 bits, or -1. */
function parseU32(buf: Uint8Array, start: number, end: number): number {
  const plain = plainDigits(buf, start, end);
  if (plain >= 0) return plain >>> 0;
  const value = parseU64(buf, start, end);
  return value === undefined ? -1 : Number(BigInt.asUintN(32, value));
}

/** safe_strtol into an int32_t: the low 32 bits as signed, or NaN. */
function parseI32(buf: Uint8Array, start: number, end: number): number {
  const negative = buf[start] === DASH;
  const plain = plainDigits(buf, negative ? start + 1 : start, end);
  if (plain >= 0) return (negative ? -plain : plain) | 0;
  const magnitude = scanMagnitude(buf, start, end);
  if (magnitude < 0n) return Number.NaN;
  if (scannedNegative ? magnitude > TWO_63 : magnitude >= TWO_63) return Number.NaN; // ERANGE
  return Number(BigInt.asIntN(32, scannedNegative ? -magnitude : magnitude));
}

// ---- memcached base64.c base64_decode ----

const BASE64_INVALID = 0x80;
const BASE64 = (() => {
  const table = new Uint8Array(256).fill(BASE64_INVALID);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < 64; i++) table[alphabet.charCodeAt(i)] = i;
  table[0x3d] = 0; // '='
  return table;
})();

// Bytes outside the alphabet are skipped; decoding stops after the first block with padding ("=" or
// "==" drop one or two bytes, more is an error). null when nothing decodes (memcached: length 0).
function decodeBase64(buf: Uint8Array, start: number, end: number): Uint8Array | null {
  let count = 0;
  for (let i = start; i < end; i++) if (BASE64[buf[i] as number] !== BASE64_INVALID) count++;
  if (count === 0 || count % 4 !== 0) return null;
  const out = new Uint8Array((count / 4) * 3);
  let length = 0;
  let block = 0;
  let filled = 0;
  let pad = 0;
  for (let i = start; i < end; i++) {
    const value = BASE64[buf[i] as number] as number;
    if (value === BASE64_INVALID) continue;
    if (buf[i] === 0x3d) pad++;
    block = (block << 6) | value;
    if (++filled < 4) continue;
    out[length++] = block >>> 16;
    out[length++] = (block >>> 8) & 0xff;
    out[length++] = block & 0xff;
    block = 0;
    filled = 0;
    if (pad !== 0) {
      if (pad > 2) return null;
      length -= pad;
      break;
    }
  }
  return length === 0 ? null : out.subarray(0, length);
}

/** A streaming request parser: one per client connection. */
export class RequestParser {
  private readonly sink: RequestSink;
  private readonly maxItemBytes: number;
  private readonly maxLineBytes: number;
  private readonly maxGetLineBytes: number;
  private readonly lineCap: number; // longer than this is too long under either limit

  private state: State = State.Line;
  private line = new Uint8Array(256); // a line split across chunks, gathered
  private lineLength = 0;

  // Tokens of the current line: [starts[i], ends[i]) in its buffer; lineEnd is where a NUL cut it.
  private readonly starts = new Int32Array(MAX_TOKENS);
  private readonly ends = new Int32Array(MAX_TOKENS);
  private count = 0;
  private lineEnd = 0;

  // DATA: the storage request waiting for its block, which fills raw[dataFilled, dataEnd).
  private pending: Request | null = null;
  private pendingMeta = false; // ms: a bad data chunk is answered even with q
  private raw: Uint8Array = NO_BYTES;
  private dataStart = 0;
  private dataFilled = 0;
  private dataEnd = 0;

  // SWALLOW: bytes to discard, then the reply memcached sends once they are gone (null: none).
  private swallowLeft = 0;
  private swallowReply: Uint8Array | null = null;

  // The meta flags of the current line (memcached _meta_flag_preparse), reset per command.
  private readonly seenFlags = new Int32Array(128); // stamp of the command that saw each flag
  private stamp = 0;
  private metaError: Uint8Array = BAD_FORMAT;
  private metaQuiet = false;
  private metaMode = 0;
  private metaFlags = 0;
  private metaExptime = 0;
  private metaCas = 0n;
  private metaDelta = 1n;
  private metaKey: Uint8Array | null = null; // b: the decoded key

  constructor(sink: RequestSink, options: RequestParserOptions) {
    this.sink = sink;
    this.maxItemBytes = options.maxItemBytes;
    this.maxLineBytes = options.maxLineBytes ?? 2048;
    this.maxGetLineBytes = options.maxGetLineBytes ?? Math.max(64 * 1024, options.maxItemBytes);
    this.lineCap = Math.max(this.maxLineBytes, this.maxGetLineBytes);
  }

  /** Whether the connection is done: quit, an HTTP request, or a line too long was seen. */
  get closed(): boolean {
    return this.state === State.Closed;
  }

  /** Whether bytes of an unfinished request (or of a data block being swallowed) are held. */
  get midRequest(): boolean {
    return this.lineLength > 0 || this.state === State.Data || this.state === State.Swallow;
  }

  /** Parses `chunk`, calling the sink for each request or error it completes. Never throws on input. */
  feed(chunk: Uint8Array): void {
    let pos = 0;
    const length = chunk.length;
    while (pos < length) {
      switch (this.state) {
        case State.Line: {
          const lf = chunk.indexOf(LF, pos);
          if (lf === -1) {
            this.gatherPartial(chunk, pos, length);
            return;
          }
          if (this.lineLength === 0) {
            this.onLine(chunk, pos, lf);
          } else if (this.lineLength + (lf - pos) > this.lineCap) {
            this.closeSilently();
            return;
          } else {
            this.gather(chunk, pos, lf + 1);
            const end = this.lineLength - 1;
            this.lineLength = 0;
            this.onLine(this.line, 0, end);
            // A long multiget grew the buffer; an idle connection should not keep it.
            if (this.line.length > KEEP_LINE_BYTES) this.line = new Uint8Array(256);
          }
          pos = lf + 1;
          break;
        }
        case State.Data: {
          const take = Math.min(this.dataEnd - this.dataFilled, length - pos);
          this.raw.set(chunk.subarray(pos, pos + take), this.dataFilled);
          this.dataFilled += take;
          pos += take;
          if (this.dataFilled === this.dataEnd) this.finishStore();
          break;
        }
        case State.Swallow: {
          const take = Math.min(this.swallowLeft, length - pos);
          this.swallowLeft -= take;
          pos += take;
          if (this.swallowLeft === 0) {
            this.state = State.Line;
            const after = this.swallowReply;
            this.swallowReply = null;
            if (after !== null) this.sink.onError(after, false);
          }
          break;
        }
        default:
          return;
      }
    }
  }

  // ---- framing ----

  private gather(chunk: Uint8Array, start: number, end: number) {
    const needed = this.lineLength + (end - start);
    if (needed > this.line.length) {
      const grown = new Uint8Array(Math.max(needed, this.line.length * 2));
      grown.set(this.line.subarray(0, this.lineLength));
      this.line = grown;
    }
    this.line.set(chunk.subarray(start, end), this.lineLength);
    this.lineLength = needed;
  }

  // A line without its LF yet: kept, unless it is already too long (memcached closes then).
  private gatherPartial(chunk: Uint8Array, start: number, end: number) {
    this.gather(chunk, start, Math.min(end, start + (this.lineCap + 1 - this.lineLength)));
    if (this.lineLength > this.maxLineBytes && this.tooLong(this.line, 0, this.lineLength)) {
      this.closeSilently();
    }
  }

  // memcached try_read_command_ascii: past maxLineBytes only a get/gets (after at most 100 spaces)
  // may go on, up to maxGetLineBytes.
  private tooLong(buf: Uint8Array, start: number, size: number): boolean {
    if (size <= this.maxLineBytes) return false;
    let at = start;
    const end = start + size;
    while (at < end && buf[at] === SPACE) at++;
    if (at - start > MAX_LEADING_SPACES) return true;
    const multiget = startsWith(buf, at, end, GET_SPACE) || startsWith(buf, at, end, GETS_SPACE);
    return !multiget || size > this.maxGetLineBytes;
  }

  private closeSilently() {
    this.state = State.Closed;
    this.lineLength = 0;
    this.sink.onError(NO_BYTES, true);
  }

  private error(reply: Uint8Array, noreply = false) {
    if (!noreply) this.sink.onError(reply, false);
  }

  // memcached tokenize_command on buf[start, end), after cutting the line at its first NUL: at
  // most MAX_TOKENS tokens split on spaces.
  private tokenize(buf: Uint8Array, start: number, end: number) {
    const starts = this.starts;
    const ends = this.ends;
    let count = 0;
    let tokenStart = start;
    let i = start;
    for (; i < end; i++) {
      const byte = buf[i];
      if (byte === SPACE) {
        if (tokenStart !== i && count < MAX_TOKENS) {
          starts[count] = tokenStart;
          ends[count++] = i;
        }
        tokenStart = i + 1;
      } else if (byte === 0) {
        break;
      }
    }
    if (tokenStart < i && count < MAX_TOKENS) {
      starts[count] = tokenStart;
      ends[count++] = i;
    }
    this.count = count;
    this.lineEnd = i;
  }

  // memcached's ntokens: the tokens and the terminal token.
  private get ntokens(): number {
    return this.count + 1;
  }

  private tokenIs(buf: Uint8Array, index: number, word: Uint8Array): boolean {
    return matches(buf, this.starts[index] as number, this.ends[index] as number, word);
  }

  private tokenLength(index: number): number {
    return (this.ends[index] as number) - (this.starts[index] as number);
  }

  // The last token is "noreply" (memcached set_noreply_maybe).
  private lastIsNoreply(buf: Uint8Array): boolean {
    return this.tokenIs(buf, this.count - 1, NOREPLY);
  }

  // ---- dispatch: memcached proto_text.c process_command_ascii ----

  // One line buf[start, lf), buf[lf] its LF.
  private onLine(buf: Uint8Array, start: number, lf: number) {
    if (lf - start > this.maxLineBytes && this.tooLong(buf, start, lf - start)) {
      this.closeSilently();
      return;
    }
    // memcached drops the CR of CRLF only when the line has more than one byte.
    const end = lf - start > 1 && buf[lf - 1] === CR ? lf - 1 : lf;
    this.tokenize(buf, start, end);
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
    const last = this.count - 1;
    if (startsWith(buf, this.starts[last] as number, this.ends[last] as number, HTTP)) {
      this.closeSilently(); // memcached closes a connection that speaks HTTP to it
      return;
    }
    this.error(ERROR);
  }

  // Copies the line into the request's raw bytes and hands it over.
  private emit(request: Request, buf: Uint8Array, start: number, lf: number) {
    request.raw = buf.slice(start, lf + 1);
    this.sink.onRequest(request);
  }

  private keyOf(request: Request, index: number, start: number): Uint8Array {
    return request.raw.subarray((this.starts[index] as number) - start, (this.ends[index] as number) - start);
  }

  // Tokens first..count-1 as strings, without a trailing "noreply" when `noreply`.
  private args(buf: Uint8Array, first: number, noreply: boolean): string[] {
    const out: string[] = [];
    const end = noreply ? this.count - 1 : this.count;
    for (let i = first; i < end; i++) out.push(latin1(buf, this.starts[i] as number, this.ends[i] as number));
    return out;
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

  // A store whose value cannot fit: told to the sink (with the key and, for ms, the flags), then its
  // block swallowed and answered (meta errors ignore q; a text noreply silences it).
  private refuse(
    request: Request,
    buf: Uint8Array,
    start: number,
    lf: number,
    firstFlag: number,
    size: number,
  ) {
    if (this.sink.onTooLarge !== undefined) {
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

  private swallow(count: number, after: Uint8Array | null) {
    this.state = State.Swallow;
    this.swallowLeft = count;
    this.swallowReply = after;
  }

  // Allocates the request's raw bytes (line + value + CRLF), copies the line, and waits for the rest.
  private startData(
    request: Request,
    meta: boolean,
    buf: Uint8Array,
    start: number,
    lf: number,
    size: number,
  ) {
    const lineBytes = lf + 1 - start;
    const raw = new Uint8Array(lineBytes + size + 2);
    raw.set(buf.subarray(start, lf + 1));
    request.raw = raw;
    this.raw = raw;
    this.pending = request;
    this.pendingMeta = meta;
    this.dataStart = lineBytes;
    this.dataFilled = lineBytes;
    this.dataEnd = raw.length;
    this.state = State.Data;
  }

  // complete_nread_ascii: the block must end in CRLF.
  private finishStore() {
    const request = this.pending as Request;
    const raw = this.raw;
    const end = this.dataEnd;
    this.pending = null;
    this.raw = NO_BYTES;
    this.state = State.Line;
    if (raw[end - 2] !== CR || raw[end - 1] !== LF) {
      // "metaset mode always returns errors."
      return this.error(BAD_DATA_CHUNK, request.noreply && !this.pendingMeta);
    }
    request.value = raw.subarray(this.dataStart, end - 2);
    this.sink.onRequest(request);
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
    if (!this.preparseMetaFlags(buf, 2)) return this.error(this.metaError);
    if (this.opaqueTooLong(buf, 2)) return this.error(OPAQUE_TOO_LONG);
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
    if (!this.preparseMetaFlags(buf, 3)) return this.swallow(size + 2, this.metaError);
    const mode = this.metaMode;
    // S(et) E(add) A(ppend) P(repend) R(eplace), or none.
    if (mode !== 0 && mode !== 0x53 && mode !== 0x45 && mode !== 0x41 && mode !== 0x50 && mode !== 0x52) {
      return this.swallow(size + 2, MS_INVALID_MODE);
    }
    if (this.opaqueTooLong(buf, 3)) return this.swallow(size + 2, OPAQUE_TOO_LONG);
    const keyLength = this.metaKey?.length ?? this.tokenLength(1);
    const request = new Request(Op.MetaSet);
    if (!this.fits(keyLength, size, this.metaFlags)) return this.refuse(request, buf, start, lf, 3, size);
    this.startData(request, true, buf, start, lf, size);
    this.fillMeta(request, buf, start, 3);
  }

  // process_mdelete_command and process_marithmetic_command: any flag error is one message.
  private metaDeleteOrArithmetic(buf: Uint8Array, start: number, lf: number, op: Op) {
    if (this.ntokens < 3) return this.error(ERROR);
    if (this.tokenLength(1) > MAX_KEY_BYTES) return this.error(BAD_FORMAT);
    if (this.ntokens > META_MAX_TOKENS) return this.error(FLAGS_TOO_LONG);
    if (!this.preparseMetaFlags(buf, 2)) return this.error(INVALID_OR_DUPLICATE_FLAG);
    if (op === Op.MetaArithmetic) {
      // I(ncrement) + D(ecrement) -, or none.
      const mode = this.metaMode;
      if (mode !== 0 && mode !== 0x49 && mode !== 0x2b && mode !== 0x44 && mode !== 0x2d) {
        return this.error(MA_INVALID_MODE);
      }
    }
    // memcached checks ma's opaque only while writing its reply, after the arithmetic: a non-numeric
    // value is answered "cannot increment or decrement" first. That needs the item; this cannot.
    if (this.opaqueTooLong(buf, 2)) return this.error(OPAQUE_TOO_LONG);
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
    request.noreply = this.metaQuiet;
    request.flags = this.metaFlags;
    request.exptime = this.metaExptime;
    request.casUnique = this.metaCas;
    if (request.op === Op.MetaArithmetic) request.delta = this.metaDelta;
    if (this.metaKey !== null) {
      request.base64Key = true;
      request.decodedKey = this.metaKey;
    }
  }

  private opaqueTooLong(buf: Uint8Array, firstFlag: number): boolean {
    for (let i = firstFlag; i < this.count; i++) {
      if (buf[this.starts[i] as number] === 0x4f /* O */ && this.tokenLength(i) > META_MAX_OPAQUE)
        return true;
    }
    return false;
  }

  // memcached _meta_flag_preparse over tokens firstFlag..: an unknown or repeated flag stops at once;
  // a bad token records its error and the pass goes on (a later error replaces the message).
  // False with metaError set on failure.
  private preparseMetaFlags(buf: Uint8Array, firstFlag: number): boolean {
    const seen = this.seenFlags;
    const stamp = ++this.stamp;
    let failed = false;
    this.metaError = BAD_FORMAT;
    this.metaQuiet = false;
    this.metaMode = 0;
    this.metaFlags = 0;
    this.metaExptime = 0;
    this.metaCas = 0n;
    this.metaDelta = 1n;
    this.metaKey = null;
    for (let i = firstFlag; i < this.count; i++) {
      const start = this.starts[i] as number;
      const end = this.ends[i] as number;
      const flag = buf[start] as number;
      if (flag >= 127 || seen[flag] === stamp) {
        this.metaError = DUPLICATE_FLAG;
        return false;
      }
      seen[flag] = stamp;
      switch (flag) {
        case 0x62 /* b */:
          {
            // The key is at most 250 bytes of base64, so the binary key is at most 187 bytes.
            this.metaKey = decodeBase64(buf, this.starts[1] as number, this.ends[1] as number);
            if (this.metaKey === null) {
              this.metaError = DECODING_KEY;
              failed = true;
            }
            break;
          }
        case 0x4e /* N */:
        case 0x52 /* R */:
          if (Number.isNaN(parseI32(buf, start + 1, end))) {
            this.metaError = BAD_TOKEN;
            failed = true;
          }
          break;
        case 0x54 /* T */:
          {
            const seconds = parseI32(buf, start + 1, end);
            if (Number.isNaN(seconds)) {
              this.metaError = BAD_TOKEN;
              failed = true;
            } else {
              this.metaExptime = seconds;
            }
            break;
          }
        case 0x6c /* l */:
        case 0x68 /* h */:
        case 0x4f /* O */:
        case 0x50 /* P */:
        case 0x4c /* L */:
        case 0x6b /* k */:
        case 0x73 /* s */:
        case 0x74 /* t */:
        case 0x63 /* c */:
        case 0x66 /* f */:
        case 0x76 /* v */:
        case 0x75 /* u */:
        case 0x49 /* I */:
        case 0x78 /* x: md, memcached >= 1.6.21 */:
          break;
        case 0x71 /* q */:
          this.metaQuiet = true;
          break;
        case 0x46 /* F */:
          {
            const flags = parseU32(buf, start + 1, end);
            if (flags < 0) {
              failed = true; // the message so far stands
            } else {
              this.metaFlags = flags;
            }
            break;
          }
        case 0x43 /* C */:
        case 0x45 /* E: memcached >= 1.6.21 */:
          {
            const value = parseU64(buf, start + 1, end);
            if (value === undefined) {
              this.metaError = BAD_TOKEN;
              failed = true;
            } else if (flag === 0x43) {
              this.metaCas = value;
            }
            break;
          }
        case 0x4d /* M */:
          if (end - start !== 2) {
            this.metaError = M_TOKEN_LENGTH;
            failed = true;
          } else {
            this.metaMode = buf[start + 1] as number;
          }
          break;
        case 0x4a /* J */:
          if (parseU64(buf, start + 1, end) === undefined) {
            this.metaError = INVALID_INITIAL;
            failed = true;
          }
          break;
        case 0x44 /* D */:
          {
            const delta = parseU64(buf, start + 1, end);
            if (delta === undefined) {
              this.metaError = INVALID_DELTA_VALUE;
              failed = true;
            } else {
              this.metaDelta = delta;
            }
            break;
          }
        default:
          this.metaError = INVALID_FLAG;
          return false;
      }
    }
    return !failed;
  }
}

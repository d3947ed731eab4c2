// Framing of memcached requests as a server receives them, the base of RequestParser (its header
// draws the states): lines and the data blocks after storage commands, a line's tokens, and what
// memcached does with bytes that do not frame (a line too long, a bad data chunk). What a line
// means is the subclass's: it implements onCommand.
//
// Framing follows memcached: a line ends at LF (the CR before it is dropped only when the line has
// more than one byte), a NUL ends the command, tokens split on spaces only. A data block is exactly
// <bytes> + 2 bytes whatever it holds; when its last two are not CRLF the command is answered
// "CLIENT_ERROR bad data chunk" and parsing resumes right after the block.

import type { Request } from "./request.ts";
import { bytes, CR, LF, latin1, matches, SPACE, startsWith } from "./request-bytes.ts";
import { BAD_DATA_CHUNK, NO_BYTES } from "./request-error-replies.ts";

/**
 * Where parsed requests go, in input order; usually the router's connection. Must not call feed();
 * may call the parser's hold() to stop it after the request or error being handed over.
 */
export interface RequestSink {
  /** A complete, well-formed request. */
  onRequest(request: Request): void;
  /**
   * Input the parser answers itself: memcached's error for it (`reply` is that reply, CRLF
   * included: shared and immutable, do not modify it), empty when memcached closes without a word,
   * or the binary parser's answer to a SASL command. Send it after the replies to every earlier
   * request; with `close`, close the connection after that.
   */
  onError(reply: Uint8Array, close: boolean): void;
  /**
   * Optional: a text set or an ms (any mode) refused because its value cannot fit in maxItemBytes,
   * told when its line is read; its data block is then swallowed and, unless a text noreply silences
   * it, onError answers "SERVER_ERROR object too large for cache". `value` is empty and `raw` is the
   * command line only. memcached drops the key's current item for exactly these ("Avoid stale data
   * persisting in cache because we failed alloc"; a refused add, replace, append, prepend or cas
   * keeps it, and is not told here): a router that wants the same deletes `request.itemKey` in its pool.
   */
  onTooLarge?(request: Request): void;
}

/** Limits of a RequestParser; the defaults are memcached's. */
export interface RequestParserOptions {
  /**
   * memcached's item size limit (-I, 1 MiB by default): a value is refused with "SERVER_ERROR
   * object too large for cache" unless memcached's item would fit in it: 56 bytes of header and CAS,
   * the key and a NUL, the value and its CRLF, and 4 bytes more when the client flags are non-zero.
   */
  maxItemBytes: number;
  /**
   * A command line still without its LF after this many bytes closes the connection, as memcached's
   * 2048-byte read buffer check does (default 2048). As in memcached and the leaf, the check is on
   * what has arrived: a line whose LF came within the same bytes is parsed whatever its length (up
   * to maxGetLineBytes), so `delete <2100-byte key>` sent whole is answered "bad command line format".
   */
  maxLineBytes?: number;
  /**
   * memcached lets a get/gets line grow past maxLineBytes without bound; this bounds it (default
   * the larger of 64 KiB and maxItemBytes, as the leaf does).
   */
  maxGetLineBytes?: number;
}

/** memcached MAX_TOKENS - 1: tokens split off a line; the rest is seen only by get. */
const MAX_TOKENS = 23;
/** A too-long partial line stays open if it is a get after at most this many spaces (memcached). */
const MAX_LEADING_SPACES = 100;
/** A gathered-line buffer larger than this is dropped once its line is parsed. */
const KEEP_LINE_BYTES = 16 * 1024;

/** Where the parser is: in a line, in a data block, swallowing a refused block, or done. */
export const State = { Line: 0, Data: 1, Swallow: 2, Closed: 3 } as const;
export type State = (typeof State)[keyof typeof State];

const NOREPLY = bytes("noreply");
const GET_SPACE = bytes("get ");
const GETS_SPACE = bytes("gets ");

/** The framing state machine of one client connection; RequestParser gives lines their meaning. */
export abstract class RequestFraming {
  protected readonly sink: RequestSink;
  protected readonly maxItemBytes: number;
  private readonly maxLineBytes: number;
  private readonly maxGetLineBytes: number;
  private readonly lineCap: number; // longer than this is too long under either limit

  protected state: State = State.Line;
  private line = new Uint8Array(256); // a line split across chunks, gathered
  private lineLength = 0;

  // Tokens of the current line: [starts[i], ends[i]) in its buffer; lineEnd is where a NUL cut it.
  protected readonly starts = new Int32Array(MAX_TOKENS);
  protected readonly ends = new Int32Array(MAX_TOKENS);
  protected count = 0;
  protected lineEnd = 0;

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

  private held = false; // the sink asked to stop: feed() returns after the current request

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

  /**
   * Makes the running feed() return right after the request (or error) the sink is being handed:
   * the caller keeps the bytes feed() did not take and feeds them again later (the router's
   * backpressure on a client over its limits). Only meaningful from inside a sink callback.
   */
  hold(): void {
    this.held = true;
  }

  /**
   * Parses `chunk`, calling the sink for each request or error it completes; returns how many of its
   * bytes were taken: all of them unless the sink called hold(). Never throws on input.
   */
  feed(chunk: Uint8Array): number {
    let pos = 0;
    const length = chunk.length;
    this.held = false;
    while (pos < length) {
      switch (this.state) {
        case State.Line: {
          const lf = chunk.indexOf(LF, pos);
          if (lf === -1) {
            this.gatherPartial(chunk, pos, length);
            return length;
          }
          if (this.lineLength === 0) {
            this.onLine(chunk, pos, lf);
          } else if (this.lineLength + (lf - pos) > this.lineCap) {
            this.closeSilently();
            return length;
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
          return length;
      }
      if (this.held) {
        this.held = false;
        return pos;
      }
    }
    return length;
  }

  /** The line buf[start, lf) (buf[lf] its LF), tokenized into starts/ends/count: act on it. */
  protected abstract onCommand(buf: Uint8Array, start: number, lf: number): void;

  // One line buf[start, lf), buf[lf] its LF. Its length was checked while it was partial; a line
  // that arrived whole is only held to the overall bound.
  private onLine(buf: Uint8Array, start: number, lf: number) {
    if (lf - start > this.lineCap) {
      this.closeSilently();
      return;
    }
    // memcached drops the CR of CRLF only when the line has more than one byte.
    const end = lf - start > 1 && buf[lf - 1] === CR ? lf - 1 : lf;
    this.tokenize(buf, start, end);
    this.onCommand(buf, start, lf);
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

  protected closeSilently() {
    this.state = State.Closed;
    this.lineLength = 0;
    this.sink.onError(NO_BYTES, true);
  }

  protected error(reply: Uint8Array, noreply = false) {
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
  protected get ntokens(): number {
    return this.count + 1;
  }

  private tokenIs(buf: Uint8Array, index: number, word: Uint8Array): boolean {
    return matches(buf, this.starts[index] as number, this.ends[index] as number, word);
  }

  protected tokenLength(index: number): number {
    return (this.ends[index] as number) - (this.starts[index] as number);
  }

  // The last token is "noreply" (memcached set_noreply_maybe).
  protected lastIsNoreply(buf: Uint8Array): boolean {
    return this.tokenIs(buf, this.count - 1, NOREPLY);
  }

  // Copies the line into the request's raw bytes and hands it over.
  protected emit(request: Request, buf: Uint8Array, start: number, lf: number) {
    request.raw = buf.slice(start, lf + 1);
    this.sink.onRequest(request);
  }

  protected keyOf(request: Request, index: number, start: number): Uint8Array {
    return request.raw.subarray((this.starts[index] as number) - start, (this.ends[index] as number) - start);
  }

  // Tokens first..count-1 as strings, without a trailing "noreply" when `noreply`.
  protected args(buf: Uint8Array, first: number, noreply: boolean): string[] {
    const out: string[] = [];
    const end = noreply ? this.count - 1 : this.count;
    for (let i = first; i < end; i++) out.push(latin1(buf, this.starts[i] as number, this.ends[i] as number));
    return out;
  }

  protected swallow(count: number, after: Uint8Array | null) {
    this.state = State.Swallow;
    this.swallowLeft = count;
    this.swallowReply = after;
  }

  // Allocates the request's raw bytes (line + value + CRLF), copies the line, and waits for the rest.
  protected startData(
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
}

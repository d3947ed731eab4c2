// A streaming parser for memcached replies (text and meta protocol, memcached protocol.txt).
//
//   feed(chunk) ─> LINE ──"VALUE k f n [c]" / "VA n ..."──> DATA (n bytes) ─> DATA_CRLF ─┐
//                   │  ^                                                                   │
//                   │  └───────────────────────────────────────────────────────────────────┘
//                   └─ a line that completes a reply ─> sink.onReply(reply)
//
// Replies are framed by what the request expects (Expect), which the parser asks the sink for at
// the start of each reply: the same bytes "END" end a get reply and are an error for a set.
// Chunks may split a reply at any byte. A line split across chunks is gathered in a small buffer;
// a data block is copied once, into the array the reply hands over, so values never alias the
// chunk (the socket may reuse it) and are never decoded.
import { ProtocolError } from "../errors.ts";
import { Expect, Item, Reply, ReplyType } from "./reply.ts";

/** Where replies go; usually the connection, whose FIFO of pending requests knows what comes next. */
export interface ReplySink {
  /** What the oldest request still waiting for its reply expects, or undefined if none waits. */
  nextExpect(): Expect | undefined;
  /** A complete reply to that request. */
  onReply(reply: Reply): void;
}

export interface ReplyParserOptions {
  /** Longest reply line accepted, CRLF included (default 64 KiB); a longer one is a ProtocolError. */
  maxLineBytes?: number;
  /** Largest data block accepted (default 1 GiB, memcached's largest item size). */
  maxValueBytes?: number;
  /**
   * Bytes of dump lines kept per dump reply (default DEFAULT_MAX_DUMP_BYTES): the lines past it are
   * read and dropped, so a leaf's metadump of millions of keys holds this much at most.
   */
  maxDumpBytes?: number;
}

/** Dump lines a reply keeps by default (16 MiB: about 150,000 metadump lines). */
export const DEFAULT_MAX_DUMP_BYTES = 16 * 1024 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const NO_EXPECT = -1;
const SPANS_CHUNKS = -1; // replyStart of a reply not wholly inside the current chunk

const State = { Line: 0, Data: 1, DataCr: 2, DataLf: 3 } as const;
type State = (typeof State)[keyof typeof State];

const word = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const VALUE = word("VALUE");
const END = word("END");
const STAT = word("STAT");
const ERROR = word("ERROR");
const ERROR_COLON = word("ERROR:");
const CLIENT_ERROR = word("CLIENT_ERROR");
const SERVER_ERROR = word("SERVER_ERROR");
const VERSION = word("VERSION");
const STORED = word("STORED");
const NOT_STORED = word("NOT_STORED");
const EXISTS = word("EXISTS");
const NOT_FOUND = word("NOT_FOUND");
const DELETED = word("DELETED");
const TOUCHED = word("TOUCHED");
const OK = word("OK");
const ITEM_SPACE = word("ITEM ");
const KEY_EQUALS = word("key=");
const END_CRLF = word("END\r\n");

const NO_BYTES = new Uint8Array(0);
const latin1 = new TextDecoder("latin1");

function startsWith(buf: Uint8Array, start: number, end: number, prefix: Uint8Array): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

function wordIs(buf: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (buf[start + i] !== expected[i]) return false;
  return true;
}

// Index of the first space in buf[start, end), or end.
function spaceOrEnd(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && buf[i] !== SPACE) i++;
  return i;
}

// Decimal digits in buf[start, end) as a number, or -1 if empty, not all digits, or above 2^53.
function parseUint(buf: Uint8Array, start: number, end: number): number {
  if (start >= end || end - start > 16) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (buf[i] as number) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value <= Number.MAX_SAFE_INTEGER ? value : -1;
}

// Decimal digits in buf[start, end) as an unsigned 64-bit bigint, or undefined.
function parseUint64(buf: Uint8Array, start: number, end: number): bigint | undefined {
  if (end - start <= 15) {
    const small = parseUint(buf, start, end);
    return small < 0 ? undefined : BigInt(small);
  }
  if (end - start > 20) return undefined;
  for (let i = start; i < end; i++) {
    const byte = buf[i] as number;
    if (byte < 0x30 || byte > 0x39) return undefined;
  }
  const value = BigInt(latin1.decode(buf.subarray(start, end)));
  return value <= 0xffff_ffff_ffff_ffffn ? value : undefined;
}

function printable(buf: Uint8Array, start: number, end: number): string {
  const text = JSON.stringify(latin1.decode(buf.subarray(start, Math.min(end, start + 200))));
  return end - start > 200 ? `${text}...` : text;
}

/** A streaming reply parser: one per connection; call reset() when the connection is replaced. */
export class ReplyParser {
  private readonly sink: ReplySink;
  private readonly maxLineBytes: number;
  private readonly maxValueBytes: number;
  private readonly maxDumpBytes: number;

  private state: State = State.Line;
  private chunk: Uint8Array = NO_BYTES; // the chunk being parsed (only during feed)
  private replyStart = SPANS_CHUNKS; // where the current reply began in `chunk`, if it did
  private cursor = 0; // in `chunk`: just past the line or data block being handled
  private expect: number = NO_EXPECT; // of the reply being parsed; NO_EXPECT between replies
  private line = new Uint8Array(256); // a line split across chunks, gathered
  private lineLength = 0;
  private items: Item[] = []; // hits of the Values reply being parsed
  private stats: Map<string, string> | null = null; // lines of the Stats reply being parsed
  private data: Uint8Array = NO_BYTES; // the data block being filled (allocated when it spans chunks)
  private dataSize = 0;
  private dataFilled = 0;
  // The data block's owner, decided by its header line: a VALUE line's item, or a VA reply.
  private itemKey: Uint8Array = NO_BYTES;
  private itemFlags = 0;
  private itemCas: bigint | undefined = undefined;
  private metaReply: Reply | null = null;
  private dump: Uint8Array = NO_BYTES; // the lines of the Dump reply being parsed, as sent
  private dumpLength = 0;
  private dumpStarted = false; // a dump line came (kept or dropped): only more of them or END follow
  private dumpFull = false; // a dump line did not fit in maxDumpBytes: the rest are dropped

  constructor(sink: ReplySink, options: ReplyParserOptions = {}) {
    this.sink = sink;
    this.maxLineBytes = options.maxLineBytes ?? 64 * 1024;
    this.maxValueBytes = options.maxValueBytes ?? 1024 * 1024 * 1024;
    this.maxDumpBytes = options.maxDumpBytes ?? DEFAULT_MAX_DUMP_BYTES;
  }

  /** Forgets any partial reply (after the connection it came from is gone). */
  reset(): void {
    this.state = State.Line;
    this.expect = NO_EXPECT;
    this.lineLength = 0;
    this.items = [];
    this.stats = null;
    this.data = NO_BYTES;
    this.metaReply = null;
    this.dump = NO_BYTES;
    this.dumpLength = 0;
    this.dumpStarted = false;
    this.dumpFull = false;
  }

  /** Whether a reply has started and not finished (bytes are held for it). */
  get midReply(): boolean {
    return this.expect !== NO_EXPECT || this.lineLength > 0 || this.state !== State.Line;
  }

  /**
   * Parses `chunk`, calling sink.onReply for each reply it completes. Throws ProtocolError on bytes
   * that are not the expected reply; the parser must then be reset (and the connection dropped).
   */
  feed(chunk: Uint8Array): void {
    const pos = 0;
    const length = chunk.length;
    this.chunk = chunk;
    // A reply that began in an earlier chunk has no contiguous bytes to hand over.
    this.replyStart = this.expect === NO_EXPECT && this.lineLength === 0 ? 0 : SPANS_CHUNKS;
    try {
      this.parse(chunk, length, pos);
    } finally {
      this.chunk = NO_BYTES;
    }
  }

  private parse(chunk: Uint8Array, length: number, pos: number): void {
    while (pos < length) {
      switch (this.state) {
        case State.Line: {
          const lf = chunk.indexOf(LF, pos);
          if (lf === -1) {
            this.gather(chunk, pos, length);
            return;
          }
          if (this.lineLength === 0) {
            if (this.expect === NO_EXPECT) this.replyStart = pos;
            this.cursor = lf + 1;
            this.onLine(chunk, pos, lf);
          } else {
            this.gather(chunk, pos, lf + 1);
            this.onLine(this.line, 0, this.lineLength - 1);
            this.lineLength = 0;
          }
          pos = lf + 1;
          break;
        }
        case State.Data: {
          const want = this.dataSize - this.dataFilled;
          if (this.dataFilled === 0 && length - pos >= want + 2) {
            // The whole block and its CRLF are here: one copy.
            this.data = chunk.slice(pos, pos + want);
            pos += want;
            if (chunk[pos] !== CR || chunk[pos + 1] !== LF) throw this.badDataEnd();
            pos += 2;
            this.cursor = pos;
            this.onData();
            break;
          }
          if (this.dataFilled === 0) this.data = new Uint8Array(this.dataSize);
          const take = Math.min(want, length - pos);
          this.data.set(chunk.subarray(pos, pos + take), this.dataFilled);
          this.dataFilled += take;
          pos += take;
          if (this.dataFilled === this.dataSize) this.state = State.DataCr;
          break;
        }
        case State.DataCr:
          if (chunk[pos] !== CR) throw this.badDataEnd();
          pos++;
          this.state = State.DataLf;
          break;
        case State.DataLf:
          if (chunk[pos] !== LF) throw this.badDataEnd();
          pos++;
          this.cursor = pos;
          this.onData();
          break;
      }
    }
  }

  // Appends chunk[start, end) to the split-line buffer.
  private gather(chunk: Uint8Array, start: number, end: number): void {
    const needed = this.lineLength + (end - start);
    if (needed > this.maxLineBytes) {
      throw new ProtocolError(`reply line longer than ${this.maxLineBytes} bytes`);
    }
    if (needed > this.line.length) {
      const grown = new Uint8Array(Math.min(this.maxLineBytes, Math.max(needed, this.line.length * 2)));
      grown.set(this.line.subarray(0, this.lineLength));
      this.line = grown;
    }
    this.line.set(chunk.subarray(start, end), this.lineLength);
    this.lineLength = needed;
  }

  private badDataEnd(): ProtocolError {
    return new ProtocolError(`data block of ${this.dataSize} bytes is not followed by CRLF`);
  }

  // One complete line buf[start, lf), where buf[lf] is LF; the CR before it is checked here
  // (metadump's lines alone end in a bare LF, as memcached writes them).
  private onLine(buf: Uint8Array, start: number, lf: number): void {
    if (lf - start + 1 > this.maxLineBytes) {
      throw new ProtocolError(`reply line longer than ${this.maxLineBytes} bytes`);
    }
    const crlf = lf > start && buf[lf - 1] === CR;
    const end = crlf ? lf - 1 : lf;
    if (this.expect === NO_EXPECT) {
      const next = this.sink.nextExpect();
      if (next === undefined) {
        throw new ProtocolError(`reply ${printable(buf, start, end)} with no request waiting for one`);
      }
      this.expect = next;
    }
    if (!crlf && (this.expect !== Expect.Dump || lf === start)) {
      throw new ProtocolError(`reply line ${printable(buf, start, lf)} does not end in CRLF`);
    }
    const wordEnd = spaceOrEnd(buf, start, end);
    switch (this.expect) {
      case Expect.Values:
        this.valuesLine(buf, start, wordEnd, end);
        return;
      case Expect.Line:
        this.textLine(buf, start, wordEnd, end);
        return;
      case Expect.Stats:
        this.statsLine(buf, start, wordEnd, end);
        return;
      case Expect.Meta:
        this.metaLine(buf, start, wordEnd, end);
        return;
      case Expect.Dump:
        this.dumpLine(buf, start, wordEnd, end, lf);
        return;
      default:
        throw new ProtocolError(`unknown expected reply kind ${this.expect}`);
    }
  }

  private emit(reply: Reply): void {
    this.expect = NO_EXPECT;
    // The reply's own bytes, when they came in this one chunk: a proxy forwards them as they are.
    if (this.replyStart >= 0) reply.raw = this.chunk.slice(this.replyStart, this.cursor);
    this.replyStart = SPANS_CHUNKS;
    this.sink.onReply(reply);
  }

  // ERROR, CLIENT_ERROR msg, SERVER_ERROR msg: answers any request. Returns whether it was one.
  private errorLine(buf: Uint8Array, start: number, wordEnd: number, end: number): boolean {
    const first = buf[start];
    let type: ReplyType;
    if (first === 0x45 /* E */ && wordIs(buf, start, wordEnd, ERROR)) type = ReplyType.Error;
    else if (first === 0x45 && wordIs(buf, start, wordEnd, ERROR_COLON)) {
      // memcached's "ERROR: shutdown not enabled": `rest` is the message after ": ".
      this.emit(this.withRest(new Reply(ReplyType.Error), buf, wordEnd, end));
      return true;
    } else if (first === 0x43 /* C */ && wordIs(buf, start, wordEnd, CLIENT_ERROR))
      type = ReplyType.ClientError;
    else if (first === 0x53 /* S */ && wordIs(buf, start, wordEnd, SERVER_ERROR))
      type = ReplyType.ServerError;
    else return false;
    this.items = [];
    this.stats = null;
    this.emit(this.withRest(new Reply(type), buf, wordEnd, end));
    return true;
  }

  private withRest(reply: Reply, buf: Uint8Array, from: number, end: number): Reply {
    if (from + 1 < end) reply.rest = buf.slice(from + 1, end);
    return reply;
  }

  private unexpected(what: string, buf: Uint8Array, start: number, end: number): ProtocolError {
    return new ProtocolError(`unexpected ${what} reply line ${printable(buf, start, end)}`);
  }

  // VALUE <key> <flags> <bytes> [<cas unique>] ... END (protocol.txt, "Retrieval command").
  private valuesLine(buf: Uint8Array, start: number, wordEnd: number, end: number): void {
    if (wordIs(buf, start, wordEnd, VALUE)) {
      const keyEnd = spaceOrEnd(buf, wordEnd + 1, end);
      const flagsEnd = spaceOrEnd(buf, keyEnd + 1, end);
      const bytesEnd = spaceOrEnd(buf, flagsEnd + 1, end);
      const flags = parseUint(buf, keyEnd + 1, flagsEnd);
      const size = parseUint(buf, flagsEnd + 1, bytesEnd);
      let cas: bigint | undefined;
      if (bytesEnd < end) {
        cas = parseUint64(buf, bytesEnd + 1, end);
        if (cas === undefined) throw this.unexpected("get", buf, start, end);
      }
      if (keyEnd === wordEnd + 1 || flags < 0 || flags > 0xffff_ffff || size < 0) {
        throw this.unexpected("get", buf, start, end);
      }
      this.itemKey = buf.slice(wordEnd + 1, keyEnd);
      this.itemFlags = flags;
      this.itemCas = cas;
      this.startData(size);
      return;
    }
    if (wordIs(buf, start, wordEnd, END) && wordEnd === end) {
      const reply = new Reply(ReplyType.Values);
      reply.items = this.items;
      this.items = [];
      this.emit(reply);
      return;
    }
    if (!this.errorLine(buf, start, wordEnd, end)) throw this.unexpected("get", buf, start, end);
  }

  // STAT <name> <value> ... END
  private statsLine(buf: Uint8Array, start: number, wordEnd: number, end: number): void {
    if (wordIs(buf, start, wordEnd, STAT)) {
      const nameEnd = spaceOrEnd(buf, wordEnd + 1, end);
      if (nameEnd === wordEnd + 1) throw this.unexpected("stats", buf, start, end);
      const name = latin1.decode(buf.subarray(wordEnd + 1, nameEnd));
      const value = nameEnd < end ? latin1.decode(buf.subarray(nameEnd + 1, end)) : "";
      if (this.stats === null) this.stats = new Map();
      this.stats.set(name, value);
      return;
    }
    if (wordIs(buf, start, wordEnd, END) && wordEnd === end) {
      const reply = new Reply(ReplyType.Stats);
      reply.stats = this.stats ?? new Map();
      this.stats = null;
      this.emit(reply);
      return;
    }
    if (!this.errorLine(buf, start, wordEnd, end)) throw this.unexpected("stats", buf, start, end);
  }

  // Dump lines (`ITEM ...`, `key=...`, kept up to maxDumpBytes) then END; or, first, one status or
  // error line. A Dump reply's value is what is kept, line ends included.
  private dumpLine(buf: Uint8Array, start: number, wordEnd: number, end: number, lf: number): void {
    const dumpLine = startsWith(buf, start, end, ITEM_SPACE) || startsWith(buf, start, end, KEY_EQUALS);
    if (!dumpLine) {
      if (this.dumpStarted && !(wordIs(buf, start, wordEnd, END) && wordEnd === end && end < lf)) {
        throw this.unexpected("dump", buf, start, end);
      }
      if (!this.dumpStarted && this.errorLine(buf, start, wordEnd, end)) return;
      this.keepDumpLine(buf, start, lf + 1);
      const reply = new Reply(ReplyType.Dump);
      reply.value = this.dump.slice(0, this.dumpLength);
      this.dumpLength = 0;
      this.dumpStarted = false;
      this.dumpFull = false;
      if (this.dump.length > 64 * 1024) this.dump = NO_BYTES;
      this.emit(reply);
      return;
    }
    this.dumpStarted = true;
    this.dumpFull ||= this.dumpLength + (lf + 1 - start) + END_CRLF.length > this.maxDumpBytes;
    if (this.dumpFull)
      this.replyStart = SPANS_CHUNKS; // more was read than is kept: no raw bytes
    else this.keepDumpLine(buf, start, lf + 1);
  }

  private keepDumpLine(buf: Uint8Array, start: number, end: number): void {
    const needed = this.dumpLength + (end - start);
    if (needed > this.dump.length) {
      const grown = new Uint8Array(Math.max(needed, this.dump.length * 2, 256));
      grown.set(this.dump.subarray(0, this.dumpLength));
      this.dump = grown;
    }
    this.dump.set(buf.subarray(start, end), this.dumpLength);
    this.dumpLength = needed;
  }

  // One-line replies of storage, delete, touch, incr/decr, version, flush_all, verbosity.
  private textLine(buf: Uint8Array, start: number, wordEnd: number, end: number): void {
    const first = buf[start] as number;
    if (first >= 0x30 && first <= 0x39) {
      const number = parseUint64(buf, start, end);
      if (number === undefined) throw this.unexpected("incr/decr", buf, start, end);
      const reply = new Reply(ReplyType.Number);
      reply.number = number;
      this.emit(reply);
      return;
    }
    let type: ReplyType | undefined;
    if (wordEnd === end) {
      if (wordIs(buf, start, end, STORED)) type = ReplyType.Stored;
      else if (wordIs(buf, start, end, NOT_STORED)) type = ReplyType.NotStored;
      else if (wordIs(buf, start, end, EXISTS)) type = ReplyType.Exists;
      else if (wordIs(buf, start, end, NOT_FOUND)) type = ReplyType.NotFound;
      else if (wordIs(buf, start, end, DELETED)) type = ReplyType.Deleted;
      else if (wordIs(buf, start, end, TOUCHED)) type = ReplyType.Touched;
      else if (wordIs(buf, start, end, OK)) type = ReplyType.Ok;
      else if (wordIs(buf, start, end, END)) type = ReplyType.End;
    }
    if (type !== undefined) {
      this.emit(new Reply(type));
      return;
    }
    if (wordIs(buf, start, wordEnd, VERSION)) {
      this.emit(this.withRest(new Reply(ReplyType.Version), buf, wordEnd, end));
      return;
    }
    if (!this.errorLine(buf, start, wordEnd, end)) throw this.unexpected("one-line", buf, start, end);
  }

  // Meta replies: two-letter status, then return flags (protocol.txt, "Meta Commands").
  private metaLine(buf: Uint8Array, start: number, wordEnd: number, end: number): void {
    if (wordEnd - start === 2) {
      const a = buf[start] as number;
      const b = buf[start + 1] as number;
      let type: ReplyType | undefined;
      if (a === 0x56 /* V */ && b === 0x41 /* A */) {
        const sizeEnd = spaceOrEnd(buf, wordEnd + 1, end);
        const size = parseUint(buf, wordEnd + 1, sizeEnd);
        if (size < 0) throw this.unexpected("meta", buf, start, end);
        this.metaReply = this.withRest(new Reply(ReplyType.MetaValue), buf, sizeEnd, end);
        this.startData(size);
        return;
      }
      if (a === 0x48 /* H */ && b === 0x44 /* D */) type = ReplyType.MetaHeader;
      else if (a === 0x45 /* E */ && b === 0x4e /* N */) type = ReplyType.MetaMiss;
      else if (a === 0x4e /* N */ && b === 0x46 /* F */) type = ReplyType.MetaNotFound;
      else if (a === 0x4e /* N */ && b === 0x53 /* S */) type = ReplyType.MetaNotStored;
      else if (a === 0x45 /* E */ && b === 0x58 /* X */) type = ReplyType.MetaExists;
      else if (a === 0x4d /* M */ && b === 0x4e /* N */) type = ReplyType.MetaNoop;
      else if (a === 0x4d /* M */ && b === 0x45 /* E */) type = ReplyType.MetaDebug;
      if (type !== undefined) {
        this.emit(this.withRest(new Reply(type), buf, wordEnd, end));
        return;
      }
    }
    if (!this.errorLine(buf, start, wordEnd, end)) throw this.unexpected("meta", buf, start, end);
  }

  private startData(size: number): void {
    if (size > this.maxValueBytes) {
      throw new ProtocolError(`data block of ${size} bytes is larger than ${this.maxValueBytes}`);
    }
    this.data = NO_BYTES;
    this.dataSize = size;
    this.dataFilled = 0;
    this.state = size === 0 ? State.DataCr : State.Data;
  }

  // A data block and its CRLF are complete: it belongs to the VALUE item or VA reply before it.
  private onData(): void {
    const data = this.data;
    this.data = NO_BYTES;
    this.state = State.Line;
    const meta = this.metaReply;
    if (meta !== null) {
      this.metaReply = null;
      meta.value = data;
      this.emit(meta);
      return;
    }
    this.items.push(new Item(this.itemKey, this.itemFlags, this.itemCas, data));
    this.itemKey = NO_BYTES;
  }
}

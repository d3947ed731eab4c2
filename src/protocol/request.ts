// Requests of the memcached text and meta protocol as a server (the router) receives them: what
// request-parser.ts produces from a client's bytes and what route handles look at. A request
// carries bytes, never decoded strings, and its exact wire form for forwarding unchanged.
import { Expect } from "./reply.ts";

/** Every command the router understands (memcached protocol.txt). */
export const Op = {
  Get: 0,
  Gets: 1,
  Gat: 2,
  Gats: 3,
  Set: 4,
  Add: 5,
  Replace: 6,
  Append: 7,
  Prepend: 8,
  Cas: 9,
  Delete: 10,
  Touch: 11,
  Incr: 12,
  Decr: 13,
  MetaGet: 14,
  MetaSet: 15,
  MetaDelete: 16,
  MetaArithmetic: 17,
  MetaNoop: 18,
  MetaDebug: 19,
  Version: 20,
  Stats: 21,
  FlushAll: 22,
  Verbosity: 23,
  Quit: 24,
  LruCrawler: 25,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** What a route does with a request: reads may be hedged or failed over, writes fan out. */
export const OpKind = {
  /** get/gets/gat/gats (gat also touches, but answers like a read), mg, me. */
  Read: 0,
  /** Storage commands, cas, touch, incr/decr, ms, ma. */
  Write: 1,
  /** delete, md. */
  Delete: 2,
  /** version, stats, flush_all, verbosity, mn, quit, lru_crawler: answered or fanned out by the router itself. */
  Admin: 3,
} as const;
export type OpKind = (typeof OpKind)[keyof typeof OpKind];

const NO_BYTES = new Uint8Array(0);
const NO_STRINGS: readonly string[] = Object.freeze([]);

/**
 * One complete request. Fields that do not apply to its op are left empty. Keys and values are
 * copies the request owns (never views of the socket's buffer); `raw` is the whole request as
 * received (command line and data block), so a single-key request can be forwarded unchanged.
 */
export class Request {
  op: Op;
  /** The keys, in the client's order: one for single-key commands, one or more for get/gets/gat/gats. */
  keys: Uint8Array[] = [];
  /** Storage and ms: the data block (without its CRLF). */
  value: Uint8Array = NO_BYTES;
  /** Storage commands: client flags (unsigned 32-bit). Also ms: its F flag. */
  flags = 0;
  /**
   * Storage, touch, gat/gats: memcached's exptime as sent (signed, relative or absolute), as the
   * 32-bit number memcached reads it. Also flush_all: its delay; meta commands: their T flag.
   */
  exptime = 0;
  /** cas: the unique to compare. Also meta commands: their C flag. */
  casUnique = 0n;
  /** incr/decr: the amount (unsigned 64-bit). Also ma: its D flag (1 when absent). */
  delta = 0n;
  /** Text commands: "noreply" was given. Meta commands: the q flag was given (quiet mode). */
  noreply = false;
  /** Meta commands: the flag tokens after the key (and after the size for ms), as sent. */
  metaFlags: readonly string[] = NO_STRINGS;
  /** Meta commands: the key is base64 (b flag); `keys[0]` holds it as sent. */
  base64Key = false;
  /**
   * Meta commands with the b flag (me: a "b" token): the decoded key, which is what memcached stores
   * the item under (so `mg Zm9v b` and `get foo` name one item); null otherwise. See `itemKey`.
   */
  decodedKey: Uint8Array | null = null;
  /** flush_all delay, verbosity level, stats group: the arguments as sent (a trailing "noreply" excluded). */
  args: readonly string[] = NO_STRINGS;
  /**
   * Which of a destination's connections carries this request (the client connection's number):
   * requests of one client connection then reach each leaf on one socket, in the order sent, so
   * a set followed by a get sees its value. -1: any connection.
   */
  affinity = -1;
  /** The request's bytes exactly as received, CRLFs included. */
  raw: Uint8Array = NO_BYTES;
  private wireBytes: Uint8Array | null = null; // `wire`, once asked for

  constructor(op: Op) {
    this.op = op;
  }

  /**
   * What a server that must answer is sent (a router's connections match replies in order):
   * `raw` as received, or, for a noreply or q request, its encoding without them; computed once.
   * Set every field before the first read: the bytes are cached.
   */
  get wire(): Uint8Array {
    this.wireBytes ??= this.noreply ? encodeRequest(this, true) : this.raw;
    return this.wireBytes;
  }

  /**
   * A copy with `changes` applied and its bytes encoded anew: the one way a route changes a
   * request (a key of a multi-get, a capped TTL, a meta command of its own for the same item).
   * The copy keeps the client's noreply (and q: a meta copy is quiet if its flags say q), its
   * affinity and its key's form (base64 or not).
   */
  derive(changes: RequestChanges): Request {
    const copy = new Request(changes.op ?? this.op);
    copy.keys = changes.keys ?? this.keys;
    copy.value = changes.value ?? this.value;
    copy.flags = this.flags;
    copy.exptime = changes.exptime ?? this.exptime;
    copy.casUnique = this.casUnique;
    copy.delta = this.delta;
    copy.metaFlags = changes.metaFlags ?? this.metaFlags;
    copy.noreply = isMeta(copy.op) ? copy.metaFlags.includes("q") : this.noreply;
    copy.base64Key = this.base64Key;
    copy.decodedKey = this.decodedKey;
    copy.args = this.args;
    copy.affinity = this.affinity;
    copy.raw = encodeRequest(copy, false);
    return copy;
  }

  /** The first key (single-key commands have exactly one). */
  get key(): Uint8Array {
    return this.keys[0] ?? NO_BYTES;
  }

  /** The key the item is stored under, for hashing and routing: `decodedKey` if set, else `key`. */
  get itemKey(): Uint8Array {
    return this.decodedKey ?? this.key;
  }

  get kind(): OpKind {
    return opKind(this.op);
  }

  /** The shape of reply a server sends for this request (when it sends one). */
  get expect(): Expect {
    if (this.op === Op.Stats && this.args[0] === "cachedump") return Expect.Dump;
    return expectOf(this.op);
  }
}

export function opKind(op: Op): OpKind {
  switch (op) {
    case Op.Get:
    case Op.Gets:
    case Op.Gat:
    case Op.Gats:
    case Op.MetaGet:
    case Op.MetaDebug:
      return OpKind.Read;
    case Op.Delete:
    case Op.MetaDelete:
      return OpKind.Delete;
    case Op.MetaNoop:
    case Op.Version:
    case Op.Stats:
    case Op.FlushAll:
    case Op.Verbosity:
    case Op.Quit:
    case Op.LruCrawler:
      return OpKind.Admin;
    default:
      return OpKind.Write;
  }
}

export function expectOf(op: Op): Expect {
  switch (op) {
    case Op.Get:
    case Op.Gets:
    case Op.Gat:
    case Op.Gats:
      return Expect.Values;
    case Op.Stats:
      return Expect.Stats;
    case Op.LruCrawler:
      return Expect.Dump;
    case Op.MetaGet:
    case Op.MetaSet:
    case Op.MetaDelete:
    case Op.MetaArithmetic:
    case Op.MetaNoop:
    case Op.MetaDebug:
      return Expect.Meta;
    default:
      return Expect.Line;
  }
}

/** What Request.derive may change; every other field is copied. */
export interface RequestChanges {
  op?: Op;
  keys?: Uint8Array[];
  value?: Uint8Array;
  /** Storage, touch, gat/gats: the exptime (meta commands carry theirs in metaFlags' T). */
  exptime?: number;
  /** Meta commands: every flag token (b and q included, as the copy should send them). */
  metaFlags?: readonly string[];
}

function isMeta(op: Op): boolean {
  return op >= Op.MetaGet && op <= Op.MetaDebug;
}

/** Each op's command name as a client sends it (also the router's metric label). */
export const OP_COMMANDS: Readonly<Record<Op, string>> = {
  [Op.Get]: "get",
  [Op.Gets]: "gets",
  [Op.Gat]: "gat",
  [Op.Gats]: "gats",
  [Op.Set]: "set",
  [Op.Add]: "add",
  [Op.Replace]: "replace",
  [Op.Append]: "append",
  [Op.Prepend]: "prepend",
  [Op.Cas]: "cas",
  [Op.Delete]: "delete",
  [Op.Touch]: "touch",
  [Op.Incr]: "incr",
  [Op.Decr]: "decr",
  [Op.MetaGet]: "mg",
  [Op.MetaSet]: "ms",
  [Op.MetaDelete]: "md",
  [Op.MetaArithmetic]: "ma",
  [Op.MetaNoop]: "mn",
  [Op.MetaDebug]: "me",
  [Op.Version]: "version",
  [Op.Stats]: "stats",
  [Op.FlushAll]: "flush_all",
  [Op.Verbosity]: "verbosity",
  [Op.Quit]: "quit",
  [Op.LruCrawler]: "lru_crawler",
};

// Ops that carry a key: encodeRequest writes them from their fields, the others go as received.
function hasKey(op: Op): boolean {
  return op <= Op.MetaArithmetic || op === Op.MetaDebug;
}

const ascii = new TextEncoder();
const SPACE = ascii.encode(" ");
const CRLF = ascii.encode("\r\n");
const NOREPLY = ascii.encode(" noreply");

// A request's wire form from its fields (which the parser has checked, so keys are not checked
// again: memcached's key rules are the parser's). `loud`: without noreply, and without the meta q
// flag. Ops without keys (version, stats, flush_all...) go out as received.
function encodeRequest(request: Request, loud: boolean): Uint8Array {
  if (!hasKey(request.op)) return loud ? stripNoreply(request.raw) : request.raw;
  const parts: Uint8Array[] = [ascii.encode(OP_COMMANDS[request.op])];
  const token = (text: string) => parts.push(SPACE, ascii.encode(text));
  const key = (bytes: Uint8Array) => parts.push(SPACE, bytes);
  switch (request.op) {
    case Op.Get:
    case Op.Gets:
      for (const each of request.keys) key(each);
      break;
    case Op.Gat:
    case Op.Gats:
      token(String(request.exptime));
      for (const each of request.keys) key(each);
      break;
    case Op.Set:
    case Op.Add:
    case Op.Replace:
    case Op.Append:
    case Op.Prepend:
    case Op.Cas:
      key(request.key);
      token(`${request.flags >>> 0} ${request.exptime | 0} ${request.value.length}`);
      if (request.op === Op.Cas) token(String(request.casUnique));
      break;
    case Op.Delete:
      key(request.key);
      break;
    case Op.Touch:
      key(request.key);
      token(String(request.exptime | 0));
      break;
    case Op.Incr:
    case Op.Decr:
      key(request.key);
      token(String(request.delta));
      break;
    default: {
      // Meta commands: the key as sent (base64 if b), ms's size, then the flags.
      key(request.key);
      if (request.op === Op.MetaSet) token(String(request.value.length));
      for (const flag of request.metaFlags) if (!(loud && flag === "q")) token(flag);
    }
  }
  if (request.noreply && !loud && !isMeta(request.op) && request.op > Op.Gats) parts.push(NOREPLY);
  parts.push(CRLF);
  if (request.op === Op.MetaSet || (request.op >= Op.Set && request.op <= Op.Cas))
    parts.push(request.value, CRLF);
  return concatBytes(parts);
}

// Ops the router sends as received: drop a trailing " noreply" from the command line.
function stripNoreply(raw: Uint8Array): Uint8Array {
  const end = raw.length - 2; // before CRLF
  const suffix = NOREPLY.length;
  if (end < suffix) return raw;
  for (let i = 0; i < suffix; i++) if (raw[end - suffix + i] !== NOREPLY[i]) return raw;
  return concatBytes([raw.subarray(0, end - suffix), CRLF]);
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

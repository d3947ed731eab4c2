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
  /** version, stats, flush_all, verbosity, mn, quit: answered or fanned out by the router itself. */
  Admin: 3,
} as const;
export type OpKind = (typeof OpKind)[keyof typeof OpKind];

const NO_BYTES = new Uint8Array(0);

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
  metaFlags: string[] = [];
  /** Meta commands: the key is base64 (b flag); `keys[0]` holds it as sent. */
  base64Key = false;
  /**
   * Meta commands with the b flag (me: a "b" token): the decoded key, which is what memcached stores
   * the item under (so `mg Zm9v b` and `get foo` name one item); null otherwise. See `itemKey`.
   */
  decodedKey: Uint8Array | null = null;
  /** flush_all delay, verbosity level, stats group: the arguments as sent (a trailing "noreply" excluded). */
  args: string[] = [];
  /**
   * Which of a destination's connections carries this request (the client connection's number):
   * requests of one client connection then reach each leaf on one socket, in the order sent, so
   * a set followed by a get sees its value. -1: any connection.
   */
  affinity = -1;
  /** The request's bytes exactly as received, CRLFs included. */
  raw: Uint8Array = NO_BYTES;

  constructor(op: Op) {
    this.op = op;
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

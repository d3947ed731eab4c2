// Replies of the memcached text and meta protocol as the parser hands them over, and what a
// request expects back (memcached protocol.txt). Replies carry bytes, never decoded values.

/**
 * The shape of reply a request expects, so a parser can frame replies without looking at the
 * requests: a get is VALUE blocks then END, a meta command one line (VA lines carry data).
 */
export const Expect = {
  /** get, gets, gat, gats: zero or more `VALUE key flags bytes [cas]` blocks, then END. */
  Values: 0,
  /** Storage, delete, touch, incr/decr, version, flush_all, verbosity: one line. */
  Line: 1,
  /** stats: `STAT name value` lines, then END. */
  Stats: 2,
  /** mg, ms, md, ma, mn, me: one line; `VA <size> <flags>*` is followed by a data block. */
  Meta: 3,
  /**
   * stats cachedump (`ITEM ...` lines) and lru_crawler (metadump's `key=...` lines, which end in a
   * bare LF): dump lines then END, or one status line (OK, BUSY ..., BADCLASS ..., an error).
   */
  Dump: 4,
} as const;
export type Expect = (typeof Expect)[keyof typeof Expect];

/** What a reply said. Error types can answer any request. */
export const ReplyType = {
  /** A retrieval reply: `items` holds the hits (possibly none). */
  Values: 0,
  Stored: 1,
  NotStored: 2,
  Exists: 3,
  NotFound: 4,
  Deleted: 5,
  Touched: 6,
  Ok: 7,
  End: 8,
  /** An incr/decr result: `number`. */
  Number: 9,
  /** `VERSION x`: `text` is x. */
  Version: 10,
  /** A stats reply: `stats` holds the lines. */
  Stats: 11,
  /** `ERROR`: an unknown command. */
  Error: 12,
  /** `CLIENT_ERROR msg`: `text` is msg. */
  ClientError: 13,
  /** `SERVER_ERROR msg`: `text` is msg. */
  ServerError: 14,
  /** Meta `VA <size> <flags>*`: `value` holds the data, `rest` the flags. */
  MetaValue: 15,
  /** Meta HD (success, no value). The meta types carry their return flags in `rest`. */
  MetaHeader: 16,
  MetaMiss: 17, // EN
  MetaNotFound: 18, // NF
  MetaNotStored: 19, // NS
  MetaExists: 20, // EX
  MetaNoop: 21, // MN
  /** `ME key k=v ...` (meta debug): `rest` is everything after "ME ". */
  MetaDebug: 22,
  /**
   * A reply to a dump (Expect.Dump) other than an error: `value` holds it as sent, line ends
   * included: the dump's lines and its END line, or one status line (OK, BUSY ...).
   */
  Dump: 23,
} as const;
export type ReplyType = (typeof ReplyType)[keyof typeof ReplyType];

const latin1Decoder = new TextDecoder("latin1");

/** One hit of a retrieval reply. `key` and `value` are copies the reply owns. */
export class Item {
  constructor(
    readonly key: Uint8Array,
    /** Client flags, an unsigned 32-bit number. */
    readonly flags: number,
    /** The CAS unique (gets/gats only), an unsigned 64-bit number. */
    readonly cas: bigint | undefined,
    readonly value: Uint8Array,
  ) {}
}

const NO_BYTES = new Uint8Array(0);

/**
 * One complete reply. Every reply has the same shape (one class, so hot code stays monomorphic);
 * fields that do not apply to its type are empty.
 */
export class Reply {
  type: ReplyType;
  /** Values replies: the hits in the order the server sent them. */
  items: Item[] | null = null;
  /** MetaValue replies: the data block. Dump replies: the lines as sent. */
  value: Uint8Array | null = null;
  /** Bytes after the status word (and after the size of a VA line), without the leading space. */
  rest: Uint8Array = NO_BYTES;
  /** Number replies: the counter, an unsigned 64-bit number. */
  number = 0n;
  /** Stats replies: name -> value, in the server's order. */
  stats: Map<string, string> | null = null;
  /**
   * The reply exactly as the server sent it, when the parser had it in one piece (else null):
   * what a proxy forwards unchanged instead of encoding the reply again.
   */
  raw: Uint8Array | null = null;

  constructor(type: ReplyType) {
    this.type = type;
  }

  /** `rest` as text: the message of an error, the version string, the meta flags. */
  get text(): string {
    return latin1Decoder.decode(this.rest);
  }

  /** Whether this is ERROR, CLIENT_ERROR or SERVER_ERROR. */
  get isError(): boolean {
    return (
      this.type === ReplyType.Error ||
      this.type === ReplyType.ClientError ||
      this.type === ReplyType.ServerError
    );
  }

  /**
   * The token of meta return flag `flag` (one letter) in `rest`, without the letter: "" for a
   * flag without a token, undefined if the flag is absent. `metaFlag("f")` of `VA 2 f30 s2` is "30".
   */
  metaFlag(flag: string): string | undefined {
    const code = flag.charCodeAt(0);
    const rest = this.rest;
    let start = 0;
    while (start < rest.length) {
      let end = start;
      while (end < rest.length && rest[end] !== 0x20) end++;
      if (end > start && rest[start] === code) return latin1Decoder.decode(rest.subarray(start + 1, end));
      start = end + 1;
    }
    return undefined;
  }
}

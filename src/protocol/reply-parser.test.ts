// The reply parser: every reply fed whole, one byte at a time and split at every offset (nats.js's
// byByteTest); field values; bad replies; and every reply recorded from memcached in test/corpus.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { loadCorpus } from "../../test/helpers/corpus.ts";
import { ProtocolError } from "../errors.ts";
import { Expect, Reply, ReplyType } from "./reply.ts";
import { encodeReply } from "./reply-encoder.ts";
import { ReplyParser, type ReplyParserOptions } from "./reply-parser.ts";

const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/**
 * Feeds `chunks` to a fresh parser whose requests expect `expects`, in order; returns the replies.
 * Each chunk is a copy that is overwritten after feed returns, as a socket may reuse its buffer:
 * a reply that aliased it would change.
 */
function parse(expects: readonly Expect[], chunks: readonly Uint8Array[], options?: ReplyParserOptions) {
  const replies: Reply[] = [];
  const parser = new ReplyParser(
    {
      nextExpect: () => expects[replies.length],
      onReply: (reply) => replies.push(reply),
    },
    options,
  );
  for (const chunk of chunks) {
    const copy = chunk.slice();
    parser.feed(copy);
    copy.fill(0xee);
  }
  return { replies, parser };
}

/** Whole, one byte at a time, and in two pieces at every offset. */
function* chunkings(bytes: Uint8Array): Generator<[string, Uint8Array[]]> {
  yield ["whole", [bytes]];
  yield ["one byte at a time", Array.from(bytes, (byte) => Uint8Array.of(byte))];
  for (let at = 1; at < bytes.length; at++)
    yield [`split at ${at}`, [bytes.subarray(0, at), bytes.subarray(at)]];
}

/** Parses `bytes` every way; each must give the replies of the whole feed, which re-encode to `bytes`. */
function parseEveryWay(expects: readonly Expect[], bytes: Uint8Array): Reply[] {
  const { replies: whole, parser } = parse(expects, [bytes]);
  expect(parser.midReply).toBe(false);
  expect(whole.length).toBe(expects.length);
  expect(text(concat(whole.map(encodeReply)))).toBe(text(bytes));
  const wholeText = whole.map((reply) => `${reply.type}:${text(encodeReply(reply))}`);
  for (const [how, chunks] of chunkings(bytes)) {
    const { replies, parser: split } = parse(expects, chunks);
    const got = replies.map((reply) => `${reply.type}:${text(encodeReply(reply))}`);
    if (got.join("\n") !== wholeText.join("\n")) throw new Error(`${how}: got ${JSON.stringify(got)}`);
    expect(split.midReply).toBe(false);
  }
  return whole;
}

describe("retrieval replies", () => {
  test("a miss is END with no items", () => {
    const [reply] = parseEveryWay([Expect.Values], latin1("END\r\n"));
    expect(reply?.type).toBe(ReplyType.Values);
    expect(reply?.items).toEqual([]);
  });

  test("hits keep key, flags, value and order; data may hold CRLF and END", () => {
    const bytes = latin1(
      "VALUE a 1 3\r\nxyz\r\nVALUE bb 4294967295 7\r\n\r\nEND\r\n\r\nVALUE a 1 3\r\nxyz\r\nEND\r\n",
    );
    const [reply] = parseEveryWay([Expect.Values], bytes);
    const items = reply?.items ?? [];
    expect(items.map((item) => [text(item.key), item.flags, text(item.value), item.cas])).toEqual([
      ["a", 1, "xyz", undefined],
      ["bb", 4294967295, "\r\nEND\r\n", undefined],
      ["a", 1, "xyz", undefined],
    ]);
  });

  test("gets carries 64-bit CAS values as bigints", () => {
    const bytes = latin1("VALUE k 0 1 1\r\na\r\nVALUE j 0 2 18446744073709551615\r\nbc\r\nEND\r\n");
    const [reply] = parseEveryWay([Expect.Values], bytes);
    expect(reply?.items?.map((item) => item.cas)).toEqual([1n, 18446744073709551615n]);
  });

  test("an empty value and a binary value with every byte", () => {
    const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
    const bytes = concat([latin1("VALUE e 0 0\r\n\r\nVALUE b 2 256\r\n"), binary, latin1("\r\nEND\r\n")]);
    const [reply] = parseEveryWay([Expect.Values], bytes);
    expect(reply?.items?.[0]?.value.length).toBe(0);
    expect(reply?.items?.[1]?.value).toEqual(binary);
  });

  test("an error ends a retrieval reply, even after hits", () => {
    const bytes = latin1("VALUE a 0 1\r\nx\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n");
    for (const [how, chunks] of chunkings(bytes)) {
      const { replies, parser } = parse([Expect.Values, Expect.Values], chunks);
      expect(
        replies.map((reply) => [reply.type, reply.text]),
        how,
      ).toEqual([
        [ReplyType.ClientError, "bad command line format"],
        [ReplyType.Error, ""],
      ]);
      expect(replies[0]?.isError).toBe(true);
      expect(parser.midReply).toBe(false);
    }
  });

  test("a large value arrives in many chunks", () => {
    const value = Uint8Array.from({ length: 900 * 1024 }, (_, i) => (i * 7 + (i >> 9)) & 0xff);
    const bytes = concat([latin1(`VALUE big 9 ${value.length}\r\n`), value, latin1("\r\nEND\r\n")]);
    for (const size of [1, 7, 1000, 65536, bytes.length]) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
      const { replies } = parse([Expect.Values], chunks);
      expect(replies.length).toBe(1);
      expect(Buffer.compare(replies[0]?.items?.[0]?.value ?? new Uint8Array(), value)).toBe(0);
    }
  });
});

describe("one-line replies", () => {
  const lines: [string, ReplyType][] = [
    ["STORED", ReplyType.Stored],
    ["NOT_STORED", ReplyType.NotStored],
    ["EXISTS", ReplyType.Exists],
    ["NOT_FOUND", ReplyType.NotFound],
    ["DELETED", ReplyType.Deleted],
    ["TOUCHED", ReplyType.Touched],
    ["OK", ReplyType.Ok],
    ["END", ReplyType.End],
    ["VERSION 1.6.18", ReplyType.Version],
    ["0", ReplyType.Number],
    ["18446744073709551615", ReplyType.Number],
    ["ERROR", ReplyType.Error],
    ["ERROR: shutdown not enabled", ReplyType.Error],
    ["CLIENT_ERROR bad data chunk", ReplyType.ClientError],
    ["SERVER_ERROR object too large for cache", ReplyType.ServerError],
  ];
  for (const [line, type] of lines) {
    test(line, () => {
      const [reply] = parseEveryWay([Expect.Line], latin1(`${line}\r\n`));
      expect(reply?.type).toBe(type);
    });
  }

  test("all of them pipelined", () => {
    const bytes = latin1(lines.map(([line]) => `${line}\r\n`).join(""));
    const replies = parseEveryWay(
      lines.map(() => Expect.Line),
      bytes,
    );
    expect(replies.map((reply) => reply.type)).toEqual(lines.map(([, type]) => type));
  });

  test("fields: numbers as bigints, version and error texts", () => {
    const replies = parseEveryWay(
      [Expect.Line, Expect.Line, Expect.Line, Expect.Line],
      latin1("42\r\n18446744073709551615\r\nVERSION 1.6.18\r\nSERVER_ERROR out of memory storing object\r\n"),
    );
    expect(replies[0]?.number).toBe(42n);
    expect(replies[1]?.number).toBe(18446744073709551615n);
    expect(replies[2]?.text).toBe("1.6.18");
    expect(replies[3]?.text).toBe("out of memory storing object");
  });
});

describe("stats replies", () => {
  test("STAT lines then END, in order", () => {
    const bytes = latin1("STAT pid 12\r\nSTAT version 1.6.18\r\nSTAT rusage_user 0.010000\r\nEND\r\n");
    const [reply] = parseEveryWay([Expect.Stats], bytes);
    expect([...(reply?.stats ?? [])]).toEqual([
      ["pid", "12"],
      ["version", "1.6.18"],
      ["rusage_user", "0.010000"],
    ]);
  });

  test("an empty list", () => {
    const [reply] = parseEveryWay([Expect.Stats], latin1("END\r\n"));
    expect(reply?.stats?.size).toBe(0);
  });
});

describe("dump replies (stats cachedump, lru_crawler)", () => {
  test("metadump lines end in a bare LF, END in CRLF; the reply keeps them as sent", () => {
    const bytes = latin1(
      "key=a exp=-1 la=1 cas=2 fetch=no cls=1 size=60\nkey=b%20c exp=9 la=1 cas=3 fetch=yes cls=1 size=61\nEND\r\n",
    );
    const [reply] = parseEveryWay([Expect.Dump], bytes);
    expect(reply?.type).toBe(ReplyType.Dump);
    expect(text(reply?.value ?? new Uint8Array(0))).toBe(text(bytes));
  });

  test("cachedump lines, an empty dump, one status line, an error, then the next reply", () => {
    const bytes = latin1(
      "ITEM a [1 b; 0 s]\r\nITEM bb [20 b; 1700000000 s]\r\nEND\r\nEND\r\nBUSY currently processing crawler request\r\nOK\r\nCLIENT_ERROR bad command line format\r\nSTORED\r\n",
    );
    const replies = parseEveryWay(
      [Expect.Dump, Expect.Dump, Expect.Dump, Expect.Dump, Expect.Dump, Expect.Line],
      bytes,
    );
    expect(replies.map((reply) => reply.type)).toEqual([
      ReplyType.Dump,
      ReplyType.Dump,
      ReplyType.Dump,
      ReplyType.Dump,
      ReplyType.ClientError,
      ReplyType.Stored,
    ]);
    expect(replies.slice(0, 4).map((reply) => text(reply.value ?? new Uint8Array(0)))).toEqual([
      "ITEM a [1 b; 0 s]\r\nITEM bb [20 b; 1700000000 s]\r\nEND\r\n",
      "END\r\n",
      "BUSY currently processing crawler request\r\n",
      "OK\r\n",
    ]);
  });

  test("lines past maxDumpBytes are read and dropped: the reply keeps the first ones and END", () => {
    const line = (i: number) => `key=k${i} exp=-1 la=1 cas=${i} fetch=no cls=1 size=60\n`;
    const lines = Array.from({ length: 100 }, (_, i) => line(i));
    const bytes = latin1(`${lines.join("")}END\r\nSTORED\r\n`);
    const maxDumpBytes = 10 * line(0).length + 5;
    for (const chunks of [[bytes], Array.from(bytes, (byte) => Uint8Array.of(byte))]) {
      const { replies, parser } = parse([Expect.Dump, Expect.Line], chunks, { maxDumpBytes });
      expect(parser.midReply).toBe(false);
      expect(replies.map((reply) => reply.type)).toEqual([ReplyType.Dump, ReplyType.Stored]);
      expect(replies[0]?.raw).toBeNull();
      expect(text(replies[0]?.value ?? new Uint8Array(0))).toBe(`${lines.slice(0, 10).join("")}END\r\n`);
    }
  });
});

describe("meta replies", () => {
  test("VA with flags and data, then each status", () => {
    const bytes = latin1(
      "VA 5 f9 s5 t-1 kmg-b O55\r\nhe\r\no\r\nVA 0\r\n\r\nHD\r\nHD c12 t30\r\nEN\r\nNF\r\nNS\r\nEX\r\nMN\r\n" +
        "ME k exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\nSERVER_ERROR out of memory\r\n",
    );
    const replies = parseEveryWay(Array(11).fill(Expect.Meta), bytes);
    expect(replies.map((reply) => reply.type)).toEqual([
      ReplyType.MetaValue,
      ReplyType.MetaValue,
      ReplyType.MetaHeader,
      ReplyType.MetaHeader,
      ReplyType.MetaMiss,
      ReplyType.MetaNotFound,
      ReplyType.MetaNotStored,
      ReplyType.MetaExists,
      ReplyType.MetaNoop,
      ReplyType.MetaDebug,
      ReplyType.ServerError,
    ]);
    const [va, empty, hd, hdFlags] = replies;
    expect(text(va?.value ?? new Uint8Array())).toBe("he\r\no");
    expect(va?.text).toBe("f9 s5 t-1 kmg-b O55");
    expect([va?.metaFlag("f"), va?.metaFlag("k"), va?.metaFlag("O"), va?.metaFlag("c")]).toEqual([
      "9",
      "mg-b",
      "55",
      undefined,
    ]);
    expect(empty?.value?.length).toBe(0);
    expect(hd?.rest.length).toBe(0);
    expect(hdFlags?.metaFlag("c")).toBe("12");
  });
});

describe("mixed pipeline", () => {
  test("each reply framed by what its request expects", () => {
    const bytes = latin1(
      "STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\nVA 2 f0\r\nhi\r\nSTAT a b\r\nEND\r\nDELETED\r\nEN\r\nEND\r\n3\r\nMN\r\n",
    );
    const expects = [
      Expect.Line,
      Expect.Values,
      Expect.Meta,
      Expect.Stats,
      Expect.Line,
      Expect.Meta,
      Expect.Values,
      Expect.Line,
      Expect.Meta,
    ];
    const replies = parseEveryWay(expects, bytes);
    expect(replies.map((reply) => reply.type)).toEqual([
      ReplyType.Stored,
      ReplyType.Values,
      ReplyType.MetaValue,
      ReplyType.Stats,
      ReplyType.Deleted,
      ReplyType.MetaMiss,
      ReplyType.Values,
      ReplyType.Number,
      ReplyType.MetaNoop,
    ]);
  });
});

describe("bad replies are ProtocolErrors", () => {
  const bad: [string, Expect[], string, ReplyParserOptions?][] = [
    ["a reply with no request waiting", [], "STORED\r\n"],
    ["STORED for a get", [Expect.Values], "STORED\r\n"],
    ["VALUE for a set", [Expect.Line], "VALUE k 0 1\r\na\r\nEND\r\n"],
    ["a text status for a meta command", [Expect.Meta], "STORED\r\n"],
    ["a meta status for a set", [Expect.Line], "HD\r\n"],
    ["an unknown word", [Expect.Line], "MAYBE\r\n"],
    ["a bare LF", [Expect.Line], "STORED\n"],
    ["a data block without CRLF", [Expect.Values], "VALUE k 0 1\r\nab\r\nEND\r\n"],
    ["a data block ending in CR only", [Expect.Meta], "VA 1\r\na\rHD\r\n"],
    ["VALUE without bytes", [Expect.Values], "VALUE k 0\r\n"],
    ["VALUE with flags above 32 bits", [Expect.Values], "VALUE k 4294967296 1\r\na\r\nEND\r\n"],
    ["VALUE with a bad cas", [Expect.Values], "VALUE k 0 1 x1\r\na\r\nEND\r\n"],
    ["VA without a size", [Expect.Meta], "VA\r\n"],
    ["a number above 64 bits", [Expect.Line], "18446744073709551616\r\n"],
    ["a number with junk", [Expect.Line], "12a\r\n"],
    ["STAT without a name", [Expect.Stats], "STAT\r\nEND\r\n"],
    ["a status line inside a dump", [Expect.Dump], "ITEM a [1 b; 0 s]\r\nOK\r\n"],
    ["an empty line in a dump", [Expect.Dump], "key=a\n\nEND\r\n"],
    ["a dump ending in END without CR", [Expect.Dump], "key=a\nEND\n"],
    ["END with junk after it", [Expect.Values], "END x\r\n"],
    [
      "a line longer than the limit",
      [Expect.Line],
      `CLIENT_ERROR ${"x".repeat(100)}\r\n`,
      { maxLineBytes: 64 },
    ],
    ["a value larger than the limit", [Expect.Values], "VALUE k 0 65\r\n", { maxValueBytes: 64 }],
  ];
  for (const [name, expects, reply, options] of bad) {
    test(name, () => {
      for (const [how, chunks] of [...chunkings(latin1(reply))].slice(0, 2)) {
        expect(() => parse(expects, chunks, options), how).toThrow(ProtocolError);
      }
    });
  }

  test("a line with no LF yet is held, up to the limit", () => {
    const { replies, parser } = parse([Expect.Line], [latin1("STOR")], { maxLineBytes: 64 });
    expect(replies.length).toBe(0);
    expect(parser.midReply).toBe(true);
    expect(() => parser.feed(latin1("E".repeat(100)))).toThrow(ProtocolError);
  });

  test("reset forgets a partial reply", () => {
    const expects = [Expect.Values, Expect.Line];
    const replies: Reply[] = [];
    const parser = new ReplyParser({
      nextExpect: () => expects[replies.length],
      onReply: (r) => replies.push(r),
    });
    parser.feed(latin1("VALUE k 0 10\r\nabc"));
    expect(parser.midReply).toBe(true);
    parser.reset();
    replies.push(new Reply(ReplyType.Values)); // the request that lost its reply
    parser.feed(latin1("STORED\r\n"));
    expect(replies.map((reply) => reply.type)).toEqual([ReplyType.Values, ReplyType.Stored]);
  });
});

// ---- every reply recorded from memcached 1.6.18 (and Gravity's native-only cases) ----

// A line that `pattern` (a corpus `<~` regex) matches, built by taking the first choice of each
// construct the corpus uses; checked against the regex, so a new construct fails loudly.
function lineMatching(pattern: string, regex: RegExp): string {
  const line = pattern
    .replace(/\(\?:([^|)]*)(?:\|[^)]*)?\)/g, "$1")
    .replace(/\[1-9\]\\d\*/g, "1")
    .replace(/\[(.)[^\]]*\]/g, "$1")
    .replace(/\\d\+/g, "7")
    .replace(/\\S\+/g, "x");
  if (!regex.test(line)) throw new Error(`cannot build a line matching /${pattern}/ (tried ${line})`);
  return line;
}

const META_STATUS = /^(?:HD|EN|NF|NS|EX|MN|ME)(?: |\r\n)/;

/**
 * Splits a case's reply lines into replies, each with what its request expected, judging by the
 * reply's first line as a reader of the transcript would: VALUE/END start a retrieval reply, STAT
 * a stats reply, VA and two-letter statuses a meta reply. Data blocks follow VALUE and VA lines.
 */
function framedReplies(lines: Uint8Array[]): { expect: Expect; bytes: Uint8Array }[] {
  const replies: { expect: Expect; bytes: Uint8Array }[] = [];
  let i = 0;
  const next = () => {
    const line = lines[i++];
    if (line === undefined) throw new Error("transcript ends inside a reply");
    return line;
  };
  // The data block after a header line whose `index`th token is its size: one transcript line
  // or several (a value holding CRLF is written as several lines).
  const data = (header: Uint8Array, index: number, parts: Uint8Array[]) => {
    const size = Number(text(header).trimEnd().split(" ")[index]);
    let taken = 0;
    while (taken < size + 2) {
      const line = next();
      taken += line.length;
      parts.push(line);
    }
  };
  while (i < lines.length) {
    const first = next();
    const head = text(first);
    const parts = [first];
    let expectKind: Expect;
    if (head.startsWith("VALUE ") || head === "END\r\n") {
      expectKind = Expect.Values;
      let line = first;
      while (text(line).startsWith("VALUE ")) {
        data(line, 3, parts);
        line = next();
        parts.push(line);
      }
    } else if (head.startsWith("STAT ")) {
      expectKind = Expect.Stats;
      while (text(parts.at(-1) as Uint8Array) !== "END\r\n") parts.push(next());
    } else if (head.startsWith("VA ")) {
      expectKind = Expect.Meta;
      data(first, 1, parts);
    } else {
      expectKind = META_STATUS.test(head) ? Expect.Meta : Expect.Line;
    }
    replies.push({ expect: expectKind, bytes: concat(parts) });
  }
  return replies;
}

describe("the recorded corpus", () => {
  const cases = loadCorpus(join(import.meta.dir, "../../test/corpus"));

  test("has cases", () => {
    expect(cases.length).toBeGreaterThan(100);
  });

  for (const testCase of cases) {
    const lines: Uint8Array[] = [];
    for (const step of testCase.steps) {
      if (step.kind === "expect") lines.push(step.bytes);
      else if (step.kind === "expectMatch")
        lines.push(latin1(`${lineMatching(step.pattern, step.regex)}\r\n`));
    }
    if (lines.length === 0) continue;
    test(`${testCase.file}: ${testCase.name}`, () => {
      const framed = framedReplies(lines);
      const bytes = concat(framed.map((reply) => reply.bytes));
      const expects = framed.map((reply) => reply.expect);
      if (bytes.length <= 4096) {
        parseEveryWay(expects, bytes);
      } else {
        // Large values: whole, and in 1000-byte chunks (every offset would be quadratic).
        const whole = parse(expects, [bytes]).replies;
        expect(text(concat(whole.map(encodeReply)))).toBe(text(bytes));
        const chunks: Uint8Array[] = [];
        for (let at = 0; at < bytes.length; at += 1000) chunks.push(bytes.subarray(at, at + 1000));
        expect(text(concat(parse(expects, chunks).replies.map(encodeReply)))).toBe(text(bytes));
      }
    });
  }
});

describe("raw reply bytes, for a proxy to forward unchanged", () => {
  const replies: [Expect, string][] = [
    [Expect.Values, "VALUE a 1 3\r\nabc\r\nVALUE b 2 0\r\n\r\nEND\r\n"],
    [Expect.Line, "STORED\r\n"],
    [Expect.Meta, "VA 2 f5 t-1\r\nxy\r\n"],
    [Expect.Stats, "STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n"],
    [Expect.Line, "SERVER_ERROR out of memory\r\n"],
  ];
  const all = concat(replies.map(([, bytes]) => latin1(bytes)));

  test("replies wholly inside one chunk carry their exact bytes", () => {
    const parsed = parse(
      replies.map(([expect]) => expect),
      [all],
    ).replies;
    expect(parsed.map((reply) => (reply.raw === null ? null : text(reply.raw)))).toEqual(
      replies.map(([, bytes]) => bytes),
    );
  });

  test("a reply split across chunks has none, and the replies around it still do", () => {
    const cut = replies[0]?.[1].length as number;
    const split = cut + 3; // inside "STORED"
    const parsed = parse(
      replies.map(([expect]) => expect),
      [all.subarray(0, split), all.subarray(split)],
    ).replies;
    expect(parsed.map((reply) => reply.raw === null)).toEqual([false, true, false, false, false]);
    // A value split across chunks: no raw bytes for that reply.
    const value = parse([Expect.Values], [latin1("VALUE a 1 3\r\na"), latin1("bc\r\nEND\r\n")]).replies;
    expect(value[0]?.raw).toBeNull();
  });
});

// The corpus helper itself: the parser on a sample file, and the runner against real memcached,
// including transcripts that must be reported as mismatches (so a runner that never fails fails).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type CorpusCase, CorpusError, decodeText, parseCorpus, playCase } from "./corpus.ts";
import { SERVER_TEST_MS, type ServerProcess, startMemcached, stopAll } from "./servers.ts";

const SAMPLE = join(import.meta.dir, "fixtures/sample-corpus.txt");
const sample = parseCorpus(readFileSync(SAMPLE, "latin1"), "sample-corpus.txt");

function one(text: string): CorpusCase {
  const [only] = parseCorpus(text, "inline.txt");
  if (only === undefined) throw new Error("no case parsed");
  return only;
}

describe("decodeText", () => {
  test("escapes and repeats become bytes", () => {
    expect([...decodeText("a\\r\\n\\t\\\\\\x00\\xff")]).toEqual([0x61, 13, 10, 9, 0x5c, 0, 0xff]);
    expect(Buffer.from(decodeText("<{repeat:x:3}>")).toString()).toBe("<xxx>");
    expect([...decodeText("{repeat:\\x00:2}")]).toEqual([0, 0]);
    expect(decodeText("{repeat:a:1048576}").length).toBe(1048576);
  });

  test("a file's other bytes pass through unchanged (UTF-8 stays UTF-8)", () => {
    const fileText = Buffer.from("é", "utf8").toString("latin1");
    expect([...decodeText(fileText)]).toEqual([0xc3, 0xa9]);
  });

  test("bad escapes are errors naming the place", () => {
    expect(() => decodeText("\\q", () => "f.txt:3")).toThrow("f.txt:3: unknown escape \\q");
    expect(() => decodeText("\\xZZ", () => "f.txt:4")).toThrow("f.txt:4: bad escape");
  });
});

describe("parseCorpus", () => {
  test("reads the sample's cases in order with their tags", () => {
    expect(sample.map((c) => c.name)).toEqual([
      "set then get",
      "binary value with escapes",
      "repeat expands",
      "unknown command",
      "version matches a regex",
      "noreply is silent",
      "quit closes",
      "expired after a clock advance",
    ]);
    expect(sample.filter((c) => c.nativeOnly).map((c) => c.name)).toEqual(["expired after a clock advance"]);
    expect(sample[0]?.line).toBe(3);
  });

  test("each directive becomes its step", () => {
    const parsed = one("=== all\n> a b\n>> c\n< d\n<~ e+\n@ advance 7\n! closed\n>\n<\n");
    expect(parsed.steps.map((step) => step.kind)).toEqual([
      "send",
      "send",
      "expect",
      "expectMatch",
      "advance",
      "closed",
      "send",
      "expect",
    ]);
    const [send, raw, want, match, advance] = parsed.steps;
    expect(send?.kind === "send" && Buffer.from(send.bytes).toString()).toBe("a b\r\n");
    expect(raw?.kind === "send" && Buffer.from(raw.bytes).toString()).toBe("c");
    expect(want?.kind === "expect" && Buffer.from(want.bytes).toString()).toBe("d\r\n");
    expect(match?.kind === "expectMatch" && match.regex.test("eee") && !match.regex.test("xeee")).toBe(true);
    expect(advance?.kind === "advance" && advance.seconds).toBe(7);
  });

  test("the space after a directive is optional", () => {
    const [send, want] = one("=== tight\n>get k\n<END\n").steps;
    expect(send?.kind === "send" && Buffer.from(send.bytes).toString()).toBe("get k\r\n");
    expect(want?.kind === "expect" && Buffer.from(want.bytes).toString()).toBe("END\r\n");
  });

  test("CRLF line endings and comments are ignored", () => {
    const parsed = one("# c\r\n=== crlf\r\n> get k\r\n< END\r\n");
    expect(parsed.steps).toHaveLength(2);
    const [send] = parsed.steps;
    expect(send?.kind === "send" && Buffer.from(send.bytes).toString()).toBe("get k\r\n");
  });

  test("tags: native-only, leaf-only and one-read, alone or together; any other is an error", () => {
    const [plain, leaf, both] = parseCorpus(
      "=== a\n> mn\n=== b [leaf-only]\n> mn\n=== c [leaf-only one-read]\n> mn\n",
      "f.txt",
    );
    const flags = (c: CorpusCase | undefined) => [c?.name, c?.nativeOnly, c?.leafOnly, c?.oneRead];
    expect([flags(plain), flags(leaf), flags(both)]).toEqual([
      ["a", false, false, false],
      ["b", false, true, false],
      ["c", false, true, true],
    ]);
    expect(() => parseCorpus("=== c [router-only]\n", "f.txt")).toThrow("f.txt:1: unknown tag [router-only]");
  });

  test("unknown lines, steps before a case and bad regexes are errors with file:line", () => {
    expect(() => parseCorpus("> get k\n", "f.txt")).toThrow(
      new CorpusError("f.txt", 1, 'step before the first "=== case": "> get k"'),
    );
    expect(() => parseCorpus("=== c\n? what\n", "f.txt")).toThrow("f.txt:2: unknown line");
    expect(() => parseCorpus("=== c\n<~ (\n", "f.txt")).toThrow("f.txt:2: bad regex");
    expect(() => parseCorpus("=== c\n@ rewind 3\n", "f.txt")).toThrow("f.txt:2: unknown clock step");
  });
});

describe("playCase against memcached", () => {
  let memcached: ServerProcess;
  beforeAll(async () => {
    memcached = await startMemcached();
  }, SERVER_TEST_MS);
  afterAll(stopAll);

  for (const testCase of sample.filter((c) => !c.nativeOnly)) {
    test(`sample: ${testCase.name}`, async () => {
      expect(await playCase(testCase, { port: memcached.port })).toEqual([]);
    });
  }

  test("a native-only case is refused", async () => {
    const nativeOnly = sample.find((c) => c.nativeOnly) as CorpusCase;
    await expect(playCase(nativeOnly, { port: memcached.port })).rejects.toThrow("native-only");
  });

  test("a wrong reply is a mismatch naming file, line and case", async () => {
    const mismatches = await playCase(one("=== wrong\n> get nothing:here\n< VALUE x 0 1\n"), {
      port: memcached.port,
    });
    expect(mismatches).toEqual(['inline.txt:3 [wrong] expected "VALUE x 0 1\\r\\n", got "END\\r\\n"']);
  });

  test("a wrong regex line is a mismatch", async () => {
    const mismatches = await playCase(one("=== regex\n> version\n<~ VERSION 0\\.0\\.0\n"), {
      port: memcached.port,
    });
    expect(mismatches).toHaveLength(1);
    expect(mismatches[0]).toMatch(
      /^inline.txt:3 \[regex\] expected a line matching \/VERSION 0\\.0\\.0\/, got "VERSION /,
    );
  });

  test("a reply the transcript does not mention is a mismatch", async () => {
    const mismatches = await playCase(one("=== extra\n> version\n> version\n<~ VERSION .*\n"), {
      port: memcached.port,
    });
    expect(mismatches).toHaveLength(1);
    expect(mismatches[0]).toContain("unexpected reply after the transcript");
  });

  test("a missing close is a mismatch", async () => {
    const mismatches = await playCase(one("=== open\n> version\n<~ VERSION .*\n! closed\n"), {
      port: memcached.port,
      deadlineMs: 300,
    });
    expect(mismatches).toHaveLength(1);
    expect(mismatches[0]).toContain("expected the server to close the connection");
  });

  test("a reply that never comes is a mismatch", async () => {
    const mismatches = await playCase(one("=== silent\n> set k 0 0 1 noreply\n> x\n< STORED\n"), {
      port: memcached.port,
      deadlineMs: 300,
    });
    expect(mismatches).toHaveLength(1);
    expect(mismatches[0]).toContain('inline.txt:4 [silent] expected "STORED\\r\\n": timed out after 300 ms');
  });
});

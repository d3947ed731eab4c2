import { describe, expect, test } from "bun:test";
import { type FrameSpec, frame, u32s } from "../../test/helpers/binary-frames.ts";
import { BinaryOp, type BinaryRequest } from "./binary-request.ts";
import { BinaryRequestParser } from "./binary-request-parser.ts";
import { Op, type Request } from "./request.ts";
import { parseSaslPasswords, type SaslPasswords } from "./sasl-plain.ts";

const be32 = u32s;
const be64 = (v: bigint) => u32s(Number(v >> 32n), Number(v & 0xffff_ffffn));

// What a sink saw, as text: one line per request or error.
function run(chunks: readonly Uint8Array[], maxItemBytes = 1 << 20, sasl?: SaslPasswords): string[] {
  const seen: string[] = [];
  const parser = new BinaryRequestParser(
    {
      onRequest(request: Request) {
        const binary = request as BinaryRequest;
        seen.push(
          `req op=${request.op} opcode=${binary.opcode} opaque=${binary.opaque} quiet=${binary.quiet} ` +
            `noreply=${request.noreply} key=${Buffer.from(request.itemKey).toString("latin1")} ` +
            `raw=${JSON.stringify(Buffer.from(request.raw).toString("latin1"))}`,
        );
      },
      onError(reply: Uint8Array, close: boolean) {
        seen.push(`err ${Buffer.from(reply).toString("hex")} close=${close}`);
      },
      onTooLarge(request: Request) {
        seen.push(`too-large ${Buffer.from(request.itemKey).toString("latin1")}`);
      },
    },
    sasl === undefined ? { maxItemBytes } : { maxItemBytes, sasl },
  );
  for (const chunk of chunks) parser.feed(Uint8Array.from(chunk));
  return seen;
}

// Whole, one byte at a time, and split in two at every offset: the same events.
function parse(bytes: Uint8Array, maxItemBytes?: number, sasl?: SaslPasswords): string[] {
  const whole = run([bytes], maxItemBytes, sasl);
  expect(
    run(
      [...bytes].map((b) => Uint8Array.of(b)),
      maxItemBytes,
      sasl,
    ),
  ).toEqual(whole);
  for (let at = 1; at < bytes.length; at++)
    expect(run([bytes.subarray(0, at), bytes.subarray(at)], maxItemBytes, sasl)).toEqual(whole);
  return whole;
}

const raw = (events: string[]) => events.map((e) => /raw="(.*)"$/.exec(e)?.[1] ?? e);

describe("BinaryRequestParser: every opcode becomes the meta request a leaf understands", () => {
  const cases: [string, FrameSpec, string][] = [
    ["get", { opcode: BinaryOp.Get, key: "k" }, "mg k f c v\\r\\n"],
    ["getq", { opcode: BinaryOp.GetQ, key: "k" }, "mg k f c v q\\r\\n"],
    ["getk", { opcode: BinaryOp.GetK, key: "k" }, "mg k f c v\\r\\n"],
    ["getkq", { opcode: BinaryOp.GetKQ, key: "k" }, "mg k f c v q\\r\\n"],
    ["touch", { opcode: BinaryOp.Touch, key: "k", extras: be32(60) }, "mg k T60 f c\\r\\n"],
    ["gat", { opcode: BinaryOp.Gat, key: "k", extras: be32(60) }, "mg k T60 f c v\\r\\n"],
    ["gatq", { opcode: BinaryOp.GatQ, key: "k", extras: be32(60) }, "mg k T60 f c v q\\r\\n"],
    ["gatk", { opcode: BinaryOp.GatK, key: "k", extras: be32(60) }, "mg k T60 f c v\\r\\n"],
    ["gatkq", { opcode: BinaryOp.GatKQ, key: "k", extras: be32(60) }, "mg k T60 f c v q\\r\\n"],
    [
      "set",
      { opcode: BinaryOp.Set, key: "k", extras: be32(5, 60), value: "ab" },
      "ms k 2 F5 T60 c\\r\\nab\\r\\n",
    ],
    [
      "setq",
      { opcode: BinaryOp.SetQ, key: "k", extras: be32(0, 0), value: "ab" },
      "ms k 2 F0 T0 c q\\r\\nab\\r\\n",
    ],
    [
      "set with cas",
      { opcode: BinaryOp.Set, key: "k", extras: be32(0, 0), value: "ab", cas: 9n },
      "ms k 2 F0 T0 c C9 MS\\r\\nab\\r\\n",
    ],
    [
      "add",
      { opcode: BinaryOp.Add, key: "k", extras: be32(0, 0), value: "ab" },
      "ms k 2 F0 T0 c ME\\r\\nab\\r\\n",
    ],
    [
      "addq",
      { opcode: BinaryOp.AddQ, key: "k", extras: be32(0, 0), value: "" },
      "ms k 0 F0 T0 c ME q\\r\\n\\r\\n",
    ],
    [
      "replace",
      { opcode: BinaryOp.Replace, key: "k", extras: be32(0, 0), value: "ab" },
      "ms k 2 F0 T0 c MR\\r\\nab\\r\\n",
    ],
    [
      "replaceq",
      { opcode: BinaryOp.ReplaceQ, key: "k", extras: be32(0, 0), value: "ab" },
      "ms k 2 F0 T0 c MR q\\r\\nab\\r\\n",
    ],
    ["append", { opcode: BinaryOp.Append, key: "k", value: "ab" }, "ms k 2 c MA\\r\\nab\\r\\n"],
    ["appendq", { opcode: BinaryOp.AppendQ, key: "k", value: "ab" }, "ms k 2 c MA q\\r\\nab\\r\\n"],
    ["prepend", { opcode: BinaryOp.Prepend, key: "k", value: "ab", cas: 3n }, "ms k 2 c C3 MP\\r\\nab\\r\\n"],
    ["prependq", { opcode: BinaryOp.PrependQ, key: "k", value: "ab" }, "ms k 2 c MP q\\r\\nab\\r\\n"],
    ["delete", { opcode: BinaryOp.Delete, key: "k" }, "md k\\r\\n"],
    ["deleteq with cas", { opcode: BinaryOp.DeleteQ, key: "k", cas: 4n }, "md k C4 q\\r\\n"],
    [
      "incr",
      { opcode: BinaryOp.Increment, key: "k", extras: [...be64(2n), ...be64(10n), ...be32(60)] },
      "ma k D2 MI v c N60 J10\\r\\n",
    ],
    [
      "incrq",
      { opcode: BinaryOp.IncrementQ, key: "k", extras: [...be64(2n), ...be64(10n), ...be32(0)] },
      "ma k D2 MI v c N0 J10 q\\r\\n",
    ],
    [
      "decr without create",
      { opcode: BinaryOp.Decrement, key: "k", extras: [...be64(1n), ...be64(0n), ...be32(0xffffffff)] },
      "ma k D1 MD v c\\r\\n",
    ],
    [
      "decrq with cas",
      {
        opcode: BinaryOp.DecrementQ,
        key: "k",
        extras: [...be64(1n), ...be64(0n), ...be32(0xffffffff)],
        cas: 5n,
      },
      "ma k D1 MD v c C5 q\\r\\n",
    ],
    ["flush", { opcode: BinaryOp.Flush }, "flush_all\\r\\n"],
    ["flushq with a delay", { opcode: BinaryOp.FlushQ, extras: be32(30) }, "flush_all 30 noreply\\r\\n"],
    ["noop", { opcode: BinaryOp.Noop }, "mn\\r\\n"],
    ["version", { opcode: BinaryOp.Version }, "version\\r\\n"],
    ["stat", { opcode: BinaryOp.Stat }, "stats\\r\\n"],
    ["stat group", { opcode: BinaryOp.Stat, key: "servers" }, "stats servers\\r\\n"],
    ["quit", { opcode: BinaryOp.Quit }, "quit\\r\\n"],
    ["quitq", { opcode: BinaryOp.QuitQ }, "quit\\r\\n"],
  ];
  for (const [name, spec, want] of cases) {
    test(name, () => {
      const events = parse(frame({ ...spec, opaque: 0x01020304 }));
      expect(raw(events)).toEqual([want]);
      expect(events[0]).toContain(`opcode=${spec.opcode} opaque=16909060`);
    });
  }

  test("quiet opcodes are noreply; a key text cannot carry goes base64 with b", () => {
    const [event] = parse(frame({ opcode: BinaryOp.SetQ, key: "a b\x01", extras: be32(0, 0), value: "v" }));
    expect(event).toContain("quiet=true noreply=true key=a b\x01");
    expect(raw([event as string])).toEqual(["ms YSBiAQ== 1 b F0 T0 c q\\r\\nv\\r\\n"]);
  });

  test("frames in one stream keep their order; nothing is read after quit", () => {
    const events = parse(
      Buffer.concat([
        frame({ opcode: BinaryOp.GetKQ, key: "a" }),
        frame({ opcode: BinaryOp.Noop }),
        frame({ opcode: BinaryOp.Quit }),
        frame({ opcode: BinaryOp.Noop }),
      ]),
    );
    expect(raw(events)).toEqual(["mg a f c v q\\r\\n", "mn\\r\\n", "quit\\r\\n"]);
  });

  test("hold(): stopped after every frame and fed the rest again, the same frames at every split", () => {
    const bytes = Buffer.concat([
      frame({ opcode: BinaryOp.GetKQ, key: "a" }),
      frame({ opcode: BinaryOp.Set, key: "k", extras: be32(5, 60), value: "ab" }),
      frame({ opcode: BinaryOp.Noop }),
      frame({ opcode: BinaryOp.Get, key: "b" }),
    ]);
    const whole = run([bytes]);
    for (let at = 1; at < bytes.length; at++) {
      const seen: string[] = [];
      const parser: BinaryRequestParser = new BinaryRequestParser({
        onRequest(request: Request) {
          seen.push(Buffer.from(request.raw).toString("latin1"));
          parser.hold();
        },
        onError(reply: Uint8Array) {
          seen.push(`err ${Buffer.from(reply).toString("hex")}`);
        },
      });
      for (const chunk of [bytes.subarray(0, at), bytes.subarray(at)]) {
        for (let rest = Uint8Array.from(chunk); rest.length > 0; ) rest = rest.subarray(parser.feed(rest));
      }
      expect(seen.map((line) => JSON.stringify(line).slice(1, -1))).toEqual(raw(whole));
    }
  });

  test("ops: the route tree sees meta ops", () => {
    const ops = run([
      Buffer.concat([
        frame({ opcode: BinaryOp.Get, key: "a" }),
        frame({ opcode: BinaryOp.Set, key: "a", extras: be32(0, 0) }),
        frame({ opcode: BinaryOp.Delete, key: "a" }),
        frame({ opcode: BinaryOp.Increment, key: "a", extras: [...be64(1n), ...be64(0n), ...be32(0)] }),
      ]),
    ]).map((e) => Number(/op=(\d+)/.exec(e)?.[1]));
    expect(ops).toEqual([Op.MetaGet, Op.MetaSet, Op.MetaDelete, Op.MetaArithmetic]);
  });
});

describe("BinaryRequestParser: bad frames get memcached's reply", () => {
  const header = (opcode: number, status: number, opaque: number, text: string) => {
    const out = Buffer.alloc(24 + text.length);
    out[0] = 0x81;
    out[1] = opcode;
    out.writeUInt16BE(status, 6);
    out.writeUInt32BE(text.length, 8);
    out.writeUInt32BE(opaque, 12);
    out.write(text, 24, "latin1");
    return out.toString("hex");
  };

  test("bad magic closes without a reply", () => {
    expect(parse(Buffer.alloc(24, 7))).toEqual(["err  close=true"]);
  });

  test("a key past the body: unknown command, close", () => {
    const bad = frame({ opcode: BinaryOp.Get, key: "abc", opaque: 5 });
    bad[11] = 1;
    expect(parse(bad)).toEqual([`err ${header(0, 0x81, 5, "Unknown command")} close=true`]);
  });

  for (const [name, spec] of [
    ["a key over 250 bytes", { opcode: BinaryOp.Get, key: "k".repeat(251) }],
    ["get with extras", { opcode: BinaryOp.Get, key: "k", extras: be32(0) }],
    ["set without extras", { opcode: BinaryOp.Set, key: "k", value: "v" }],
    ["noop with a body", { opcode: BinaryOp.Noop, value: "x" }],
    ["incr with short extras", { opcode: BinaryOp.Increment, key: "k", extras: be32(1) }],
    ["flush with a key", { opcode: BinaryOp.Flush, key: "k" }],
  ] as [string, FrameSpec][]) {
    test(`${name}: invalid arguments, close`, () => {
      expect(parse(frame({ ...spec, opaque: 9 }))).toEqual([
        `err ${header(spec.opcode, 0x04, 9, "Invalid arguments")} close=true`,
      ]);
    });
  }

  test("unknown opcodes (verbosity, SASL) are answered and their body skipped", () => {
    const events = parse(
      Buffer.concat([
        frame({ opcode: BinaryOp.Verbosity, extras: be32(1), opaque: 1 }),
        frame({ opcode: BinaryOp.SaslAuth, key: "PLAIN", value: "\0a\0b", opaque: 2 }),
        frame({ opcode: 0x40, value: "xyz", opaque: 3 }),
        frame({ opcode: BinaryOp.Noop, opaque: 4 }),
      ]),
    );
    expect(events).toEqual([
      `err ${header(BinaryOp.Verbosity, 0x81, 1, "Unknown command")} close=false`,
      `err ${header(BinaryOp.SaslAuth, 0x81, 2, "Unknown command")} close=false`,
      `err ${header(0x40, 0x81, 3, "Unknown command")} close=false`,
      expect.stringContaining("raw=") as unknown as string,
    ]);
  });

  test("with SASL: version and the SASL commands only, until a PLAIN succeeds", () => {
    const sasl = parseSaslPasswords("alice:secret\n");
    const events = parse(
      Buffer.concat([
        frame({ opcode: BinaryOp.Version, opaque: 1 }),
        frame({ opcode: BinaryOp.SaslListMechs, opaque: 2 }),
        frame({ opcode: BinaryOp.SaslAuth, key: "PLAIN", value: "\0alice\0wrong", opaque: 3 }),
        frame({ opcode: BinaryOp.SaslAuth, key: "M".repeat(33), value: "x", opaque: 4 }),
        frame({ opcode: BinaryOp.SaslAuth, key: "PLAIN", value: "\0alice\0secret".padEnd(200), opaque: 5 }),
        frame({ opcode: BinaryOp.SaslStep, key: "PLAIN", value: "\0alice\0secret", opaque: 6 }),
        frame({ opcode: BinaryOp.SaslAuth, key: "PLAIN", value: "\0alice\0secret", opaque: 7 }),
        frame({ opcode: BinaryOp.Noop, opaque: 8 }),
      ]),
      128,
      sasl,
    );
    expect(events).toEqual([
      expect.stringContaining('raw="version') as unknown as string,
      `err ${header(BinaryOp.SaslListMechs, 0, 2, "PLAIN")} close=false`,
      `err ${header(BinaryOp.SaslAuth, 0x20, 3, "Auth failure.")} close=false`,
      `err ${header(BinaryOp.SaslAuth, 0x04, 4, "Invalid arguments")} close=false`,
      `err ${header(BinaryOp.SaslAuth, 0x82, 5, "Out of memory")} close=false`,
      `err ${header(BinaryOp.SaslStep, 0x20, 6, "Auth failure.")} close=false`,
      `err ${header(BinaryOp.SaslAuth, 0, 7, "Authenticated")} close=false`,
      expect.stringContaining("mn") as unknown as string,
    ]);
    // Anything else before authenticating: "Auth failure." and close, as memcached.
    expect(parse(frame({ opcode: BinaryOp.Noop, opaque: 9 }), 128, sasl)).toEqual([
      `err ${header(BinaryOp.Noop, 0x20, 9, "Auth failure.")} close=true`,
    ]);
    // Text: a frame with bad magic, closed without a reply once a whole header is in.
    expect(run([Buffer.from("get a-key-long-enough-for-a-header\r\n")], 128, sasl)).toEqual([
      "err  close=true",
    ]);
  });

  test("a value too large: too large, the value swallowed, a set's key deleted", () => {
    const events = parse(
      Buffer.concat([
        frame({ opcode: BinaryOp.Set, key: "big", extras: be32(0, 0), value: "x".repeat(200), opaque: 1 }),
        frame({ opcode: BinaryOp.Append, key: "big", value: "x".repeat(200), opaque: 2 }),
        frame({ opcode: BinaryOp.Noop, opaque: 3 }),
      ]),
      128,
    );
    expect(events).toEqual([
      "too-large big",
      `err ${header(BinaryOp.Set, 0x03, 1, "Too large.")} close=false`,
      `err ${header(BinaryOp.Append, 0x03, 2, "Too large.")} close=false`,
      expect.stringContaining("mn") as unknown as string,
    ]);
  });
});

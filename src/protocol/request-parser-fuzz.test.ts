// A protocol fuzzer for the router's request parser: every client byte of test/corpus, mutated
// (bytes flipped, inserted, deleted, duplicated, numbers made extreme, pieces of other cases spliced
// in) and fed whole and in random pieces. Properties: feed never throws; every split gives exactly
// the events of the whole feed (where no line is longer than the line limit); nothing follows a
// close; every request's raw bytes are bytes the client sent. The seed is fixed, so a failure names an input that reproduces it;
// GRAVITY_FUZZ_ITERATIONS runs longer (the native parser's libFuzzer target runs in npm test too).
import { expect, test } from "bun:test";
import { join } from "node:path";
import { Rng } from "../../bench/workloads.ts";
import { loadCorpus } from "../../test/helpers/corpus.ts";
import { DEFAULTS, describeEvent, parse, text } from "../../test/helpers/request-events.ts";
import type { RequestParserOptions } from "./request-parser.ts";

const ITERATIONS = Number(process.env.GRAVITY_FUZZ_ITERATIONS ?? 1500);
const SEED = 0x5eed;
// Small limits reach the too-long and too-large paths with short inputs.
const OPTIONS: RequestParserOptions[] = [
  DEFAULTS,
  { maxItemBytes: 64, maxLineBytes: 48, maxGetLineBytes: 96 },
];
const INTERESTING = [
  " ",
  "\r",
  "\n",
  "\r\n",
  "\0",
  "-",
  "0",
  "4294967296",
  "18446744073709551616",
  "noreply",
  "b",
];

const seeds = loadCorpus(join(import.meta.dir, "../../test/corpus")).map((c) =>
  Buffer.concat(c.steps.flatMap((step) => (step.kind === "send" ? [step.bytes] : []))),
);

function mutate(rng: Rng, input: Buffer): Buffer {
  let out = input;
  const edits = 1 + rng.nextInt(4);
  for (let e = 0; e < edits; e++) {
    const at = out.length === 0 ? 0 : rng.nextInt(out.length);
    const interesting = Buffer.from(INTERESTING[rng.nextInt(INTERESTING.length)] as string, "latin1");
    switch (rng.nextInt(6)) {
      case 0: // flip a byte
        out = Buffer.from(out);
        if (out.length > 0) out[at] = rng.nextInt(256);
        break;
      case 1: // insert something memcached's grammar cares about
        out = Buffer.concat([out.subarray(0, at), interesting, out.subarray(at)]);
        break;
      case 2: // delete a range
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + rng.nextInt(16))]);
        break;
      case 3: // duplicate a range
        out = Buffer.concat([out.subarray(0, at + 8), out.subarray(at)]);
        break;
      case 4: {
        // a number made extreme
        const digits = /\d+/g;
        const found = [...out.toString("latin1").matchAll(digits)];
        const pick = found[rng.nextInt(Math.max(1, found.length))];
        if (pick?.index !== undefined) {
          out = Buffer.concat([
            out.subarray(0, pick.index),
            interesting,
            out.subarray(pick.index + pick[0].length),
          ]);
        }
        break;
      }
      default: {
        // a piece of another case spliced in
        const other = seeds[rng.nextInt(seeds.length)] as Buffer;
        const from = rng.nextInt(Math.max(1, other.length));
        out = Buffer.concat([
          out.subarray(0, at),
          other.subarray(from, from + 1 + rng.nextInt(64)),
          out.subarray(at),
        ]);
      }
    }
  }
  return out;
}

function randomChunks(rng: Rng, input: Buffer): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < input.length; ) {
    const size = 1 + rng.nextInt(rng.nextInt(2) === 0 ? 4 : 64);
    chunks.push(input.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

test(`${ITERATIONS} mutated corpus inputs: no throw, every split as whole, nothing after a close, raw bytes are sent bytes`, () => {
  expect(seeds.length).toBeGreaterThan(50);
  const rng = new Rng(SEED);
  let requests = 0;
  let errors = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const input = mutate(rng, seeds[rng.nextInt(seeds.length)] as Buffer);
    const options = OPTIONS[i % OPTIONS.length] as RequestParserOptions;
    const where = `iteration ${i}, input ${JSON.stringify(input.toString("latin1"))}`;
    let whole: ReturnType<typeof parse>;
    try {
      whole = parse([input], options);
    } catch (error) {
      throw new Error(`${where}: feed threw ${String(error)}`);
    }
    const want = whole.events.map(describeEvent);
    const sent = input.toString("latin1");
    const closedAt = whole.events.findIndex((event) => event.kind === "error" && event.close);
    if (closedAt !== -1 && closedAt !== whole.events.length - 1) {
      throw new Error(`${where}: events after a close: ${want.slice(closedAt).join("\n")}`);
    }
    for (const event of whole.events) {
      if (event.kind === "error") {
        errors++;
        continue;
      }
      requests++;
      if (!sent.includes(text(event.request.raw))) {
        throw new Error(`${where}: a request's raw bytes were never sent: ${describeEvent(event)}`);
      }
    }
    // memcached closes on a partial line longer than its limit, so where a line is longer the
    // outcome depends on where reads end (as the corpus's [one-read] cases say): no split check.
    const longest = Math.max(...sent.split("\n").map((line) => line.length));
    if (longest + 1 > (options.maxLineBytes ?? 2048)) continue;
    for (let split = 0; split < 2; split++) {
      const got = parse(randomChunks(rng, input), options).events.map(describeEvent);
      if (got.join("\n") !== want.join("\n")) {
        throw new Error(`${where}: split ${split} gave\n${got.join("\n")}\ninstead of\n${want.join("\n")}`);
      }
    }
  }
  // The mutations reach both sides of the grammar.
  expect(requests).toBeGreaterThan(ITERATIONS);
  expect(errors).toBeGreaterThan(ITERATIONS / 10);
}, 60_000);

// The request/reply transcript corpus (test/corpus/*.txt): a parser, and a runner that plays a
// case over a socket and lists where the server's replies differ from the transcript.
//
//   # comment
//   === case name [tag ...]   a case, run on a fresh connection; tags in brackets are optional:
//                             native-only, leaf-only, one-read (README.md says what each means)
//   > text      send text + CRLF            >> text   send text as is
//   < text      expect exactly text + CRLF   <~ regex  expect one line matching the regex
//   @ advance N advance the store clock N s  ! closed  the server closes after the replies so far
//
// Escapes in text (not in regexes): \r \n \t \\ \xNN, and {repeat:C:N} for N copies of C (C may be
// an escape). Files are read as latin1, as memcached_corpus.py reads them: every other byte of the
// file is sent as it is, so UTF-8 text stays UTF-8.
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { latin1, McClient, preview } from "./mc-client.ts";

export type CorpusStep =
  | { kind: "send"; bytes: Uint8Array; line: number }
  | { kind: "expect"; bytes: Uint8Array; line: number }
  | { kind: "expectMatch"; pattern: string; regex: RegExp; line: number }
  | { kind: "advance"; seconds: number; line: number }
  | { kind: "closed"; line: number };

export interface CorpusCase {
  file: string;
  name: string;
  /** 1-based line of the `===` header. */
  line: number;
  tags: string[];
  /** Cannot run over a socket or against real memcached (e.g. it advances the clock). */
  nativeOnly: boolean;
  /** Holds for one server (memcached, a leaf) but not through a router, by design (e.g. `stats`). */
  leafOnly: boolean;
  /** The replies hold when the input arrives in one read (as over a socket), not when split. */
  oneRead: boolean;
  steps: CorpusStep[];
}

export class CorpusError extends Error {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = "CorpusError";
  }
}

/** The tags a case header may carry. */
export const CORPUS_TAGS = ["native-only", "leaf-only", "one-read"] as const;

const ESCAPES: Record<string, number> = { r: 0x0d, n: 0x0a, t: 0x09, "\\": 0x5c };
const REPEAT = /^\{repeat:(\\x[0-9a-fA-F]{2}|\\[rnt\\]|[^\\]):(\d+)\}/;

/** Decodes corpus text (escapes and {repeat:C:N}; one latin1 character per byte) into bytes. */
export function decodeText(text: string, where: () => string = () => "corpus text"): Uint8Array {
  const parts: Uint8Array[] = [];
  let literal = "";
  const flush = () => {
    if (literal !== "") parts.push(latin1(literal));
    literal = "";
  };
  for (let i = 0; i < text.length; ) {
    const c = text[i] as string;
    if (c === "{") {
      const repeat = REPEAT.exec(text.slice(i));
      if (repeat !== null) {
        flush();
        const unit = decodeText(repeat[1] as string, where);
        const count = Number(repeat[2]);
        const out = new Uint8Array(unit.length * count);
        for (let k = 0; k < count; k++) out.set(unit, k * unit.length);
        parts.push(out);
        i += repeat[0].length;
        continue;
      }
    }
    if (c !== "\\") {
      literal += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === "x") {
      const hex = text.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`${where()}: bad escape \\x${hex}`);
      flush();
      parts.push(Uint8Array.of(Number.parseInt(hex, 16)));
      i += 4;
      continue;
    }
    const byte = next === undefined ? undefined : ESCAPES[next];
    if (byte === undefined) throw new Error(`${where()}: unknown escape \\${next ?? "(end of line)"}`);
    flush();
    parts.push(Uint8Array.of(byte));
    i += 2;
  }
  flush();
  return Buffer.concat(parts);
}

/** Parses one corpus file's text (latin1-decoded). Throws CorpusError naming file:line on anything it does not know. */
export function parseCorpus(text: string, file: string): CorpusCase[] {
  const cases: CorpusCase[] = [];
  const lines = text.split("\n");
  let current: CorpusCase | null = null;
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "" || /^\s*#/.test(line)) return;
    const fail = (message: string) => new CorpusError(file, lineNo, message);

    const header = /^===\s+(.*?)(?:\s+\[([^\]]*)\])?\s*$/.exec(line);
    if (header !== null) {
      const name = header[1] as string;
      if (name === "") throw fail("case without a name");
      const tags = (header[2] ?? "").split(/[\s,]+/).filter((tag) => tag !== "");
      const unknown = tags.find((tag) => !(CORPUS_TAGS as readonly string[]).includes(tag));
      if (unknown !== undefined) throw fail(`unknown tag [${unknown}]; known: ${CORPUS_TAGS.join(", ")}`);
      current = {
        file,
        name,
        line: lineNo,
        tags,
        nativeOnly: tags.includes("native-only"),
        leafOnly: tags.includes("leaf-only"),
        oneRead: tags.includes("one-read"),
        steps: [],
      };
      cases.push(current);
      return;
    }
    if (current === null) throw fail(`step before the first "=== case": ${JSON.stringify(line)}`);
    const steps: CorpusStep[] = current.steps;
    const decode = (body: string) => decodeText(body, () => `${file}:${lineNo}`);

    // One space after the directive is optional, as in memcached_corpus.py.
    const directive = /^(>>|>|<~|<|@|!) ?(.*)$/.exec(line);
    if (directive === null) throw fail(`unknown line ${JSON.stringify(line)}`);
    const body = directive[2] as string;
    switch (directive[1]) {
      case ">":
        steps.push({ kind: "send", bytes: decode(`${body}\\r\\n`), line: lineNo });
        break;
      case ">>":
        steps.push({ kind: "send", bytes: decode(body), line: lineNo });
        break;
      case "<":
        steps.push({ kind: "expect", bytes: decode(`${body}\\r\\n`), line: lineNo });
        break;
      case "<~":
        try {
          steps.push({
            kind: "expectMatch",
            pattern: body,
            regex: new RegExp(`^(?:${body})$`),
            line: lineNo,
          });
        } catch (error) {
          throw fail(`bad regex: ${(error as Error).message}`);
        }
        break;
      case "@": {
        const advance = /^advance\s+(\d+)$/.exec(body);
        if (advance === null) throw fail(`unknown clock step ${JSON.stringify(line)}`);
        steps.push({ kind: "advance", seconds: Number(advance[1]), line: lineNo });
        break;
      }
      case "!":
        if (body !== "closed") throw fail(`unknown event ${JSON.stringify(line)}`);
        steps.push({ kind: "closed", line: lineNo });
        break;
    }
  });
  return cases;
}

/** Parses every *.txt file in `dir`, in file-name order; cases keep their order within a file. */
export function loadCorpus(dir: string): CorpusCase[] {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith(".txt"))
    .sort();
  return files.flatMap((name) => parseCorpus(readFileSync(join(dir, name), "latin1"), basename(name)));
}

export interface PlayOptions {
  port: number;
  host?: string;
  /** Deadline of each awaited reply or close, in ms (default 5000). */
  deadlineMs?: number;
}

// Sent after a transcript that ends on a reply: any reply the transcript did not mention arrives
// before (or instead of) the probe's two lines.
const PROBE = "version\r\nget gravity:corpus:probe\r\n";
const PROBE_VERSION = /^VERSION \S+$/;

/**
 * Plays `testCase` on a fresh connection and returns the mismatches (empty when the server
 * replied exactly as the transcript says). Playing stops at the first mismatch, since the reply
 * stream is out of step after it. When the transcript ends on an awaited reply, a probe
 * (`version`, then a `get` of a key no case sets) checks that the server sent nothing more.
 */
export async function playCase(testCase: CorpusCase, options: PlayOptions): Promise<string[]> {
  if (testCase.nativeOnly) throw new Error(`case ${JSON.stringify(testCase.name)} is native-only`);
  const deadlineMs = options.deadlineMs ?? 5000;
  const client = await McClient.connect(options.port, options.host);
  const at = (line: number) => `${testCase.file}:${line} [${testCase.name}]`;
  try {
    for (const step of testCase.steps) {
      const mismatch = await playStep(client, step, deadlineMs);
      if (mismatch !== undefined) return [`${at(step.line)} ${mismatch}`];
    }
    const last = testCase.steps.at(-1);
    if (last === undefined || last.kind === "closed") return [];
    if (last.kind === "expect" || last.kind === "expectMatch") {
      await client.send(PROBE);
      let probe: string[];
      try {
        probe = await client.readLines(2, deadlineMs);
      } catch (error) {
        return [`${at(last.line)} no reply to the end-of-case probe: ${(error as Error).message}`];
      }
      if (!PROBE_VERSION.test(probe[0] as string) || probe[1] !== "END") {
        return [
          `${at(last.line)} unexpected reply after the transcript: ${JSON.stringify(probe.join("\r\n"))}`,
        ];
      }
    }
    if (client.buffered().length > 0) {
      return [`${at(last.line)} unexpected bytes after the transcript: ${preview(client.buffered())}`];
    }
    return [];
  } finally {
    client.close();
  }
}

// Plays one step; returns a description of the mismatch, or undefined.
async function playStep(client: McClient, step: CorpusStep, deadlineMs: number): Promise<string | undefined> {
  switch (step.kind) {
    case "send":
      try {
        await client.send(step.bytes);
      } catch (error) {
        return `could not send ${preview(step.bytes)}: ${(error as Error).message}`;
      }
      return undefined;
    case "expect": {
      const want = step.bytes;
      let got: Uint8Array;
      try {
        got = await client.read(
          (unread) => wholeLinesCovering(unread, want),
          `reply ${preview(want)}`,
          deadlineMs,
        );
      } catch (error) {
        return `expected ${preview(want)}: ${(error as Error).message}`;
      }
      return Buffer.compare(got, want) === 0 ? undefined : `expected ${preview(want)}, got ${preview(got)}`;
    }
    case "expectMatch": {
      let got: string;
      try {
        got = await client.readLine(deadlineMs);
      } catch (error) {
        return `expected a line matching /${step.pattern}/: ${(error as Error).message}`;
      }
      return step.regex.test(got)
        ? undefined
        : `expected a line matching /${step.pattern}/, got ${JSON.stringify(got)}`;
    }
    case "closed":
      try {
        await client.waitClosed(deadlineMs);
      } catch (error) {
        return `expected the server to close the connection: ${(error as Error).message}`;
      }
      return client.buffered().length === 0
        ? undefined
        : `unexpected bytes before the close: ${preview(client.buffered())}`;
    case "advance":
      return `"@ advance" cannot run over a socket; mark the case [native-only]`;
  }
}

// How many bytes of `unread` to take as the reply to compare with `want`: whole CRLF-terminated
// lines, stopping as soon as they cover `want` or stop being a prefix of it; undefined to wait.
function wholeLinesCovering(unread: Uint8Array, want: Uint8Array): number | undefined {
  const buf = Buffer.from(unread.buffer, unread.byteOffset, unread.byteLength);
  let offset = 0;
  for (;;) {
    const crlf = buf.indexOf("\r\n", offset, "latin1");
    if (crlf === -1) return undefined;
    offset = crlf + 2;
    if (offset >= want.length) return offset;
    if (Buffer.compare(buf.subarray(0, offset), want.subarray(0, offset)) !== 0) return offset;
  }
}

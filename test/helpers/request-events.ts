// The router's request parser as its tests drive it: feed chunks to a fresh parser, collect its
// requests and errors as events, and describe each event as one comparable string.
import { Op, type Request } from "../../src/protocol/request.ts";
import { RequestParser, type RequestParserOptions } from "../../src/protocol/request-parser.ts";

export const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
export const text = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
export const OP_NAME = Object.fromEntries(Object.entries(Op).map(([name, value]) => [value, name])) as Record<
  number,
  string
>;

export type Event = { kind: "request"; request: Request } | { kind: "error"; reply: string; close: boolean };

export const DEFAULTS: RequestParserOptions = { maxItemBytes: 1024 * 1024 };

/**
 * Feeds `chunks` to a fresh parser and returns its events. Each chunk is a copy that is overwritten
 * after feed returns, as a socket reuses its buffer: a request that aliased it would change.
 */
export function parse(chunks: readonly Uint8Array[], options: RequestParserOptions = DEFAULTS) {
  const events: Event[] = [];
  const parser = new RequestParser(
    {
      onRequest: (request) => events.push({ kind: "request", request }),
      onError: (reply, close) => events.push({ kind: "error", reply: text(reply), close }),
    },
    options,
  );
  for (const chunk of chunks) {
    const copy = Uint8Array.from(chunk); // a copy even of a Buffer, whose slice() is a view
    parser.feed(copy);
    copy.fill(0xee);
  }
  return { events, parser };
}

/** Every field of an event, as one comparable string. */
export function describeEvent(event: Event): string {
  if (event.kind === "error") return `error ${JSON.stringify(event.reply)}${event.close ? " +close" : ""}`;
  const r = event.request;
  return JSON.stringify({
    op: OP_NAME[r.op],
    keys: r.keys.map(text),
    value: text(r.value),
    flags: r.flags,
    exptime: r.exptime,
    cas: String(r.casUnique),
    delta: String(r.delta),
    noreply: r.noreply,
    metaFlags: r.metaFlags,
    base64Key: r.base64Key,
    decodedKey: r.decodedKey === null ? null : text(r.decodedKey),
    args: r.args,
    raw: text(r.raw),
  });
}

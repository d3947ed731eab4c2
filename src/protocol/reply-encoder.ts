// Replies back to bytes, as memcached writes them (memcached protocol.txt): what a router sends
// its clients after a reply came from a leaf. encodeReply(parse(bytes)) gives back the bytes.
import { type Reply, ReplyType } from "./reply.ts";

const STATUS: Partial<Record<ReplyType, string>> = {
  [ReplyType.Stored]: "STORED",
  [ReplyType.NotStored]: "NOT_STORED",
  [ReplyType.Exists]: "EXISTS",
  [ReplyType.NotFound]: "NOT_FOUND",
  [ReplyType.Deleted]: "DELETED",
  [ReplyType.Touched]: "TOUCHED",
  [ReplyType.Ok]: "OK",
  [ReplyType.End]: "END",
  [ReplyType.Version]: "VERSION",
  [ReplyType.ClientError]: "CLIENT_ERROR",
  [ReplyType.ServerError]: "SERVER_ERROR",
  [ReplyType.MetaHeader]: "HD",
  [ReplyType.MetaMiss]: "EN",
  [ReplyType.MetaNotFound]: "NF",
  [ReplyType.MetaNotStored]: "NS",
  [ReplyType.MetaExists]: "EX",
  [ReplyType.MetaNoop]: "MN",
  [ReplyType.MetaDebug]: "ME",
};

const CRLF = Uint8Array.of(0x0d, 0x0a);
const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);

function concat(parts: Uint8Array[]): Uint8Array {
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

// "WORD" or "WORD rest", then CRLF.
function line(word: string, rest: Uint8Array, parts: Uint8Array[]): void {
  parts.push(ascii(rest.length > 0 ? `${word} ` : word), rest, CRLF);
}

/** The bytes of `reply` as a memcached server writes it. */
export function encodeReply(reply: Reply): Uint8Array {
  const parts: Uint8Array[] = [];
  switch (reply.type) {
    case ReplyType.Values:
      for (const item of reply.items ?? []) {
        const cas = item.cas === undefined ? "" : ` ${item.cas}`;
        parts.push(ascii("VALUE "), item.key, ascii(` ${item.flags} ${item.value.length}${cas}\r\n`));
        parts.push(item.value, CRLF);
      }
      parts.push(ascii("END\r\n"));
      break;
    case ReplyType.Number:
      parts.push(ascii(`${reply.number}\r\n`));
      break;
    case ReplyType.Stats:
      for (const [name, value] of reply.stats ?? []) parts.push(ascii(`STAT ${name} ${value}\r\n`));
      parts.push(ascii("END\r\n"));
      break;
    case ReplyType.MetaValue: {
      const value = reply.value ?? new Uint8Array(0);
      line(`VA ${value.length}`, reply.rest, parts);
      parts.push(value, CRLF);
      break;
    }
    case ReplyType.Dump:
      parts.push(reply.value ?? new Uint8Array(0));
      break;
    case ReplyType.Error:
      // memcached writes "ERROR" alone, or "ERROR: message".
      line(reply.rest.length > 0 ? "ERROR:" : "ERROR", reply.rest, parts);
      break;
    default: {
      const word = STATUS[reply.type];
      if (word === undefined) throw new Error(`no status word for reply type ${reply.type}`);
      line(word, reply.rest, parts);
    }
  }
  return concat(parts);
}

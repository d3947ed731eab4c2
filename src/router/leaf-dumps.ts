// Item dumps and the LRU crawler through the router: each leaf is asked, and the router answers as
// one memcached would for the whole pool, so libmemcached's memcdump and the npm memcached
// client's cachedump() list a pool's keys.
//
//   stats cachedump C L ──> leaf 1, then leaf 2, ... one at a time ──> their lines merged, each
//   lru_crawler metadump ─┘   key once (a replicated pool holds copies), up to L items and a byte
//                             cap, then END; the first error or status reply (BUSY, BADCLASS) instead
//   lru_crawler <other>  ──> every leaf ──> OK if each said OK, else the first other reply
//
// Memory: leaves are asked one after another and asking stops once the cap is reached, so a dump
// holds the merged lines (at most the cap) and one leaf's reply (at most the reply parser's
// maxDumpBytes) at a time. memcached's own cachedump stops at 2 MiB; its metadump streams without
// a limit, which a router that answers in one reply cannot: it stops at MAX_METADUMP_BYTES.
import { Reply, ReplyType } from "../protocol/reply.ts";
import { DEFAULT_MAX_DUMP_BYTES } from "../protocol/reply-parser.ts";
import { Op, type Request } from "../protocol/request.ts";
import type { Pool } from "./pool.ts";

/** memcached items.c item_cachedump: a reply of at most 2 MiB, END included. */
export const MAX_CACHEDUMP_BYTES = 2 * 1024 * 1024;
/** The most a merged `lru_crawler metadump` reply holds, END included. */
export const MAX_METADUMP_BYTES = DEFAULT_MAX_DUMP_BYTES;

const END = new TextEncoder().encode("END\r\n");
const OK = "OK\r\n";
const LF = 0x0a;
const SPACE = 0x20;
const latin1 = new TextDecoder("latin1");

/** Whether `request` is a dump the router merges from its leaves (a text client's). */
export function isLeafDump(request: Request): boolean {
  return (
    (request.op === Op.Stats && request.args[0] === "cachedump") ||
    (request.op === Op.LruCrawler && request.args[0] === "metadump")
  );
}

/**
 * The reply to `stats cachedump` or `lru_crawler` for the pools' leaves that are up (a leaf that
 * fails to answer a dump is left out of it). `request.affinity` picks each leaf's connection.
 */
export async function leafDump(pools: ReadonlyMap<string, Pool>, request: Request): Promise<Reply> {
  if (!isLeafDump(request)) return tellEveryLeaf(pools, request);
  const cachedump = request.op === Op.Stats;
  // cachedump's limit: at most this many items in all (0: no limit), as one memcached lists them.
  const limit = cachedump && /^\d+$/.test(request.args[2] ?? "") ? Number(request.args[2]) : 0;
  const merged = new DumpMerge(cachedump ? MAX_CACHEDUMP_BYTES : MAX_METADUMP_BYTES, limit);
  for (const pool of pools.values()) {
    for (const destination of pool.destinations) {
      if (destination.down || merged.full) continue;
      const reply = await destination.send(request).catch(() => undefined);
      if (reply === undefined) continue;
      if (reply.type !== ReplyType.Dump || !endsWithEnd(reply.value)) return reply; // an error, BUSY...
      merged.add(reply.value as Uint8Array);
    }
  }
  return merged.reply();
}

// lru_crawler crawl, enable, disable, sleep, tocrawl...: each leaf's crawler is told, as
// flush_all is.
async function tellEveryLeaf(pools: ReadonlyMap<string, Pool>, request: Request): Promise<Reply> {
  const sends: Promise<Reply>[] = [];
  for (const pool of pools.values())
    for (const destination of pool.destinations) sends.push(destination.send(request));
  const replies = await Promise.all(sends);
  const other = replies.find(
    (reply) => reply.type !== ReplyType.Dump || latin1.decode(reply.value ?? END) !== OK,
  );
  if (other !== undefined) return other;
  const ok = new Reply(ReplyType.Dump);
  ok.value = new TextEncoder().encode(OK);
  return ok;
}

function endsWithEnd(value: Uint8Array | null): boolean {
  if (value === null || value.length < END.length) return false;
  for (let i = 0; i < END.length; i++) if (value[value.length - END.length + i] !== END[i]) return false;
  return true;
}

// The merged lines of several leaves' dumps: each key once, within a byte cap and an item limit.
class DumpMerge {
  private readonly parts: Uint8Array[] = [];
  private readonly keys = new Set<string>();
  private bytes = END.length;
  full = false;

  constructor(
    private readonly maxBytes: number,
    private readonly maxItems: number,
  ) {}

  // Adds the lines of one leaf's dump (`value`, END last), as sent.
  add(value: Uint8Array): void {
    const end = value.length - END.length;
    let at = 0;
    while (at < end && !this.full) {
      let lf = value.indexOf(LF, at);
      if (lf < 0 || lf >= end) lf = end - 1;
      const line = value.subarray(at, lf + 1);
      at = lf + 1;
      const key = keyOf(line);
      if (this.keys.has(key)) continue;
      if (this.bytes + line.length > this.maxBytes) {
        this.full = true;
        break;
      }
      this.keys.add(key);
      this.parts.push(line);
      this.bytes += line.length;
      if (this.maxItems > 0 && this.keys.size >= this.maxItems) this.full = true;
    }
  }

  reply(): Reply {
    const value = new Uint8Array(this.bytes);
    let at = 0;
    for (const part of this.parts) {
      value.set(part, at);
      at += part.length;
    }
    value.set(END, at);
    const reply = new Reply(ReplyType.Dump);
    reply.value = value;
    return reply;
  }
}

// The key token of `ITEM <key> [...]` or `key=<key> exp=...`.
function keyOf(line: Uint8Array): string {
  const start = line[0] === 0x49 /* I */ ? 5 : 4;
  let end = start;
  while (end < line.length && line[end] !== SPACE && line[end] !== LF && line[end] !== 0x0d) end++;
  return latin1.decode(line.subarray(start, end));
}

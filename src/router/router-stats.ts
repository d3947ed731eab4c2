// What the router answers to `stats` beyond its own counters, in the spirit of twemproxy's
// per-server stats and mcrouter's `stats servers`:
//
//   stats          ──> every leaf that is up: `stats` ──> curr_items, bytes, limit_maxbytes summed
//                      (a replicated pool counts each copy: the sum is memory in use, not keys)
//   stats servers  ──> one line per leaf of every pool, from what its destination counted
import { Reply, ReplyType } from "../protocol/reply.ts";
import type { Request } from "../protocol/request.ts";
import { parseRequest } from "../protocol/request-parser.ts";
import type { Pool } from "./pool.ts";

const STATS_REQUEST = new TextEncoder().encode("stats\r\n");
const SUMMED = ["curr_items", "bytes", "limit_maxbytes"] as const;

/**
 * The leaves' totals of curr_items, bytes and limit_maxbytes, asked of every leaf that is up, and
 * how many leaves answered (leaves_answered of leaves_total): a leaf that is down or fails to answer
 * is left out of the sums, and the counts say so.
 */
export async function leafTotals(
  pools: ReadonlyMap<string, Pool>,
  affinity: number,
): Promise<[string, string][]> {
  const sends: Promise<Reply | undefined>[] = [];
  let total = 0;
  for (const pool of pools.values()) {
    for (const destination of pool.destinations) {
      total++;
      if (destination.down) continue;
      const request: Request = parseRequest(STATS_REQUEST);
      request.affinity = affinity;
      sends.push(destination.send(request).catch(() => undefined));
    }
  }
  const sums = new Map<string, bigint>(SUMMED.map((name) => [name, 0n]));
  let answered = 0;
  for (const reply of await Promise.all(sends)) {
    if (reply?.type !== ReplyType.Stats || reply.stats === null) continue;
    answered++;
    for (const name of SUMMED) {
      const value = reply.stats.get(name);
      if (value !== undefined && /^\d+$/.test(value))
        sums.set(name, (sums.get(name) as bigint) + BigInt(value));
    }
  }
  return [
    ...SUMMED.map((name): [string, string] => [name, String(sums.get(name))]),
    ["leaves_answered", String(answered)],
    ["leaves_total", String(total)],
  ];
}

/**
 * `stats servers`: per leaf of every pool, `STAT <pool>/<leaf> state:up|down requests:N errors:N
 * avg_latency_us:N in_flight:N` (requests answered, failed, their mean time, and waiting now).
 */
export function serversReply(pools: ReadonlyMap<string, Pool>): Reply {
  const reply = new Reply(ReplyType.Stats);
  reply.stats = new Map();
  for (const [name, pool] of pools) {
    for (const destination of pool.destinations) {
      const stats = destination.stats;
      const fields = [
        `state:${destination.down ? "down" : "up"}`,
        `requests:${stats?.replies ?? 0}`,
        `errors:${stats?.failures ?? 0}`,
        `avg_latency_us:${Math.round(stats?.averageMicros ?? 0)}`,
        `in_flight:${destination.inFlightCount}`,
      ];
      reply.stats.set(`${name}/${destination.name}`, fields.join(" "));
    }
  }
  return reply;
}

/** The stats groups the router answers by asking every leaf and merging their replies. */
export const MERGED_GROUPS: ReadonlySet<string> = new Set(["items", "slabs", "sizes"]);

// Fields that describe a class or a time, not a count: the largest of the leaves' values is kept.
const NOT_SUMMED = /(^|:)(age|evicted_time|chunk_size|chunks_per_page|sizes_status)$/;

/**
 * `stats items|slabs|sizes` of a pool-wide view: every leaf that is up is asked, and each line is
 * the sum of the leaves' values (counts: items per class, memory, evictions), or the largest
 * (ages, chunk sizes) or the first (text); a line only some leaves have is kept. So the npm
 * memcached client's items() and memcached tools read a pool through the router as one server.
 */
export async function mergedGroup(
  pools: ReadonlyMap<string, Pool>,
  group: string,
  affinity: number,
): Promise<Reply> {
  const sends: Promise<Reply | undefined>[] = [];
  for (const pool of pools.values()) {
    for (const destination of pool.destinations) {
      if (destination.down) continue;
      const request: Request = parseRequest(new TextEncoder().encode(`stats ${group}\r\n`));
      request.affinity = affinity;
      sends.push(destination.send(request).catch(() => undefined));
    }
  }
  const merged = new Map<string, string>();
  for (const reply of await Promise.all(sends)) {
    if (reply?.type !== ReplyType.Stats || reply.stats === null) continue;
    for (const [name, value] of reply.stats) {
      const before = merged.get(name);
      if (before === undefined) merged.set(name, value);
      else if (/^\d+$/.test(value) && /^\d+$/.test(before)) {
        const [a, b] = [BigInt(before), BigInt(value)];
        merged.set(name, String(NOT_SUMMED.test(name) ? (a > b ? a : b) : a + b));
      }
    }
  }
  const reply = new Reply(ReplyType.Stats);
  reply.stats = merged;
  return reply;
}

// Gutter (Nishtala et al., "Scaling Memcache at Facebook", §3.3; mcrouter's
// FailoverWithExptimeRoute with its failover_exptime): while the leaf that owns a key is down, its
// reads and writes go to a small gutter pool whose items live at most ttlSeconds, instead of
// missing all the way through to the database.
//
//   request ─> primary leaf = pool.pick(key), as ShardedRoute picks it
//     read/write:  down (TKO), or the send fails with ConnectionError | TimeoutError |
//                  DestinationDownError ──> gutter route (writes: exptime capped to ttlSeconds)
//                  otherwise ──> the primary's reply, SERVER_ERROR included
//     delete:      primary AND gutter, in parallel; the primary's reply or failure is the answer
//
// Traffic returns by itself: each request looks at `down` again, so once a probe revives the
// leaf its keys go back to it. Nothing written to the gutter is copied back: those items simply
// expire within ttlSeconds. A leaf that restarted empty refills from misses; a leaf that was only
// unreachable (a partition) still holds what it had, so it may serve a value older than one
// written to the gutter meanwhile, until the key is written or deleted again — as with Facebook's
// gutter, the short TTL bounds how long gutter copies live, not the primary's staleness.
//
// Deletes go to both so that a stale gutter copy cannot outlive a delete: reads of a key move to
// the gutter whenever its leaf is down, so a copy left there by an earlier outage (up to
// ttlSeconds old) would be served again if the leaf went down a second time, even though the key
// was deleted on the primary in between. Both deletes are awaited, so a client's next command is
// ordered after both. A delete never fails over: while the leaf is down the gutter copy is still
// removed, but the client gets the primary's failure (SERVER_ERROR), because the authoritative
// copy was not invalidated — a leaf back from a partition would serve it — and whoever issued the
// delete must retry it (mcrouter's failover settings do not fail deletes over by default either).
// A failed gutter delete does not fail the client's delete: the copy it missed lives at most
// ttlSeconds and is read only if the leaf goes down within that time; it is counted.
import { isOutage } from "../../errors.ts";
import { MAX_RELATIVE_EXPTIME_SECONDS } from "../../protocol/encoder.ts";
import type { Reply } from "../../protocol/reply.ts";
import { Op, OpKind, type Request } from "../../protocol/request.ts";
import { isFailure, routingKey } from "../forward.ts";
import type { Pool } from "../pool.ts";
import { type RouteHandle, type RouteVisitor, withRole } from "./handle.ts";

/** Counts for metrics; the route only increments them. */
export interface GutterCounters {
  /** Reads and writes sent to the gutter because their leaf was down or failed. */
  diverted: number;
  /** Deletes whose gutter copy could not be deleted (an error or SERVER_ERROR from the gutter). */
  gutterDeleteFailures: number;
}

export interface GutterOptions {
  /** The longest an item written to the gutter lives, in seconds (a positive integer). */
  ttlSeconds: number;
  counters?: GutterCounters;
  /** Unix time in seconds, for absolute exptimes; defaults to the wall clock. */
  nowSeconds?: () => number;
}

export class GutterRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[];
  private readonly ttlSeconds: number;
  private readonly nowSeconds: () => number;

  constructor(
    private readonly primary: Pool,
    private readonly gutter: RouteHandle,
    private readonly options: GutterOptions,
  ) {
    if (
      !Number.isInteger(options.ttlSeconds) ||
      options.ttlSeconds <= 0 ||
      options.ttlSeconds > MAX_RELATIVE_EXPTIME_SECONDS
    )
      throw new RangeError(
        `gutter ttlSeconds must be an integer in 1..${MAX_RELATIVE_EXPTIME_SECONDS}, got ${options.ttlSeconds}`,
      );
    this.ttlSeconds = options.ttlSeconds;
    this.routeName = `gutter(pool=${primary.name}, ttlSeconds=${options.ttlSeconds})`;
    this.children = [gutter];
    this.nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  async route(request: Request): Promise<Reply> {
    const destination = this.primary.destinations[this.primary.pick(routingKey(request))];
    if (destination === undefined) throw new Error(`pool ${this.primary.name} has no servers`);
    if (request.kind === OpKind.Delete) return this.delete(request, destination.send(request));
    if (!destination.down) {
      try {
        return await destination.send(request);
      } catch (error) {
        if (!isOutage(error)) throw error;
      }
    }
    if (this.options.counters !== undefined) this.options.counters.diverted++;
    return this.gutter.route(cappedRequest(request, this.ttlSeconds, this.nowSeconds()));
  }

  // The primary leaf, unless it is down; then the gutter, which also takes deletes and failures.
  traverse(request: Request, visit: RouteVisitor): void {
    const destination = this.primary.destinations[this.primary.pick(routingKey(request))];
    if (destination !== undefined && (!destination.down || request.kind === OpKind.Delete))
      visit(destination, "shard");
    this.gutter.traverse(request, withRole(visit, "gutter"));
  }

  private async delete(request: Request, primary: Promise<Reply>): Promise<Reply> {
    const [fromPrimary, fromGutter] = await Promise.allSettled([primary, this.gutter.route(request)]);
    const gutterFailed = fromGutter.status === "rejected" || isFailure(fromGutter.value);
    if (gutterFailed && this.options.counters !== undefined) this.options.counters.gutterDeleteFailures++;
    if (fromPrimary.status === "rejected") throw fromPrimary.reason;
    return fromPrimary.value;
  }
}

// memcached: an exptime above 30 days is a Unix time, not a number of seconds from now.

/**
 * memcached's `exptime` capped so the item lives at most `ttlSeconds`: 0 (never) and longer times
 * become ttlSeconds, absolute Unix times are turned into seconds from `nowSeconds` first, and an
 * exptime that expires the item at once (negative, or an absolute time past) is kept.
 */
export function capExptime(exptime: number, ttlSeconds: number, nowSeconds: number): number {
  if (exptime < 0) return exptime;
  if (exptime === 0) return ttlSeconds;
  if (exptime <= MAX_RELATIVE_EXPTIME_SECONDS) return Math.min(exptime, ttlSeconds);
  const remaining = exptime - nowSeconds;
  return remaining <= 0 ? -1 : Math.min(remaining, ttlSeconds);
}

/**
 * `request` as the gutter should see it: every TTL it sets capped by capExptime (its wire form,
 * as every request's, without noreply or q). Commands that set no TTL — reads without a
 * touch, append/prepend, incr/decr (they change an item the gutter already capped, or none) —
 * are returned unchanged.
 */
export function cappedRequest(request: Request, ttlSeconds: number, nowSeconds: number): Request {
  const cap = (exptime: number) => capExptime(exptime, ttlSeconds, nowSeconds);
  switch (request.op) {
    case Op.Set:
    case Op.Add:
    case Op.Replace:
    case Op.Cas:
    case Op.Touch:
    case Op.Gat:
    case Op.Gats:
      return request.derive({ exptime: cap(request.exptime) });
    case Op.MetaSet: {
      // ms without T stores an item that never expires: give it one.
      const flags = cappedMetaFlags(request.metaFlags, cap);
      if (!flags.some((flag) => flag.startsWith("T"))) flags.push(`T${ttlSeconds}`);
      return request.derive({ metaFlags: flags });
    }
    case Op.MetaGet:
    case Op.MetaArithmetic:
      // mg's T touches and its N creates an item on a miss (with that TTL); ma's N creates the
      // counter on a miss, its T sets the TTL on update.
      return request.derive({ metaFlags: cappedMetaFlags(request.metaFlags, cap) });
    default:
      return request;
  }
}

// The meta flags with their T and N tokens capped (memcached protocol.txt, "Meta Set": T(token)
// TTL; "Meta Get": N(token) vivify on miss with this TTL).
function cappedMetaFlags(flags: readonly string[], cap: (exptime: number) => number): string[] {
  const out: string[] = [];
  for (const flag of flags) {
    const letter = flag[0];
    const token = flag.slice(1);
    if ((letter === "T" || letter === "N") && /^-?\d+$/.test(token))
      out.push(`${letter}${cap(Number(token))}`);
    else out.push(flag);
  }
  return out;
}

// Warm-up (mcrouter's WarmUpRoute, wiki "Cold cache warm up setup"): a new, empty ("cold") pool is
// read first; on a miss the old ("warm") pool is read and the value added to cold, so the cold
// pool fills from the warm one instead of from the database.
//
//   get    ─> cold ─hit─> reply
//                └─miss─> warm `mg <key> v f t` ─miss─> cold's miss
//                                  └─hit─> reply from the warm item now; add to cold in the background
//   gets, gat, gats, mg ─> as get, but the add is awaited and the client's own request is then sent
//                          to cold again, and that is the reply
//   me     ─> cold; on a miss, warm (no add: mcrouter's metaget)
//   writes ─> cold only            deletes ─> cold and warm
//
// The add to cold and the answer to the read are item-copy.ts's: memcached's add (`ms ... ME`), as
// mcrouter's is, so a value a client stored in cold meanwhile is not overwritten by the warm copy;
// the warm item's client flags; an exptime of min(ttlSeconds, the warm item's remaining TTL), read
// in the same `mg` (mcrouter uses its configured exptime, or a metaget for the remaining TTL when
// none is set; we do both in the one read). A get is answered at once, gets/gat/gats/mg wait for
// the add and are re-run on cold (item-copy.ts says why).
//
// Writes go to cold only, as mcrouter's do ("client is responsible for warm consistency"). Deletes
// go to warm as well (a departure from mcrouter): otherwise the next read of a deleted key misses
// in cold, finds the old value in warm and puts it back — a delete that undoes itself. Both are
// awaited; the answer is cold's, and a failed warm delete is counted, not returned. Still possible:
// a read that fetched from warm just before a concurrent delete reached it adds the old value to
// cold just after the delete reached cold; and a value overwritten through this route that later
// expires or is evicted in cold can be refilled from warm's older copy while that copy lives. A
// deployment that cannot accept this sends writes to both pools with an operation route above.

import { MAX_RELATIVE_EXPTIME_SECONDS } from "../../protocol/encoder.ts";
import type { Reply } from "../../protocol/reply.ts";
import { Op, OpKind, type Request } from "../../protocol/request.ts";
import { isFailure, isMiss } from "../forward.ts";
import { type RouteHandle, type RouteVisitor, withRole } from "./handle.ts";
import { answerFromCopy, type CopiedItem, copiedItem, copyRead, type SendTo } from "./item-copy.ts";

/** Counts for metrics; the route only increments them. */
export interface WarmUpCounters {
  /** Cold misses answered from warm. */
  warmHits: number;
  /** Adds to cold that cold answered (stored, or not stored because cold had the key by then). */
  fills: number;
  /** Adds to cold that failed (an error or SERVER_ERROR), and failed warm reads after a cold miss. */
  fillFailures: number;
  /** Deletes that could not reach warm. */
  warmDeleteFailures: number;
}

export interface WarmUpOptions {
  /** The longest a value copied from warm lives in cold, in seconds (a positive integer). */
  ttlSeconds: number;
  counters?: WarmUpCounters;
}

export class WarmUpRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[];
  private readonly sendToCold: SendTo;

  constructor(
    private readonly cold: RouteHandle,
    private readonly warm: RouteHandle,
    private readonly options: WarmUpOptions,
  ) {
    this.routeName = `warmup(ttlSeconds=${options.ttlSeconds})`;
    this.children = [cold, warm];
    this.sendToCold = (request) => cold.route(request);
    if (
      !Number.isInteger(options.ttlSeconds) ||
      options.ttlSeconds <= 0 ||
      options.ttlSeconds > MAX_RELATIVE_EXPTIME_SECONDS
    )
      throw new RangeError(
        `warm-up ttlSeconds must be an integer in 1..${MAX_RELATIVE_EXPTIME_SECONDS}, got ${options.ttlSeconds}`,
      );
  }

  route(request: Request): Promise<Reply> {
    switch (request.kind) {
      case OpKind.Read:
        return this.read(request);
      case OpKind.Delete:
        return this.delete(request);
      default:
        return this.cold.route(request);
    }
  }

  // Cold always; warm for reads (after a cold miss) and deletes.
  traverse(request: Request, visit: RouteVisitor): void {
    this.cold.traverse(request, visit);
    if (request.kind === OpKind.Read || request.kind === OpKind.Delete)
      this.warm.traverse(request, withRole(visit, "warm"));
  }

  private async read(request: Request): Promise<Reply> {
    const fromCold = await this.cold.route(request);
    if (!isMiss(fromCold)) return fromCold; // a hit, or an error reply
    if (request.op === Op.MetaDebug) return this.warm.route(request);
    const item = await this.readWarm(request);
    if (item === undefined) return fromCold;
    const counters = this.options.counters;
    if (counters !== undefined) counters.warmHits++;
    return answerFromCopy(this.sendToCold, request, fromCold, item, counters);
  }

  // One read of warm that changes nothing there. A failed read is a miss: warm only ever saves a
  // trip to the database.
  private async readWarm(request: Request): Promise<CopiedItem | undefined> {
    let reply: Reply;
    try {
      reply = await this.warm.route(copyRead(request));
    } catch {
      this.countFillFailure();
      return undefined;
    }
    if (isFailure(reply)) this.countFillFailure();
    return copiedItem(reply, this.options.ttlSeconds);
  }

  private async delete(request: Request): Promise<Reply> {
    const [fromCold, fromWarm] = await Promise.allSettled([
      this.cold.route(request),
      this.warm.route(request),
    ]);
    const warmFailed = fromWarm.status === "rejected" || isFailure(fromWarm.value);
    if (warmFailed && this.options.counters !== undefined) this.options.counters.warmDeleteFailures++;
    if (fromCold.status === "rejected") throw fromCold.reason;
    return fromCold.value;
  }

  private countFillFailure(): void {
    if (this.options.counters !== undefined) this.options.counters.fillFailures++;
  }
}

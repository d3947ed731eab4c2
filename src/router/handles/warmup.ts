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
// The add to cold is memcached's add (`ms ... ME`), as mcrouter's is: a value a client stored in
// cold meanwhile is newer than the warm copy and must not be overwritten. It carries the warm
// item's client flags and an exptime of min(ttlSeconds, the warm item's remaining TTL), read in the
// same `mg` (its t flag; -1, no expiry, gives ttlSeconds), so a copy never outlives its original.
// mcrouter uses its configured exptime, or a metaget for the remaining TTL when none is set; we do
// both in the one read. An item with 0 seconds left is served but not copied (T0 would mean never).
//
// Why some reads wait: a plain get's reply is the warm value whatever the add does, so the client
// is not kept waiting for it (its result is only counted). A gets or gats returns a CAS unique the
// client will use in a `cas` sent to cold, so it must come from cold's copy; a gat's touch must
// apply to cold's copy; an mg's reply depends on its flags (k, O, s, c, t, T, N, q...), and
// re-running it on cold answers every combination exactly. mcrouter does the same for gets.
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
import { Item, Reply as ReplyClass, ReplyType } from "../../protocol/reply.ts";
import { Op, OpKind, type Request } from "../../protocol/request.ts";
import { isFailure, isMiss } from "../forward.ts";
import { type RouteHandle, type RouteVisitor, withRole } from "./handle.ts";

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

// memcached: an exptime above 30 days is a Unix time; a TTL here is always seconds from now.

/** A hit in warm: what the add to cold needs. */
interface WarmItem {
  value: Uint8Array;
  flags: number;
  /** The add's exptime in seconds, or undefined when the item is about to expire (no add). */
  exptime: number | undefined;
}

export class WarmUpRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[];

  constructor(
    private readonly cold: RouteHandle,
    private readonly warm: RouteHandle,
    private readonly options: WarmUpOptions,
  ) {
    this.routeName = `warmup(ttlSeconds=${options.ttlSeconds})`;
    this.children = [cold, warm];
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
    if (request.op === Op.Get) {
      if (item.exptime !== undefined) void this.fill(request, item, item.exptime);
      return valuesReply(request.key, item);
    }
    if (item.exptime === undefined || !(await this.fill(request, item, item.exptime))) return fromCold;
    return this.cold.route(request);
  }

  // One read of warm that changes nothing there (no touch, no vivify): value, flags, remaining TTL.
  // A failed read is a miss: warm only ever saves a trip to the database.
  private async readWarm(request: Request): Promise<WarmItem | undefined> {
    const flags = request.base64Key ? ["b", "v", "f", "t"] : ["v", "f", "t"];
    const read = request.derive({ op: Op.MetaGet, metaFlags: flags });
    let reply: Reply;
    try {
      reply = await this.warm.route(read);
    } catch {
      this.countFillFailure();
      return undefined;
    }
    if (reply.type !== ReplyType.MetaValue || reply.value === null) {
      if (isFailure(reply)) this.countFillFailure();
      return undefined;
    }
    const remaining = Number(reply.metaFlag("t") ?? "-1");
    const ttl = this.options.ttlSeconds;
    const exptime = remaining === -1 ? ttl : remaining > 0 ? Math.min(ttl, remaining) : undefined;
    return { value: reply.value, flags: Number(reply.metaFlag("f") ?? "0"), exptime };
  }

  // Adds the warm item to cold; true when cold answered (stored, or already had the key). Never
  // rejects: it also runs in the background.
  private async fill(request: Request, item: WarmItem, exptime: number): Promise<boolean> {
    const flags = [`F${item.flags}`, `T${exptime}`, "ME"];
    if (request.base64Key) flags.unshift("b");
    const add = request.derive({ op: Op.MetaSet, value: item.value, metaFlags: flags });
    add.flags = item.flags;
    add.exptime = exptime;
    try {
      const reply = await this.cold.route(add);
      if (reply.type === ReplyType.MetaHeader || reply.type === ReplyType.MetaNotStored) {
        if (this.options.counters !== undefined) this.options.counters.fills++;
        return true;
      }
    } catch {
      // counted below
    }
    this.countFillFailure();
    return false;
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

// What a leaf would have answered a `get <key>` holding the warm item.
function valuesReply(key: Uint8Array, item: WarmItem): Reply {
  const reply = new ReplyClass(ReplyType.Values);
  reply.items = [new Item(key, item.flags, undefined, item.value)];
  return reply;
}

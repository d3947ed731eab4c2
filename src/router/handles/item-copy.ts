// Copying an item that one place missed from another place that holds it, with memcached's add so
// a copy never overwrites a newer value: the warm-up route's fill from a warm pool (warmup.ts,
// mcrouter's WarmUpRoute) and the replicated route's read repair between replicas
// (read-repair.ts).
//
//   source: `mg <key> v f t` ──hit──> CopiedItem { value, client flags, exptime }
//   target: `ms <key> <n> F<flags> T<exptime> ME`   (memcached's add: NOT_STORED if the target
//                                                    has the key by now, which is newer)
//
// The exptime is the source item's remaining TTL (its t flag), optionally capped, so a copy never
// outlives its original. An item with 0 seconds left is served but not copied (T0 would mean
// never expire).
//
// How the missed read is then answered (answerFromCopy): a plain get's reply is the source's value
// whatever the add does, so the client is not kept waiting for the add (its result is only
// counted). A gets or gats returns a CAS unique the client will use in a `cas` sent to the target,
// so it must come from the target's copy; a gat's touch must apply to the target's copy; an mg's
// reply depends on its flags (k, O, s, c, t, T, N, q...), and re-running it on the target answers
// every combination exactly. So those wait for the add and are sent to the target again, as
// mcrouter does for gets.
import type { Reply } from "../../protocol/reply.ts";
import { Item, Reply as ReplyClass, ReplyType } from "../../protocol/reply.ts";
import { Op, type Request } from "../../protocol/request.ts";

/** A hit at the source: what the add to the target needs. */
export interface CopiedItem {
  value: Uint8Array;
  flags: number;
  /** The add's exptime in seconds (0: never expires), or undefined when the item is about to expire (no add). */
  exptime: number | undefined;
}

/** Counts for metrics; the copy only increments them. */
export interface CopyCounters {
  /** Adds the target answered (stored, or not stored because it had the key by then). */
  fills: number;
  /** Adds that failed (an error or SERVER_ERROR), and failed reads of the source. */
  fillFailures: number;
}

/** Sends a request to one place (a route, or one leaf) and resolves with its reply. */
export type SendTo = (request: Request) => Promise<Reply>;

/** Whether a read's miss can be answered from a copy (the ops answerFromCopy serves). */
export function isCopyableRead(request: Request): boolean {
  switch (request.op) {
    case Op.Get:
    case Op.Gets:
    case Op.Gat:
    case Op.Gats:
    case Op.MetaGet:
      return true;
    default:
      return false;
  }
}

/** The read of the source: value, client flags and remaining TTL; it changes nothing there (no touch, no vivify). */
export function copyRead(request: Request): Request {
  return request.derive({
    op: Op.MetaGet,
    metaFlags: request.base64Key ? ["b", "v", "f", "t"] : ["v", "f", "t"],
  });
}

/**
 * The item in a reply to copyRead, or undefined for a miss or a failure. Its exptime is the
 * remaining TTL, capped at maxTtlSeconds when given (an item that never expires then gets
 * maxTtlSeconds; without a cap it never expires in the target either).
 */
export function copiedItem(reply: Reply, maxTtlSeconds?: number): CopiedItem | undefined {
  if (reply.type !== ReplyType.MetaValue || reply.value === null) return undefined;
  const remaining = Number(reply.metaFlag("t") ?? "-1"); // memcached: -1 is "never expires"
  let exptime: number | undefined;
  if (remaining === -1) exptime = maxTtlSeconds ?? 0;
  else if (remaining > 0)
    exptime = maxTtlSeconds === undefined ? remaining : Math.min(maxTtlSeconds, remaining);
  return { value: reply.value, flags: Number(reply.metaFlag("f") ?? "0"), exptime };
}

/**
 * Adds `item` to the target (`ms ... ME`); true when the target answered (stored, or not stored
 * because it had the key). Never rejects: it also runs in the background.
 */
export async function addCopy(
  target: SendTo,
  request: Request,
  item: CopiedItem,
  exptime: number,
  counters: CopyCounters | undefined,
): Promise<boolean> {
  const flags = [`F${item.flags}`, `T${exptime}`, "ME"];
  if (request.base64Key) flags.unshift("b");
  const add = request.derive({ op: Op.MetaSet, value: item.value, metaFlags: flags });
  add.flags = item.flags;
  add.exptime = exptime;
  try {
    const reply = await target(add);
    if (reply.type === ReplyType.MetaHeader || reply.type === ReplyType.MetaNotStored) {
      if (counters !== undefined) counters.fills++;
      return true;
    }
  } catch {
    // counted below
  }
  if (counters !== undefined) counters.fillFailures++;
  return false;
}

/**
 * The reply to `request`, which missed at the target (`missed`), now that `item` was found
 * elsewhere; adds the item to the target on the way (see the comment at the top for which reads
 * wait for the add).
 */
export async function answerFromCopy(
  target: SendTo,
  request: Request,
  missed: Reply,
  item: CopiedItem,
  counters: CopyCounters | undefined,
): Promise<Reply> {
  if (request.op === Op.Get) {
    if (item.exptime !== undefined) void addCopy(target, request, item, item.exptime, counters);
    return valuesReply(request.key, item);
  }
  if (item.exptime === undefined || !(await addCopy(target, request, item, item.exptime, counters)))
    return missed;
  return target(request);
}

// What a leaf would have answered a `get <key>` holding the item.
function valuesReply(key: Uint8Array, item: CopiedItem): Reply {
  const reply = new ReplyClass(ReplyType.Values);
  reply.items = [new Item(key, item.flags, undefined, item.value)];
  return reply;
}

// How a client's request travels to a leaf and how its reply is judged. A request goes out as the
// client sent it, except that a leaf must always answer (the router's connections match replies
// in order): `noreply` and the meta `q` flag are dropped on the way out (Request.wire), and the
// router applies them to what it sends back to the client (quietReply).
import { type Reply, ReplyType } from "../protocol/reply.ts";
import { Op, type Request } from "../protocol/request.ts";

/**
 * Whether the client should not see `reply` to `request`: text noreply hides every reply; the
 * meta q flag hides what memcached 1.6.18 hides, as the leaf does (test/corpus): EN for mg (a hit's
 * HD stays), HD for ms and md (NF and EX stay), and ma's success, HD or VA (NF and EX stay);
 * never an error.
 */
export function quietReply(request: Request, reply: Reply): boolean {
  if (!request.noreply) return false;
  switch (request.op) {
    case Op.MetaGet:
      return reply.type === ReplyType.MetaMiss;
    case Op.MetaSet:
    case Op.MetaDelete:
      return reply.type === ReplyType.MetaHeader;
    case Op.MetaArithmetic:
      return reply.type === ReplyType.MetaHeader || reply.type === ReplyType.MetaValue;
    default:
      return true;
  }
}

/** A miss: a retrieval with no value, or a meta miss/not-found (what miss-failover moves on from). */
export function isMiss(reply: Reply): boolean {
  switch (reply.type) {
    case ReplyType.Values:
      return reply.items === null || reply.items.length === 0;
    case ReplyType.End:
    case ReplyType.MetaMiss:
    case ReplyType.NotFound:
    case ReplyType.MetaNotFound:
      return true;
    default:
      return false;
  }
}

/** A reply that says the destination failed (failover moves on from it): SERVER_ERROR. */
export function isFailure(reply: Reply): boolean {
  return reply.type === ReplyType.ServerError;
}

/**
 * The bytes that choose a shard or a prefix route: the item's key, decoded when a meta command
 * sent it base64 (b flag), so `mg <base64> b` and `get <key>` land on the same leaf.
 */
export function routingKey(request: Request): Uint8Array {
  return request.itemKey;
}

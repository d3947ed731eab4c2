// How a client's request travels to a leaf and how its reply is judged. A request goes out as the
// client sent it, except that a leaf must always answer (the router's connections match replies
// in order): `noreply` and the meta `q` flag are dropped on the way out, and the router applies
// them to what it sends back to the client (quietReply).
import {
  encodeArithmetic,
  encodeCas,
  encodeDelete,
  encodeFlushAll,
  encodeGat,
  encodeGet,
  encodeMetaArithmetic,
  encodeMetaDelete,
  encodeMetaGet,
  encodeMetaSet,
  encodeStore,
  encodeTouch,
} from "../protocol/encoder.ts";
import { type Reply, ReplyType } from "../protocol/reply.ts";
import { Op, type Request } from "../protocol/request.ts";

/** The bytes to send a leaf for `request`: its raw bytes, or a re-encoding without noreply/q. */
export function wireBytes(request: Request): Uint8Array {
  if (!request.noreply) return request.raw;
  const key = request.key;
  const store = { flags: request.flags, exptime: request.exptime };
  switch (request.op) {
    case Op.Set:
      return encodeStore("set", key, request.value, store);
    case Op.Add:
      return encodeStore("add", key, request.value, store);
    case Op.Replace:
      return encodeStore("replace", key, request.value, store);
    case Op.Append:
      return encodeStore("append", key, request.value, store);
    case Op.Prepend:
      return encodeStore("prepend", key, request.value, store);
    case Op.Cas:
      return encodeCas(key, request.value, request.casUnique, store);
    case Op.Delete:
      return encodeDelete(key);
    case Op.Touch:
      return encodeTouch(key, request.exptime);
    case Op.Incr:
      return encodeArithmetic("incr", key, request.delta);
    case Op.Decr:
      return encodeArithmetic("decr", key, request.delta);
    case Op.FlushAll:
      return encodeFlushAll(request.args.length > 0 ? { delaySeconds: Number(request.args[0]) } : undefined);
    case Op.MetaGet:
      return encodeMetaGet(key, loudFlags(request));
    case Op.MetaSet:
      return encodeMetaSet(key, request.value, loudFlags(request));
    case Op.MetaDelete:
      return encodeMetaDelete(key, loudFlags(request));
    case Op.MetaArithmetic:
      return encodeMetaArithmetic(key, loudFlags(request));
    default:
      return request.raw;
  }
}

/** A single-key retrieval request for one key of a multi-key get/gets/gat/gats. */
export function singleKeyGet(request: Request, key: Uint8Array): Uint8Array {
  switch (request.op) {
    case Op.Gets:
      return encodeGet([key], "gets");
    case Op.Gat:
      return encodeGat(request.exptime, [key], "gat");
    case Op.Gats:
      return encodeGat(request.exptime, [key], "gats");
    default:
      return encodeGet([key], "get");
  }
}

function loudFlags(request: Request): string[] {
  return request.metaFlags.filter((flag) => flag !== "q");
}

/**
 * Whether the client should not see `reply` to `request`: text noreply hides every reply; the
 * meta q flag hides the uninteresting ones (memcached protocol.txt: EN for mg, HD for ms/md/ma,
 * NF for md/ma), never a value or an error.
 */
export function quietReply(request: Request, reply: Reply): boolean {
  if (!request.noreply) return false;
  switch (request.op) {
    case Op.MetaGet:
      return reply.type === ReplyType.MetaMiss || reply.type === ReplyType.MetaHeader;
    case Op.MetaSet:
      return reply.type === ReplyType.MetaHeader;
    case Op.MetaDelete:
    case Op.MetaArithmetic:
      return reply.type === ReplyType.MetaHeader || reply.type === ReplyType.MetaNotFound;
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

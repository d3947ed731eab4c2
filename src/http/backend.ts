// Where the HTTP API's cache operations go: the leaf's own store (the addon's direct ops) or, on a
// router, the route tree (requests encoded as a memcached client would send them).
//
//   HTTP GET/PUT/DELETE ──> CacheBackend ──┬─ nativeBackend(): native.get/set/delete in this process
//                                         └─ routeBackend(root): Request + encoder bytes ──> root.route()
import { ServerError, ServerErrorKind } from "../errors.ts";
import { getValue, native, StoreStatus } from "../native/index.ts";
import { encodeDelete, encodeGet, encodeStore } from "../protocol/encoder.ts";
import { type Reply, ReplyType } from "../protocol/reply.ts";
import { Op, Request } from "../protocol/request.ts";
import type { RouteHandle } from "../router/handles/handle.ts";

/** What a set did: stored, or refused (the key's old value is then dropped, as memcached does). */
export type SetResult = "stored" | "too_large" | "no_memory";

/**
 * A cache the HTTP API reads and writes. Keys are checked item keys (1..250 bytes, no space or
 * control byte); values are bytes. A rejection means the cache could not answer (a leaf down,
 * a timeout, an error reply), never a miss.
 */
export interface CacheBackend {
  /** The value, or null on a miss. */
  get(key: Uint8Array): Promise<Uint8Array | null>;
  /** `ttlSeconds`: 0 never expires, else seconds from now, at most 30 days (memcached's relative exptime). */
  set(key: Uint8Array, value: Uint8Array, ttlSeconds: number): Promise<SetResult>;
  /** Whether there was a value to delete. */
  delete(key: Uint8Array): Promise<boolean>;
}

/** The leaf's backend: this process's store, through the addon's direct operations (no protocol). */
export function nativeBackend(): CacheBackend {
  return {
    get: (key) => Promise.resolve(getValue(key) ?? null),
    set(key, value, ttlSeconds) {
      switch (native.set(key, value, ttlSeconds)) {
        case StoreStatus.Stored:
          return Promise.resolve("stored");
        case StoreStatus.TooLarge:
          return Promise.resolve("too_large");
        default:
          return Promise.resolve("no_memory");
      }
    },
    delete: (key) => Promise.resolve(native.delete(key)),
  };
}

// memcached's SERVER_ERROR texts for a refused set (memcached proto_text.c).
const TOO_LARGE = "object too large for cache";
const NO_MEMORY = "out of memory storing object";

/**
 * The router's backend: each call becomes the memcached request a client would send (get, set,
 * delete) and is routed through `root`, so prefixes, sharding, replication and failover apply.
 */
export function routeBackend(root: RouteHandle): CacheBackend {
  return {
    async get(key) {
      const request = new Request(Op.Get);
      request.keys = [key];
      request.raw = encodeGet([key]);
      const reply = await root.route(request);
      if (reply.type !== ReplyType.Values) throw unexpected(reply, "get");
      return reply.items?.[0]?.value ?? null;
    },
    async set(key, value, ttlSeconds) {
      const request = new Request(Op.Set);
      request.keys = [key];
      request.value = value;
      request.exptime = ttlSeconds;
      request.raw = encodeStore("set", key, value, { exptime: ttlSeconds });
      const reply = await root.route(request);
      if (reply.type === ReplyType.Stored) return "stored";
      if (reply.type === ReplyType.ServerError) {
        if (reply.text === TOO_LARGE) return "too_large";
        if (reply.text === NO_MEMORY) return "no_memory";
      }
      throw unexpected(reply, "set");
    },
    async delete(key) {
      const request = new Request(Op.Delete);
      request.keys = [key];
      request.raw = encodeDelete(key);
      const reply = await root.route(request);
      if (reply.type === ReplyType.Deleted) return true;
      if (reply.type === ReplyType.NotFound) return false;
      throw unexpected(reply, "delete");
    },
  };
}

// An error reply (or a reply of the wrong shape) as the error the HTTP server turns into a 502.
function unexpected(reply: Reply, command: string): ServerError {
  switch (reply.type) {
    case ReplyType.Error:
      return new ServerError(ServerErrorKind.Error, "");
    case ReplyType.ClientError:
      return new ServerError(ServerErrorKind.ClientError, reply.text);
    case ReplyType.ServerError:
      return new ServerError(ServerErrorKind.ServerError, reply.text);
    default:
      return new ServerError(
        ServerErrorKind.ServerError,
        `unexpected reply type ${reply.type} to ${command}`,
      );
  }
}

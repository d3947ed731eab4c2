// Where the gRPC server's calls go. A leaf answers from its own store (nativeBackend); a router
// turns each call into a memcached request and routes it through its route tree (routeBackend),
// exactly as a request from a memcached client would travel.
//
//   gRPC call -> item key "<group>:<key>" -> CacheBackend -> native store | RouteHandle -> leaves
import { ProtocolError, ServerError, ServerErrorKind } from "../errors.ts";
import { getValue, native, StoreStatus } from "../native/index.ts";
import { encodeDelete, encodeGet, encodeStore, encodeTouch } from "../protocol/encoder.ts";
import { type Reply, ReplyType } from "../protocol/reply.ts";
import { Op, Request } from "../protocol/request.ts";
import type { RouteHandle } from "../router/handles/handle.ts";
import { NO_MEMORY_TEXT, TOO_LARGE_TEXT } from "./status.ts";

/**
 * The cache operations the gRPC services need, on memcached item keys (already checked: 1 to 250
 * bytes, no space or control byte). `ttlSeconds` is memcached's exptime. A failure rejects with a
 * Gravity error (src/errors.ts); status.ts maps it to a gRPC status.
 */
export interface CacheBackend {
  /** The value, or null on a miss. */
  get(key: Uint8Array): Promise<Uint8Array | null>;
  /** Stores the value (memcached's `set`). Too large: ServerError "object too large for cache". */
  set(key: Uint8Array, value: Uint8Array, ttlSeconds: number): Promise<void>;
  /** False if there was no item. */
  delete(key: Uint8Array): Promise<boolean>;
  /** False if there was no item. */
  touch(key: Uint8Array, ttlSeconds: number): Promise<boolean>;
  /** Counters of the process behind this backend, by memcached's `stats` names where they exist. */
  stats(): Promise<Record<string, number | string>>;
}

/** The leaf's backend: the addon's direct operations on this process's store (configured by the caller). */
export function nativeBackend(): CacheBackend {
  return {
    async get(key) {
      return getValue(key) ?? null;
    },
    async set(key, value, ttlSeconds) {
      const status = native.set(key, value, ttlSeconds);
      if (status === StoreStatus.TooLarge) throw new ServerError(ServerErrorKind.ServerError, TOO_LARGE_TEXT);
      if (status === StoreStatus.NoMemory) throw new ServerError(ServerErrorKind.ServerError, NO_MEMORY_TEXT);
    },
    async delete(key) {
      return native.delete(key);
    },
    async touch(key, ttlSeconds) {
      return native.touch(key, ttlSeconds);
    },
    async stats() {
      return { ...native.stats() };
    },
  };
}

export interface RouteBackendOptions {
  /** Counters to add to stats() (e.g. the router's own); the backend's call counters are always there. */
  stats?: () => Record<string, number | string>;
}

/**
 * The router's backend: each call becomes a memcached request (its raw bytes from encoder.ts) routed
 * by `root`. Pass a function to read the current root per call, so a configuration reload takes
 * effect at once. An error reply rejects with ServerError; a route that fails rejects as it did.
 */
export function routeBackend(
  root: RouteHandle | (() => RouteHandle),
  options: RouteBackendOptions = {},
): CacheBackend {
  const current = typeof root === "function" ? root : () => root;
  // Calls through this backend only (memcached clients of the same router are not counted here).
  const counters = {
    grpc_cmd_get: 0,
    grpc_get_hits: 0,
    grpc_get_misses: 0,
    grpc_cmd_set: 0,
    grpc_cmd_delete: 0,
    grpc_cmd_touch: 0,
  };

  async function route(request: Request, expected: readonly ReplyType[]): Promise<Reply> {
    const reply = await current().route(request);
    if (reply.isError) {
      const kind =
        reply.type === ReplyType.ClientError
          ? ServerErrorKind.ClientError
          : reply.type === ReplyType.ServerError
            ? ServerErrorKind.ServerError
            : ServerErrorKind.Error;
      throw new ServerError(kind, reply.text);
    }
    if (!expected.includes(reply.type)) {
      throw new ProtocolError(
        `unexpected reply (type ${reply.type}) to ${request.op === Op.Set ? "set" : `op ${request.op}`}`,
      );
    }
    return reply;
  }

  function request(op: Op, key: Uint8Array, raw: Uint8Array): Request {
    const made = new Request(op);
    made.keys = [key];
    made.raw = raw;
    return made;
  }

  return {
    async get(key) {
      counters.grpc_cmd_get++;
      const reply = await route(request(Op.Get, key, encodeGet([key])), [ReplyType.Values]);
      const value = reply.items?.[0]?.value ?? null;
      if (value === null) counters.grpc_get_misses++;
      else counters.grpc_get_hits++;
      return value;
    },
    async set(key, value, ttlSeconds) {
      counters.grpc_cmd_set++;
      const made = request(Op.Set, key, encodeStore("set", key, value, { exptime: ttlSeconds }));
      made.value = value;
      made.exptime = ttlSeconds;
      await route(made, [ReplyType.Stored]);
    },
    async delete(key) {
      counters.grpc_cmd_delete++;
      const reply = await route(request(Op.Delete, key, encodeDelete(key)), [
        ReplyType.Deleted,
        ReplyType.NotFound,
      ]);
      return reply.type === ReplyType.Deleted;
    },
    async touch(key, ttlSeconds) {
      counters.grpc_cmd_touch++;
      const made = request(Op.Touch, key, encodeTouch(key, ttlSeconds));
      made.exptime = ttlSeconds;
      const reply = await route(made, [ReplyType.Touched, ReplyType.NotFound]);
      return reply.type === ReplyType.Touched;
    },
    async stats() {
      return { ...counters, ...options.stats?.() };
    },
  };
}

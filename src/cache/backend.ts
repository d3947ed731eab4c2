// Where the HTTP API's and the gRPC services' cache operations go. A leaf answers from its own
// store (nativeBackend); a router turns each call into a memcached request and routes it through
// its route tree (routeBackend), exactly as a request from a memcached client would travel.
//
//   HTTP or gRPC call -> item key "<group>:<key>" -> CacheBackend -> native store | RouteHandle -> leaves
import { ProtocolError, ServerError, ServerErrorKind } from "../errors.ts";
import { getValue, native, StoreStatus } from "../native/index.ts";
import { encodeDelete, encodeGet, encodeStore, encodeTouch } from "../protocol/encoder.ts";
import { type Reply, ReplyType } from "../protocol/reply.ts";
import { Op, Request } from "../protocol/request.ts";
import type { RouteHandle } from "../router/handles/handle.ts";

/** memcached's reply to an item over the size limit (memcached.c, process_update_command). */
export const TOO_LARGE_TEXT = "object too large for cache";
/** memcached's reply when the store cannot make room. */
export const NO_MEMORY_TEXT = "out of memory storing object";

/**
 * The cache operations the HTTP API and the gRPC services need, on memcached item keys (already
 * checked: 1 to 250 bytes, no space or control byte). `ttlSeconds` is memcached's exptime. A
 * failure rejects with a Gravity error (src/errors.ts), never as a miss; each API maps it to its
 * own status.
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
  /** Prefix of the call counters' names, e.g. "grpc" for grpc_cmd_get (default "api"). */
  countersPrefix?: string;
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
  const counters = { cmd_get: 0, get_hits: 0, get_misses: 0, cmd_set: 0, cmd_delete: 0, cmd_touch: 0 };
  const prefix = options.countersPrefix ?? "api";

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
      counters.cmd_get++;
      const reply = await route(request(Op.Get, key, encodeGet([key])), [ReplyType.Values]);
      const value = reply.items?.[0]?.value ?? null;
      if (value === null) counters.get_misses++;
      else counters.get_hits++;
      return value;
    },
    async set(key, value, ttlSeconds) {
      counters.cmd_set++;
      const made = request(Op.Set, key, encodeStore("set", key, value, { exptime: ttlSeconds }));
      made.value = value;
      made.exptime = ttlSeconds;
      await route(made, [ReplyType.Stored]);
    },
    async delete(key) {
      counters.cmd_delete++;
      const reply = await route(request(Op.Delete, key, encodeDelete(key)), [
        ReplyType.Deleted,
        ReplyType.NotFound,
      ]);
      return reply.type === ReplyType.Deleted;
    },
    async touch(key, ttlSeconds) {
      counters.cmd_touch++;
      const made = request(Op.Touch, key, encodeTouch(key, ttlSeconds));
      made.exptime = ttlSeconds;
      const reply = await route(made, [ReplyType.Touched, ReplyType.NotFound]);
      return reply.type === ReplyType.Touched;
    },
    async stats() {
      const named: Record<string, number> = {};
      for (const [name, value] of Object.entries(counters)) named[`${prefix}_${name}`] = value;
      return { ...named, ...options.stats?.() };
    },
  };
}

// The TypeScript client: memcached's text protocol to one server, or to several sharded by ketama
// consistent hashing (the points of libmemcached's weighted ketama and twemproxy, so keys land
// where those clients put them). Works against gravity leaves, routers and memcached.
//
//   client.get(key) ─> encode (checks the key: no round trip for a bad one) ─> serverFor(key)
//                   ─> that server's TcpPool ─> pipelined TcpConnection ─> reply ─> value | error
import {
  ConnectionError,
  InvalidRequestError,
  ProtocolError,
  ServerError,
  ServerErrorKind,
} from "../errors.ts";
import { HashFunctions, type HashName } from "../hash/hash-functions.ts";
import { KetamaRing, ketamaServerName } from "../hash/ketama.ts";
import {
  encodeArithmetic,
  encodeCas,
  encodeDelete,
  encodeFlushAll,
  encodeGet,
  encodeKey,
  encodeStats,
  encodeStore,
  encodeTouch,
  encodeVersion,
  type Key,
  type StorageCommand,
  type Value,
} from "../protocol/encoder.ts";
import { Expect, type Item, type Reply, ReplyType } from "../protocol/reply.ts";
import type { ClientTls } from "../security/tls.ts";
import { TcpPool } from "../transport/tcp-pool.ts";

export type { Key, Value } from "../protocol/encoder.ts";

/** A server to talk to; `weight` (default 1) is its share of keys among several. */
export interface ServerAddress {
  host: string;
  port: number;
  weight?: number;
}

export interface ClientOptions {
  /** "host:port" ("[::1]:11211" for IPv6) or addresses; keys are sharded over several by ketama. */
  servers: readonly (string | ServerAddress)[];
  /**
   * The key hash that places keys on the ketama ring when there are several servers (default
   * "md5", libmemcached's ketama hash; twemproxy pools default to "fnv1a_64").
   */
  hash?: HashName;
  /** Pipelined connections per server (default 1). */
  connectionsPerServer?: number;
  /** Per request, from the call to the reply (default 1000 ms). */
  timeoutMs?: number;
  /** For a TCP connect (default timeoutMs). */
  connectTimeoutMs?: number;
  /** Requests in flight per connection (default 1024). */
  maxInFlight?: number;
  /** Requests waiting for an in-flight slot per connection (default 4096); more fail with OverloadedError. */
  maxQueued?: number;
  /** Delay before reconnecting after the first failure (default 50 ms), doubling per failure in a row. */
  reconnectDelayMs?: number;
  /** Cap of the reconnect delay (default 5000 ms). */
  maxReconnectDelayMs?: number;
  /**
   * TLS to every server (PEM text): the CA their certificates must chain to, a client certificate
   * and key for servers run with --tls-ca, and the name to verify when it is not the host.
   */
  tls?: ClientTls;
}

export interface SetOptions {
  /**
   * Time to live, as memcached's exptime (default 0: no expiry): seconds up to 30 days
   * (2592000); a larger number is an absolute Unix time; a negative one expires the item at once.
   */
  ttlSeconds?: number;
  /** Opaque client flags stored with the value, an unsigned 32-bit integer (default 0). */
  flags?: number;
}

/** What `gets` returns: the value with its flags and the CAS token for `cas`. */
export interface GetsResult {
  value: Uint8Array;
  flags: number;
  cas: bigint;
}

/** The outcome of `cas`. */
export const CasResult = {
  Stored: "stored",
  /** Someone changed the item since the token was read. */
  Exists: "exists",
  NotFound: "not_found",
} as const;
export type CasResult = (typeof CasResult)[keyof typeof CasResult];

/** Keys per get command when a getMulti batch is long. */
const KEYS_PER_GET = 100;

const utf8 = new TextDecoder();

/** Parses "host:port" or "[v6]:port". */
export function parseServer(spec: string | ServerAddress): ServerAddress {
  if (typeof spec !== "string") {
    checkPort(spec.port, JSON.stringify(spec));
    return spec;
  }
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(spec);
  if (match === null) throw new InvalidRequestError(`server ${JSON.stringify(spec)}: expected host:port`);
  const port = Number(match[3]);
  checkPort(port, spec);
  return { host: (match[1] ?? match[2]) as string, port };
}

function checkPort(port: number, spec: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidRequestError(`server ${spec}: port must be 1..65535`);
  }
}

/** A memcached client over one or more servers. All methods reject with GravityError subclasses. */
export class Client {
  private readonly servers: readonly ServerAddress[];
  private readonly pools: readonly TcpPool[];
  // null with one server. Several: ketama ring and key hash, the only knowledge of sharding.
  private readonly ring: KetamaRing | null;
  private readonly hash: (key: Uint8Array) => number;
  private closed = false;

  constructor(options: ClientOptions) {
    if (options.servers.length === 0)
      throw new InvalidRequestError("servers: expected at least one host:port");
    this.servers = options.servers.map(parseServer);
    this.pools = this.servers.map(
      (server) =>
        new TcpPool({
          host: server.host,
          port: server.port,
          connections: options.connectionsPerServer,
          timeoutMs: options.timeoutMs,
          connectTimeoutMs: options.connectTimeoutMs,
          maxInFlight: options.maxInFlight,
          maxQueued: options.maxQueued,
          reconnectDelayMs: options.reconnectDelayMs,
          maxReconnectDelayMs: options.maxReconnectDelayMs,
          ...(options.tls === undefined ? {} : { tls: options.tls }),
        }),
    );
    const hashName = options.hash ?? "md5";
    const hash = HashFunctions[hashName];
    if (hash === undefined) throw new InvalidRequestError(`hash: unknown hash ${JSON.stringify(hashName)}`);
    this.hash = hash;
    this.ring =
      this.servers.length === 1
        ? null
        : new KetamaRing(
            this.servers.map((server) => ({
              name: ketamaServerName(server.host, server.port),
              weight: server.weight ?? 1,
            })),
          );
  }

  /** The index in `servers` of the server that owns `key` (bytes, already checked). */
  serverFor(key: Uint8Array): number {
    return this.ring === null ? 0 : this.ring.pick(this.hash(key));
  }

  // The pool for `key` and the key as the encoder should take it (bytes once hashed).
  private route(key: Key): [TcpPool, Key] {
    if (this.ring === null) return [this.pools[0] as TcpPool, key];
    const bytes = encodeKey(key);
    return [this.pools[this.serverFor(bytes)] as TcpPool, bytes];
  }

  private send(pool: TcpPool, request: Uint8Array, expect: Expect): Promise<Reply> {
    if (this.closed) return Promise.reject(new ConnectionError(pool.destination, "client is closed"));
    return pool.send(request, expect);
  }

  /** The value of `key`, or null on a miss. */
  async get(key: Key): Promise<Uint8Array | null> {
    const [pool, routed] = this.route(key);
    const reply = await this.send(pool, encodeGet([routed]), Expect.Values);
    return firstItem(reply, "get")?.value ?? null;
  }

  /** The value of `key` decoded as UTF-8, or null on a miss. */
  async getString(key: Key): Promise<string | null> {
    const value = await this.get(key);
    return value === null ? null : utf8.decode(value);
  }

  /** The value of `key` with its flags and CAS token, or null on a miss. */
  async gets(key: Key): Promise<GetsResult | null> {
    const [pool, routed] = this.route(key);
    const reply = await this.send(pool, encodeGet([routed], "gets"), Expect.Values);
    const item = firstItem(reply, "gets");
    if (item === undefined) return null;
    if (item.cas === undefined) throw new ProtocolError("gets: VALUE line without a CAS unique");
    return { value: item.value, flags: item.flags, cas: item.cas };
  }

  /**
   * The values of the keys that hit, in the order of `keys` (a repeated key once). One get per
   * server (per 100 keys), sent in parallel.
   */
  async getMulti(keys: readonly string[]): Promise<Map<string, Uint8Array>> {
    const encoded = keys.map((key) => encodeKey(key));
    const batches = new Map<number, number[]>(); // server -> indices into keys
    encoded.forEach((bytes, index) => {
      const server = this.serverFor(bytes);
      const batch = batches.get(server);
      if (batch === undefined) batches.set(server, [index]);
      else batch.push(index);
    });
    const values: (Uint8Array | undefined)[] = new Array(keys.length);
    const requests: Promise<void>[] = [];
    for (const [server, indices] of batches) {
      for (let start = 0; start < indices.length; start += KEYS_PER_GET) {
        const part = indices.slice(start, start + KEYS_PER_GET);
        const request = encodeGet(part.map((index) => encoded[index] as Uint8Array));
        requests.push(
          this.send(this.pools[server] as TcpPool, request, Expect.Values).then((reply) =>
            matchItems(items(reply, "get"), part, encoded, values),
          ),
        );
      }
    }
    await Promise.all(requests);
    const result = new Map<string, Uint8Array>();
    keys.forEach((key, index) => {
      const value = values[index];
      if (value !== undefined && !result.has(key)) result.set(key, value);
    });
    return result;
  }

  private async store(
    command: StorageCommand,
    key: Key,
    value: Value,
    options: SetOptions | undefined,
  ): Promise<boolean> {
    const [pool, routed] = this.route(key);
    const request = encodeStore(command, routed, value, {
      flags: options?.flags,
      exptime: options?.ttlSeconds,
    });
    const reply = await this.send(pool, request, Expect.Line);
    if (reply.type === ReplyType.Stored) return true;
    if (reply.type === ReplyType.NotStored) return false;
    throw unexpected(reply, command);
  }

  /** Stores `value` under `key`. */
  async set(key: Key, value: Value, options?: SetOptions): Promise<void> {
    if (!(await this.store("set", key, value, options))) {
      throw new ProtocolError("set: NOT_STORED for an unconditional set");
    }
  }

  /** Stores `value` only if `key` has no value; false if it has one. */
  add(key: Key, value: Value, options?: SetOptions): Promise<boolean> {
    return this.store("add", key, value, options);
  }

  /** Stores `value` only if `key` has a value; false if it has none. */
  replace(key: Key, value: Value, options?: SetOptions): Promise<boolean> {
    return this.store("replace", key, value, options);
  }

  /** Appends bytes to an existing value (its flags and TTL stay); false if `key` has none. */
  append(key: Key, value: Value): Promise<boolean> {
    return this.store("append", key, value, undefined);
  }

  /** Prepends bytes to an existing value (its flags and TTL stay); false if `key` has none. */
  prepend(key: Key, value: Value): Promise<boolean> {
    return this.store("prepend", key, value, undefined);
  }

  /** Stores `value` only if the item is unchanged since `gets` returned `casToken`. */
  async cas(key: Key, value: Value, casToken: bigint, options?: SetOptions): Promise<CasResult> {
    const [pool, routed] = this.route(key);
    const request = encodeCas(routed, value, casToken, {
      flags: options?.flags,
      exptime: options?.ttlSeconds,
    });
    const reply = await this.send(pool, request, Expect.Line);
    switch (reply.type) {
      case ReplyType.Stored:
        return CasResult.Stored;
      case ReplyType.Exists:
        return CasResult.Exists;
      case ReplyType.NotFound:
        return CasResult.NotFound;
      default:
        throw unexpected(reply, "cas");
    }
  }

  /** Deletes `key`; false if it had no value. */
  async delete(key: Key): Promise<boolean> {
    const [pool, routed] = this.route(key);
    const reply = await this.send(pool, encodeDelete(routed), Expect.Line);
    if (reply.type === ReplyType.Deleted) return true;
    if (reply.type === ReplyType.NotFound) return false;
    throw unexpected(reply, "delete");
  }

  /** Sets a new TTL (as SetOptions.ttlSeconds) on `key`; false if it has no value. */
  async touch(key: Key, ttlSeconds: number): Promise<boolean> {
    const [pool, routed] = this.route(key);
    const reply = await this.send(pool, encodeTouch(routed, ttlSeconds), Expect.Line);
    if (reply.type === ReplyType.Touched) return true;
    if (reply.type === ReplyType.NotFound) return false;
    throw unexpected(reply, "touch");
  }

  /**
   * Adds `delta` to the decimal number stored at `key` and returns the result, or null if `key`
   * has no value. Counters are unsigned 64-bit and wrap, hence bigint. A value that is not a
   * number is a ServerError (CLIENT_ERROR).
   */
  incr(key: Key, delta: bigint | number = 1n): Promise<bigint | null> {
    return this.arithmetic("incr", key, delta);
  }

  /** Subtracts `delta`, stopping at 0 (memcached does not go below); null if `key` has no value. */
  decr(key: Key, delta: bigint | number = 1n): Promise<bigint | null> {
    return this.arithmetic("decr", key, delta);
  }

  private async arithmetic(
    command: "incr" | "decr",
    key: Key,
    delta: bigint | number,
  ): Promise<bigint | null> {
    const [pool, routed] = this.route(key);
    const reply = await this.send(pool, encodeArithmetic(command, routed, delta), Expect.Line);
    if (reply.type === ReplyType.Number) return reply.number;
    if (reply.type === ReplyType.NotFound) return null;
    throw unexpected(reply, command);
  }

  /** Each server's version string, by "host:port". */
  async versions(): Promise<Map<string, string>> {
    const replies = await Promise.all(
      this.pools.map((pool) => this.send(pool, encodeVersion(), Expect.Line)),
    );
    const result = new Map<string, string>();
    replies.forEach((reply, index) => {
      if (reply.type !== ReplyType.Version) throw unexpected(reply, "version");
      result.set((this.pools[index] as TcpPool).destination, reply.text);
    });
    return result;
  }

  /** Each server's `stats [group]` lines (name -> value), by "host:port". */
  async stats(group?: string): Promise<Map<string, Map<string, string>>> {
    const request = encodeStats(group);
    const replies = await Promise.all(this.pools.map((pool) => this.send(pool, request, Expect.Stats)));
    const result = new Map<string, Map<string, string>>();
    replies.forEach((reply, index) => {
      if (reply.type !== ReplyType.Stats || reply.stats === null) throw unexpected(reply, "stats");
      result.set((this.pools[index] as TcpPool).destination, reply.stats);
    });
    return result;
  }

  /** Invalidates every item on every server. */
  async flushAll(): Promise<void> {
    const replies = await Promise.all(
      this.pools.map((pool) => this.send(pool, encodeFlushAll(), Expect.Line)),
    );
    for (const reply of replies) if (reply.type !== ReplyType.Ok) throw unexpected(reply, "flush_all");
  }

  /** Closes every connection; pending requests fail with ConnectionError, and so does every later call. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.pools.map((pool) => pool.close()));
  }
}

/** A client for `options.servers`; connections open on first use. */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}

// A ServerError for an error reply, else a ProtocolError: the reply makes no sense for `command`.
function unexpected(reply: Reply, command: string): Error {
  switch (reply.type) {
    case ReplyType.Error:
      return new ServerError(ServerErrorKind.Error, reply.text);
    case ReplyType.ClientError:
      return new ServerError(ServerErrorKind.ClientError, reply.text);
    case ReplyType.ServerError:
      return new ServerError(ServerErrorKind.ServerError, reply.text);
    default:
      return new ProtocolError(`${command}: unexpected reply type ${reply.type}`);
  }
}

function items(reply: Reply, command: string): Item[] {
  if (reply.type !== ReplyType.Values || reply.items === null) throw unexpected(reply, command);
  return reply.items;
}

function firstItem(reply: Reply, command: string): Item | undefined {
  return items(reply, command)[0];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Hits come back in request order (misses left out): walk the requested keys once, setting
// values[index] for each hit. A hit that matches no remaining key means the server reordered.
function matchItems(
  hits: readonly Item[],
  indices: readonly number[],
  encoded: readonly Uint8Array[],
  values: (Uint8Array | undefined)[],
): void {
  let next = 0;
  for (const hit of hits) {
    while (next < indices.length && !sameBytes(encoded[indices[next] as number] as Uint8Array, hit.key))
      next++;
    if (next === indices.length) {
      throw new ProtocolError(`get: VALUE for a key that was not requested (or out of order)`);
    }
    values[indices[next] as number] = hit.value;
    next++;
  }
}

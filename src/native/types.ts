// Types of the C++ addon's exports (native/src/binding.cc).

/** Options of the process-global store; the first configure() wins. */
export interface NativeConfig {
  memoryBytes: number;
  maxItemBytes: number;
  threads: number;
  version: string;
  policy?: string;
  shardCount?: number;
  /** [user, password] pairs of memcached's SASL password file: binary only, SASL PLAIN required. */
  saslPasswords?: [string, string][];
}

/** An opaque handle to one client connection's protocol state in C++. */
export type NativeConnection = { readonly __nativeConnection: unique symbol };

/** Store and connection counters, named as memcached's `stats` names them. */
export interface NativeStats {
  curr_connections: number;
  total_connections: number;
  curr_items: number;
  total_items: number;
  bytes: number;
  limit_maxbytes: number;
  /** The item size limit (memcached -I, `stats settings` item_size_max). */
  item_size_max: number;
  evictions: number;
  reclaimed: number;
  expired_unfetched: number;
  evicted_unfetched: number;
  admissions_rejected: number;
  cmd_get: number;
  cmd_set: number;
  get_hits: number;
  get_misses: number;
  get_expired: number;
  cmd_touch: number;
  touch_hits: number;
  touch_misses: number;
  delete_hits: number;
  delete_misses: number;
  store_too_large: number;
  store_no_memory: number;
  shards: number;
}

/** What the addon's set() returns. */
export const StoreStatus = {
  Stored: 0,
  /** Over the item size limit (memcached's item_size_ok); the key's old value is dropped. */
  TooLarge: 1,
  /** The store could not make room for it; the key's old value is dropped. */
  NoMemory: 2,
} as const;
export type StoreStatus = (typeof StoreStatus)[keyof typeof StoreStatus];

/**
 * A key: a string (its UTF-8 bytes) or bytes. memcached's rules: 1 to 250 bytes, no space or control
 * character; anything else throws a TypeError.
 */
export type NativeKey = string | Uint8Array;

export interface NativeAddon {
  configure(config: NativeConfig): boolean;
  isConfigured(): boolean;
  /** A connection; `addr` and `listenAddr` (memcached's "tcp:host:port") are listed by `stats conns`. */
  openConnection(addr?: string, listenAddr?: string): NativeConnection;
  closeConnection(conn: NativeConnection): void;
  /**
   * Parses and executes every complete command in `input` (after what C++ buffered), writes replies
   * into `out`. Returns written * 4 + (pending ? 2 : 0) + (close ? 1 : 0): see fedBytes/fedPending/fedClose.
   */
  feed(conn: NativeConnection, input: Uint8Array | ArrayBuffer | null, out: Uint8Array): number;
  stats(): NativeStats;
  /** Open connections across every thread. */
  connectionCount(): number;
  sweepExpired(maxItems: number): number;
  advanceClock(seconds: number): void;
  /**
   * Looks the key up as memcached's `get` does and copies its value into `out`. Returns the value's
   * length, or -1 on a miss. A value longer than `out` is not copied (nor counted as a get): the
   * length says how big a buffer to retry with. Allocates nothing.
   */
  get(key: NativeKey, out: Uint8Array): number;
  /**
   * Stores the value as memcached's `set` does. `ttlSeconds` is memcached's exptime: 0 never expires,
   * negative is already expired, up to 30 days is relative, above that a unix time. `flags` is the
   * 32-bit client flags word.
   */
  set(key: NativeKey, value: Uint8Array, ttlSeconds?: number, flags?: number): StoreStatus;
  /** Removes the key's value; false if there was none. */
  delete(key: NativeKey): boolean;
  /** Gives the key's value a new expiry (`ttlSeconds` as in set); false if there was no value. */
  touch(key: NativeKey, ttlSeconds: number): boolean;
}

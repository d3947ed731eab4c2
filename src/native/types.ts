// Types of the C++ addon's exports (native/src/binding.cc).

/** Options of the process-global store; the first configure() wins. */
export interface NativeConfig {
  memoryBytes: number;
  maxItemBytes: number;
  threads: number;
  version: string;
  policy?: string;
  shardCount?: number;
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
  evictions: number;
  reclaimed: number;
  expired_unfetched: number;
  evicted_unfetched: number;
  admissions_rejected: number;
  cmd_get: number;
  cmd_set: number;
  get_hits: number;
  get_misses: number;
  shards: number;
}

export interface NativeAddon {
  configure(config: NativeConfig): boolean;
  isConfigured(): boolean;
  openConnection(): NativeConnection;
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
}

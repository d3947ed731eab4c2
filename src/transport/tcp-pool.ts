// Pipelined connections to one destination, as many as the requests in flight need, within a bound.
//
//   send ─> pinned connection (affinity) if available
//        └> an idle connection (nothing in flight)
//           else, for a send with a stall threshold (a hedged read) and below maxConnections:
//             a new connection (so no such request waits behind another)
//           else the least busy connection that is not stalled, else the least busy one
//   idle for idleCloseMs beyond `connections`: closed again
//
// A pipelined socket answers in order, so one slow reply holds every reply queued behind it on
// that socket: a stall's blast radius is the number of requests sharing its connection. Growing
// the pool while every connection is busy keeps that radius near one request, and a connection
// whose oldest request has waited longer than the caller's `stallMs` takes no new requests while
// another can (hedged reads pass their hedge delay: a read that would wait behind a stall goes
// elsewhere instead of spending a hedge on it). Sends without a threshold (sharded routes, the
// client) do not grow the pool: throughput wants few sockets, each carrying one write per turn.
import type { Expect, Reply } from "../protocol/reply.ts";
import { TcpConnection, type TcpConnectionOptions } from "./connection.ts";

export interface TcpPoolOptions extends TcpConnectionOptions {
  /** Connections kept open to the destination (default 1). */
  connections?: number;
  /**
   * The most connections opened while every one is busy, by sends that pass a stall threshold
   * (default: `connections`, no growth).
   */
  maxConnections?: number;
  /** A connection beyond `connections` with nothing sent for this long is closed (default 30 s). */
  idleCloseMs?: number;
}

const DEFAULT_IDLE_CLOSE_MS = 30_000;

/** Up to maxConnections TcpConnections to one host:port, used as one. */
export class TcpPool {
  readonly destination: string;
  private readonly live: TcpConnection[];
  private readonly minConnections: number;
  private readonly maxConnections: number;
  private readonly idleCloseMs: number;
  private next = 0; // where the scan starts: ties go round-robin

  constructor(private readonly options: TcpPoolOptions) {
    const count = options.connections ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`connections must be a positive integer, got ${count}`);
    }
    const max = options.maxConnections ?? count;
    if (!Number.isInteger(max) || max < count) {
      throw new RangeError(
        `maxConnections must be an integer of at least connections (${count}), got ${max}`,
      );
    }
    this.minConnections = count;
    this.maxConnections = max;
    this.idleCloseMs = options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS;
    this.live = Array.from({ length: count }, () => new TcpConnection(options));
    this.destination = `${options.host}:${options.port}`;
  }

  /** The connections open or opening now (between `connections` and `maxConnections`). */
  get connections(): readonly TcpConnection[] {
    return this.live;
  }

  /**
   * Sends one request, on connection `affinity % connections` when affinity >= 0 and that
   * connection is available (requests with one affinity keep their order), else as the diagram at
   * the top says; a connection whose oldest request is older than `stallMs` counts as stalled.
   * Resolves and rejects as TcpConnection.send does.
   */
  send(
    request: Uint8Array,
    expect: Expect,
    affinity = -1,
    stallMs = Number.POSITIVE_INFINITY,
  ): Promise<Reply> {
    if (affinity >= 0) {
      const pinned = this.live[affinity % this.minConnections] as TcpConnection;
      if (pinned.available) return pinned.send(request, expect);
    }
    return this.pick(stallMs).send(request, expect);
  }

  /**
   * Whether a request sent now with this `stallMs` would have to wait behind a stalled reply:
   * every available connection is stalled and no more may be opened.
   */
  stalled(stallMs: number): boolean {
    if (this.live.length < this.maxConnections) return false;
    const since = performance.now() - stallMs;
    for (const connection of this.live) {
      if (connection.available && connection.oldestSentAt >= since) return false;
    }
    return true;
  }

  /** Connects every connection; rejects with the first ConnectionError. */
  async connect(): Promise<void> {
    await Promise.all(this.live.map((connection) => connection.connect()));
  }

  /** Closes every connection, failing their pending requests. */
  async close(): Promise<void> {
    await Promise.all(this.live.map((connection) => connection.close()));
  }

  /** Requests written and waiting for replies, over all connections. */
  get inFlightCount(): number {
    let count = 0;
    for (const connection of this.live) count += connection.inFlightCount;
    return count;
  }

  // An idle connection; else, for a send with a stall threshold, a new one while below the bound;
  // else the least busy one that is not stalled; else the least busy; if none is available, any (it
  // fails the request at once with the ConnectionError that explains why).
  private pick(stallMs: number): TcpConnection {
    const live = this.live;
    const now = performance.now();
    this.closeIdle(now);
    const count = live.length;
    const start = this.next % count;
    this.next = start + 1;
    const stalledBefore = now - stallMs;
    let unavailable = 0;
    let best: TcpConnection | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    let fallback: TcpConnection | undefined; // least busy, stalled or not
    let fallbackLoad = Number.POSITIVE_INFINITY;
    for (let i = 0; i < count; i++) {
      const connection = live[(start + i) % count] as TcpConnection;
      if (!connection.available) {
        unavailable++;
        continue;
      }
      const load = connection.inFlightCount + connection.queuedCount;
      if (load === 0) return connection;
      if (load < fallbackLoad) {
        fallback = connection;
        fallbackLoad = load;
      }
      if (load < bestLoad && connection.oldestSentAt >= stalledBefore) {
        best = connection;
        bestLoad = load;
      }
    }
    // Growing helps only while the destination answers: a backing-off one fails fast anyway.
    // Only stall-sensitive sends grow the pool: the others share connections, so that the
    // requests of one event-loop turn leave in as few writes as possible.
    if (stallMs !== Number.POSITIVE_INFINITY && count < this.maxConnections && unavailable === 0) {
      const grown = new TcpConnection(this.options);
      live.push(grown);
      return grown;
    }
    return best ?? fallback ?? (live[start] as TcpConnection);
  }

  // Closes the newest connection beyond the minimum once nothing has been sent on it for
  // idleCloseMs (one per call: the pool shrinks as gradually as it grew).
  private closeIdle(now: number): void {
    const live = this.live;
    if (live.length <= this.minConnections) return;
    const last = live[live.length - 1] as TcpConnection;
    if (last.inFlightCount + last.queuedCount > 0 || now - last.lastSendAt < this.idleCloseMs) return;
    live.pop();
    void last.close();
  }
}

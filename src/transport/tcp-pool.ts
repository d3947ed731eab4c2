// A few pipelined connections to one destination. Each request goes to the connection with the
// fewest requests pending, skipping connections that are backing off after a failure, so one
// slow or broken socket does not hold up the rest.
import type { Expect, Reply } from "../protocol/reply.ts";
import { TcpConnection, type TcpConnectionOptions } from "./connection.ts";

export interface TcpPoolOptions extends TcpConnectionOptions {
  /** Connections to open to the destination (default 1); each has its own in-flight bounds. */
  connections?: number;
}

/** N TcpConnections to one host:port, used as one. */
export class TcpPool {
  readonly destination: string;
  readonly connections: readonly TcpConnection[];
  private next = 0; // where the least-pending scan starts: ties go round-robin

  constructor(options: TcpPoolOptions) {
    const count = options.connections ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(`connections must be a positive integer, got ${count}`);
    }
    this.connections = Array.from({ length: count }, () => new TcpConnection(options));
    this.destination = `${options.host}:${options.port}`;
  }

  /**
   * Sends one request, on connection `affinity % connections` when affinity >= 0 and that
   * connection is available (requests with one affinity keep their order), else on the least
   * busy one. Resolves and rejects as TcpConnection.send does.
   */
  send(request: Uint8Array, expect: Expect, affinity = -1): Promise<Reply> {
    if (affinity >= 0) {
      const pinned = this.connections[affinity % this.connections.length] as TcpConnection;
      if (pinned.available) return pinned.send(request, expect);
    }
    return this.pick().send(request, expect);
  }

  /** Connects every connection; rejects with the first ConnectionError. */
  async connect(): Promise<void> {
    await Promise.all(this.connections.map((connection) => connection.connect()));
  }

  /** Closes every connection, failing their pending requests. */
  async close(): Promise<void> {
    await Promise.all(this.connections.map((connection) => connection.close()));
  }

  /** Requests written and waiting for replies, over all connections. */
  get inFlightCount(): number {
    let count = 0;
    for (const connection of this.connections) count += connection.inFlightCount;
    return count;
  }

  // The available connection with the fewest pending requests; if none is available, any (it fails
  // the request at once with the ConnectionError that explains why).
  private pick(): TcpConnection {
    const connections = this.connections;
    const count = connections.length;
    const start = this.next;
    this.next = (start + 1) % count;
    let best: TcpConnection | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let i = 0; i < count; i++) {
      const connection = connections[(start + i) % count] as TcpConnection;
      if (!connection.available) continue;
      const load = connection.inFlightCount + connection.queuedCount;
      if (load < bestLoad) {
        best = connection;
        bestLoad = load;
        if (load === 0) break;
      }
    }
    return best ?? (connections[start] as TcpConnection);
  }
}

// What a router's `stats servers` shows of one leaf: requests answered and failed, and their time.
// Counted by the destination itself (TCP or NATS), whatever route sent the request.

/** Totals since the destination was created; plain increments on the request path. */
export class SenderStats {
  /** Requests answered (any reply, error replies included). */
  replies = 0;
  /** Requests that failed: timeout, connection, down, overloaded, protocol. */
  failures = 0;
  /** Sum of the answered requests' times, ms. */
  replyMs = 0;

  replied(ms: number): void {
    this.replies++;
    this.replyMs += ms;
  }

  failed(): void {
    this.failures++;
  }

  /** Mean time of an answered request, µs (0 before the first). */
  get averageMicros(): number {
    return this.replies === 0 ? 0 : (this.replyMs * 1000) / this.replies;
  }
}

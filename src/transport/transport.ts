// What a route needs from a leaf, whatever carries the bytes: the pooled TCP Destination
// (src/router/destination.ts) and NatsDestination (nats-destination.ts) both have this shape, so
// a pool can hold either.
import type { Expect, Reply } from "../protocol/reply.ts";

export interface Sender {
  /** Names the leaf in errors and metrics. */
  readonly name: string;
  /** Fails fast now (TKO, or its transport unreachable): routes skip it or fail at once. */
  readonly down: boolean;
  /** Requests sent and not yet answered. */
  readonly inFlightCount: number;
  /**
   * One request's bytes in, its parsed reply out; rejects with ConnectionError or TimeoutError.
   * `affinity` pins a connection (Request.affinity); `stallMs`, where the transport has several
   * pipelined connections, keeps the request off one whose oldest reply is overdue by that long.
   */
  send(request: Uint8Array, expect: Expect, affinity?: number, stallMs?: number): Promise<Reply>;
  /** Whether a request now would wait behind a reply overdue by stallMs (optional: no if absent). */
  stalled?(stallMs: number): boolean;
  close(): Promise<void>;
}

/** What a pool's owner wants to hear from its senders (logs and metrics), whatever the transport. */
export interface SenderHooks {
  /** Called when the sender is marked down (TKO) or comes back. */
  onHealthChange?: (sender: Sender, down: boolean) => void;
  /** Called with each reply's latency in milliseconds. */
  onReply?: (sender: Sender, ms: number) => void;
  /** Called with each failed request's error. */
  onError?: (sender: Sender, error: unknown) => void;
}

// What a route needs from a leaf, whatever carries the bytes: the pooled TcpDestination
// (tcp-destination.ts) and NatsDestination (nats-destination.ts) both have this shape, so
// a pool can hold either.
import type { Reply } from "../protocol/reply.ts";
import type { Request } from "../protocol/request.ts";
import type { SenderStats } from "./sender-stats.ts";

export interface Sender {
  /** Names the leaf in errors and metrics. */
  readonly name: string;
  /** Fails fast now (TKO, or its transport unreachable): routes skip it or fail at once. */
  readonly down: boolean;
  /** Requests sent and not yet answered. */
  readonly inFlightCount: number;
  /**
   * One request in (its `wire` bytes go out), its parsed reply out; rejects with ConnectionError
   * or TimeoutError.
   */
  send(request: Request, options?: SendOptions): Promise<Reply>;
  /** Requests answered and failed, and their time (`stats servers`); absent for test doubles. */
  readonly stats?: SenderStats;
  /** Whether a request now would wait behind a reply overdue by stallMs (optional: no if absent). */
  stalled?(stallMs: number): boolean;
  close(): Promise<void>;
}

/** What a pool's owner wants to hear from its senders (logs and metrics), whatever the transport. */
export interface SenderHooks {
  /** Called when the sender is marked down (TKO), with the last failure's words if known, or comes back. */
  onHealthChange?: (sender: Sender, down: boolean, reason?: string) => void;
  /** Called with each reply's latency in milliseconds. */
  onReply?: (sender: Sender, ms: number) => void;
  /** Called with each failed request's error. */
  onError?: (sender: Sender, error: unknown) => void;
}

/** How one send differs from what its request says. */
export interface SendOptions {
  /** In place of Request.affinity: -1 for any connection (hedged and all-fastest reads). */
  affinity?: number;
  /**
   * Where the transport has several pipelined connections: keep the request off one whose oldest
   * reply is overdue by this many ms (a hedged read passes its hedge delay).
   */
  stallMs?: number;
}

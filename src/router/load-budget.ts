// What a router holds in memory, counted and capped: requests in flight and the bytes they pin.
//
//   client request ─> budget.admit? ─no──> SERVER_ERROR overloaded (nothing routed)
//                       └─yes─> inFlight + 1, bufferedBytes + request bytes + expected reply bytes
//                                 ─> route tree ─> leaf
//   its reply ─> budget.settle: request and expected bytes out, the reply's own bytes in (until
//                the client's socket takes them: server.ts)
//
// A request's bytes (a set's value) stay pinned until its leaf answers; a reply's bytes until the
// client's socket takes them. A reply's size is known only when it arrives, so an admitted request
// also reserves its client's recent reply size (server.ts keeps that guess per connection): the
// replies of everything in flight fit in the budget, as far as the guess holds. A reply that does
// not fit after all is dropped (server.ts). Per client, the same quantities
// are capped lower (server.ts pauses reading that client), so that a few stalled clients cannot
// take the whole budget. mcrouter caps a client's outstanding requests the same way
// (max_client_outstanding_reqs); memcached answers "SERVER_ERROR out of memory writing get
// response" when it cannot hold a reply, which is what a reply over the budget becomes here.

/** The caps; see DEFAULT_LOAD_LIMITS for the defaults and `gravity router --help` for the flags. */
export interface LoadLimits {
  /** Requests routed and not yet answered, over every client (each key of a multi-get counts). */
  maxInflight: number;
  /** Request bytes in flight plus reply bytes not yet written, over every client. */
  maxBufferedBytes: number;
  /** Per client connection: requests read and not yet written (in flight or waiting in order). */
  maxClientInflight: number;
  /** Per client connection: its request bytes in flight plus its reply bytes not yet written. */
  maxClientBufferedBytes: number;
}

export const DEFAULT_LOAD_LIMITS: Readonly<LoadLimits> = {
  maxInflight: 16_384,
  maxBufferedBytes: 16 * 1024 * 1024,
  maxClientInflight: 1024,
  maxClientBufferedBytes: 1024 * 1024,
};

/** Replies at most this long are always kept: they pin little, and dropping them saves nothing. */
export const SMALL_REPLY_BYTES = 1024;

/**
 * One listener thread's share of process-wide limits (`gravity router --threads N` runs N
 * listeners, each with its own budget): the process-wide caps split evenly, the per-client ones
 * unchanged. Each share is at least 1 request and 1 MiB.
 */
export function threadShare(limits: LoadLimits, threads: number): LoadLimits {
  return {
    ...limits,
    maxInflight: Math.max(1, Math.floor(limits.maxInflight / threads)),
    maxBufferedBytes: Math.max(1024 * 1024, Math.floor(limits.maxBufferedBytes / threads)),
  };
}

/** The process-wide (per listener thread) counts against LoadLimits; see the diagram above. */
export class LoadBudget {
  inFlight = 0; // requests admitted and not yet settled
  bufferedBytes = 0; // request bytes in flight + reply bytes not yet taken by a client socket
  overloaded = 0; // requests refused and replies dropped for being over a cap (a total)
  private churnBytes = 0; // reply bytes seen since the last forced collection

  constructor(readonly limits: Readonly<LoadLimits>) {}

  /**
   * Whether a request of `count` routed requests (keys) may go out now, given the bytes it pins and
   * those its reply is expected to bring; reserves both if so.
   */
  admit(count: number, pinnedBytes: number): boolean {
    // With nothing in flight anything goes: a get of more keys than maxInflight, or a value larger
    // than the byte budget, would otherwise never be served.
    if (
      this.inFlight > 0 &&
      (this.inFlight + count > this.limits.maxInflight ||
        this.bufferedBytes + pinnedBytes > this.limits.maxBufferedBytes)
    ) {
      this.overloaded++;
      return false;
    }
    this.inFlight += count;
    this.bufferedBytes += pinnedBytes;
    return true;
  }

  /** An admitted request was answered (or failed): what admit() reserved for it is free. */
  settle(count: number, pinnedBytes: number): void {
    this.inFlight -= count;
    this.bufferedBytes -= pinnedBytes;
  }

  /**
   * A reply of `bytes` arrived (kept or dropped). Under pressure (a quarter of the byte budget
   * held), every quarter budget of reply bytes forces a full garbage collection: each large reply
   * passes through several buffers (the socket read, the parsed value, the encoded reply), and
   * measured with 20 clients that never read 900 KB values (a 32 MiB budget then), JSC collected
   * them late enough for the router's RSS to peak at idle + 167 MiB while it held 31 MiB; with
   * this, idle + 77 MiB. Without pressure nothing is forced: serving fast clients costs nothing.
   */
  sawReply(bytes: number): void {
    this.churnBytes += bytes;
    if (this.churnBytes < this.limits.maxBufferedBytes >> 2) return;
    this.churnBytes = 0;
    if (this.bufferedBytes < this.limits.maxBufferedBytes >> 2) return;
    Bun.gc(true);
  }

  /** Whether a reply of `bytes` may be held until its client reads it (small ones always may). */
  canHold(bytes: number): boolean {
    return bytes <= SMALL_REPLY_BYTES || this.bufferedBytes + bytes <= this.limits.maxBufferedBytes;
  }
}

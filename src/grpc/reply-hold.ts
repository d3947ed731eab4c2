// Bounds the reply bytes gRPC clients have not read yet, per connection and for the process, as
// the leaf's memcached listener pauses a connection whose replies are unsent and the router's load
// budget reserves a client's recent reply size (src/router/load-budget.ts).
//
//   request message ── its connection has room? (held + reserved + guess <= maxConnectionBytes,
//        │              or nothing held or running; the guess is the largest reply the connection
//        │              got, else the largest the process sent; before the process's first
//        │              reply, one call at a time in the whole process)
//        ├─ no: the call waits (nothing is read for it), in order, until the connection has room
//        └─ yes: reserve the guess ─> handler (server.ts refuses it at once with RESOURCE_EXHAUSTED
//                                     when every connection together holds over maxTotalBytes)
//   sendMessage(reply) ── the reservation becomes the reply's value bytes, held;
//                         the guesses (connection's, process's) = the largest reply seen
//   the reply is written, or the call is cancelled ── released; waiting calls go on
//
// grpc-js calls sendStatus for a unary call only from the write callback of its message, and that
// callback runs once HTTP/2 flow control let the DATA frames out (measured on Bun 1.4: a client
// that never sends WINDOW_UPDATE leaves every call before sendStatus until it goes away, then each
// is cancelled). Without this, 20 such clients pipelining 200 gets each of a 900 KB value grew a
// leaf by 244 MiB in 8 s (and still growing) and starved its memcached port: the stream and call
// limits do not help, since a call stops counting as in flight once its handler returns.
import {
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";

export const REPLY_HOLD_DEFAULTS = {
  /** Unread reply bytes one connection may hold (and reserve) before its next call waits. */
  maxConnectionBytes: 4 * 1024 * 1024,
  /** Unread reply bytes every connection together may hold before new calls are refused. */
  maxTotalBytes: 16 * 1024 * 1024,
} as const;

export interface ReplyHoldLimits {
  maxConnectionBytes: number;
  maxTotalBytes: number;
}

// One connection's replies (grpc-js's peer, "host:port", names it).
interface Connection {
  heldBytes: number; // value bytes of replies sent and not yet written out
  reservedBytes: number; // guesses reserved by calls running and not yet replying
  running: number; // calls admitted and not yet finished
  guessBytes: number | undefined; // the largest reply it got; undefined before its first
  waiting: (() => void)[]; // calls waiting for room, oldest first
}

/** The unread reply bytes of every gRPC connection, against ReplyHoldLimits; see the file comment. */
export class ReplyHold {
  private readonly connections = new Map<string, Connection>();
  /** Held and reserved reply bytes, over every connection. */
  totalBytes = 0;
  // The largest reply sent: the guess of a connection that got none yet (entries of connections
  // with nothing held or running are dropped, their own guess with them).
  private largestReplyBytes: number | undefined;
  private churnBytes = 0; // reply bytes since the last forced collection
  private running = 0; // calls admitted and not yet finished, every connection

  constructor(private readonly limits: ReplyHoldLimits = REPLY_HOLD_DEFAULTS) {}

  /** Why a call must be refused now (every connection together holds too much), or undefined. */
  refusal(): string | undefined {
    if (this.totalBytes <= this.limits.maxTotalBytes) return undefined;
    return `${this.totalBytes} reply bytes unread across connections (limit ${this.limits.maxTotalBytes}); retry later`;
  }

  /** A server interceptor that holds each call until its connection has room, and counts its reply. */
  interceptor(): ServerInterceptor {
    return (method, call: ServerInterceptingCallInterface) => {
      // Streaming calls (reflection) carry no cache values: not held.
      if (method.requestStream || method.responseStream) return new ServerInterceptingCall(call);
      const peer = call.getPeer();
      let state: "new" | "waiting" | "running" | "done" = "new";
      let wake: (() => void) | undefined;
      let reservedBytes = 0;
      let heldBytes = 0;
      const finish = () => {
        if (state === "waiting" && wake !== undefined) this.forget(peer, wake);
        if (state === "running") this.finish(peer, reservedBytes, heldBytes);
        state = "done";
      };
      return new ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMessage: (message, deliver) => {
              wake = () => {
                if (state !== "waiting") return;
                state = "running";
                reservedBytes = this.admit(peer);
                deliver(message);
              };
              state = "waiting";
              this.enter(peer, wake);
            },
            onCancel: finish,
          }),
        sendMessage: (message, next) => {
          if (state === "running") {
            heldBytes = valueBytes(message);
            this.replied(peer, reservedBytes, heldBytes);
            reservedBytes = 0;
          }
          next(message);
        },
        sendStatus: (status, next) => {
          finish();
          next(status);
        },
      });
    };
  }

  private connection(peer: string): Connection {
    let connection = this.connections.get(peer);
    if (connection === undefined) {
      connection = { heldBytes: 0, reservedBytes: 0, running: 0, guessBytes: undefined, waiting: [] };
      this.connections.set(peer, connection);
    }
    return connection;
  }

  private guessOf(connection: Connection): number | undefined {
    return connection.guessBytes ?? this.largestReplyBytes;
  }

  private hasRoom(connection: Connection): boolean {
    const guess = this.guessOf(connection);
    if (guess === undefined) return this.running === 0;
    if (connection.running === 0 && connection.heldBytes === 0) return true;
    return connection.heldBytes + connection.reservedBytes + guess <= this.limits.maxConnectionBytes;
  }

  // Runs `wake` now if the connection has room and nobody waits before it, else queues it.
  private enter(peer: string, wake: () => void): void {
    const connection = this.connection(peer);
    if (connection.waiting.length === 0 && this.hasRoom(connection)) wake();
    else connection.waiting.push(wake);
  }

  private forget(peer: string, wake: () => void): void {
    const connection = this.connections.get(peer);
    if (connection === undefined) return;
    connection.waiting = connection.waiting.filter((waiter) => waiter !== wake);
    this.settle(peer, connection);
  }

  // A call starts: it reserves the connection's guess. Returns the bytes reserved.
  private admit(peer: string): number {
    const connection = this.connection(peer);
    const bytes = this.guessOf(connection) ?? 0;
    connection.running++;
    this.running++;
    connection.reservedBytes += bytes;
    this.totalBytes += bytes;
    return bytes;
  }

  private replied(peer: string, reservedBytes: number, heldBytes: number): void {
    const connection = this.connection(peer);
    connection.reservedBytes -= reservedBytes;
    connection.heldBytes += heldBytes;
    this.totalBytes += heldBytes - reservedBytes;
    connection.guessBytes = Math.max(connection.guessBytes ?? 0, heldBytes);
    const first = this.largestReplyBytes === undefined;
    this.largestReplyBytes = Math.max(this.largestReplyBytes ?? 0, heldBytes);
    this.sawReply(heldBytes);
    // The first reply of the process is every connection's first guess.
    if (first) this.settleAll();
    else this.settle(peer, connection);
  }

  // Under pressure (a quarter of maxTotalBytes held), every quarter of it in replies forces a full
  // collection, as the router's load budget does (load-budget.ts sawReply): each reply passes
  // through several buffers that JSC otherwise collects late.
  private sawReply(bytes: number): void {
    this.churnBytes += bytes;
    if (this.churnBytes < this.limits.maxTotalBytes >> 2) return;
    this.churnBytes = 0;
    if (this.totalBytes >= this.limits.maxTotalBytes >> 2) Bun.gc(true);
  }

  private finish(peer: string, reservedBytes: number, heldBytes: number): void {
    const connection = this.connection(peer);
    connection.running--;
    this.running--;
    connection.reservedBytes -= reservedBytes;
    connection.heldBytes -= heldBytes;
    this.totalBytes -= reservedBytes + heldBytes;
    // Before the first reply one call runs at a time, whichever connection waits for it.
    if (this.largestReplyBytes === undefined) this.settleAll();
    else this.settle(peer, connection);
  }

  private settleAll(): void {
    for (const [peer, connection] of [...this.connections]) this.settle(peer, connection);
  }

  // Lets waiting calls go on while there is room; forgets a connection with nothing left.
  private settle(peer: string, connection: Connection): void {
    while (connection.waiting.length > 0 && this.hasRoom(connection)) connection.waiting.shift()?.();
    if (connection.running === 0 && connection.waiting.length === 0 && connection.heldBytes === 0)
      this.connections.delete(peer);
  }
}

// The bytes of the values a reply carries: `value` (Get, GroupCache.Get) and `items[].value`
// (GetMulti). Other replies are a few bytes and are not counted.
function valueBytes(message: unknown): number {
  if (typeof message !== "object" || message === null) return 0;
  const { value, items } = message as { value?: unknown; items?: unknown };
  let bytes = value instanceof Uint8Array ? value.length : 0;
  if (Array.isArray(items)) for (const item of items) bytes += valueBytes(item);
  return bytes;
}

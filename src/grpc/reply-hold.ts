// Bounds the reply bytes gRPC clients have not read yet, per connection and for the process, as
// the leaf's memcached listener pauses a connection whose replies are unsent and the router's load
// budget reserves a client's recent reply size (src/router/load-budget.ts).
//
//   request message ── its connection has room? (nothing held or running, or
//        │              held + reserved + guess <= maxConnectionBytes)
//        ├─ no: the call waits (nothing is read for it), in order, until the connection has room
//        └─ yes: reserve the guess ─> handler (server.ts refuses it at once with RESOURCE_EXHAUSTED
//                                     when every connection together holds over maxTotalBytes)
//   sendMessage(reply) ── the reservation becomes the reply's value bytes, held; the guesses
//                         (the connection's, the process's) move towards the reply's size
//   the reply is written, or the call is cancelled ── released; waiting calls go on
//
// The guess is an exponentially decaying maximum of reply sizes, guess = max(reply, guess - guess/8)
// per reply (an error reply counts as 0 bytes): one large reply raises it at once, and about 17
// small ones halve it again, so one large reply no longer throttles a connection forever. A
// connection that has replied to nothing yet takes the process's guess; a process that has replied
// to nothing yet takes initialGuessBytes.
//
// Only held bytes (replies sent, unread) count against maxTotalBytes: reservations are guesses, and
// counting them refused calls while almost nothing was held. So held bytes may pass maxTotalBytes by
// what calls admitted before then reply: at most maxConnectionBytes plus one reply per connection
// with calls running, and no more than maxConcurrentCalls replies (server.ts).
//
// grpc-js calls sendStatus for a unary call only from the write callback of its message, and that
// callback runs once HTTP/2 flow control let the DATA frames out (measured on Bun 1.4: a client
// that never sends WINDOW_UPDATE leaves every call before sendStatus until it goes away, then each
// is cancelled). Without this, 20 such clients pipelining 200 gets each of a 900 KB value grew a
// leaf by 244 MiB in 8 s (and still growing) and starved its memcached port: the stream and call
// limits do not help, since a call stops counting as in flight once its handler returns.
import {
  type FullResponder,
  type FullServerListener,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";

const MIB = 1024 * 1024;

export const REPLY_HOLD_DEFAULTS = {
  /** Unread reply bytes one connection may hold (and reserve) before its next call waits. */
  maxConnectionBytes: 4 * MIB,
  /** Unread reply bytes every connection together may hold before new calls are refused. */
  maxTotalBytes: 16 * MIB,
  /**
   * The guess before the process has replied: memcached's default item size limit (-I 1m, the
   * leaf's --max-item-size default), the largest Get reply a default leaf sends, so a first call
   * never reserves less than its reply can be (4 calls at once per fresh connection). A smaller
   * guess (64 KiB) let each fresh connection run 64 calls of up to 1 MiB before its first reply.
   */
  initialGuessBytes: MIB,
} as const;

export interface ReplyHoldLimits {
  maxConnectionBytes: number;
  maxTotalBytes: number;
  /** Default REPLY_HOLD_DEFAULTS.initialGuessBytes. */
  initialGuessBytes?: number;
}

/** Connections tracked before idle ones (nothing held, running or waiting) are swept. */
const SWEEP_MIN_CONNECTIONS = 1024;

// One connection's replies, found by the peer's address and port.
interface Connection {
  heldBytes: number; // value bytes of replies sent and not yet written out
  reservedBytes: number; // guesses reserved by calls running and not yet replying
  running: number; // calls admitted and not yet finished
  guessBytes: number | undefined; // decaying max of its reply sizes; undefined before its first
  waiting: HeldCall[]; // calls waiting for room, oldest first
}

type CallState = "new" | "waiting" | "running" | "done";

// One unary call: its state, and the listener and responder grpc-js calls (they are copied out of
// this object and called without it, hence closures rather than methods).
class HeldCall implements Pick<FullServerListener, "onReceiveMessage" | "onCancel">, Partial<FullResponder> {
  state: CallState = "new";
  message: unknown;
  deliver: ((message: unknown) => void) | undefined;
  reservedBytes = 0;
  heldBytes = 0;
  replied = false;

  constructor(
    hold: ReplyHold,
    readonly connection: Connection,
  ) {
    this.onReceiveMessage = (message, deliver) => hold.enter(this, message, deliver);
    this.onCancel = () => hold.end(this);
    this.start = (next) => next(this);
    this.sendMessage = (message, next) => {
      hold.replied(this, message);
      next(message);
    };
    this.sendStatus = (status, next) => {
      hold.end(this);
      next(status);
    };
  }

  readonly onReceiveMessage: FullServerListener["onReceiveMessage"];
  readonly onCancel: FullServerListener["onCancel"];
  readonly start: FullResponder["start"];
  readonly sendMessage: FullResponder["sendMessage"];
  readonly sendStatus: FullResponder["sendStatus"];
}

/** The unread reply bytes of every gRPC connection, against ReplyHoldLimits; see the file comment. */
export class ReplyHold {
  // By remote address, then remote port: ConnectionInfo's fields as grpc-js made them, no key built.
  private readonly connections = new Map<string, Map<number, Connection>>();
  private connectionCount = 0;
  private sweepAtCount = SWEEP_MIN_CONNECTIONS;
  /** Value bytes of replies sent and not yet read, over every connection. */
  heldBytes = 0;
  // The guess of a connection that has not replied yet (decaying max over every reply).
  private guessBytes: number;
  private churnBytes = 0; // reply bytes since the last forced collection
  private readonly limits: Required<ReplyHoldLimits>;

  constructor(limits: ReplyHoldLimits = REPLY_HOLD_DEFAULTS) {
    const initialGuessBytes = limits.initialGuessBytes ?? REPLY_HOLD_DEFAULTS.initialGuessBytes;
    this.limits = { ...limits, initialGuessBytes };
    this.guessBytes = this.limits.initialGuessBytes;
  }

  /** Why a call must be refused now (every connection together holds too much), or undefined. */
  refusal(): string | undefined {
    if (this.heldBytes <= this.limits.maxTotalBytes) return undefined;
    return `${this.heldBytes} reply bytes unread across connections (limit ${this.limits.maxTotalBytes}); retry later`;
  }

  /** A server interceptor that holds each call until its connection has room, and counts its reply. */
  interceptor(): ServerInterceptor {
    return (method, call: ServerInterceptingCallInterface) => {
      // Streaming calls (reflection) carry no cache values: not held.
      if (method.requestStream || method.responseStream) return new ServerInterceptingCall(call);
      return new ServerInterceptingCall(
        call,
        new HeldCall(this, this.connectionOf(call.getConnectionInfo())),
      );
    };
  }

  /** The call's request message arrived: it runs now if its connection has room, else waits. */
  enter(call: HeldCall, message: unknown, deliver: (message: unknown) => void): void {
    if (call.state !== "new") {
      deliver(message);
      return;
    }
    const connection = call.connection;
    call.state = "waiting";
    if (connection.waiting.length === 0 && this.hasRoom(connection)) {
      this.admit(call);
      deliver(message);
      return;
    }
    call.message = message;
    call.deliver = deliver;
    connection.waiting.push(call);
  }

  /** The call sends its reply: its reservation becomes the reply's value bytes, held. */
  replied(call: HeldCall, message: unknown): void {
    if (call.state !== "running" || call.replied) return;
    const connection = call.connection;
    const bytes = valueBytes(message);
    call.replied = true;
    connection.reservedBytes -= call.reservedBytes;
    call.reservedBytes = 0;
    call.heldBytes = bytes;
    connection.heldBytes += bytes;
    this.heldBytes += bytes;
    this.learn(connection, bytes);
    this.sawReply(bytes);
    this.settle(connection);
  }

  /** The call's reply was written out, or the call was cancelled: its bytes are released. */
  end(call: HeldCall): void {
    const connection = call.connection;
    if (call.state === "waiting") {
      const at = connection.waiting.indexOf(call);
      if (at >= 0) connection.waiting.splice(at, 1);
    } else if (call.state === "running") {
      connection.running--;
      connection.reservedBytes -= call.reservedBytes;
      connection.heldBytes -= call.heldBytes;
      this.heldBytes -= call.heldBytes;
      // An error status without a reply: a 0-byte reply for the guesses.
      if (!call.replied) this.learn(connection, 0);
    }
    call.state = "done";
    call.message = undefined;
    call.deliver = undefined;
    this.settle(connection);
  }

  private connectionOf(info: ReturnType<ServerInterceptingCallInterface["getConnectionInfo"]>): Connection {
    const address = info.remoteAddress ?? "";
    const port = info.remotePort ?? 0;
    let ports = this.connections.get(address);
    if (ports === undefined) {
      ports = new Map();
      this.connections.set(address, ports);
    }
    let connection = ports.get(port);
    if (connection === undefined) {
      if (this.connectionCount >= this.sweepAtCount) this.sweep();
      connection = { heldBytes: 0, reservedBytes: 0, running: 0, guessBytes: undefined, waiting: [] };
      ports.set(port, connection);
      this.connectionCount++;
    }
    return connection;
  }

  // Forgets idle connections (their guess with them); the next sweep comes once as many again are
  // tracked, so a sweep costs O(1) per connection opened.
  private sweep(): void {
    for (const [address, ports] of this.connections) {
      for (const [port, connection] of ports) {
        if (connection.running > 0 || connection.heldBytes > 0 || connection.waiting.length > 0) continue;
        ports.delete(port);
        this.connectionCount--;
      }
      if (ports.size === 0) this.connections.delete(address);
    }
    this.sweepAtCount = Math.max(SWEEP_MIN_CONNECTIONS, 2 * this.connectionCount);
  }

  private guessOf(connection: Connection): number {
    return connection.guessBytes ?? this.guessBytes;
  }

  // The decaying maxima (see the file comment), the connection's starting from the process's.
  private learn(connection: Connection, replyBytes: number): void {
    connection.guessBytes = decayedMax(this.guessOf(connection), replyBytes);
    this.guessBytes = decayedMax(this.guessBytes, replyBytes);
  }

  private hasRoom(connection: Connection): boolean {
    if (connection.running === 0 && connection.heldBytes === 0) return true;
    const bytes = connection.heldBytes + connection.reservedBytes + this.guessOf(connection);
    return bytes <= this.limits.maxConnectionBytes;
  }

  // A call starts: it reserves the connection's guess.
  private admit(call: HeldCall): void {
    const connection = call.connection;
    const bytes = this.guessOf(connection);
    call.state = "running";
    call.reservedBytes = bytes;
    connection.reservedBytes += bytes;
    connection.running++;
  }

  // Lets waiting calls go on while there is room.
  private settle(connection: Connection): void {
    while (connection.waiting.length > 0 && this.hasRoom(connection)) {
      const call = connection.waiting.shift() as HeldCall;
      const { message, deliver } = call;
      call.message = undefined;
      call.deliver = undefined;
      this.admit(call);
      deliver?.(message);
    }
  }

  // Under pressure (a quarter of maxTotalBytes held), every quarter of it in replies forces a full
  // collection, as the router's load budget does (load-budget.ts sawReply): each reply passes
  // through several buffers that JSC otherwise collects late.
  private sawReply(bytes: number): void {
    this.churnBytes += bytes;
    if (this.churnBytes < this.limits.maxTotalBytes >> 2) return;
    this.churnBytes = 0;
    if (this.heldBytes >= this.limits.maxTotalBytes >> 2) Bun.gc(true);
  }
}

// max(reply, guess - guess/8): jumps to a larger reply, decays by an eighth per smaller one.
function decayedMax(guessBytes: number, replyBytes: number): number {
  return Math.max(replyBytes, guessBytes - Math.floor(guessBytes / 8));
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

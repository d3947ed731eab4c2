// One pipelined TCP connection to a memcached-protocol server (a leaf or memcached).
//
//   send(bytes, expect) ─> queued ──(in flight < maxInFlight)──> inFlight ──> out chunks ─(end of turn)─> socket.write
//                                                                   │
//   socket data ─> ReplyParser ─ nextExpect()/onReply() ────────────┘  replies match requests FIFO
//
// Every request gets exactly one reply, so requests must not say noreply or use the meta q flag
// (a router strips noreply and drops the reply). Requests made in one event-loop turn go out in one
// write: the flush runs from setImmediate, after every socket callback of the turn, not from a
// microtask (which runs after each callback). A router turn carries requests from many client
// sockets; measured with memcaslap through the router (32 connections): 42-48k requests/s with a
// microtask flush, 59-61k with the end-of-turn flush, one write per leaf socket per turn.
//
// Failures: a request with no reply after timeoutMs fails with TimeoutError. Replies are FIFO, so
// its late reply would be taken for the next request's: the socket is reset, the other requests in
// flight fail with ConnectionError, and requests not yet written wait for a new socket. A lost
// socket (or one that never connects) fails everything pending with ConnectionError, and for a
// backoff delay (doubling per failure in a row, capped) new requests fail at once instead of
// waiting on a server that is down; the first request after the delay connects again.
//
// TLS (options.tls): the connection opens when the handshake has verified the server's certificate,
// not at the TCP connect (Bun's `open` comes first, and a write then is not taken), so the connect
// timeout covers the handshake and a refused certificate fails the connect with the verifier's
// reason ("unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)"). Under TLS 1.3
// a server that refuses our client certificate says so after the client's handshake completes: the
// socket then fails with the server's alert, which is described in the error (TLS_ALERT_HINTS).
import { ConnectionError, OverloadedError, ProtocolError, TimeoutError } from "../errors.ts";
import type { Expect, Reply } from "../protocol/reply.ts";
import { ReplyParser, type ReplyParserOptions, type ReplySink } from "../protocol/reply-parser.ts";
import { bunClientTlsOptions, type ClientTls, isTlsRefusal } from "../security/tls.ts";

export interface TcpConnectionOptions {
  host: string;
  port: number;
  /** Requests written and waiting for their replies at once (default 1024). */
  maxInFlight?: number;
  /** Requests waiting for an in-flight slot (default 4096); one more fails with OverloadedError. */
  maxQueued?: number;
  /** From send() to the reply, per request (default 1000 ms). */
  timeoutMs?: number;
  /** For the TCP connect (default timeoutMs). */
  connectTimeoutMs?: number;
  /** Delay after the first failure before connecting again (default 50 ms); doubles per failure in a row. */
  reconnectDelayMs?: number;
  /** Cap of the reconnect delay (default 5000 ms). */
  maxReconnectDelayMs?: number;
  parser?: ReplyParserOptions;
  /** TLS to the server, its certificate verified against tls.ca; default plaintext. */
  tls?: ClientTls;
}

/** Where a connection is in its life. */
export const ConnectionState = {
  /** No socket; the next request connects. */
  Idle: "idle",
  Connecting: "connecting",
  Open: "open",
  /** The last attempt failed; requests fail fast until the reconnect delay has passed. */
  Backoff: "backoff",
  Closed: "closed",
} as const;
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

// One request from send() to its reply.
class Pending {
  constructor(
    public request: Uint8Array | null, // the bytes until they are handed to the write path
    readonly expect: Expect,
    readonly deadline: number, // performance.now() ms
    readonly resolve: (reply: Reply) => void,
    readonly reject: (error: Error) => void,
  ) {}
}

// A FIFO ring buffer of fixed capacity: O(1) push/shift without Array.shift's copying.
class Fifo<T> {
  private items: (T | undefined)[];
  private head = 0;
  length = 0;

  constructor(capacity: number) {
    this.items = new Array(Math.max(1, capacity));
  }

  push(item: T): void {
    this.items[(this.head + this.length) % this.items.length] = item;
    this.length++;
  }

  peek(): T | undefined {
    return this.length === 0 ? undefined : this.items[this.head];
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.length--;
    return item;
  }
}

type Socket = Bun.Socket<undefined>;

const CLOSE_GRACE_MS = 2000;

/** One pipelined connection; see the diagram at the top of this file. */
export class TcpConnection {
  readonly destination: string;
  private readonly options: TcpConnectionOptions;
  private readonly maxInFlight: number;
  private readonly maxQueued: number;
  private readonly timeoutMs: number;
  private readonly parser: ReplyParser;
  private readonly inFlight: Fifo<Pending>; // written (or about to be), oldest first
  private readonly queue: Fifo<Pending>; // not yet written, all sent after everything in inFlight

  private currentState: ConnectionState = ConnectionState.Idle;
  private socket: Socket | null = null;
  private handshaking: Socket | null = null; // TLS: connected, certificate not yet verified
  private heardFromSocket = false; // whether the open socket has sent us any bytes
  private openedAt = 0; // performance.now() ms when the open socket's TLS handshake (or TCP connect) ended
  private attempt = 0; // numbers connect attempts; events of older attempts are ignored
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private openWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private closing: { socket: Socket; done: () => void } | null = null; // close() waits for this socket
  private closed: Promise<void> = Promise.resolve();
  private failures = 0; // failures in a row; reset by a reply
  private retryAt = 0; // in Backoff, when the next request may connect (performance.now() ms)
  private lastError: Error | null = null;
  private lastSend = 0; // performance.now() ms of the last send()
  private timer: ReturnType<typeof setTimeout> | null = null; // fires at the oldest deadline
  private out: Uint8Array[] = []; // requests to write at the next flush
  private flushScheduled = false;
  private unsent: Uint8Array | null = null; // bytes the kernel did not take; written on drain
  private readonly flushBound = () => this.flush();
  private readonly onTimerBound = () => this.onTimer();

  constructor(options: TcpConnectionOptions) {
    this.options = options;
    this.destination = `${options.host}:${options.port}`;
    this.maxInFlight = positive("maxInFlight", options.maxInFlight ?? 1024);
    this.maxQueued = nonNegative("maxQueued", options.maxQueued ?? 4096);
    this.timeoutMs = positive("timeoutMs", options.timeoutMs ?? 1000);
    this.inFlight = new Fifo(this.maxInFlight);
    this.queue = new Fifo(this.maxInFlight + this.maxQueued);
    const sink: ReplySink = {
      nextExpect: () => this.inFlight.peek()?.expect,
      onReply: (reply) => this.onReply(reply),
    };
    this.parser = new ReplyParser(sink, options.parser);
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** Requests written and waiting for replies. */
  get inFlightCount(): number {
    return this.inFlight.length;
  }

  /** Requests waiting to be written. */
  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * When the oldest request still waiting for its reply was sent (performance.now() ms), or
   * +Infinity when none waits. A pipelined socket answers in order, so every request behind it
   * waits at least as long: its age is how long this connection has been stalled.
   */
  get oldestSentAt(): number {
    const oldest = this.oldest();
    return oldest === undefined ? Number.POSITIVE_INFINITY : oldest.deadline - this.timeoutMs;
  }

  /** When send() was last called (performance.now() ms; 0 before the first). */
  get lastSendAt(): number {
    return this.lastSend;
  }

  /** Whether a request sent now would be tried (not refused by backoff or close). */
  get available(): boolean {
    if (this.currentState === ConnectionState.Closed) return false;
    return this.currentState !== ConnectionState.Backoff || performance.now() >= this.retryAt;
  }

  /**
   * Sends one request (complete bytes, CRLFs included) and resolves with its reply, error replies
   * (ERROR, CLIENT_ERROR, SERVER_ERROR) included. Rejects with TimeoutError, ConnectionError,
   * OverloadedError or ProtocolError.
   */
  send(request: Uint8Array, expect: Expect): Promise<Reply> {
    const refused = this.refusal();
    if (refused !== null) return Promise.reject(refused);
    let resolve!: (reply: Reply) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<Reply>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const now = performance.now();
    this.lastSend = now;
    const pending = new Pending(request, expect, now + this.timeoutMs, resolve, reject);
    if (
      this.currentState === ConnectionState.Open &&
      this.inFlight.length < this.maxInFlight &&
      this.queue.length === 0
    ) {
      this.write(pending);
    } else {
      this.queue.push(pending);
      if (this.currentState !== ConnectionState.Open && this.currentState !== ConnectionState.Connecting) {
        this.startConnect();
      }
    }
    if (this.timer === null) this.armTimer();
    return promise;
  }

  // Why a request cannot be taken now, or null.
  private refusal(): Error | null {
    switch (this.currentState) {
      case ConnectionState.Closed:
        return new ConnectionError(this.destination, "connection is closed");
      case ConnectionState.Backoff:
        if (performance.now() < this.retryAt) {
          return new ConnectionError(
            this.destination,
            `unreachable: ${this.lastError?.message ?? "failed"}`,
            {
              cause: this.lastError,
            },
          );
        }
        break;
    }
    if (this.inFlight.length + this.queue.length >= this.maxInFlight + this.maxQueued) {
      return new OverloadedError(
        `${this.destination}: ${this.inFlight.length} requests in flight and ${this.queue.length} queued`,
      );
    }
    return null;
  }

  /** Connects now if not connected (ignoring any backoff); rejects with ConnectionError if that fails. */
  connect(): Promise<void> {
    if (this.currentState === ConnectionState.Open) return Promise.resolve();
    if (this.currentState === ConnectionState.Closed) {
      return Promise.reject(new ConnectionError(this.destination, "connection is closed"));
    }
    const opened = new Promise<void>((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    if (this.currentState !== ConnectionState.Connecting) this.startConnect();
    return opened;
  }

  /** Fails every pending request with ConnectionError and closes the socket; resolves once it is closed. */
  close(): Promise<void> {
    if (this.currentState === ConnectionState.Closed) return this.closed;
    const error = new ConnectionError(this.destination, "connection closed by the client");
    this.currentState = ConnectionState.Closed;
    this.attempt++;
    this.clearTimers();
    this.failAll(error);
    this.rejectOpenWaiters(error);
    this.dropWrites();
    this.dropHandshake();
    const socket = this.socket;
    this.socket = null;
    if (socket === null) return this.closed;
    this.closed = new Promise<void>((resolve) => {
      // A peer that never answers our FIN would hold the socket: reset it after a grace period.
      const grace = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
      const done = () => {
        clearTimeout(grace);
        resolve();
      };
      this.closing = { socket, done };
    });
    socket.end();
    return this.closed;
  }

  private startConnect(): void {
    const attempt = ++this.attempt;
    this.currentState = ConnectionState.Connecting;
    this.parser.reset();
    const connectTimeoutMs = this.options.connectTimeoutMs ?? this.timeoutMs;
    this.connectTimer = setTimeout(() => {
      if (attempt === this.attempt) {
        this.onConnectFailed(new Error(`connect timed out after ${connectTimeoutMs} ms`));
      }
    }, connectTimeoutMs);
    const tls = this.options.tls;
    Bun.connect<undefined>({
      hostname: this.options.host,
      port: this.options.port,
      ...(tls === undefined ? {} : { tls: bunClientTlsOptions(tls) }),
      socket: {
        binaryType: "uint8array",
        open: (socket) => {
          if (attempt !== this.attempt) {
            socket.terminate();
          } else if (tls === undefined) {
            this.onOpen(socket);
          } else {
            this.handshaking = socket;
          }
        },
        handshake: (socket, verified, error) => {
          if (attempt !== this.attempt) return;
          this.handshaking = null;
          if (verified) {
            this.onOpen(socket);
          } else {
            socket.terminate();
            this.onConnectFailed(tlsFailure("TLS handshake failed", error));
          }
        },
        data: (socket, data) => {
          if (socket === this.socket) this.onData(data);
        },
        drain: (socket) => {
          if (socket === this.socket) this.onDrain();
        },
        close: (socket, error) => this.onSocketClosed(socket, error),
        error: (socket, error) => {
          const cause = tls !== undefined && isTlsRefusal(error.message) ? tlsFailure("TLS", error) : error;
          if (socket === this.socket) this.onLost(this.lostBeforeReply(cause));
          else if (socket === this.handshaking) this.onConnectFailed(cause);
        },
        connectError: (_socket, error) => {
          if (attempt === this.attempt) this.onConnectFailed(error);
        },
      },
    }).catch(() => {
      // Reported through connectError.
    });
  }

  private onOpen(socket: Socket): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    socket.setNoDelay(true);
    this.socket = socket;
    this.heardFromSocket = false;
    this.openedAt = performance.now();
    this.currentState = ConnectionState.Open;
    for (const waiter of this.openWaiters.splice(0)) waiter.resolve();
    this.writeQueued();
  }

  private onConnectFailed(cause: Error): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.attempt++; // a connect that completes after its timeout is closed at once
    this.dropHandshake(); // after the attempt moved on: its terminate reports a failed handshake at once
    const error = new ConnectionError(this.destination, `cannot connect: ${cause.message}`, { cause });
    this.backoff(error);
    this.failAll(error);
    this.rejectOpenWaiters(error);
  }

  private onSocketClosed(socket: Socket, error: Error | undefined): void {
    if (this.closing !== null && socket === this.closing.socket) {
      this.closing.done();
      this.closing = null;
    } else if (socket === this.socket) {
      this.onLost(this.lostBeforeReply(error ?? new Error("closed by the server")));
    } else if (socket === this.handshaking) {
      this.onConnectFailed(error ?? new Error("closed by the server during the TLS handshake"));
    }
  }

  // Under TLS 1.3 a server that refuses our client certificate may close the socket (or reset it,
  // when our first request is on its way) without an alert, right after the handshake. So a TLS
  // socket lost before it sent anything and within REFUSAL_WINDOW_MS of its handshake says what
  // that may mean; a later loss (a leaf stopped or restarted while the socket was open and quiet)
  // does not, nor one whose cause already names a TLS failure.
  private lostBeforeReply(cause: Error): Error {
    if (
      this.options.tls === undefined ||
      this.heardFromSocket ||
      performance.now() - this.openedAt >= REFUSAL_WINDOW_MS ||
      isTlsRefusal(cause.message)
    ) {
      return cause;
    }
    const hint = "before any reply (as a server that refuses our client certificate does)";
    return new Error(`${cause.message}, ${hint}`, { cause });
  }

  // A connect abandoned during its TLS handshake (timeout, close): its socket goes too.
  private dropHandshake(): void {
    const socket = this.handshaking;
    this.handshaking = null;
    if (socket !== null) socket.terminate();
  }

  // The open socket failed or was closed by the peer.
  private onLost(cause: Error): void {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) socket.terminate();
    this.dropWrites();
    const error = new ConnectionError(this.destination, `connection lost: ${cause.message}`, { cause });
    this.backoff(error);
    this.failAll(error);
  }

  private backoff(error: Error): void {
    this.failures++;
    const initial = this.options.reconnectDelayMs ?? 50;
    const cap = this.options.maxReconnectDelayMs ?? 5000;
    const delay = Math.min(cap, initial * 2 ** Math.min(this.failures - 1, 30));
    // Half fixed, half random: connections that failed together do not retry together.
    this.retryAt = performance.now() + delay / 2 + (Math.random() * delay) / 2;
    this.lastError = error;
    this.currentState = ConnectionState.Backoff;
  }

  private onData(data: Uint8Array): void {
    this.heardFromSocket = true;
    try {
      this.parser.feed(data);
    } catch (error) {
      const protocolError =
        error instanceof ProtocolError
          ? error
          : new ProtocolError(`reply parser failed: ${String(error)}`, { cause: error });
      // The reply stream is out of step: nothing after this point can be matched.
      this.reset(protocolError, protocolError);
    }
  }

  private onReply(reply: Reply): void {
    const pending = this.inFlight.shift();
    if (pending === undefined) return; // the parser asks nextExpect first, so this does not happen
    this.failures = 0;
    pending.resolve(reply);
    if (this.queue.length > 0) this.writeQueued();
  }

  private writeQueued(): void {
    while (this.queue.length > 0 && this.inFlight.length < this.maxInFlight) {
      this.write(this.queue.shift() as Pending);
    }
  }

  private write(pending: Pending): void {
    this.inFlight.push(pending);
    this.out.push(pending.request as Uint8Array);
    pending.request = null;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (socket === null || this.unsent !== null || this.out.length === 0) return;
    const bytes = this.out.length === 1 ? (this.out[0] as Uint8Array) : concat(this.out);
    this.out = [];
    this.writeBytes(socket, bytes);
  }

  private writeBytes(socket: Socket, bytes: Uint8Array): void {
    const written = socket.write(bytes);
    if (written < 0) return; // closed: the close event fails what is in flight
    this.unsent = written < bytes.length ? bytes.subarray(written) : null;
  }

  private onDrain(): void {
    const socket = this.socket;
    if (socket === null || this.unsent === null) return;
    const unsent = this.unsent;
    this.unsent = null;
    this.writeBytes(socket, unsent);
    if (this.unsent === null) this.flush();
  }

  private dropWrites(): void {
    this.out = [];
    this.unsent = null;
    this.flushScheduled = false;
    this.parser.reset();
  }

  // Drops the socket while it is open: requests in flight fail (the first with `first`), queued
  // requests stay for the next socket, which is connected at once if any wait.
  private reset(first: Error, others: Error): void {
    const socket = this.socket;
    this.socket = null;
    this.attempt++;
    if (socket !== null) socket.terminate();
    this.dropWrites();
    let error = first;
    for (let pending = this.inFlight.shift(); pending !== undefined; pending = this.inFlight.shift()) {
      pending.reject(error);
      error = others;
    }
    this.currentState = ConnectionState.Idle;
    if (this.queue.length > 0) this.startConnect();
  }

  private failAll(error: Error): void {
    for (let pending = this.inFlight.shift(); pending !== undefined; pending = this.inFlight.shift()) {
      pending.reject(error);
    }
    for (let pending = this.queue.shift(); pending !== undefined; pending = this.queue.shift()) {
      pending.reject(error);
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private rejectOpenWaiters(error: Error): void {
    for (const waiter of this.openWaiters.splice(0)) waiter.reject(error);
  }

  private clearTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.timer = null;
    this.connectTimer = null;
  }

  // In flight, then queued, is send order, and every request has the same timeout: the oldest
  // request is the first to expire, so one timer at its deadline serves them all.
  private oldest(): Pending | undefined {
    return this.inFlight.peek() ?? this.queue.peek();
  }

  private armTimer(): void {
    const oldest = this.oldest();
    if (oldest === undefined) return;
    this.timer = setTimeout(this.onTimerBound, Math.max(0, oldest.deadline - performance.now()));
  }

  private onTimer(): void {
    this.timer = null;
    const now = performance.now();
    const head = this.inFlight.peek();
    if (head !== undefined && head.deadline <= now) {
      const timeout = new TimeoutError(
        `${this.destination}: no reply in ${this.timeoutMs} ms`,
        this.timeoutMs,
      );
      const reset = new ConnectionError(
        this.destination,
        "connection reset after an earlier request timed out",
        {
          cause: timeout,
        },
      );
      this.reset(timeout, reset);
    }
    // Requests never written (the socket is connecting or busy) time out without a reset.
    for (
      let pending = this.queue.peek();
      pending !== undefined && pending.deadline <= now;
      pending = this.queue.peek()
    ) {
      this.queue.shift();
      pending.reject(
        new TimeoutError(
          `${this.destination}: not sent within ${this.timeoutMs} ms (${this.currentState})`,
          this.timeoutMs,
        ),
      );
    }
    this.armTimer();
  }
}

// How soon after the handshake a server that refuses our client certificate closes the socket: at
// once, when it reads our certificate (within a round trip; 1 s leaves room for a loaded host).
const REFUSAL_WINDOW_MS = 1000;

// What a TLS alert from the server means for us, by the alert's name in BoringSSL's message.
const TLS_ALERT_HINTS: readonly (readonly [alert: string, hint: string])[] = [
  ["CERTIFICATE_REQUIRED", "the server requires a client certificate"],
  ["UNKNOWN_CA", "the server does not trust our client certificate's CA"],
  ["BAD_CERTIFICATE", "the server refused our client certificate"],
  ["CERTIFICATE_EXPIRED", "the server found a certificate expired"],
];

// A TLS failure as one readable Error: what failed, a hint for a known alert, the verifier's or
// the alert's words, and the error's code when the words do not already hold it.
function tlsFailure(what: string, error: Error | undefined | null): Error {
  const message = error?.message ?? "no reason given";
  const code = (error as { code?: unknown } | undefined | null)?.code;
  const hint = TLS_ALERT_HINTS.find(([alert]) => message.includes(alert))?.[1];
  const detail = `${message}${typeof code === "string" && !message.includes(code) ? ` (${code})` : ""}`;
  return new Error(`${what}: ${hint === undefined ? detail : `${hint}: ${detail}`}`, { cause: error });
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0)
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}

// A memcached listener: Bun TCP sockets in front of the native protocol executor.
//
//   socket data ──> feed(conn, bytes, out) ──> socket.write(out, 0, n)
//                      │
//                      ├─ replies still held in C++ (pending) ──> feed(conn, null, out) again
//                      └─ socket took only part of out ──> copy the unsent tail, pause reading,
//                                                         retry on drain, then feed(conn, null, out)
//
// Backpressure: while a connection has unsent bytes it is paused (no reads). Bytes read before the
// pause took effect go to C++, which buffers them and executes only until a reply would have to be
// held (order is kept), so a client that never reads costs one read of input, one reply chunk
// and the kernel's socket buffers.
//
// Injected latency (--inject-latency, off by default): a share of the socket reads get their
// replies held for a fixed delay, through the same path as unsent bytes (reading pauses, C++
// buffers, order is kept), so tests and benchmarks can make a leaf slow on purpose.
//
// Closing: end() sends FIN after every reply byte; the socket is terminated when the peer closes
// or LINGER_MS later, so a client that never closes its side holds nothing for long.
// Half-close: sockets are half-open capable, so a client's FIN (it has sent everything) only
// drains the connection: the replies to what was read, held or delayed ones included, still go out.

import type { Socket, TCPSocketListener, TCPSocketListenOptions } from "bun";
import { fedBytes, fedClose, fedPending, type NativeConnection, native } from "../native/index.ts";
import type { SaslPasswords } from "../protocol/sasl-plain.ts";
import { passwordCheck, TextAuthGate } from "../protocol/text-auth.ts";
import { bunTlsOptions, type TlsMaterial } from "../security/tls.ts";

/** Bytes of reply written per feed() call; one buffer per thread, reused by every connection. */
const OUT_BUFFER_BYTES = 256 * 1024;
const out = new Uint8Array(OUT_BUFFER_BYTES);
/** Given to feed() while a connection has unsent bytes: C++ buffers input and keeps replies. */
const NO_OUT = new Uint8Array(0);
/**
 * Every socket read arrives as a fresh ArrayBuffer, outside the JS heap, and the collector does
 * not run on their account soon enough: a flood of large values left ~40 MB of dead read buffers
 * in a leaf (bench:memory's flood peaked at 2.59x --memory, 2.07x with this). A full collection
 * once this many bytes have been read on this thread bounds them; it takes well under a
 * millisecond on a leaf's small heap.
 */
const COLLECT_EVERY_READ_BYTES = 4 * 1024 * 1024;
let readSinceCollectBytes = 0;
/** How long a closing connection waits for the peer's FIN before it is terminated. */
const LINGER_MS = 1000;
/** memcached's reply to a connection over the limit (then it closes). */
const TOO_MANY_CONNECTIONS = new TextEncoder().encode("ERROR Too many open connections\r\n");

interface ConnectionState {
  conn: NativeConnection;
  unsent: Uint8Array | null; // reply bytes the socket did not take; reading pauses while set
  closeWhenSent: boolean; // the protocol asked to close ("quit", fatal error) after unsent
  draining: boolean; // stopping or the peer sent FIN: close once nothing is left to send
  closed: boolean; // finished or failed: no more reads are fed
  linger: ReturnType<typeof setTimeout> | null; // terminates a finished socket whose peer stays open
  delay: ReturnType<typeof setTimeout> | null; // injected latency: unsent is held until it fires
  gate: TextAuthGate | null; // -Y: sees every byte until the connection authenticates, then null
}

/** A share of replies delayed on purpose: `share` in [0, 1], `delayMs` each. */
export interface InjectedLatency {
  share: number;
  delayMs: number;
}

type LeafSocket = Socket<ConnectionState>;
type Bytes = Uint8Array | ArrayBuffer;

export interface ListenerOptions {
  hostname: string;
  port: number;
  /** Share the port with other listeners (SO_REUSEPORT); the kernel spreads connections. */
  reusePort: boolean;
  /** Connections beyond this many (all threads together) get memcached's error and are closed. */
  maxConnections: number;
  injectLatency?: InjectedLatency | null;
  /** -v count: 1 logs refused connections, 2 every connection opened and closed. */
  verbosity?: number;
  /** memcached over TLS with this certificate and key (with a CA: client certificates required). */
  tls?: TlsMaterial | null;
  /** memcached's text authentication (-Y): user -> password; the first command must carry one pair. */
  authPasswords?: SaslPasswords | null;
}

/** A running memcached listener on one thread. */
export interface Listener {
  readonly hostname: string;
  readonly port: number;
  /** Open client connections. */
  connections(): number;
  /** Stops accepting, lets every connection flush its replies, closes it; force-closes after graceMs. */
  stop(graceMs: number): Promise<void>;
}

/** Starts a listener on this thread; the native store must be configured first. */
export function listen(options: ListenerOptions): Listener {
  const sockets = new Set<LeafSocket>();
  let stopping = false;
  let onAllClosed: (() => void) | null = null;

  const finish = (socket: LeafSocket): void => {
    const state = socket.data;
    if (state.linger !== null) return;
    state.closed = true;
    socket.end();
    state.linger = setTimeout(() => socket.terminate(), LINGER_MS);
  };

  const injected = options.injectLatency ?? null;
  const authenticate = options.authPasswords == null ? null : passwordCheck(options.authPasswords);
  const verbosity = options.verbosity ?? 0;

  // Sends the held bytes; once they are all out, reads resume and C++ continues.
  const sendUnsent = (socket: LeafSocket): void => {
    const state = socket.data;
    if (state.closed || state.unsent === null || state.delay !== null) return;
    const sent = socket.write(state.unsent);
    if (sent < 0) return;
    if (sent < state.unsent.length) {
      state.unsent = state.unsent.subarray(sent);
      return;
    }
    state.unsent = null;
    if (state.closeWhenSent) {
      finish(socket);
      return;
    }
    socket.resume();
    pump(socket, null);
  };

  // Sends what feed() produced, looping while C++ still holds replies.
  const pump = (socket: LeafSocket, input: Bytes | null): void => {
    const state = socket.data;
    let result = native.feed(state.conn, input, out);
    for (;;) {
      const written = fedBytes(result);
      if (written > 0 && injected !== null && Math.random() < injected.share) {
        state.unsent = out.slice(0, written);
        state.closeWhenSent = fedClose(result);
        socket.pause();
        state.delay = setTimeout(() => {
          state.delay = null;
          sendUnsent(socket);
        }, injected.delayMs);
        return;
      }
      if (written > 0) {
        const sent = socket.write(out, 0, written);
        if (sent < 0) return; // socket already closed
        if (sent < written) {
          state.unsent = out.slice(sent, written);
          state.closeWhenSent = fedClose(result);
          socket.pause();
          return;
        }
      }
      if (fedClose(result)) {
        finish(socket);
        return;
      }
      if (!fedPending(result)) break;
      result = native.feed(state.conn, null, out);
    }
    if (state.draining) finish(socket);
  };

  // Bun.listen honours reusePort (SO_REUSEPORT) though its listen types only declare it for connect.
  const tls = options.tls ?? null;
  const listenOptions: TCPSocketListenOptions<ConnectionState> & { reusePort: boolean } = {
    hostname: options.hostname,
    port: options.port,
    reusePort: options.reusePort,
    ...(tls === null ? {} : { tls: bunTlsOptions(tls) }),
    allowHalfOpen: true, // replies still pending at the peer's FIN are sent before we close
    socket: {
      // Reads arrive as plain ArrayBuffers, which Bun hands over markedly faster than Buffers
      // (measured: a canned-reply server answers ~25% more memcaslap requests per second). The
      // listen types still say Buffer; feed() takes either.
      binaryType: "arraybuffer",
      open(socket) {
        if (stopping) {
          socket.terminate();
          return;
        }
        socket.setNoDelay(true);
        socket.data = {
          conn: native.openConnection(
            memcachedAddress(socket.remoteFamily, socket.remoteAddress, socket.remotePort),
            memcachedAddress(socket.localFamily, socket.localAddress, socket.localPort),
          ),
          unsent: null,
          closeWhenSent: false,
          draining: false,
          closed: false,
          linger: null,
          delay: null,
          gate: authenticate === null ? null : new TextAuthGate(authenticate),
        };
        sockets.add(socket);
        if (native.connectionCount() > options.maxConnections) {
          if (verbosity >= 1)
            console.log(
              `gravity leaf: refused ${socket.remoteAddress}: over --max-connections ${options.maxConnections}`,
            );
          socket.write(TOO_MANY_CONNECTIONS);
          finish(socket);
        } else if (verbosity >= 2)
          console.log(`gravity leaf: connection from ${socket.remoteAddress} (${sockets.size} open)`);
      },
      data(socket, data) {
        readSinceCollectBytes += data.byteLength;
        if (readSinceCollectBytes >= COLLECT_EVERY_READ_BYTES) {
          readSinceCollectBytes = 0;
          Bun.gc(true);
        }
        const state = socket.data;
        if (state.closed) return;
        if (state.unsent !== null) {
          // Bytes read before the pause took effect: C++ buffers them and executes nothing
          // that could overtake the unsent replies.
          native.feed(state.conn, data, NO_OUT);
          return;
        }
        if (state.gate !== null) {
          const step = state.gate.feed(new Uint8Array(data));
          if (step.kind === "more") return;
          socket.write(step.reply);
          if (step.kind === "refused") {
            finish(socket);
            return;
          }
          state.gate = null;
          if (step.rest.length > 0) pump(socket, step.rest);
          return;
        }
        pump(socket, data);
      },
      end(socket) {
        // The peer sent FIN: send what is pending, then close.
        const state = socket.data;
        if (state === undefined || state.closed) return;
        state.draining = true;
        if (state.unsent === null) finish(socket);
      },
      drain(socket) {
        sendUnsent(socket);
      },
      close(socket) {
        const state = socket.data;
        if (state === undefined) return; // terminated in open() while stopping
        state.closed = true;
        if (state.linger !== null) clearTimeout(state.linger);
        if (state.delay !== null) clearTimeout(state.delay);
        native.closeConnection(state.conn);
        sockets.delete(socket);
        if (verbosity >= 2) console.log(`gravity leaf: connection from ${socket.remoteAddress} closed`);
        if (onAllClosed !== null && sockets.size === 0) onAllClosed();
      },
      error(socket, error) {
        // A socket error, or a handler threw (feed() out of memory): drop the connection; the
        // close handler releases it.
        if (socket.data !== undefined) socket.data.closed = true;
        console.error(`gravity leaf: connection dropped: ${error.message}`);
        socket.terminate();
      },
    },
  };
  const server: TCPSocketListener<ConnectionState> = Bun.listen<ConnectionState>(listenOptions);

  return {
    hostname: options.hostname,
    port: server.port,
    connections: () => sockets.size,
    stop(graceMs: number): Promise<void> {
      stopping = true;
      server.stop(false);
      for (const socket of sockets) {
        socket.data.draining = true;
        if (socket.data.unsent === null) finish(socket);
      }
      if (sockets.size === 0) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          for (const socket of sockets) socket.terminate();
          resolve();
        }, graceMs);
        onAllClosed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}

// memcached conn_to_str: "tcp:<IPv4>:<port>" or "tcp6:[<IPv6>]:<port>".
function memcachedAddress(family: "IPv4" | "IPv6", address: string, port: number): string {
  return family === "IPv6" ? `tcp6:[${address}]:${port}` : `tcp:${address}:${port}`;
}

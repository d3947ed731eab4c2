// A leaf's answer to one request that came over NATS: the request's bytes through the same native
// protocol executor the TCP listener uses (listener.ts), so the NATS path speaks exactly
// the memcached protocol the TCP path does.
//
//   request bytes ──> feed(conn, bytes, out) ──> out[0, n) ──┐
//                        └─ pending: replies held in C++ ──> feed(conn, null, out) again ─┘
//                                                          ──> every chunk joined: the reply
//
// One native connection serves every message (messages are whole requests and are handled one at
// a time, in order, on this thread). A message that leaves state in C++ — an incomplete request,
// `quit`, a fatal error — gets a fresh connection afterwards, so it cannot garble the next one.
import { fedBytes, fedClose, fedPending, type NativeConnection, native } from "../native/index.ts";

/** Bytes of reply written per feed() call; larger replies take several calls. */
const OUT_BUFFER_BYTES = 256 * 1024;
const NO_BYTES = new Uint8Array(0);

/** Runs whole memcached requests against this process's native store; configure the store first. */
export class NativeRequestHandler {
  private conn: NativeConnection | null = null;
  private readonly out = new Uint8Array(OUT_BUFFER_BYTES); // reused by every call

  /**
   * The reply bytes for `request` (one or more complete commands). Empty for a noreply command,
   * or for an incomplete request (whose bytes are then dropped with the connection that held them).
   */
  handle(request: Uint8Array): Uint8Array {
    if (this.conn === null) this.conn = native.openConnection();
    const chunks: Uint8Array[] = [];
    let total = 0;
    let result = native.feed(this.conn, request, this.out);
    for (;;) {
      const written = fedBytes(result);
      if (written > 0) {
        chunks.push(this.out.slice(0, written));
        total += written;
      }
      if (fedClose(result) || !fedPending(result)) break;
      result = native.feed(this.conn, null, this.out);
    }
    // A complete request always gets a reply unless it said noreply; either way nothing of it
    // should stay in C++. Starting over is cheap and makes sure of that.
    if (fedClose(result) || total === 0) this.reset();
    if (chunks.length === 1) return chunks[0] as Uint8Array;
    if (chunks.length === 0) return NO_BYTES;
    const reply = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      reply.set(chunk, at);
      at += chunk.length;
    }
    return reply;
  }

  /** Releases the native connection. */
  close(): void {
    this.reset();
  }

  private reset(): void {
    if (this.conn !== null) native.closeConnection(this.conn);
    this.conn = null;
  }
}

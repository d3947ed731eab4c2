// A raw memcached text-protocol client for tests: it sends exactly the bytes it is given and reads
// replies as bytes, so tests can split commands anywhere, send garbage, or stop reading.
//
//   send(bytes) ─> socket.write (waits for drain when the kernel buffer is full)
//   socket data ─> received buffer ─> read*(…) waiters, each with a deadline
//
// Strings are latin1 both ways: one character per byte, so "\xff" is the byte 0xff.

import { readFileSync } from "node:fs";
import type { Socket } from "bun";
import { DeadlineError, pollUntil } from "./wait.ts";

/** Default deadline of a read, in ms. */
export const READ_DEADLINE_MS = 10_000;

export function latin1(text: string): Uint8Array {
  return Buffer.from(text, "latin1");
}

export function fromLatin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** A short printable rendering of bytes for error messages. */
export function preview(bytes: Uint8Array, max = 300): string {
  const text = JSON.stringify(fromLatin1(bytes.subarray(0, max)));
  return bytes.length > max ? `${text}... (${bytes.length} bytes)` : text;
}

interface Waiter {
  /** Returns true once satisfied (and has resolved), false to keep waiting. */
  check(): boolean;
  fail(error: Error): void;
}

const CRLF = latin1("\r\n");

/** Offset just past the first CRLF at or after `from`, or -1. */
function lineEnd(bytes: Uint8Array, from: number): number {
  const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(CRLF, from);
  return at === -1 ? -1 : at + 2;
}

// Bytes waiting in the receive queue of the server's end of a loopback connection (0 if gone).
function serverReceiveQueue(serverPort: number, clientPort: number): number {
  const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  const local = `:${hexPort(serverPort)}`;
  const remote = `:${hexPort(clientPort)}`;
  for (const line of readFileSync("/proc/net/tcp", "latin1").split("\n")) {
    const [, localAddress, remoteAddress, , queues] = line.trim().split(/\s+/);
    if (localAddress?.endsWith(local) && remoteAddress?.endsWith(remote)) {
      return Number.parseInt(queues?.split(":")[1] ?? "0", 16);
    }
  }
  return 0;
}

export class McClient {
  private socket!: Socket<undefined>;
  private buffer = new Uint8Array(64 * 1024);
  private start = 0; // first unread byte in buffer
  private end = 0; // one past the last received byte
  private waiters: Waiter[] = [];
  private drainWaiters: (() => void)[] = [];
  private closedFlag = false;
  private closeWaiters: (() => void)[] = [];
  /** Total bytes received on this connection, read or not. */
  receivedBytes = 0;

  private constructor(readonly port: number) {}

  /** Connects to host:port (default 127.0.0.1). */
  static async connect(port: number, host = "127.0.0.1"): Promise<McClient> {
    const client = new McClient(port);
    client.socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        open: (socket) => {
          socket.setNoDelay(true);
        },
        data: (_socket, data) => client.onData(data),
        drain: () => client.onDrain(),
        end: () => client.onClosed(),
        close: () => client.onClosed(),
        error: () => client.onClosed(),
      },
    });
    return client;
  }

  /** Whether the peer closed the connection (or it failed). */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Bytes received and not yet read. */
  buffered(): Uint8Array {
    return this.buffer.subarray(this.start, this.end);
  }

  /** Writes all of `data`, waiting for the socket to drain when the kernel takes only part of it. */
  async send(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? latin1(data) : data;
    while (bytes.length > 0) {
      if (this.closedFlag) throw new Error(`connection closed with ${bytes.length} bytes unsent`);
      const written = this.socket.write(bytes);
      if (written < 0) throw new Error(`connection closed with ${bytes.length} bytes unsent`);
      bytes = bytes.subarray(written);
      if (bytes.length > 0) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
  }

  /** Sends each chunk as its own write, handing each one fully to the kernel before the next. */
  async sendChunks(chunks: readonly (string | Uint8Array)[]): Promise<void> {
    for (const chunk of chunks) {
      await this.send(chunk);
      this.socket.flush();
    }
  }

  /**
   * Resolves once the server has read everything sent so far: its socket's receive queue in
   * /proc/net/tcp is empty (Linux, IPv4). Lets a test put a real read boundary between two sends.
   */
  async waitPeerRead(deadlineMs = READ_DEADLINE_MS): Promise<void> {
    await pollUntil(() => (serverReceiveQueue(this.port, this.socket.localPort) > 0 ? undefined : true), {
      deadlineMs,
      intervalMs: 1,
      what: `the server on port ${this.port} to read what was sent`,
    });
  }

  /** Stops reading from the socket (the peer's writes back up once kernel buffers fill). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /**
   * Waits until `consume(unread)` returns a byte count, then removes and returns that many bytes.
   * `what` names the wait in the DeadlineError.
   */
  read(
    consume: (unread: Uint8Array) => number | undefined,
    what: string,
    deadlineMs = READ_DEADLINE_MS,
  ): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter: Waiter = {
        check: () => {
          const count = consume(this.buffered());
          if (count === undefined) return false;
          const bytes = this.buffer.slice(this.start, this.start + count);
          this.start += count;
          clearTimeout(timer);
          resolve(bytes);
          return true;
        },
        fail: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      if (waiter.check()) return;
      if (this.closedFlag) {
        reject(new Error(`connection closed while waiting for ${what}; unread: ${preview(this.buffered())}`));
        return;
      }
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const error = new DeadlineError(what, deadlineMs);
        error.message += `; unread: ${preview(this.buffered())}`;
        reject(error);
      }, deadlineMs);
      this.waiters.push(waiter);
    });
  }

  /** Reads exactly `count` bytes. */
  readBytes(count: number, deadlineMs?: number): Promise<Uint8Array> {
    return this.read((unread) => (unread.length >= count ? count : undefined), `${count} bytes`, deadlineMs);
  }

  /** Reads one CRLF-terminated line and returns it without the CRLF (latin1). */
  async readLine(deadlineMs?: number): Promise<string> {
    const [line] = await this.readLines(1, deadlineMs);
    return line as string;
  }

  /** Reads `count` CRLF-terminated lines, returned without their CRLFs (latin1). */
  async readLines(count: number, deadlineMs?: number): Promise<string[]> {
    const bytes = await this.read(
      (unread) => {
        let offset = 0;
        for (let i = 0; i < count; i++) {
          offset = lineEnd(unread, offset);
          if (offset === -1) return undefined;
        }
        return offset;
      },
      `${count} reply line(s)`,
      deadlineMs,
    );
    return fromLatin1(bytes).split("\r\n").slice(0, count);
  }

  /** Reads up to and including the first line equal to `line` (e.g. "END"); returns all those bytes. */
  readThroughLine(line: string, deadlineMs?: number): Promise<Uint8Array> {
    const wanted = latin1(`${line}\r\n`);
    return this.read(
      (unread) => {
        let offset = 0;
        for (;;) {
          const next = lineEnd(unread, offset);
          if (next === -1) return undefined;
          if (
            next - offset === wanted.length &&
            Buffer.compare(unread.subarray(offset, next), wanted) === 0
          ) {
            return next;
          }
          offset = next;
        }
      },
      `a line ${JSON.stringify(line)}`,
      deadlineMs,
    );
  }

  /** Sends a command line (CRLF appended) and reads one reply line. */
  async command(line: string, deadlineMs?: number): Promise<string> {
    await this.send(`${line}\r\n`);
    return await this.readLine(deadlineMs);
  }

  /** Resolves once the peer has closed the connection; rejects after the deadline. */
  waitClosed(deadlineMs = READ_DEADLINE_MS): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new DeadlineError("the connection to close", deadlineMs);
        error.message += `; unread: ${preview(this.buffered())}`;
        reject(error);
      }, deadlineMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Half-closes: sends FIN so the peer sees end of input, while replies can still be read. */
  endWrite(): void {
    if (!this.closedFlag) this.socket.shutdown();
  }

  /** Closes the connection from this side (no-op if already closed). */
  close(): void {
    if (!this.closedFlag) this.socket.end();
  }

  /** Closes with a reset (no TIME_WAIT left behind): for tests that open many connections. */
  reset(): void {
    if (!this.closedFlag) this.socket.terminate();
  }

  private onData(data: Uint8Array): void {
    this.receivedBytes += data.length;
    if (this.end + data.length > this.buffer.length) {
      const unread = this.end - this.start;
      let capacity = this.buffer.length;
      while (capacity < unread + data.length) capacity *= 2;
      if (capacity === this.buffer.length) {
        this.buffer.copyWithin(0, this.start, this.end);
      } else {
        const next = new Uint8Array(capacity);
        next.set(this.buffer.subarray(this.start, this.end), 0);
        this.buffer = next;
      }
      this.start = 0;
      this.end = unread;
    }
    this.buffer.set(data, this.end);
    this.end += data.length;
    this.waiters = this.waiters.filter((waiter) => !waiter.check());
  }

  private onDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private onClosed(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.onDrain();
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) {
      if (!waiter.check()) {
        waiter.fail(
          new Error(`connection closed before the reply was complete; unread: ${preview(this.buffered())}`),
        );
      }
    }
    for (const resolve of this.closeWaiters) resolve();
    this.closeWaiters = [];
  }
}

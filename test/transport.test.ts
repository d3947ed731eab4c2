// TcpConnection and TcpPool over real sockets: raw Bun.listen servers that reply when a test says
// so (or never) for timeouts, bounds, bad replies and lost connections; memcached and a gravity
// leaf for pipelining.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { ConnectionError, OverloadedError, ProtocolError, TimeoutError } from "../src/errors.ts";
import { encodeDelete, encodeGet, encodeStore, encodeVersion } from "../src/protocol/encoder.ts";
import { Expect, type Reply, ReplyType } from "../src/protocol/reply.ts";
import { ConnectionState, TcpConnection } from "../src/transport/connection.ts";
import { TcpPool } from "../src/transport/tcp-pool.ts";
import {
  freePort,
  HOST,
  type LeafProcess,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  stopAll,
} from "./helpers/servers.ts";
import { pollUntil, withDeadline } from "./helpers/wait.ts";

const DEADLINE_MS = 10_000;
const latin1 = (text: string) => Buffer.from(text, "latin1");
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

interface RawConnection {
  socket: Socket<undefined>;
  /** Lines received so far (without CRLF). */
  lines: string[];
  closed: boolean;
}

/**
 * A real TCP server on 127.0.0.1 that records what each connection sends and replies only when a
 * test calls reply(): the test decides when (and whether) a reply exists.
 */
class RawServer {
  readonly connections: RawConnection[] = [];
  private readonly listener: TCPSocketListener<undefined>;
  private readonly waiters: { check: () => boolean }[] = [];
  private readonly bySocket = new Map<Socket<undefined>, RawConnection>();

  constructor(onLine?: (connection: RawConnection, line: string) => void) {
    this.listener = Bun.listen<undefined>({
      hostname: HOST,
      port: 0,
      socket: {
        open: (socket) => {
          const connection = { socket, lines: [], closed: false };
          this.bySocket.set(socket, connection);
          this.connections.push(connection);
          this.notify();
        },
        data: (socket, data) => {
          const connection = this.bySocket.get(socket) as RawConnection;
          const received = text(data).split("\r\n");
          received.pop(); // requests here are whole lines, written in one piece
          for (const line of received) {
            connection.lines.push(line);
            onLine?.(connection, line);
          }
          this.notify();
        },
        close: (socket) => {
          const connection = this.bySocket.get(socket);
          if (connection !== undefined) connection.closed = true;
          this.notify();
        },
      },
    });
  }

  get port(): number {
    return this.listener.port;
  }

  /** Lines received over all connections. */
  get lineCount(): number {
    return this.connections.reduce((sum, connection) => sum + connection.lines.length, 0);
  }

  /** Resolves once `predicate` holds (checked at each server event); rejects after the deadline. */
  until(predicate: () => boolean, what: string): Promise<void> {
    if (predicate()) return Promise.resolve();
    const reached = new Promise<void>((resolve) => {
      this.waiters.push({
        check: () => {
          if (!predicate()) return false;
          resolve();
          return true;
        },
      });
    });
    return withDeadline(reached, DEADLINE_MS, what);
  }

  stop(): void {
    this.listener.stop(true);
  }

  private notify(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if ((this.waiters[i] as { check: () => boolean }).check()) this.waiters.splice(i, 1);
    }
  }
}

function reply(connection: RawConnection, bytes: string): void {
  connection.socket.write(latin1(bytes));
  connection.socket.flush();
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection, got a reply");
}

const servers: RawServer[] = [];
function rawServer(onLine?: (connection: RawConnection, line: string) => void): RawServer {
  const server = new RawServer(onLine);
  servers.push(server);
  return server;
}
const connections: TcpConnection[] = [];
function connect(options: Partial<ConstructorParameters<typeof TcpConnection>[0]> & { port: number }) {
  const connection = new TcpConnection({ host: HOST, ...options });
  connections.push(connection);
  return connection;
}

afterAll(async () => {
  await Promise.all(connections.map((connection) => connection.close()));
  for (const server of servers) server.stop();
  await stopAll();
});

describe("TcpConnection against raw servers", () => {
  test("an unreachable server is a ConnectionError, then fails fast while backing off", async () => {
    const port = await freePort();
    const connection = connect({ port, reconnectDelayMs: 60_000 });
    const first = await rejection(connection.send(encodeVersion(), Expect.Line));
    expect(first).toBeInstanceOf(ConnectionError);
    expect((first as ConnectionError).destination).toBe(`${HOST}:${port}`);
    expect(first.message).toContain("cannot connect");
    expect(connection.state).toBe(ConnectionState.Backoff);
    expect(connection.available).toBe(false);
    const second = await rejection(connection.send(encodeVersion(), Expect.Line));
    expect(second).toBeInstanceOf(ConnectionError);
    expect(second.message).toContain("unreachable");
    expect(await rejection(connection.connect())).toBeInstanceOf(ConnectionError);
  });

  test("a request without a reply times out, and the socket is reset", async () => {
    const server = rawServer();
    const connection = connect({ port: server.port, timeoutMs: 100 });
    const started = performance.now();
    const [first, second] = await Promise.all([
      rejection(connection.send(encodeGet(["a"]), Expect.Values)),
      rejection(connection.send(encodeGet(["b"]), Expect.Values)),
    ]);
    const elapsed = performance.now() - started;
    expect(first).toBeInstanceOf(TimeoutError);
    expect((first as TimeoutError).timeoutMs).toBe(100);
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(DEADLINE_MS);
    // The second was written behind the first: its reply can no longer be told apart.
    expect(second).toBeInstanceOf(ConnectionError);
    expect((second as ConnectionError).cause).toBeInstanceOf(TimeoutError);
    await server.until(
      () => server.connections[0]?.closed === true,
      "the client to drop the timed-out socket",
    );
    expect(server.connections[0]?.lines).toEqual(["get a", "get b"]);
  });

  test("a late reply after a timeout never reaches the next request", async () => {
    const server = rawServer();
    const connection = connect({ port: server.port, timeoutMs: 150 });
    expect(await rejection(connection.send(encodeGet(["a"]), Expect.Values))).toBeInstanceOf(TimeoutError);
    const next = connection.send(encodeGet(["b"]), Expect.Values);
    await server.until(() => server.connections[1]?.lines.length === 1, "the next request on a new socket");
    const [old, fresh] = server.connections as [RawConnection, RawConnection];
    expect(old.closed).toBe(true);
    expect(fresh.lines).toEqual(["get b"]);
    reply(fresh, "VALUE b 0 1\r\nB\r\nEND\r\n");
    const got = await next;
    expect(got.items?.map((item) => text(item.key))).toEqual(["b"]);
  });

  test("in-flight requests are bounded; the queue is bounded; beyond it requests fail at once", async () => {
    const server = rawServer();
    const connection = connect({ port: server.port, maxInFlight: 2, maxQueued: 3, timeoutMs: DEADLINE_MS });
    await connection.connect();
    const keys = ["k0", "k1", "k2", "k3", "k4"];
    const replies = keys.map((key) => connection.send(encodeGet([key]), Expect.Values));
    const refused = await rejection(connection.send(encodeGet(["k5"]), Expect.Values));
    expect(refused).toBeInstanceOf(OverloadedError);
    const socket = () => server.connections[0] as RawConnection;
    await server.until(() => socket().lines.length >= 2, "two requests in flight");
    expect(socket().lines).toEqual(["get k0", "get k1"]);
    expect([connection.inFlightCount, connection.queuedCount]).toEqual([2, 3]);
    // Each reply frees one slot: exactly one more request is written per reply.
    for (let answered = 0; answered < keys.length; answered++) {
      reply(socket(), `VALUE ${keys[answered]} ${answered} 1\r\nx\r\nEND\r\n`);
      const got = await (replies[answered] as Promise<Reply>);
      expect(got.items?.map((item) => `${text(item.key)} ${item.flags}`)).toEqual([
        `${keys[answered]} ${answered}`,
      ]);
      const written = Math.min(keys.length, answered + 3);
      await server.until(() => socket().lines.length >= written, `${written} requests written`);
      expect(socket().lines).toEqual(keys.slice(0, written).map((key) => `get ${key}`));
    }
    expect([connection.inFlightCount, connection.queuedCount]).toEqual([0, 0]);
  });

  test("replies are matched FIFO, whatever the chunks they arrive in", async () => {
    const server = rawServer();
    const connection = connect({ port: server.port, timeoutMs: DEADLINE_MS });
    const count = 50;
    const pending = Array.from({ length: count }, (_, i) =>
      connection.send(encodeStore("set", `k${i}`, "v"), Expect.Line),
    );
    const gets = Array.from({ length: count }, (_, i) =>
      connection.send(encodeGet([`k${i}`]), Expect.Values),
    );
    await server.until(() => server.lineCount >= count * 3, "every request");
    const socket = server.connections[0] as RawConnection;
    let all = "STORED\r\n".repeat(count);
    for (let i = 0; i < count; i++) all += `VALUE k${i} ${i} ${String(i).length}\r\n${i}\r\nEND\r\n`;
    // Written in pieces of 7 bytes, flushed one by one: replies straddle reads.
    for (let at = 0; at < all.length; at += 7) reply(socket, all.slice(at, at + 7));
    expect((await Promise.all(pending)).every((got) => got.type === ReplyType.Stored)).toBe(true);
    const values = await Promise.all(gets);
    values.forEach((got, i) => {
      expect(got.items?.map((item) => [text(item.key), item.flags, text(item.value)])).toEqual([
        [`k${i}`, i, String(i)],
      ]);
    });
  });

  test("a reply that makes no sense is a ProtocolError and the socket is replaced", async () => {
    const server = rawServer((connection, line) => {
      reply(connection, line === "get bogus" ? "STORED\r\n" : "END\r\n");
    });
    const connection = connect({ port: server.port });
    const error = await rejection(connection.send(encodeGet(["bogus"]), Expect.Values));
    expect(error).toBeInstanceOf(ProtocolError);
    const next = await connection.send(encodeGet(["fine"]), Expect.Values);
    expect(next.type).toBe(ReplyType.Values);
    expect(server.connections.length).toBe(2);
    await server.until(() => server.connections[0]?.closed === true, "the first socket to be dropped");
  });

  test("bytes with no request waiting for them drop the socket", async () => {
    const server = rawServer();
    const connection = connect({ port: server.port });
    await connection.connect();
    await server.until(() => server.connections.length === 1, "the connection");
    reply(server.connections[0] as RawConnection, "STORED\r\n");
    await server.until(() => server.connections[0]?.closed === true, "the client to drop the socket");
    expect(connection.state).toBe(ConnectionState.Idle);
  });

  test("a server that closes the connection fails what is in flight with ConnectionError", async () => {
    const server = rawServer((connection) => connection.socket.end());
    const connection = connect({ port: server.port, reconnectDelayMs: 60_000 });
    const error = await rejection(connection.send(encodeVersion(), Expect.Line));
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.message).toContain("connection lost");
    expect(connection.state).toBe(ConnectionState.Backoff);
  });

  test("close() fails pending requests, and later ones", async () => {
    const server = rawServer();
    const connection = connect({ port: server.port, timeoutMs: DEADLINE_MS, maxInFlight: 1 });
    const pending = [1, 2, 3].map((i) => rejection(connection.send(encodeGet([`c${i}`]), Expect.Values)));
    await server.until(() => server.lineCount === 1, "the first request");
    await withDeadline(connection.close(), DEADLINE_MS, "close()");
    for (const error of await Promise.all(pending)) expect(error).toBeInstanceOf(ConnectionError);
    expect(await rejection(connection.send(encodeVersion(), Expect.Line))).toBeInstanceOf(ConnectionError);
    expect(connection.state).toBe(ConnectionState.Closed);
    await server.until(() => server.connections[0]?.closed === true, "the server to see the close");
  });

  test("after the backoff delay the next request connects again", async () => {
    let serving = false;
    const server = rawServer((connection) => {
      if (serving) reply(connection, "VERSION raw\r\n");
      else connection.socket.end();
    });
    const connection = connect({ port: server.port, reconnectDelayMs: 1, maxReconnectDelayMs: 1 });
    expect(await rejection(connection.send(encodeVersion(), Expect.Line))).toBeInstanceOf(ConnectionError);
    serving = true;
    // With a 1 ms delay the connection is available again as soon as time moves on.
    await server.until(() => server.connections[0]?.closed === true, "the first socket to close");
    // Fails fast until the delay has passed (a clock, not an event: poll it).
    const got = await pollUntil(() => connection.send(encodeVersion(), Expect.Line).catch(() => undefined), {
      deadlineMs: DEADLINE_MS,
      intervalMs: 2,
      what: "a request to succeed after the backoff delay",
    });
    expect(got.text).toBe("raw");
    expect(server.connections.length).toBe(2);
  });
});

describe("TcpPool growth and stalls against a raw server", () => {
  // Which of the server's connections (in accept order) received `line`.
  const receiver = (server: RawServer, line: string) =>
    server.connections.findIndex((connection) => connection.lines.includes(line));
  const get = (key: string) => encodeGet([key]);
  const answered = new Map<RawConnection, number>();
  // Answers every request not answered yet (each a get of a missing key).
  const answerAll = (server: RawServer) => {
    for (const connection of server.connections) {
      const unanswered = connection.lines.length - (answered.get(connection) ?? 0);
      if (unanswered > 0 && !connection.closed) reply(connection, "END\r\n".repeat(unanswered));
      answered.set(connection, connection.lines.length);
    }
  };

  test("a pool opens a connection per busy one up to maxConnections, then shares the least busy", async () => {
    const server = rawServer();
    const pool = new TcpPool({
      host: HOST,
      port: server.port,
      connections: 1,
      maxConnections: 3,
      timeoutMs: DEADLINE_MS,
    });
    try {
      // Sends without a stall threshold share the connections there are.
      const shared = pool.send(get("shared1"), Expect.Values);
      const shared2 = pool.send(get("shared2"), Expect.Values);
      expect(pool.connections.length).toBe(1);
      await server.until(() => server.lineCount === 2, "two requests at the server");
      answerAll(server);
      await Promise.all([shared, shared2]);
      // Sends with one (hedged reads) open a connection while every one is busy.
      const sends = ["a", "b", "c", "d", "e", "f"].map((key) =>
        pool.send(get(key), Expect.Values, -1, 60_000),
      );
      expect(pool.connections.length).toBe(3);
      await server.until(() => server.lineCount === 8, "eight requests at the server");
      expect(server.connections.length).toBe(3);
      // One each first, then round the three again: no connection holds more than two new ones.
      expect(server.connections.map((connection) => connection.lines.length)).toEqual([4, 2, 2]);
      answerAll(server);
      expect((await Promise.all(sends)).every((got) => got.type === ReplyType.Values)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  test("a request avoids a connection whose oldest reply is overdue by stallMs; stalled() says when all are", async () => {
    const server = rawServer();
    const pool = new TcpPool({
      host: HOST,
      port: server.port,
      connections: 1,
      maxConnections: 2,
      timeoutMs: DEADLINE_MS,
    });
    const STALL_MS = 20;
    try {
      const old = pool.send(get("old"), Expect.Values);
      await server.until(() => server.lineCount === 1, "the first request at the server");
      const sentAt = performance.now();
      // Let the first request's age pass STALL_MS (a clock, not an event: poll it).
      await pollUntil(() => (performance.now() - sentAt > STALL_MS ? true : undefined), {
        deadlineMs: DEADLINE_MS,
        intervalMs: 2,
        what: "the first request to be overdue",
      });
      // A hedged read opens connection 1; connection 0 holds the overdue request.
      const fresh = [pool.send(get("fresh"), Expect.Values, -1, 60_000)];
      expect(pool.connections.length).toBe(2);
      // At the bound: a send with a threshold skips the stalled connection 0 (though both hold
      // one), and a plain send then takes the least busy, connection 0.
      const avoided = pool.send(get("avoid"), Expect.Values, -1, STALL_MS);
      const plain = pool.send(get("plain"), Expect.Values);
      await server.until(() => server.lineCount === 4, "four requests at the server");
      expect(receiver(server, "get fresh")).toBe(1);
      expect(receiver(server, "get avoid")).toBe(1);
      expect(receiver(server, "get plain")).toBe(0);
      expect(pool.stalled(STALL_MS)).toBe(false);
      const now = performance.now();
      await pollUntil(() => (performance.now() - now > STALL_MS ? true : undefined), {
        deadlineMs: DEADLINE_MS,
        intervalMs: 2,
        what: "every request to be overdue",
      });
      expect(pool.stalled(STALL_MS)).toBe(true);
      answerAll(server);
      const replies = await Promise.all([old, ...fresh, avoided, plain]);
      expect(replies.every((got) => got.type === ReplyType.Values)).toBe(true);
      expect(pool.stalled(STALL_MS)).toBe(false);
    } finally {
      await pool.close();
    }
  });

  test("connections beyond `connections` close once idle for idleCloseMs", async () => {
    const server = rawServer();
    const pool = new TcpPool({
      host: HOST,
      port: server.port,
      connections: 1,
      maxConnections: 3,
      idleCloseMs: 5,
      timeoutMs: DEADLINE_MS,
    });
    try {
      const sends = ["a", "b", "c"].map((key) => pool.send(get(key), Expect.Values, -1, 60_000));
      await server.until(() => server.lineCount === 3, "three requests at the server");
      answerAll(server);
      await Promise.all(sends);
      const idleSince = performance.now();
      await pollUntil(() => (performance.now() - idleSince > 10 ? true : undefined), {
        deadlineMs: DEADLINE_MS,
        intervalMs: 2,
        what: "the idle time to pass",
      });
      // Each pick closes at most one idle extra connection: the pool shrinks back to one.
      for (const key of ["d", "e"]) {
        const got = pool.send(get(key), Expect.Values);
        await server.until(() => server.lineCount === 3 + ["d", "e"].indexOf(key) + 1, "the request");
        answerAll(server);
        await got;
      }
      expect(pool.connections.length).toBe(1);
      await server.until(() => server.connections.filter((c) => c.closed).length === 2, "two sockets closed");
    } finally {
      await pool.close();
    }
  });
});

describe("pipelining against real servers", () => {
  let memcached: ServerProcess;
  let leaf: LeafProcess;
  beforeAll(async () => {
    [memcached, leaf] = await Promise.all([
      startMemcached(),
      startLeaf(["--port", "0", "--memory", "64mb", "--max-item-size", "1m"]),
    ]);
  }, SERVER_TEST_MS);

  for (const kind of ["memcached", "leaf"] as const) {
    test(
      `${kind}: thousands of concurrent requests on one connection, each with its own reply`,
      async () => {
        const port = kind === "memcached" ? memcached.port : leaf.port;
        // A small in-flight bound, so most requests wait in the queue and move up as replies come.
        const connection = connect({ port, maxInFlight: 64, maxQueued: 20_000, timeoutMs: DEADLINE_MS });
        const count = 5000;
        const value = (i: number) => `value-${i}-${"x".repeat(i % 300)}`;
        const sets = Array.from({ length: count }, (_, i) =>
          connection.send(encodeStore("set", `pipe-${i}`, value(i), { flags: i }), Expect.Line),
        );
        const deletes = Array.from({ length: count / 5 }, (_, i) =>
          connection.send(encodeDelete(`pipe-${i * 5}`), Expect.Line),
        );
        const gets = Array.from({ length: count }, (_, i) =>
          connection.send(encodeGet([`pipe-${i}`, `pipe-missing-${i}`]), Expect.Values),
        );
        expect((await Promise.all(sets)).every((reply) => reply.type === ReplyType.Stored)).toBe(true);
        expect((await Promise.all(deletes)).every((reply) => reply.type === ReplyType.Deleted)).toBe(true);
        const replies = await Promise.all(gets);
        replies.forEach((reply, i) => {
          const expected = i % 5 === 0 ? [] : [[`pipe-${i}`, i, value(i)]];
          expect(reply.items?.map((item) => [text(item.key), item.flags, text(item.value)])).toEqual(
            expected,
          );
        });
      },
      SERVER_TEST_MS,
    );
  }

  test(
    "a pool spreads requests over its connections",
    async () => {
      const pool = new TcpPool({ host: HOST, port: memcached.port, connections: 3, timeoutMs: DEADLINE_MS });
      try {
        await pool.connect();
        const sends = Array.from({ length: 300 }, (_, i) =>
          pool.send(encodeStore("set", `pool-${i}`, String(i)), Expect.Line),
        );
        // Nothing has been answered yet (replies need the event loop): the load is split evenly.
        expect(pool.connections.map((connection) => connection.inFlightCount)).toEqual([100, 100, 100]);
        expect((await Promise.all(sends)).every((reply) => reply.type === ReplyType.Stored)).toBe(true);
        const gets = await Promise.all(
          Array.from({ length: 300 }, (_, i) => pool.send(encodeGet([`pool-${i}`]), Expect.Values)),
        );
        expect(gets.map((reply) => text(reply.items?.[0]?.value ?? new Uint8Array()))).toEqual(
          gets.map((_, i) => String(i)),
        );
        // A closed connection is skipped.
        await (pool.connections[0] as TcpConnection).close();
        const after = await Promise.all([1, 2, 3, 4].map(() => pool.send(encodeVersion(), Expect.Line)));
        expect(after.every((reply) => reply.type === ReplyType.Version)).toBe(true);
      } finally {
        await pool.close();
      }
    },
    SERVER_TEST_MS,
  );
});

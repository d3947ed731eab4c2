// Half-closed connections: a client that writes its requests and then shuts down its sending side
// (as `printf ... | nc -N`, health checks and batch scripts do) gets every reply before the
// server closes, from a leaf (replies delayed on purpose included) and through a router, for
// single and pipelined requests, over sharded and replicated pools.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromLatin1, latin1 } from "./helpers/mc-client.ts";
import {
  HOST,
  type LeafProcess,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

const DEADLINE_MS = 10_000;

// Connects, writes `request`, shuts down the write side at once, and resolves with every byte
// received until the server closes the connection.
async function sendAndHalfClose(port: number, request: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let closed!: () => void;
  const done = new Promise<void>((resolve) => {
    closed = resolve;
  });
  const socket = await Bun.connect({
    hostname: HOST,
    port,
    allowHalfOpen: true,
    socket: {
      data(_socket, data) {
        chunks.push(new Uint8Array(data));
      },
      close() {
        closed();
      },
      error() {
        closed();
      },
    },
  });
  socket.write(latin1(request));
  socket.shutdown(); // FIN: the write side only
  await withDeadline(done, DEADLINE_MS, "the server closing after the replies");
  return fromLatin1(Buffer.concat(chunks));
}

const address = (leaf: ServerProcess) => `${HOST}:${leaf.port}`;

afterAll(stopAll);

describe("half-close", () => {
  let plain: LeafProcess;
  let slow: LeafProcess;
  let shards: LeafProcess[];
  let replicas: LeafProcess[];
  let router: ServerProcess;

  beforeAll(async () => {
    [plain, slow, ...shards] = await Promise.all([
      startLeaf(["--port", "0"]),
      // Every reply held 50 ms: the FIN arrives long before the replies are due.
      startLeaf(["--port", "0", "--inject-latency", "100%:50ms"]),
      ...Array.from({ length: 3 }, () => startLeaf(["--port", "0"])),
    ]);
    replicas = await Promise.all(Array.from({ length: 3 }, () => startLeaf(["--port", "0"])));
    const dir = mkdtempSync(join(tmpdir(), "gravity-half-close-"));
    const file = join(dir, "router.json");
    writeFileSync(
      file,
      JSON.stringify({
        pools: {
          sharded: { servers: shards.map(address) },
          replicated: { servers: replicas.map(address) },
        },
        route: {
          type: "prefix",
          routes: {
            "rep:": { type: "replicated", pool: "replicated", reads: "hedged" },
            "*": { type: "sharded", pool: "sharded" },
          },
        },
      }),
    );
    router = await startRouter(["--port", "0", "--config", file]);
  }, SERVER_TEST_MS);

  const single = (key: string) => `set ${key} 0 0 1\r\nx\r\nget ${key}\r\n`;
  const singleReply = (key: string) => `STORED\r\nVALUE ${key} 0 1\r\nx\r\nEND\r\n`;
  // Twenty sets, then one multi-get of all of them, all in one write.
  const keys = (prefix: string) => Array.from({ length: 20 }, (_, i) => `${prefix}k${i}`);
  const pipelined = (prefix: string) =>
    `${keys(prefix)
      .map((key, i) => `set ${key} 0 0 ${String(i).length}\r\n${i}\r\n`)
      .join("")}get ${keys(prefix).join(" ")}\r\n`;
  const pipelinedReply = (prefix: string) =>
    "STORED\r\n".repeat(20) +
    keys(prefix)
      .map((key, i) => `VALUE ${key} 0 ${String(i).length}\r\n${i}\r\n`)
      .join("") +
    "END\r\n";

  test("a leaf answers a single request before closing", async () => {
    expect(await sendAndHalfClose(plain.port, single("a"))).toBe(singleReply("a"));
  });

  test("a leaf whose replies are delayed still sends them after the FIN", async () => {
    expect(await sendAndHalfClose(slow.port, single("d"))).toBe(singleReply("d"));
    expect(await sendAndHalfClose(slow.port, pipelined("d"))).toBe(pipelinedReply("d"));
  });

  test("through the router: single requests, sharded and replicated, every time", async () => {
    for (let i = 0; i < 20; i++) {
      expect(await sendAndHalfClose(router.port, single(`s${i}`))).toBe(singleReply(`s${i}`));
      expect(await sendAndHalfClose(router.port, single(`rep:s${i}`))).toBe(singleReply(`rep:s${i}`));
    }
  });

  test("through the router: pipelined requests and a multi-get across shards", async () => {
    expect(await sendAndHalfClose(router.port, pipelined("p:"))).toBe(pipelinedReply("p:"));
    expect(await sendAndHalfClose(router.port, pipelined("rep:p:"))).toBe(pipelinedReply("rep:p:"));
  });

  test("through the router: the error of a bad command and then quit, as memcached", async () => {
    expect(await sendAndHalfClose(router.port, "bogus\r\nversion\r\nquit\r\nget never\r\n")).toMatch(
      /^ERROR\r\nVERSION \S+\r\n$/,
    );
  });
});

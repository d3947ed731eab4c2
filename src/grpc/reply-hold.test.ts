// The gRPC server's bound on unread replies (reply-hold.ts), in-process: clients whose HTTP/2
// window never opens hold at most their connection's share of reply bytes, further calls wait
// (no value is read for them) or, past the process-wide limit, are refused; once the clients go
// away everything is released and a reading client is served.
import { afterAll, expect, test } from "bun:test";
import { stallGrpc } from "../../test/helpers/stalled-readers.ts";
import { pollUntil } from "../../test/helpers/wait.ts";
import { type CacheBackend, nativeBackend } from "../cache/backend.ts";
import { GrpcCacheClient } from "./client.ts";
import { startGrpcServer } from "./server.ts";

const VALUE_BYTES = 100 * 1024;
const LIMITS = {
  maxConnectionBytes: 4 * VALUE_BYTES,
  maxTotalBytes: 10 * VALUE_BYTES,
  initialGuessBytes: VALUE_BYTES,
};
const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

test("stalled gRPC readers hold at most their connection's and the process's limits; reads wait, then resume", async () => {
  let reads = 0;
  const value = new Uint8Array(VALUE_BYTES).fill(0x62);
  const backend: CacheBackend = {
    ...nativeBackend(),
    get: async () => {
      reads++;
      return value;
    },
  };
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, backend, replyHold: LIMITS });
  closers.push(() => server.close(0));

  // One connection, 50 calls: replies up to its limit are held, the rest wait unread.
  const one = await stallGrpc(server.port, 1, 50, "g", "k");
  // (the connection's guess is its first reply: then as many as fit beside what it holds)
  await pollUntil(() => (server.heldReplyBytes >= LIMITS.maxConnectionBytes ? true : undefined), {
    deadlineMs: 5000,
    what: "the first connection to hold its limit",
  });
  expect(server.heldReplyBytes).toBe(LIMITS.maxConnectionBytes);
  expect(reads).toBe(4);
  expect(server.rejectedCalls).toBe(0);

  // Three more connections: each holds its share until all together pass the process's limit,
  // then new calls are refused (RESOURCE_EXHAUSTED) rather than held.
  const more = await stallGrpc(server.port, 3, 50, "g", "k");
  await pollUntil(() => (server.rejectedCalls > 0 ? true : undefined), {
    deadlineMs: 5000,
    what: "calls past the process-wide limit to be refused",
  });
  expect(server.heldReplyBytes).toBeLessThanOrEqual(LIMITS.maxTotalBytes + VALUE_BYTES);

  // Gone: everything is released, and a client that reads is served.
  one.close();
  more.close();
  await pollUntil(() => (server.heldReplyBytes === 0 ? true : undefined), {
    deadlineMs: 5000,
    what: "the held replies to be released",
  });
  const client = new GrpcCacheClient(`127.0.0.1:${server.port}`);
  closers.push(() => client.close());
  const got = await client.get("g", "k");
  expect([got.found, got.value.length]).toEqual([true, VALUE_BYTES]);
});

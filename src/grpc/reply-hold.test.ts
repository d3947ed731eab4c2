// The gRPC server's bound on unread replies (reply-hold.ts), in-process: clients whose HTTP/2
// window never opens hold at most their connection's share of reply bytes, further calls wait
// (no value is read for them) or, past the process-wide limit, are refused; once the clients go
// away everything is released and a reading client is served.
import { afterAll, expect, test } from "bun:test";
import { stallGrpc } from "../../test/helpers/stalled-readers.ts";
import { pollUntil } from "../../test/helpers/wait.ts";
import { type CacheBackend, nativeBackend } from "../cache/backend.ts";
import { parseExposition, sampleValue } from "../metrics/exposition.ts";
import { createRegistry, grpcMetrics } from "../metrics/registry.ts";
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
  // /metrics shows what is held and why calls are refused.
  const registry = createRegistry({ role: "leaf", version: "test", defaultMetrics: false });
  grpcMetrics(registry, server);
  const families = parseExposition(await registry.metrics());
  expect(sampleValue(families, "gravity_grpc_held_reply_bytes")).toBe(server.heldReplyBytes);
  expect(sampleValue(families, "gravity_grpc_refused_calls_total", { reason: "unread_replies" })).toBe(
    server.refusedCalls.unread_replies,
  );
  expect(server.refusedCalls).toEqual({ calls_in_flight: 0, unread_replies: server.rejectedCalls });

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

const MIB = 1024 * 1024;
// One HTTP/2 connection per client (grpc-js shares connections to one address otherwise).
const OWN_CONNECTION = { channel: { "grpc.use_local_subchannel_pool": 1 } };

/** A backend whose get answers "big" with `bigBytes` bytes at once and holds other keys until released. */
function gatedBackend(bigBytes: number) {
  const big = new Uint8Array(bigBytes).fill(0x62);
  let release: () => void = () => {};
  let gate: Promise<void> | null = null;
  const state = {
    running: 0,
    /** From now on, gets of other keys wait until release(). */
    close() {
      gate = new Promise((resolve) => {
        release = resolve;
      });
    },
    release: () => release(),
    backend: {
      ...nativeBackend(),
      get: async (item: Uint8Array) => {
        if (new TextDecoder().decode(item).endsWith("big")) return big;
        state.running++;
        await gate;
        state.running--;
        return new Uint8Array(10);
      },
    } as CacheBackend,
  };
  return state;
}

async function started(backend: CacheBackend, options: { maxConcurrentCalls?: number } = {}) {
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, backend, ...options });
  closers.push(() => server.close(0));
  const client = (): GrpcCacheClient => {
    const made = new GrpcCacheClient(`127.0.0.1:${server.port}`, OWN_CONNECTION);
    closers.push(() => made.close());
    return made;
  };
  return { server, client };
}

test("after one 1 MiB reply, 20 small calls on 20 connections run at once: nothing held, nothing refused", async () => {
  const gated = gatedBackend(MIB);
  const { server, client } = await started(gated.backend);
  expect((await client().get("g", "big")).value.length).toBe(MIB);
  gated.close();
  const clients = Array.from({ length: 20 }, client);
  const calls = clients.map((each) => each.get("g", "small"));
  await pollUntil(() => (gated.running === 20 ? true : undefined), {
    deadlineMs: 5000,
    what: "20 calls running at once",
  });
  expect(server.refusedCalls.unread_replies).toBe(0);
  gated.release();
  expect((await Promise.all(calls)).every((reply) => reply.found)).toBe(true);
});

test("a connection that got a 3 MiB reply runs calls side by side again after small replies", async () => {
  const gated = gatedBackend(3 * MIB);
  const { client } = await started(gated.backend);
  const one = client();
  expect((await one.get("g", "big")).value.length).toBe(3 * MIB);
  // Each small reply lowers the connection's guess by an eighth: 40 take it under 25 KiB.
  for (let i = 0; i < 40; i++) await one.get("g", "small");
  gated.close();
  const calls = Array.from({ length: 8 }, () => one.get("g", "small"));
  await pollUntil(() => (gated.running === 8 ? true : undefined), {
    deadlineMs: 5000,
    what: "8 calls of one connection running at once",
  });
  gated.release();
  expect((await Promise.all(calls)).length).toBe(8);
});

test("before any reply, a slow call does not hold up calls of other connections", async () => {
  const gated = gatedBackend(MIB);
  const { client } = await started(gated.backend);
  gated.close();
  const slow = client().get("g", "slow");
  await pollUntil(() => (gated.running === 1 ? true : undefined), {
    deadlineMs: 5000,
    what: "the slow call to run",
  });
  // Error-only traffic: a group this server refuses (INVALID_ARGUMENT), then a second slow call.
  await expect(client().get("", "k")).rejects.toMatchObject({ code: 3 });
  const second = client().get("g", "slow");
  await pollUntil(() => (gated.running === 2 ? true : undefined), {
    deadlineMs: 5000,
    what: "a second slow call to run beside the first",
  });
  gated.release();
  expect((await Promise.all([slow, second])).map((reply) => reply.found)).toEqual([true, true]);
});

test("a call refused for calls in flight is counted apart from one refused for unread replies", async () => {
  const gated = gatedBackend(MIB);
  const { server, client } = await started(gated.backend, { maxConcurrentCalls: 1 });
  gated.close();
  const slow = client().get("g", "slow");
  await pollUntil(() => (gated.running === 1 ? true : undefined), {
    deadlineMs: 5000,
    what: "the slow call to run",
  });
  await expect(client().get("g", "other")).rejects.toMatchObject({ code: 8 });
  const registry = createRegistry({ role: "router", version: "test", defaultMetrics: false });
  grpcMetrics(registry, server);
  const families = parseExposition(await registry.metrics());
  expect(sampleValue(families, "gravity_grpc_inflight_calls")).toBe(1);
  expect(sampleValue(families, "gravity_grpc_refused_calls_total", { reason: "calls_in_flight" })).toBe(1);
  expect(sampleValue(families, "gravity_grpc_refused_calls_total", { reason: "unread_replies" })).toBe(0);
  gated.release();
  expect((await slow).found).toBe(true);
});

// The replicated route's read policies against real leaves, in-process, with the preferred replica
// pinned (a router picks it at random): hedging past a slow replica within the budget, no hedge
// when the preferred replica is fast or the budget is spent, all-fastest, and write policies.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ReplyType } from "../src/protocol/reply.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import type { HedgeCounters } from "../src/router/handles/hedged.ts";
import { type ReplicatedOptions, ReplicatedRoute } from "../src/router/handles/replicated.ts";
import { Pool } from "../src/router/pool.ts";
import { getRequest, setRequest } from "./helpers/requests.ts";
import { HOST, type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";

const SLOW_MS = 600;
const _utf8 = new TextEncoder();

let slow: LeafProcess;
let fast: LeafProcess;
let pool: Pool;

beforeAll(async () => {
  [slow, fast] = await Promise.all([
    startLeaf(["--port", "0", "--inject-latency", `100%:${SLOW_MS}ms`]),
    startLeaf(["--port", "0"]),
  ]);
  pool = new Pool("replicas", {
    ...POOL_DEFAULTS,
    servers: [
      { host: HOST, port: slow.port, weight: 1 },
      { host: HOST, port: fast.port, weight: 1 },
    ],
    timeoutMs: 5000,
  });
  const set = setRequest("k", "v");
  const route = new ReplicatedRoute(pool, { writes: "all-sync", reads: "one", onDown: "failover" }, 0);
  expect((await route.route(set)).type).toBe(ReplyType.Stored);
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const destination of pool.destinations) await destination.close();
  await stopAll();
});

function hedgedRoute(preferred: number, budget: number, counters: HedgeCounters): ReplicatedRoute {
  const options: ReplicatedOptions = {
    writes: "all-sync",
    reads: "hedged",
    hedge: { delayMs: 30, budget, percentile: 95, minDelayMs: 1, maxDelayMs: 1000 },
    onDown: "failover",
    counters,
  };
  return new ReplicatedRoute(pool, options, preferred);
}

async function timedGet(route: ReplicatedRoute): Promise<{ ms: number; hit: boolean }> {
  const start = performance.now();
  const reply = await route.route(getRequest("k"));
  return { ms: performance.now() - start, hit: (reply.items?.length ?? 0) === 1 };
}

describe("hedged reads", () => {
  test(
    "a slow preferred replica is hedged after the delay and the hedge's reply wins",
    async () => {
      const counters = { sent: 0, won: 0 };
      const route = hedgedRoute(0, 1, counters);
      for (let i = 0; i < 4; i++) {
        const { ms, hit } = await timedGet(route);
        expect(hit).toBe(true);
        expect(ms).toBeLessThan(SLOW_MS); // answered by the hedge, not the slow replica
      }
      expect(counters).toEqual({ sent: 4, won: 4 });
    },
    SERVER_TEST_MS,
  );

  test(
    "a fast preferred replica answers before the delay: no hedge is sent",
    async () => {
      const counters = { sent: 0, won: 0 };
      const route = new ReplicatedRoute(
        pool,
        {
          writes: "all-sync",
          reads: "hedged",
          hedge: { delayMs: 2000, budget: 1, percentile: 95, minDelayMs: 1, maxDelayMs: 2000 },
          onDown: "failover",
          counters,
        },
        1,
      );
      for (let i = 0; i < 4; i++) expect((await timedGet(route)).hit).toBe(true);
      expect(counters).toEqual({ sent: 0, won: 0 });
    },
    SERVER_TEST_MS,
  );

  test(
    "with no budget left the read waits for the slow replica",
    async () => {
      const counters = { sent: 0, won: 0 };
      const route = hedgedRoute(0, 0, counters);
      const { ms, hit } = await timedGet(route);
      expect(hit).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(SLOW_MS - 20);
      expect(counters).toEqual({ sent: 0, won: 0 });
    },
    SERVER_TEST_MS,
  );

  test(
    "a replica whose only connection is stalled is read last: no read waits behind it, no hedge is spent",
    async () => {
      // One connection per leaf, so the slow replica cannot open another past its stall.
      const single = new Pool("single", {
        ...POOL_DEFAULTS,
        servers: pool.spec.servers,
        connections: 1,
        maxConnections: 1,
        timeoutMs: 5000,
      });
      try {
        const counters = { sent: 0, won: 0 };
        const route = new ReplicatedRoute(
          single,
          {
            writes: "all-sync",
            reads: "hedged",
            hedge: { delayMs: 30, budget: 1, percentile: 95, minDelayMs: 1, maxDelayMs: 1000 },
            onDown: "failover",
            counters,
          },
          0,
        );
        // The first read stalls the slow replica's connection for SLOW_MS and is hedged.
        const first = route.route(getRequest("k"));
        const slowReplica = single.destinations[0];
        // Wait for the stall to pass the hedge delay (a clock, not an event: poll it).
        const stalledSince = performance.now();
        while (slowReplica?.stalled?.(30) !== true) {
          expect(performance.now() - stalledSince).toBeLessThan(SLOW_MS);
          await Bun.sleep(5);
        }
        // Reads now go to the fast replica first, without a hedge.
        const sentBefore = counters.sent;
        for (let i = 0; i < 4; i++) {
          const { ms, hit } = await timedGet(route);
          expect(hit).toBe(true);
          expect(ms).toBeLessThan(SLOW_MS / 2);
        }
        expect(counters.sent).toBe(sentBefore);
        expect((await first).items?.length).toBe(1);
        expect(counters.won).toBe(1);
      } finally {
        for (const destination of single.destinations) await destination.close();
      }
    },
    SERVER_TEST_MS,
  );

  test(
    "all-fastest sends to every replica and the fast one answers",
    async () => {
      const route = new ReplicatedRoute(
        pool,
        { writes: "all-sync", reads: "all-fastest", onDown: "failover" },
        0,
      );
      const { ms, hit } = await timedGet(route);
      expect(hit).toBe(true);
      expect(ms).toBeLessThan(SLOW_MS);
    },
    SERVER_TEST_MS,
  );
});

describe("write policies", () => {
  test(
    "all-initial answers with the first replica's reply; all-async answers at once; both reach every replica",
    async () => {
      const initial = new ReplicatedRoute(
        pool,
        { writes: "all-initial", reads: "one", onDown: "failover" },
        0,
      );
      const start = performance.now();
      expect((await initial.route(setRequest("w1", "a"))).type).toBe(ReplyType.Stored);
      expect(performance.now() - start).toBeGreaterThanOrEqual(SLOW_MS - 20); // the first is the slow one
      const async = new ReplicatedRoute(pool, { writes: "all-async", reads: "one", onDown: "failover" }, 0);
      const asyncStart = performance.now();
      expect((await async.route(setRequest("w2", "b"))).type).toBe(ReplyType.Stored);
      expect(performance.now() - asyncStart).toBeLessThan(SLOW_MS);
      // Read each replica directly: both writes landed on both.
      for (const index of [0, 1]) {
        const reader = new ReplicatedRoute(
          pool,
          { writes: "all-sync", reads: "one", onDown: "failover" },
          index,
        );
        for (const key of ["w1", "w2"]) {
          const reply = await reader.route(getRequest(key));
          expect(reply.items?.length).toBe(1);
        }
      }
    },
    SERVER_TEST_MS,
  );

  test(
    "all-majority answers once most replicas agree",
    async () => {
      const majority = new ReplicatedRoute(
        pool,
        { writes: "all-majority", reads: "one", onDown: "failover" },
        0,
      );
      // Two replicas: a majority is both, so the answer waits for the slow one.
      const start = performance.now();
      expect((await majority.route(setRequest("w3", "c"))).type).toBe(ReplyType.Stored);
      expect(performance.now() - start).toBeGreaterThanOrEqual(SLOW_MS - 20);
    },
    SERVER_TEST_MS,
  );
});

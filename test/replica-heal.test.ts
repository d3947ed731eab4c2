// Replicated pools that heal, on real processes (issue 14's fault tests):
//
// - write acknowledgement per policy with a replica down (in-process route over three leaves):
//   all-sync fails unless writeQuorum replicas stored the write, all-majority needs a majority of
//   the pool, all-async and all-initial answer while a replica is live;
// - kill -9 of the replica a router reads from, under load, and its restart on the same port:
//   no read fails or misses during the outage, and afterwards every acknowledged key reads back
//   through the router (read repair refills the restarted leaf);
// - a rolling restart of every replica in turn (SIGTERM, restart, as a Kubernetes rollout does):
//   keys read after each restart survive; keys never read are on no replica at the end.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "../src/client/index.ts";
import type { Reply } from "../src/protocol/reply.ts";
import { ReplyType } from "../src/protocol/reply.ts";
import { encodeReply } from "../src/protocol/reply-encoder.ts";
import { POOL_DEFAULTS, REPAIR_DEFAULTS, type WritePolicy } from "../src/router/config.ts";
import { addCopy } from "../src/router/handles/item-copy.ts";
import type { ReadRepairCounters } from "../src/router/handles/read-repair.ts";
import { ReplicatedRoute } from "../src/router/handles/replicated.ts";
import { Pool } from "../src/router/pool.ts";
import type { Sender } from "../src/transport/transport.ts";
import { fromLatin1, McClient } from "./helpers/mc-client.ts";
import { getRequest, setRequest } from "./helpers/requests.ts";
import { metricValue, routeLines } from "./helpers/router-stats.ts";
import {
  HOST,
  type LeafProcess,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const utf8 = new TextEncoder();
const HTTP_LINE = /http on (\S+):(\d+) /;
const FAULT_TEST_MS = 50_000;
const dirs: string[] = [];

afterAll(async () => {
  await stopAll();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** What a leaf answers `mg <key> v` directly: its first line ("VA 2", "EN"). */
async function direct(port: number, key: string): Promise<string> {
  const client = await McClient.connect(port);
  try {
    return await client.command(`mg ${key} v`);
  } finally {
    client.close();
  }
}

describe("write acknowledgement with replicas down", () => {
  let leaves: LeafProcess[];
  let pool: Pool;
  const background = { ok: 0, failed: 0 };

  beforeAll(async () => {
    leaves = await Promise.all([0, 1, 2].map(() => startLeaf(["--port", "0"])));
    pool = new Pool("replicas", {
      ...POOL_DEFAULTS,
      servers: leaves.map((leaf) => ({ host: HOST, port: leaf.port, weight: 1 })),
      timeoutMs: 5000,
      // One failure marks a replica down, and no probe revives it during the test.
      tko: { failures: 1, probeIntervalMs: 60_000, maxProbeIntervalMs: 60_000 },
    });
  }, SERVER_TEST_MS);

  afterAll(async () => {
    for (const destination of pool.destinations) await destination.close();
  });

  function route(writes: WritePolicy, writeQuorum?: number): ReplicatedRoute {
    return new ReplicatedRoute(
      pool,
      {
        writes,
        writeQuorum,
        reads: "one",
        onDown: "failover",
        repair: REPAIR_DEFAULTS,
        onBackgroundResult: (result) => {
          if (result instanceof Error || result.type === ReplyType.ServerError) background.failed++;
          else background.ok++;
        },
      },
      0,
    );
  }

  /** The reply type, or the error's name when the write was refused. */
  async function outcome(reply: Promise<Reply>): Promise<string> {
    try {
      return (await reply).type === ReplyType.Stored ? "STORED" : "other";
    } catch (error) {
      return (error as Error).name;
    }
  }

  test(
    "all-sync needs every replica (or writeQuorum), all-majority a majority of the pool, async and initial one",
    async () => {
      const all = ["all-sync", "all-majority", "all-async", "all-initial"] as const;
      for (const writes of all)
        expect(await outcome(route(writes).route(setRequest(`up:${writes}`, "v")))).toBe("STORED");

      // all-async's three writes and all-initial's other two finish before anything dies.
      await pollUntil(() => (background.ok >= 5 ? true : undefined), {
        deadlineMs: 5000,
        what: "background writes",
      });
      // Replica 2 dies. The first write reaches it before it is marked down: the lost connection
      // fails all-sync, though the live replicas took the write.
      expect(await leaves[2]?.stop("SIGKILL")).toBeNull();
      expect(await outcome(route("all-sync").route(setRequest("k1", "v1")))).toBe("ConnectionError");
      expect(await direct(leaves[0]?.port as number, "k1")).toBe("VA 2");
      expect(await direct(leaves[1]?.port as number, "k1")).toBe("VA 2");
      expect(pool.destinations[2]?.down).toBe(true);

      // Marked down: all-sync refuses (naming the replica) unless two copies are enough.
      expect(await outcome(route("all-sync").route(setRequest("k2", "v2")))).toBe("DestinationDownError");
      expect(await direct(leaves[0]?.port as number, "k2")).toBe("VA 2"); // sent anyway: the newest value
      expect(await outcome(route("all-sync", 3).route(setRequest("k3", "v3")))).toBe("DestinationDownError");
      expect(await outcome(route("all-sync", 2).route(setRequest("k4", "v4")))).toBe("STORED");
      expect(await outcome(route("all-majority").route(setRequest("k5", "v5")))).toBe("STORED");
      background.ok = 0;
      expect(await outcome(route("all-async").route(setRequest("k6", "v6")))).toBe("STORED");
      expect(await outcome(route("all-initial").route(setRequest("k7", "v7")))).toBe("STORED");
      await pollUntil(() => (background.ok >= 3 ? true : undefined), {
        deadlineMs: 5000,
        what: "background writes",
      });
      expect(background.failed).toBe(0);
      expect(await direct(leaves[1]?.port as number, "k6")).toBe("VA 2");

      // Replica 1 dies too: one copy is left. A majority of three is two, so all-majority fails;
      // all-sync with writeQuorum 1 and all-async still answer.
      expect(await leaves[1]?.stop("SIGKILL")).toBeNull();
      await outcome(route("all-async").route(setRequest("k8", "v8"))); // marks replica 1 down
      await pollUntil(() => (pool.destinations[1]?.down === true ? true : undefined), {
        deadlineMs: 5000,
        what: "replica 1 marked down",
      });
      expect(await outcome(route("all-majority").route(setRequest("k9", "v9")))).toBe(
        "NoHealthyDestinationError",
      );
      expect(await outcome(route("all-sync", 2).route(setRequest("k10", "v10")))).toBe(
        "DestinationDownError",
      );
      expect(await outcome(route("all-sync", 1).route(setRequest("k11", "v11")))).toBe("STORED");
      expect(await outcome(route("all-async").route(setRequest("k12", "v12")))).toBe("STORED");
      expect(await outcome(route("all-initial").route(setRequest("k13", "v13")))).toBe("STORED");
      expect(await direct(leaves[0]?.port as number, "k13")).toBe("VA 3");
    },
    FAULT_TEST_MS,
  );
});

describe("read repair", () => {
  let leaves: LeafProcess[];
  let pool: Pool;
  const counters: ReadRepairCounters = { lookups: 0, hits: 0, fills: 0, fillFailures: 0, refused: 0 };

  beforeAll(async () => {
    leaves = await Promise.all([0, 1].map(() => startLeaf(["--port", "0"])));
    pool = new Pool("replicas", {
      ...POOL_DEFAULTS,
      servers: leaves.map((leaf) => ({ host: HOST, port: leaf.port, weight: 1 })),
    });
  }, SERVER_TEST_MS);

  afterAll(async () => {
    for (const destination of pool.destinations) await destination.close();
  });

  /** Replica 0 read first; every miss looked up (budget 1), or none (budget 0); no recovery window. */
  function route(budget: number): ReplicatedRoute {
    return new ReplicatedRoute(
      pool,
      {
        writes: "all-sync",
        reads: "one",
        onDown: "failover",
        repair: { budget, recoveryMs: 0 },
        repairCounters: counters,
      },
      0,
    );
  }

  async function onLeaf(index: number, text: string): Promise<string> {
    const client = await McClient.connect(leaves[index]?.port as number);
    try {
      await client.send(text);
      return await client.readLine();
    } finally {
      client.close();
    }
  }

  test(
    "a miss is served from the other replica and added back with its flags and remaining TTL",
    async () => {
      expect(await onLeaf(1, "set r1 42 100 5\r\nhello\r\n")).toBe("STORED");
      const reply = await route(1).route(getRequest("r1"));
      expect(fromLatin1(reply.raw ?? encodeReply(reply))).toBe("VALUE r1 42 5\r\nhello\r\nEND\r\n");
      expect(counters).toMatchObject({ lookups: 1, hits: 1 });
      // The add runs behind a plain get's reply.
      const copy = await pollUntil(
        async () => {
          const line = await onLeaf(0, "mg r1 f t v\r\n");
          return line.startsWith("VA") ? line : undefined;
        },
        { deadlineMs: 5000, what: "the copy on replica 0" },
      );
      expect(copy).toMatch(/^VA 5 f42 t(9\d|100)$/);
      expect(counters.fills).toBe(1);
    },
    SERVER_TEST_MS,
  );

  test(
    "the copy is memcached's add: a value stored meanwhile wins; with no budget a miss stays a miss",
    async () => {
      expect(await onLeaf(1, "set r2 0 0 3\r\nold\r\n")).toBe("STORED");
      expect(await onLeaf(0, "set r2 0 0 3\r\nnew\r\n")).toBe("STORED");
      const item = { value: utf8.encode("old"), flags: 0, exptime: 0 };
      const replica0 = pool.destinations[0] as Sender;
      expect(await addCopy((add) => replica0.send(add), getRequest("r2"), item, 0, undefined)).toBe(true);
      expect(await onLeaf(0, "mg r2 v\r\n")).toBe("VA 3");
      const read = await route(1).route(getRequest("r2")); // a hit on replica 0: nothing to repair
      expect(fromLatin1(read.items?.[0]?.value ?? new Uint8Array())).toBe("new");

      expect(await onLeaf(1, "set r3 0 0 1\r\nx\r\n")).toBe("STORED");
      const refusedBefore = counters.refused;
      const miss = await route(0).route(getRequest("r3"));
      expect(miss.items ?? []).toEqual([]);
      expect(counters.refused).toBe(refusedBefore + 1);
      expect(await onLeaf(0, "mg r3 v\r\n")).toBe("EN");
    },
    SERVER_TEST_MS,
  );
});

// A router process over three leaves, with --http-port for /metrics.
interface RouterUnderTest {
  router: ServerProcess;
  leaves: LeafProcess[];
  client: Client;
  metricsUrl: string;
}

async function startReplicated(route: Record<string, unknown>): Promise<RouterUnderTest> {
  const leaves = await Promise.all([0, 1, 2].map(() => startLeaf(["--port", "0"])));
  const dir = mkdtempSync(join(tmpdir(), "gravity-replica-heal-"));
  dirs.push(dir);
  const config = join(dir, "router.json");
  writeFileSync(
    config,
    JSON.stringify({
      pools: {
        replicas: {
          servers: leaves.map((leaf) => `${HOST}:${leaf.port}`),
          timeoutMs: 3000, // generous: the machine running the tests may be busy
          tko: { failures: 3, probeIntervalMs: 100, maxProbeIntervalMs: 1000 },
        },
      },
      route: { type: "replicated", pool: "replicas", ...route },
    }),
  );
  const router = await startRouter(["--port", "0", "--config", config, "--http-port", "0"]);
  const [, host, port] = (await router.waitForStdout(HTTP_LINE)) as RegExpExecArray;
  const client = createClient({
    servers: [`${HOST}:${router.port}`],
    connectionsPerServer: 4,
    timeoutMs: 5000,
  });
  return { router, leaves, client, metricsUrl: `http://${host}:${port}/metrics` };
}

/** The port of the leaf a get of `key` goes to first, as the router's introspection answers. */
async function firstReadPort(router: ServerProcess, key: string): Promise<number> {
  const lines = await routeLines(router.port, "get", key);
  const match = lines.map((line) => /^\S+:(\d+) read$/.exec(line)).find((found) => found !== null);
  if (match == null) throw new Error(`no read line in ${JSON.stringify(lines)}`);
  return Number(match[1]);
}

/** Stores `keys` through the client (value `v:<key>`); returns those acknowledged. */
async function store(client: Client, keys: readonly string[]): Promise<string[]> {
  const acked: string[] = [];
  for (let i = 0; i < keys.length; i += 200) {
    const batch = keys.slice(i, i + 200);
    const results = await Promise.allSettled(batch.map((key) => client.set(key, `v:${key}`)));
    results.forEach((result, index) => {
      if (result.status === "fulfilled") acked.push(batch[index] as string);
    });
  }
  return acked;
}

/** Reads `keys` through the client; returns the keys that missed or read a wrong value, and the failures. */
async function sweep(
  client: Client,
  keys: readonly string[],
): Promise<{ missing: string[]; failed: number }> {
  const missing: string[] = [];
  let failed = 0;
  for (let i = 0; i < keys.length; i += 200) {
    const batch = keys.slice(i, i + 200);
    const results = await Promise.allSettled(batch.map((key) => client.getString(key)));
    results.forEach((result, index) => {
      const key = batch[index] as string;
      if (result.status === "rejected") failed++;
      else if (result.value !== `v:${key}`) missing.push(key);
    });
  }
  return { missing, failed };
}

/** Readers of acknowledged keys and writers of new ones, until stopped; what they saw. */
class Load {
  reads = 0;
  readMisses: string[] = [];
  readFailures: string[] = [];
  writeFailures = 0;
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private seed = 12345;

  constructor(
    private readonly client: Client,
    readonly acked: string[],
    readers: number,
    writers: number,
    private readonly writePrefix: string,
  ) {
    for (let i = 0; i < readers; i++) this.loops.push(this.read());
    for (let i = 0; i < writers; i++) this.loops.push(this.write(i));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  // A small LCG: the same key sequence every run.
  private next(bound: number): number {
    this.seed = (this.seed * 1103515245 + 12345) % 2147483648;
    return this.seed % bound;
  }

  private async read(): Promise<void> {
    while (!this.stopped) {
      const key = this.acked[this.next(this.acked.length)] as string;
      this.reads++;
      try {
        if ((await this.client.getString(key)) !== `v:${key}`) this.readMisses.push(key);
      } catch (error) {
        this.readFailures.push(`${key}: ${(error as Error).message}`);
      }
    }
  }

  private async write(writer: number): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const key = `${this.writePrefix}:${writer}:${i}`;
      try {
        await this.client.set(key, `v:${key}`);
        this.acked.push(key);
      } catch {
        this.writeFailures++; // not acknowledged: nothing is promised about it
      }
    }
  }
}

/** gravity_router_route_events_total{route="replicated",event=...} from /metrics. */
function repairEvent(metricsUrl: string, event: string): Promise<number> {
  return metricValue(metricsUrl, "gravity_router_route_events_total", { route: "replicated", event });
}

/** Waits until the router reads `port` first: the leaf is back up and recovering (read-repair.ts). */
function readFirstFrom(router: ServerProcess, port: number, what: string): Promise<true> {
  return pollUntil(async () => ((await firstReadPort(router, "probe")) === port ? true : undefined), {
    deadlineMs: 15_000,
    intervalMs: 50,
    what,
  });
}

describe("kill -9 of the replica a router reads from", () => {
  test(
    "under load: no read fails or misses, and every acknowledged key reads back after the restart",
    async () => {
      const { router, leaves, client, metricsUrl } = await startReplicated({
        writes: "all-sync",
        reads: "hedged",
      });
      try {
        const keys = Array.from({ length: 3000 }, (_, i) => `key:${i}`);
        const acked = await store(client, keys);
        expect(acked.length).toBeGreaterThan(keys.length / 2);
        const port = await firstReadPort(router, "probe");
        const victim = leaves.find((leaf) => leaf.port === port) as LeafProcess;

        const load = new Load(client, acked, 8, 2, "during");
        await Bun.sleep(300);
        expect(await victim.stop("SIGKILL")).toBeNull();
        await Bun.sleep(300);
        await startLeaf(["--port", String(port)]);
        await readFirstFrom(router, port, "the restarted leaf to be read first");
        await Bun.sleep(1500); // reads now reach the restarted, empty leaf first
        await load.stop();

        expect(load.readFailures).toEqual([]);
        expect(load.readMisses).toEqual([]);
        expect(load.reads).toBeGreaterThan(200); // the load ran (a busy machine reads fewer)
        const after = await sweep(client, load.acked);
        expect(after.failed).toBe(0);
        expect(after.missing).toEqual([]);
        expect(await repairEvent(metricsUrl, "repair_hits")).toBeGreaterThan(0);
        expect(await repairEvent(metricsUrl, "repair_fills")).toBeGreaterThan(0);
        // The restarted leaf now holds the keys it was asked for.
        expect(await direct(port, acked[0] as string)).toBe(`VA ${`v:${acked[0]}`.length}`);
      } finally {
        await client.close();
      }
    },
    FAULT_TEST_MS,
  );
});

describe("rolling restart of every replica", () => {
  test(
    "keys read after each restart survive; keys never read are lost once every replica restarted",
    async () => {
      const { router, leaves, client } = await startReplicated({
        writes: "all-sync",
        writeQuorum: 2,
        reads: "one",
      });
      try {
        const read = await store(
          client,
          Array.from({ length: 500 }, (_, i) => `read:${i}`),
        );
        const unread = await store(
          client,
          Array.from({ length: 500 }, (_, i) => `unread:${i}`),
        );
        expect(read.length).toBeGreaterThan(250);
        expect(unread.length).toBeGreaterThan(250);
        // Light traffic throughout, as in production: it is how the router sees each leaf go.
        const load = new Load(client, [...read], 2, 1, "rolling");
        let failedSweeps = 0;
        for (const leaf of leaves) {
          const port = leaf.port;
          expect(await leaf.stop("SIGTERM")).toBe(0);
          await Bun.sleep(200);
          await startLeaf(["--port", String(port)]);
          await readFirstFrom(router, port, `leaf ${port} to be read first after its restart`);
          // Every key acknowledged so far is read once before the next replica goes.
          failedSweeps += (await sweep(client, load.acked)).failed;
        }
        await load.stop();
        expect(load.readFailures).toEqual([]);
        expect(failedSweeps).toBe(0);
        const after = await sweep(client, load.acked);
        expect(after.failed).toBe(0);
        expect(after.missing).toEqual([]);
        // Keys never read were copied nowhere: every replica restarted empty, so all are gone.
        const never = await sweep(client, unread);
        expect(never.failed).toBe(0);
        expect(never.missing.length).toBe(unread.length);
      } finally {
        await client.close();
      }
    },
    FAULT_TEST_MS,
  );
});

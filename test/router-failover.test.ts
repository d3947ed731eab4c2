// Failover under load: a `gravity router` keeps answering reads while the leaves behind it are
// killed one by one. Eight client loops read known keys through the router without pause; a leaf
// is SIGKILLed (in-flight requests die with its sockets), later another gets SIGTERM; each kill is
// followed by a wait for reads that completed after it. No read may fail or return a wrong value.
//
//   replicated pool (reads: one, onDown: failover): kill the replica serving reads, then the one
//     that took over; the last replica answers everything
//   sharded pool behind a failover route to a second pool: keys of a killed leaf are answered by
//     the second pool, which holds the same values
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "../src/client/index.ts";
import {
  HOST,
  type LeafProcess,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

// Starting five processes and two kill phases on a loaded machine: generous.
const TEST_MS = 120_000;
/** Reads that must complete after each kill (of the killed leaf's keys, for the sharded pool). */
const READS_AFTER_KILL = 1000;
/**
 * And for at least this long after the leaf exits: past the router's first two probes of a down
 * leaf (tko.probeIntervalMs 500 ms, then 1000 ms), so reads go on while it marks the leaf down
 * and probes it.
 */
const LOAD_AFTER_KILL_MS = 2000;
/** How long those reads may take: a read routed to a dead leaf waits at most the pool's timeout. */
const READS_DEADLINE_MS = 30_000;
const LOOPS = 8;
/**
 * The pools' per-request timeout. No failover here waits for it (a killed leaf's sockets close at
 * once, and connecting to its port is refused), so it only has to outlast a healthy leaf's slowest
 * reply on a loaded machine: at 500 ms, three copies of this file run at once on a busy machine
 * saw the one backup leaf miss it.
 */
const POOL_TIMEOUT_MS = 2000;

const dir = mkdtempSync(join(tmpdir(), "gravity-router-failover-test-"));
let configCount = 0;

function writeConfig(config: unknown): string {
  const file = join(dir, `router-${++configCount}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const address = (server: ServerProcess) => `${HOST}:${server.port}`;
const expectedValue = (key: string) => `value of ${key}`;

function leaves(count: number): Promise<LeafProcess[]> {
  return Promise.all(Array.from({ length: count }, () => startLeaf(["--port", "0"])));
}

// A client's timeout well above the pools' (POOL_TIMEOUT_MS): a read the router fails over after a
// timeout still answers in time.
function clientOf(servers: readonly ServerProcess[]): Client {
  return createClient({ servers: servers.map(address), hash: "md5", timeoutMs: 10_000 });
}

/** `get` requests a leaf has served (its cmd_get), asked directly. */
async function cmdGet(leaf: ServerProcess): Promise<number> {
  const client = clientOf([leaf]);
  try {
    const stats = [...(await client.stats()).values()][0];
    return Number(stats?.get("cmd_get"));
  } finally {
    await client.close();
  }
}

interface ReadWaiter {
  group: string;
  count: number;
  notBefore: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * LOOPS concurrent loops reading `keys` through `client` until stopped, checking every value.
 * Counts completed reads per group (`groupOf(key)`) and in total; keeps every error or wrong value,
 * and the first one fails whatever waits for reads.
 */
class ReadLoad {
  readonly errors: string[] = [];
  private readonly done = new Map<string, number>();
  private readonly waiters: ReadWaiter[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly client: Client,
    private readonly keys: readonly string[],
    private readonly groupOf: (key: string) => string = () => "all",
  ) {
    this.loops = Array.from({ length: LOOPS }, (_, loop) => this.run(loop));
  }

  /** Reads of `group` completed so far, or of every key when no group is given. */
  reads(group?: string): number {
    if (group !== undefined) return this.done.get(group) ?? 0;
    let total = 0;
    for (const count of this.done.values()) total += count;
    return total;
  }

  /**
   * Resolves once `count` more reads of `group` have completed than had when called, and the last
   * of them at least `minMs` after the call. Rejects at a read's error or past READS_DEADLINE_MS.
   */
  async more(group: string, count: number, what: string, minMs = 0): Promise<void> {
    const target = this.reads(group) + count;
    const notBefore = performance.now() + minMs;
    const reached = new Promise<void>((resolve, reject) => {
      if (this.errors.length > 0) reject(new Error("a read failed"));
      else this.waiters.push({ group, count: target, notBefore, resolve, reject });
    });
    try {
      await withDeadline(reached, READS_DEADLINE_MS + minMs, what);
    } catch (error) {
      const errors = `${this.errors.length} errors, first ${this.errors.slice(0, 3).join("; ")}`;
      throw new Error(
        `${what}: ${(error as Error).message} (${this.reads(group)} of ${target} reads; ${errors})`,
      );
    }
  }

  async stop(): Promise<number> {
    this.stopped = true;
    await Promise.all(this.loops);
    return this.reads();
  }

  private async run(loop: number): Promise<void> {
    // Each loop walks the keys from its own offset, so all of them are read all the time.
    let index = Math.floor((loop * this.keys.length) / LOOPS);
    while (!this.stopped) {
      const key = this.keys[index++ % this.keys.length] as string;
      try {
        const value = await this.client.getString(key);
        if (value !== expectedValue(key)) this.fail(`${key}: got ${JSON.stringify(value)}`);
        else this.count(this.groupOf(key));
      } catch (error) {
        this.fail(`${key}: ${error}`);
      }
    }
  }

  private fail(error: string): void {
    this.errors.push(error);
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("a read failed"));
  }

  private count(group: string): void {
    const now = (this.done.get(group) ?? 0) + 1;
    this.done.set(group, now);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i] as ReadWaiter;
      if (waiter.group === group && now >= waiter.count && performance.now() >= waiter.notBefore) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}

/** Sends `signal` to a leaf while the load runs and waits for it to exit; returns its exit code. */
function kill(leaf: LeafProcess, signal: NodeJS.Signals): Promise<number | null> {
  leaf.signal(signal);
  return leaf.waitExit();
}

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("failover under a continuous read load", () => {
  test(
    "replicated pool: reads see no error or wrong value while the serving replicas are killed in turn",
    async () => {
      const replicas = await leaves(3);
      const file = writeConfig({
        pools: { replicas: { servers: replicas.map(address), timeoutMs: POOL_TIMEOUT_MS } },
        route: { type: "replicated", pool: "replicas", writes: "all-sync", reads: "one", onDown: "failover" },
      });
      const router = await startRouter(["--port", "0", "--config", file]);
      const client = clientOf([router]);
      const keys = Array.from({ length: 200 }, (_, i) => `rep:fo:${i}`);
      for (const key of keys) await client.set(key, expectedValue(key)); // all-sync: on every replica

      // Which replica serves reads: this router prefers one (chosen at random) and sends it every
      // read while it is up, then the next in pool order.
      const counts = async (alive: readonly number[]) => {
        const after = new Map<number, number>();
        for (const index of alive) after.set(index, await cmdGet(replicas[index] as LeafProcess));
        return after;
      };
      const serving = async (alive: readonly number[], before: ReadonlyMap<number, number>) => {
        const after = await counts(alive);
        const grew = alive.filter((index) => (after.get(index) as number) > (before.get(index) as number));
        expect(grew).toHaveLength(1);
        return { index: grew[0] as number, counts: after };
      };

      const start = await counts([0, 1, 2]);
      const load = new ReadLoad(client, keys);
      try {
        await load.more("all", READS_AFTER_KILL, "reads before any kill");
        const first = await serving([0, 1, 2], start);

        expect(await kill(replicas[first.index] as LeafProcess, "SIGKILL")).toBeNull(); // killed by the signal
        await load.more(
          "all",
          READS_AFTER_KILL,
          "reads after SIGKILL of the serving replica",
          LOAD_AFTER_KILL_MS,
        );
        expect(load.errors).toEqual([]);
        const alive = [0, 1, 2].filter((index) => index !== first.index);
        const second = await serving(alive, first.counts);

        const killedAt = load.reads();
        expect(await kill(replicas[second.index] as LeafProcess, "SIGTERM")).toBe(0);
        await load.more(
          "all",
          READS_AFTER_KILL,
          "reads after SIGTERM of the next serving replica",
          LOAD_AFTER_KILL_MS,
        );
        const last = alive.find((index) => index !== second.index) as number;
        const total = await load.stop();

        expect(load.errors).toEqual([]);
        expect(total).toBeGreaterThanOrEqual(killedAt + READS_AFTER_KILL);
        // The last replica answered the reads after the second kill.
        expect(await cmdGet(replicas[last] as LeafProcess)).toBeGreaterThan(
          second.counts.get(last) as number,
        );
      } finally {
        await load.stop(); // also when an expectation failed
      }
      await client.close();
      expect(await router.stop("SIGTERM")).toBe(0);
    },
    TEST_MS,
  );

  test(
    "sharded pool failing over to a second pool: reads of a killed leaf's keys go on without an error",
    async () => {
      const shards = await leaves(3);
      const [backup] = await leaves(1);
      const file = writeConfig({
        pools: {
          main: { servers: shards.map(address), timeoutMs: POOL_TIMEOUT_MS },
          backup: { servers: [address(backup as LeafProcess)], timeoutMs: POOL_TIMEOUT_MS },
        },
        route: { type: "failover", children: ["main", "backup"] },
      });
      const router = await startRouter(["--port", "0", "--config", file]);
      const client = clientOf([router]);
      const keys = Array.from({ length: 300 }, (_, i) => `shard:fo:${i}`);
      for (const key of keys) await client.set(key, expectedValue(key)); // the first child: main
      const direct = clientOf([backup as LeafProcess]);
      for (const key of keys) await direct.set(key, expectedValue(key)); // the same values in backup
      expect(await direct.get(keys[0] as string)).not.toBeNull();
      await direct.close();

      // The shard of each key, as the router's ketama over main places it (a client's ring agrees).
      const ring = clientOf(shards);
      const shardOf = (key: string) => String(ring.serverFor(new TextEncoder().encode(key)));
      await ring.close();
      for (const shard of ["0", "1", "2"])
        expect(keys.filter((key) => shardOf(key) === shard).length).toBeGreaterThan(0);

      const backupBefore = await cmdGet(backup as LeafProcess);
      const load = new ReadLoad(client, keys, shardOf);
      try {
        for (const shard of ["0", "1", "2"])
          await load.more(shard, 100, `reads of shard ${shard} before any kill`);
        expect(await cmdGet(backup as LeafProcess)).toBe(backupBefore); // nothing failed over yet

        expect(await kill(shards[0] as LeafProcess, "SIGKILL")).toBeNull();
        await load.more(
          "0",
          READS_AFTER_KILL,
          "reads of the SIGKILLed leaf's keys after the kill",
          LOAD_AFTER_KILL_MS,
        );
        expect(load.errors).toEqual([]);
        const backupAfterFirst = await cmdGet(backup as LeafProcess);
        expect(backupAfterFirst).toBeGreaterThanOrEqual(backupBefore + READS_AFTER_KILL);

        expect(await kill(shards[1] as LeafProcess, "SIGTERM")).toBe(0);
        await load.more(
          "1",
          READS_AFTER_KILL,
          "reads of the SIGTERMed leaf's keys after the kill",
          LOAD_AFTER_KILL_MS,
        );
        await load.more("0", READS_AFTER_KILL, "more reads of the first killed leaf's keys");
        await load.more("2", READS_AFTER_KILL, "reads of the surviving leaf's keys");
        await load.stop();

        expect(load.errors).toEqual([]);
        // Keys of two dead shards were answered by the backup: at least the reads waited for above.
        expect(await cmdGet(backup as LeafProcess)).toBeGreaterThanOrEqual(
          backupAfterFirst + 2 * READS_AFTER_KILL,
        );
      } finally {
        await load.stop(); // also when an expectation failed
      }
      await client.close();
      expect(await router.stop("SIGTERM")).toBe(0);
    },
    TEST_MS,
  );
});

// `gravity router --threads 2` over real leaves: one port served by two threads that route one
// keyspace, a reload that reaches both, /metrics summed over both, a clean stop that answers what
// each thread read, and a bad --threads value refused. Which thread serves a connection is what
// that connection's `stats` reports (`thread`, 0 = the main thread); its counters are that thread's.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { RouterMetrics } from "../src/metrics/names.ts";
import { fromLatin1, McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  runGravity,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const dir = mkdtempSync(join(tmpdir(), "gravity-router-threads-test-"));
let configCount = 0;

function writeConfig(config: unknown, file = join(dir, `router-${++configCount}.json`)): string {
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const address = (server: ServerProcess) => `${HOST}:${server.port}`;

function shardedOver(leaves: readonly ServerProcess[], extra: Record<string, unknown> = {}): unknown {
  return {
    pools: { main: { servers: leaves.map(address), timeoutMs: 5000 } },
    route: { type: "sharded", pool: "main" },
    ...extra,
  };
}

const HTTP_LINE = /http on (\S+):(\d+) /;

afterAll(stopAll);

/** A connection and the thread of the router that serves it. */
interface Served {
  client: McClient;
  thread: number;
}

async function stats(client: McClient): Promise<Map<string, string>> {
  await client.send("stats\r\n");
  const text = fromLatin1(await client.readThroughLine("END"));
  const stats = new Map<string, string>();
  for (const match of text.matchAll(/^STAT (\S+) (.*)\r$/gm))
    stats.set(match[1] as string, match[2] as string);
  return stats;
}

async function connectAll(port: number, count: number): Promise<Served[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = await McClient.connect(port);
      const thread = Number((await stats(client)).get("thread"));
      return { client, thread };
    }),
  );
}

// Sets every key of `values` on `client`, pipelined, and checks each reply.
async function setAll(client: McClient, values: ReadonlyMap<string, string>): Promise<void> {
  const commands = [...values].map(([key, value]) => `set ${key} 0 0 ${value.length}\r\n${value}\r\n`);
  await client.send(commands.join(""));
  expect(await client.readLines(values.size)).toEqual(Array(values.size).fill("STORED"));
}

// Gets every key of `values` on `client`, pipelined, and returns what each read back (null: a miss).
async function getAll(client: McClient, keys: readonly string[]): Promise<(string | null)[]> {
  await client.send(keys.map((key) => `get ${key}\r\n`).join(""));
  const found: (string | null)[] = [];
  for (const _ of keys) {
    const reply = fromLatin1(await client.readThroughLine("END"));
    const match = /^VALUE \S+ \d+ \d+\r\n(.*)\r\nEND\r\n$/s.exec(reply);
    found.push(match === null ? null : (match[1] as string));
  }
  return found;
}

function text(value: Uint8Array | null): string | null {
  return value === null ? null : fromLatin1(value);
}

async function scrape(httpPort: number): Promise<string> {
  const response = await fetch(`http://${HOST}:${httpPort}/metrics`);
  expect(response.status).toBe(200);
  return await response.text();
}

function sample(metrics: string, name: string, labels = ""): number | undefined {
  const line = metrics.split("\n").find((row) => row.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("gravity router --threads 2", () => {
  test(
    "many connections: every key reads back on the other thread, both threads serve, /metrics sums them",
    async () => {
      const leaves = await Promise.all([startLeaf(["--port", "0"]), startLeaf(["--port", "0"])]);
      const router = await startRouter(
        ["--port", "0", "--config", writeConfig(shardedOver(leaves)), "--threads", "2", "--http-port", "0"],
        { binary: "compiled" },
      );
      expect(router.stdout()).toContain("threads 2)");
      const httpPort = Number((await router.waitForStdout(HTTP_LINE))[2]);

      // 32 connections: the kernel spreads them over both threads (all on one: odds 2^-31).
      const served = await connectAll(router.port, 32);
      const byThread = [0, 1].map((thread) => served.filter((one) => one.thread === thread));
      expect(byThread.map((clients) => clients.length > 0)).toEqual([true, true]);
      expect(served.every((one) => one.thread === 0 || one.thread === 1)).toBe(true);

      // Each connection writes its own keys; a connection of the other thread reads them back
      // (one reader per writer, in turn on each reader: its replies come back in order).
      const keysPer = 25;
      const written = served.map(
        (_, i) =>
          new Map(
            Array.from({ length: keysPer }, (_, j) => [
              `threads:${i}:${j}`,
              `value-${i}-${j}-${Math.random()}`,
            ]),
          ),
      );
      await Promise.all(served.map((one, i) => setAll(one.client, written[i] as Map<string, string>)));
      const readerTurn = new Map<McClient, Promise<void>>();
      await Promise.all(
        served.map((one, i) => {
          const others = byThread[1 - one.thread] as Served[];
          const reader = (others[i % others.length] as Served).client;
          const values = written[i] as Map<string, string>;
          const turn = (readerTurn.get(reader) ?? Promise.resolve()).then(async () => {
            expect(await getAll(reader, [...values.keys()])).toEqual([...values.values()]);
          });
          readerTurn.set(reader, turn);
          return turn;
        }),
      );

      // Both threads shard as one ketama client over the leaves does: one keyspace.
      const direct = createClient({ servers: leaves.map(address), hash: "md5" });
      const sampleKeys = [...(written[0] as Map<string, string>)];
      for (const [key, value] of sampleKeys) expect(text(await direct.get(key))).toBe(value);
      await direct.close();

      // Per-thread counters: the threads' sums are every request sent.
      const totals = new Map<number, Map<string, string>>();
      for (const clients of byThread) {
        const one = clients[0] as Served;
        totals.set(one.thread, await stats(one.client));
      }
      const sum = (stat: string) =>
        [...totals.values()].reduce((total, thread) => total + Number(thread.get(stat)), 0);
      const requests = served.length * keysPer;
      expect(sum("cmd_set")).toBe(requests);
      expect(sum("cmd_get")).toBe(requests);
      expect(sum("get_hits")).toBe(requests);
      expect(sum("curr_connections")).toBe(served.length);
      for (const thread of totals.values()) expect(thread.get("threads")).toBe("2");

      // /metrics is served once, by the main thread, with every thread's requests in it.
      const metrics = await scrape(httpPort);
      expect(sample(metrics, RouterMetrics.requests.name, '{op="set",result="ok"}')).toBe(requests);
      expect(sample(metrics, RouterMetrics.requests.name, '{op="get",result="hit"}')).toBe(requests);
      expect(sample(metrics, RouterMetrics.connections.name)).toBe(served.length);
      expect(sample(metrics, "gravity_build_info", '{version="0.1.0",role="router"}')).toBe(1);
      expect(sample(metrics, RouterMetrics.poolDestinations.name, '{pool="main"}')).toBe(2);

      for (const one of served) one.client.close();
      expect(await router.stop("SIGTERM")).toBe(0);
    },
    SERVER_TEST_MS,
  );

  test(
    "a config reload (SIGHUP) reaches every thread before it is reported",
    async () => {
      const [first, second] = await Promise.all([startLeaf(["--port", "0"]), startLeaf(["--port", "0"])]);
      const a = first as ServerProcess;
      const b = second as ServerProcess;
      const file = writeConfig(shardedOver([a]));
      const router = await startRouter(["--port", "0", "--config", file, "--threads", "2"], {
        binary: "compiled",
      });
      writeConfig(shardedOver([b]), file);
      router.signal("SIGHUP");
      // The file's watch or the SIGHUP, whichever reads the new text first, reloads it.
      await router.waitForStdout(/(SIGHUP|config file changed): reloaded/);

      const served = await connectAll(router.port, 16);
      expect(new Set(served.map((one) => one.thread))).toEqual(new Set([0, 1]));
      await Promise.all(served.map((one, i) => setAll(one.client, new Map([[`reload:${i}`, `after-${i}`]]))));
      // Every thread routed with the new tree: every key is on b, none on a.
      const onA = createClient({ servers: [address(a)] });
      const onB = createClient({ servers: [address(b)] });
      for (const i of served.keys()) {
        expect(text(await onB.get(`reload:${i}`))).toBe(`after-${i}`);
        expect(await onA.get(`reload:${i}`)).toBeNull();
      }
      await Promise.all([onA.close(), onB.close()]);
      for (const one of served) one.client.close();
      expect(await router.stop("SIGTERM")).toBe(0);
    },
    SERVER_TEST_MS,
  );

  test(
    "SIGTERM: every thread answers the requests it read, closes its connections, and the router exits 0",
    async () => {
      // Every leaf reply waits 1.5 s, so the gets are still in flight when SIGTERM arrives.
      const leaf = await startLeaf(["--port", "0", "--inject-latency", "100%:1500ms"]);
      const router = await startRouter(
        ["--port", "0", "--config", writeConfig(shardedOver([leaf])), "--threads", "2", "--http-port", "0"],
        { binary: "compiled" },
      );
      const httpPort = Number((await router.waitForStdout(HTTP_LINE))[2]);
      const served = await connectAll(router.port, 8);
      expect(new Set(served.map((one) => one.thread))).toEqual(new Set([0, 1]));
      for (const one of served) await one.client.send("get stop:key\r\n");
      // The router has read every get once all of them are in flight to the leaf (both threads summed).
      await pollUntil(
        async () =>
          sample(
            await scrape(httpPort),
            RouterMetrics.destinationInFlight.name,
            `{pool="main",destination="${address(leaf)}"}`,
          ) === served.length
            ? true
            : undefined,
        { deadlineMs: 5000, what: "every get in flight to the leaf" },
      );
      router.signal("SIGTERM");
      await Promise.all(
        served.map(async (one) => {
          expect(fromLatin1(await one.client.readThroughLine("END"))).toBe("END\r\n");
          await one.client.waitClosed();
        }),
      );
      expect(await router.waitExit()).toBe(0);
      expect(router.stdout()).toContain("SIGTERM, stopping");
    },
    SERVER_TEST_MS,
  );

  test(
    "a leaf marked down by a worker alone (TKO per thread) shows in /metrics and /readyz",
    async () => {
      const leaf = await startLeaf(["--port", "0"]);
      const config = {
        pools: {
          main: {
            servers: [address(leaf)],
            timeoutMs: 1000,
            tko: { failures: 2, probeIntervalMs: 10_000, maxProbeIntervalMs: 10_000 },
          },
        },
        route: { type: "sharded", pool: "main" },
      };
      const router = await startRouter(
        ["--port", "0", "--config", writeConfig(config), "--threads", "2", "--http-port", "0"],
        { binary: "compiled" },
      );
      const httpPort = Number((await router.waitForStdout(HTTP_LINE))[2]);
      const served = await connectAll(router.port, 16);
      const onWorker = served.filter((one) => one.thread === 1);
      expect(onWorker.length).toBeGreaterThan(0);
      expect(await leaf.stop("SIGTERM")).toBe(0);
      // Only the worker's connections send: the main thread never sees the leaf fail.
      const client = (onWorker[0] as Served).client;
      for (let i = 0; i < 3; i++) expect(await client.command(`get down:${i}`)).toStartWith("SERVER_ERROR");
      await router.waitForStdout(/thread 1: \S+ marked down \(TKO\)/);
      expect(router.stdout()).not.toMatch(/router: 127\.0\.0\.1:\d+ marked down/);

      const metrics = await scrape(httpPort);
      const labels = `{pool="main",destination="${address(leaf)}"}`;
      expect(sample(metrics, RouterMetrics.destinationDown.name, labels)).toBe(1);
      expect(sample(metrics, RouterMetrics.poolHealthyDestinations.name, '{pool="main"}')).toBe(0);
      const ready = await fetch(`http://${HOST}:${httpPort}/readyz`);
      expect([ready.status, await ready.text()]).toEqual([503, "no destination up in pool main\n"]);
      for (const one of served) one.client.close();
      expect(await router.stop("SIGTERM")).toBe(0);
    },
    SERVER_TEST_MS,
  );

  test("a bad --threads value names the flag and exits 2", async () => {
    const file = writeConfig({
      pools: { main: { servers: [`${HOST}:1`] } },
      route: { type: "sharded", pool: "main" },
    });
    for (const value of ["0", "65", "two"]) {
      const run = await runGravity(["router", "--config", file, "--port", "0", "--threads", value]);
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toContain("--threads");
    }
  });

  test("a delete spool needs --threads 1: refused with the flag named, exit 2", async () => {
    const file = writeConfig({
      pools: { main: { servers: [`${HOST}:1`] } },
      route: { type: "sharded", pool: "main" },
      spool: { dir: join(dir, "spool") },
    });
    const run = await runGravity(["router", "--config", file, "--port", "0", "--threads", "2"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("--threads");
    expect(run.stderr).toContain("spool");
  });
});

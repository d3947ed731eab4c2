// The load a cache takes off its database: telemetry reads (examples/telemetry: the latest value of
// a metric of a network function) at a fixed rate, Zipf over the keys, sent straight to MariaDB
// and through Gravity (routers with a loader route to the same database, TTL 10 s). Reports the
// database's queries per second (its own Com_select counter), read latency percentiles and the hit
// ratio; then the same through Gravity with the leaf restarted in the middle (a cold leaf), with
// leases and without, to show what a cold leaf costs the database.
//
//   npm run bench -- origin-load    [or: bun bench/origin-load.ts --rate 2000 --seconds 10]
//
//   clock (every 10 ms: rate/100 reads, not waiting for replies: an open loop)
//     direct:  SELECT document FROM telemetry WHERE item_key = ?   ──> MariaDB
//     gravity: get nf:<key> ──> router x2 (loader, singleflight [+ leases]) ──> leaf ── miss ──> MariaDB
//   sampler (every 500 ms): SHOW GLOBAL STATUS LIKE 'Com_select' ──> database queries per second
//
// Writes bench/results/origin-load.json and draws bench/charts/origin-load-qps.svg and
// origin-load-p99.svg (database QPS and read p99 against time, one line per mode).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL } from "bun";
import { fillSql, GROUP, itemKey, lookupQuery, METRICS, telemetryRows } from "../examples/telemetry/data.ts";
import { FlagKind, parseFlags } from "../src/cli/args.ts";
import { type Client, createClient } from "../src/client/index.ts";
import { startMariadb, stopAllMariadb } from "../test/helpers/mariadb.ts";
import {
  HOST,
  type LeafProcess,
  REPO_ROOT,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "../test/helpers/servers.ts";
import { lineChartSpec, writeChart } from "./charts.ts";
import {
  type Latencies,
  median,
  percentile,
  stopOnSignal,
  summariseLatencies,
  writeResults,
} from "./report.ts";
import { Rng, ZipfSampler } from "./workloads.ts";

const flags = parseFlags(process.argv.slice(2), [
  { name: "rate", kind: FlagKind.Integer, default: 2000, min: 100, max: 100_000, help: "reads per second" },
  {
    name: "seconds",
    kind: FlagKind.Integer,
    default: 10,
    min: 2,
    max: 300,
    help: "length of each mode's run",
  },
  {
    name: "functions",
    kind: FlagKind.Integer,
    default: 1000,
    min: 1,
    max: 100_000,
    help: "network functions (6 metrics each)",
  },
  { name: "zipf", kind: FlagKind.String, default: "0.99", help: "Zipf exponent of the key popularity" },
  {
    name: "seed",
    kind: FlagKind.Integer,
    default: 1,
    min: 0,
    max: 2 ** 31,
    help: "seed of the key sequence",
  },
  {
    name: "repeats",
    kind: FlagKind.Integer,
    default: 3,
    min: 1,
    max: 20,
    help: "alternating runs of every mode",
  },
]);
const rate = flags.rate as number;
const seconds = flags.seconds as number;
const functions = flags.functions as number;
const zipfExponent = Number(flags.zipf);
const seed = flags.seed as number;
const repeats = flags.repeats as number;
const TICK_MS = 10;
const SAMPLE_MS = 500;
const MAX_IN_FLIGHT = 4096; // a read past this many unanswered ones is counted as dropped, not sent
const TTL_SECONDS = 10;

const metrics = Object.keys(METRICS);
const keyCount = functions * metrics.length;
// Ranks are shuffled onto keys so the hot keys are spread over functions and metrics.
const keyOfRank = (() => {
  const keys = Array.from({ length: keyCount }, (_, i) =>
    itemKey(Math.floor(i / metrics.length), metrics[i % metrics.length] as string),
  );
  const rng = new Rng(seed ^ 0x5eed);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
  }
  return keys;
})();

/** One second-by-second point of a run. */
interface TimePoint {
  second: number;
  databaseQps: number;
  /** null when no read was issued in the interval. */
  p99Ms: number | null;
}

interface ModeResult {
  mode: string;
  reads: number;
  errors: number;
  dropped: number;
  readsPerSecond: number;
  databaseQueries: number;
  databaseQps: number;
  hitRatio: number;
  latencyMs: Latencies;
  timeline: TimePoint[];
}

stopOnSignal(() => [stopAll(), stopAllMariadb()]);

const mariadb = await startMariadb();
const url = await mariadb.createDatabase("telemetry");
await fillSql(url, telemetryRows(functions, seed, Math.floor(Date.now() / 1000)));
const admin = new SQL({ url, max: 1 });
const selects = async () =>
  Number(
    ((await admin.unsafe("SHOW GLOBAL STATUS LIKE 'Com_select'").values()) as [string, string][])[0]?.[1],
  );

/**
 * Reads `rate` per second for `seconds` with `read(key)`, open loop; samples the database's
 * SELECT count every SAMPLE_MS. `midway` runs once, half way through (the leaf restart).
 */
async function runMode(
  mode: string,
  read: (key: string) => Promise<void>,
  midway?: () => Promise<void>,
): Promise<ModeResult> {
  const zipf = new ZipfSampler(keyCount, zipfExponent);
  const rng = new Rng(seed);
  const latencies: number[] = [];
  const bucketLatencies: number[][] = [];
  let reads = 0;
  let errors = 0;
  let dropped = 0;
  let inFlight = 0;
  const startSelects = await selects();
  const start = performance.now();
  const end = start + seconds * 1000;
  const samples: { at: number; selects: number }[] = [{ at: 0, selects: startSelects }];
  const sampler = setInterval(() => {
    void selects().then((count) => samples.push({ at: performance.now() - start, selects: count }));
  }, SAMPLE_MS);
  let midwayDone: Promise<void> | undefined;
  const pending = new Set<Promise<void>>();
  let sent = 0;
  while (performance.now() < end) {
    const elapsedMs = performance.now() - start;
    if (midway !== undefined && midwayDone === undefined && elapsedMs >= (seconds * 1000) / 2)
      midwayDone = midway();
    const due = Math.floor((elapsedMs / 1000) * rate) - sent;
    for (let i = 0; i < due; i++) {
      sent++;
      if (inFlight >= MAX_IN_FLIGHT) {
        dropped++;
        continue;
      }
      const key = keyOfRank[zipf.sample(rng)] as string;
      const issued = performance.now();
      const bucket = Math.floor((issued - start) / SAMPLE_MS);
      inFlight++;
      const request = read(key).then(
        () => {
          const ms = performance.now() - issued;
          latencies.push(ms);
          const inBucket = bucketLatencies[bucket];
          if (inBucket === undefined) bucketLatencies[bucket] = [ms];
          else inBucket.push(ms);
          reads++;
        },
        () => {
          errors++;
        },
      );
      const tracked = request.finally(() => {
        inFlight--;
        pending.delete(tracked);
      });
      pending.add(tracked);
    }
    await Bun.sleep(TICK_MS);
  }
  await Promise.all(pending);
  await midwayDone;
  clearInterval(sampler);
  samples.push({ at: performance.now() - start, selects: await selects() });
  const elapsed = (performance.now() - start) / 1000;
  const databaseQueries = (samples[samples.length - 1]?.selects ?? startSelects) - startSelects;
  const timeline: TimePoint[] = [];
  for (let i = 1; i < samples.length; i++) {
    const previous = samples[i - 1] as { at: number; selects: number };
    const current = samples[i] as { at: number; selects: number };
    if (current.at - previous.at < SAMPLE_MS / 5) continue; // the last sample, just after another
    const bucket = Math.floor(previous.at / SAMPLE_MS);
    const bucketMs = bucketLatencies[bucket];
    const sorted = Float64Array.from(bucketMs ?? []).sort();
    timeline.push({
      second: Number((current.at / 1000).toFixed(2)),
      databaseQps: ((current.selects - previous.selects) * 1000) / Math.max(1, current.at - previous.at),
      p99Ms: sorted.length === 0 ? null : percentile(sorted, 99),
    });
  }
  const latencyMs = summariseLatencies(Float64Array.from(latencies.length > 0 ? latencies : [0]));
  const result: ModeResult = {
    mode,
    reads,
    errors,
    dropped,
    readsPerSecond: reads / elapsed,
    databaseQueries,
    databaseQps: databaseQueries / elapsed,
    hitRatio: reads === 0 ? 0 : Math.max(0, 1 - databaseQueries / reads),
    latencyMs,
    timeline,
  };
  console.log(
    `${mode.padEnd(34)} ${result.readsPerSecond.toFixed(0).padStart(6)} reads/s  db ${result.databaseQps.toFixed(0).padStart(6)} q/s  hit ${(result.hitRatio * 100).toFixed(1).padStart(5)}%  p50 ${latencyMs.p50.toFixed(2)} ms  p99 ${latencyMs.p99.toFixed(2)} ms  errors ${errors}  dropped ${dropped}`,
  );
  return result;
}

/** Two routers on one leaf with a loader route to the database; clients alternate between them. */
async function gravity(
  leaf: LeafProcess,
  leases: boolean,
): Promise<{ routers: ServerProcess[]; clients: Client[] }> {
  const dir = mkdtempSync(join(tmpdir(), "gravity-bench-origin-"));
  const config = join(dir, "router.json");
  writeFileSync(
    config,
    JSON.stringify({
      loaders: { telemetry: { type: "sql", url, query: lookupQuery(url), maxConnections: 16 } },
      pools: { cache: { servers: [`${HOST}:${leaf.port}`], timeoutMs: 2000 } },
      route: { type: "loader", loader: "telemetry", route: "cache", ttlSeconds: TTL_SECONDS, leases },
    }),
  );
  const routers = [
    await startRouter(["--port", "0", "--config", config], { binary: "compiled" }),
    await startRouter(["--port", "0", "--config", config], { binary: "compiled" }),
  ];
  const clients = routers.map((router) =>
    createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 5000, connectionsPerServer: 4 }),
  );
  return { routers, clients };
}

const runs: ModeResult[][] = []; // runs[repeat][mode], modes in the same order each repeat
try {
  for (let repeat = 1; repeat <= repeats; repeat++) {
    const results: ModeResult[] = [];
    runs.push(results);
    // Direct: every read is a query. One query first opens a connection (as the routers' do).
    const direct = new SQL({ url, max: 16 });
    const query = lookupQuery(url);
    await direct.unsafe(query, ["warm-up"]).values();
    results.push(
      await runMode("direct to MariaDB", async (key) => {
        await direct.unsafe(query, [`${GROUP}:${key}`]).values();
      }),
    );
    await direct.close();

    for (const restart of [false, true]) {
      for (const leases of restart ? [true, false] : [true]) {
        let leaf = await startLeaf(["--port", "0", "--memory", "256m"], { binary: "compiled" });
        const { routers, clients } = await gravity(leaf, leases);
        // Connections (client to router, router to leaf and to the database) opened before the clock.
        for (const client of clients) await client.get(`${GROUP}:warm-up`);
        let turn = 0;
        const read = async (key: string) => {
          turn++;
          await (clients[turn % clients.length] as Client).get(`${GROUP}:${key}`);
        };
        // A cold leaf, half way: killed and started again, empty, on the same port.
        const cold = async () => {
          const port = leaf.port;
          await leaf.stop("SIGKILL");
          leaf = await startLeaf(["--port", String(port), "--memory", "256m"], { binary: "compiled" });
        };
        const name = restart
          ? `gravity, leaf restart, ${leases ? "leases" : "no leases"}`
          : "gravity (2 routers, leases)";
        results.push(await runMode(name, read, restart ? cold : undefined));
        for (const client of clients) await client.close();
        for (const router of routers) await router.stop("SIGTERM");
        await leaf.stop("SIGTERM");
      }
    }
  }
  await admin.close();

  // Per mode, the median over the repeats of each figure; the charts draw the first repeat.
  const first = runs[0] as ModeResult[];
  const summary = first.map((run, index) => {
    const of = (pick: (result: ModeResult) => number) =>
      median(runs.map((results) => pick(results[index] as ModeResult)));
    const spread = (pick: (result: ModeResult) => number) => {
      const values = runs.map((results) => pick(results[index] as ModeResult));
      return [Math.min(...values), Math.max(...values)];
    };
    return {
      mode: run.mode,
      readsPerSecond: of((result) => result.readsPerSecond),
      databaseQps: of((result) => result.databaseQps),
      databaseQpsRange: spread((result) => result.databaseQps),
      hitRatio: of((result) => result.hitRatio),
      p50Ms: of((result) => result.latencyMs.p50),
      p99Ms: of((result) => result.latencyMs.p99),
      p99MsRange: spread((result) => result.latencyMs.p99),
      errors: of((result) => result.errors),
    };
  });
  console.log(`\nmedians of ${repeats} runs:`);
  console.log("| mode | reads/s | database queries/s | hit ratio | p50 ms | p99 ms | errors |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const row of summary)
    console.log(
      `| ${row.mode} | ${row.readsPerSecond.toFixed(0)} | ${row.databaseQps.toFixed(0)} (${row.databaseQpsRange.map((v) => v.toFixed(0)).join("-")}) | ${(row.hitRatio * 100).toFixed(1)}% | ${row.p50Ms.toFixed(2)} | ${row.p99Ms.toFixed(1)} (${row.p99MsRange.map((v) => v.toFixed(1)).join("-")}) | ${row.errors} |`,
    );
  const results = first;
  const [directRun, cachedRun] = summary as [(typeof summary)[0], (typeof summary)[0]];
  const saved = 1 - cachedRun.databaseQps / Math.max(directRun.databaseQps, 1e-9);
  console.log(
    `\ndatabase load: ${directRun.databaseQps.toFixed(0)} q/s direct, ${cachedRun.databaseQps.toFixed(0)} q/s through Gravity (${(saved * 100).toFixed(1)}% saved, hit ratio ${(cachedRun.hitRatio * 100).toFixed(1)}%)`,
  );
  const file = writeResults("origin-load", {
    parameters: {
      rate,
      seconds,
      functions,
      keys: keyCount,
      zipf: zipfExponent,
      seed,
      ttlSeconds: TTL_SECONDS,
      repeats,
    },
    saved,
    summary,
    runs,
  });
  console.log(`wrote ${file}`);
  const chartDir = join(REPO_ROOT, "bench", "charts");
  const subtitle = `first of ${repeats} runs; ${rate} reads/s, Zipf ${zipfExponent} over ${keyCount} keys, TTL ${TTL_SECONDS} s; leaf restarted at ${seconds / 2} s in the restart runs`;
  const points = (field: "databaseQps" | "p99Ms") =>
    results.flatMap((run) =>
      run.timeline.flatMap((point) => {
        const y = point[field];
        return y === null ? [] : [{ series: run.mode, x: point.second, y }];
      }),
    );
  await writeChart(
    join(chartDir, "origin-load-qps.svg"),
    lineChartSpec({
      title: "Database queries per second, direct vs through Gravity",
      subtitle,
      xTitle: "seconds",
      yTitle: "database queries per second",
      points: points("databaseQps"),
    }),
  );
  await writeChart(
    join(chartDir, "origin-load-p99.svg"),
    lineChartSpec({
      title: "Read latency p99, direct vs through Gravity",
      subtitle,
      xTitle: "seconds",
      yTitle: "p99 latency (ms)",
      points: points("p99Ms"),
      yScale: "log",
    }),
  );
  console.log(`wrote ${join(chartDir, "origin-load-qps.svg")} and origin-load-p99.svg`);
} finally {
  await stopAll();
  await stopAllMariadb();
}

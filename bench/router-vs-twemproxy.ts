// Router vs twemproxy under memcaslap: the same two memcached leaves behind nutcracker and behind
// the compiled gravity router, both sharding by ketama over md5, alternating runs (T G T G ...).
//
//   npm run bench:router [-- --seconds 10 --repeats 3 --warmup 2 --threads 1]
//
//   memcaslap ──> nutcracker (ketama, md5) ──────┬──> memcached A
//   memcaslap ──> gravity router (ketama, md5) ──┴──> memcached B
//
// memcaslap runs as in bench/leaf-vs-memcached.ts (1 client thread, 32 concurrent connections,
// 100-byte values, the default 90% get / 10% set) plus `-S <seconds>s`, so it also prints its
// latency histogram once at the end. That histogram has log2 buckets (a reply of t µs counts in
// the bucket of the smallest k with 2^k >= t), so the p99 reported is the upper edge of the
// bucket holding the 99th percentile: a bound within a factor of two, not an exact figure.
// Both proxies keep their own defaults otherwise (twemproxy: one connection per server; gravity:
// `connections: 2`). Prints the median TPS and p99 bound of each, the ratio gravity/twemproxy,
// writes bench/results/router.json (every sample, machine, versions, commit) and draws
// bench/charts/router.svg (median TPS with the min-max of the repeats).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { parseFlags } from "../src/cli/args.ts";
import { Client } from "../src/client/index.ts";
import {
  COMPILED_GRAVITY,
  HOST,
  MEMCACHED,
  peakRssBytes,
  REPO_ROOT,
  requireBinary,
  rssBytes,
  type ServerProcess,
  startMemcached,
  startRouter,
  stopAll,
} from "../test/helpers/servers.ts";
import {
  NUTCRACKER,
  startTwemproxy,
  stopAllTwemproxy,
  type TwemproxyProcess,
} from "../test/helpers/twemproxy.ts";
import { barChartSpec, writeChart } from "./charts.ts";
import { firstLine, machine, median, writeResults } from "./report.ts";

const MEMCASLAP = "/usr/bin/memcaslap";
const CLIENT_THREADS = 1;
const CONCURRENCY = 32;
const VALUE_BYTES = 100;

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: "integer", default: 10, min: 1, max: 600, help: "length of one run" },
  { name: "repeats", kind: "integer", default: 3, min: 1, max: 20, help: "runs per proxy" },
  { name: "warmup", kind: "integer", default: 2, min: 0, max: 60, help: "seconds of warm-up per proxy" },
  { name: "threads", kind: "integer", default: 1, min: 1, max: 64, help: "gravity router --threads" },
]);
const seconds = flags.seconds as number;
const repeats = flags.repeats as number;
const warmup = flags.warmup as number;
const threads = flags.threads as number;
// --threads 1 is the headline comparison; other counts write beside it instead of over it.
const resultName = threads === 1 ? "router" : `router-threads-${threads}`;

const ProxyName = { Twemproxy: "twemproxy", Gravity: "gravity" } as const;
type ProxyName = (typeof ProxyName)[keyof typeof ProxyName];

/** What one memcaslap run printed. */
interface Run {
  tps: number;
  ops: number;
  getMisses: number;
  /** Upper edge (µs) of the log2 bucket holding the 99th percentile of all replies. */
  p99BoundUs: number | null;
  /** memcaslap's log2 histogram of all replies: dist[k] = replies with 2^(k-1) < t <= 2^k µs. */
  dist: number[];
  avgUs: number | null;
  maxUs: number | null;
}

interface Sample extends Run {
  proxy: ProxyName;
  run: number;
}

// memcaslap, as a child the signal handlers below can kill: a run is seconds long.
const children = new Set<Subprocess>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill("SIGKILL");
    // Stopping removes nutcracker's temp dir; past the helpers' deadlines, process.exit runs their
    // exit hooks, which SIGKILL whatever is left.
    void Promise.allSettled([stopAllTwemproxy(), stopAll()]).then(() =>
      process.exit(128 + (signal === "SIGINT" ? 2 : 15)),
    );
  });
}

async function memcaslap(port: number, runSeconds: number): Promise<Run> {
  const proc = Bun.spawn(
    [
      MEMCASLAP,
      "-s",
      `${HOST}:${port}`,
      "-T",
      String(CLIENT_THREADS),
      "-c",
      String(CONCURRENCY),
      "-X",
      String(VALUE_BYTES),
      "-t",
      `${runSeconds}s`,
      "-S",
      `${runSeconds}s`,
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  children.add(proc);
  const [output, errors, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  children.delete(proc);
  const tps = /TPS: (\d+)/.exec(output);
  const ops = /Ops: (\d+)/.exec(output);
  if (exitCode !== 0 || tps === null || ops === null) {
    throw new Error(`memcaslap failed (exit ${exitCode}): ${output}${errors}`);
  }
  const total = totalStatistics(output);
  return {
    tps: Number(tps[1]),
    ops: Number(ops[1]),
    getMisses: Number(/get_misses: (\d+)/.exec(output)?.[1] ?? Number.NaN),
    p99BoundUs: total === null ? null : log2Percentile(total.dist, 0.99),
    dist: total?.dist ?? [],
    avgUs: total?.avgUs ?? null,
    maxUs: total?.maxUs ?? null,
  };
}

/**
 * The "Total Statistics (N events)" block memcaslap prints with -S: average, maximum and the
 * log2 histogram (`dist[k]` = replies with 2^(k-1) < t <= 2^k µs), or null if it is missing.
 */
function totalStatistics(output: string): { avgUs: number; maxUs: number; dist: number[] } | null {
  const block = /Total Statistics \(\d+ events\)\n([\s\S]*?)\n\n/.exec(output)?.[1];
  if (block === undefined) return null;
  const avg = /Avg:\s+(\d+)/.exec(block);
  const max = /Max:\s+(\d+)/.exec(block);
  const dist: number[] = [];
  for (const row of block.matchAll(/^\s+(\d+):((?:\s+\d+)+)\s*$/gm)) {
    const first = Number(row[1]);
    (row[2] as string)
      .trim()
      .split(/\s+/)
      .forEach((count, i) => {
        dist[first + i] = Number(count);
      });
  }
  if (avg === null || max === null || dist.length === 0) return null;
  return { avgUs: Number(avg[1]), maxUs: Number(max[1]), dist: Array.from(dist, (count) => count ?? 0) };
}

/** The upper edge 2^k µs of the log2 bucket where the cumulative count first reaches `q` of the total. */
function log2Percentile(dist: readonly number[], q: number): number | null {
  const total = dist.reduce((sum, count) => sum + count, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let k = 0; k < dist.length; k++) {
    seen += dist[k] ?? 0;
    if (seen >= q * total) return 2 ** k;
  }
  return 2 ** (dist.length - 1);
}

/** nutcracker's stats port: one JSON document per connection, then it closes. */
async function twemproxyStats(port: number): Promise<Record<string, unknown>> {
  let text = "";
  const decoder = new TextDecoder();
  await new Promise<void>((resolve, reject) => {
    Bun.connect({
      hostname: HOST,
      port,
      socket: {
        data(_socket, chunk) {
          text += decoder.decode(chunk, { stream: true });
        },
        close() {
          resolve();
        },
        error(_socket, error) {
          reject(error);
        },
      },
    }).catch(reject);
  });
  return JSON.parse(text) as Record<string, unknown>;
}

/** Sums the error counters nutcracker keeps per pool and per server (0 on a clean run). */
function twemproxyErrors(stats: Record<string, unknown>): Record<string, number> {
  const totals: Record<string, number> = {};
  const add = (name: string, value: unknown) => {
    if (typeof value === "number") totals[name] = (totals[name] ?? 0) + value;
  };
  const pool = stats.gravity as Record<string, unknown> | undefined;
  if (pool === undefined) return totals;
  for (const name of ["client_err", "forward_error", "fragments", "server_ejects"]) add(name, pool[name]);
  for (const value of Object.values(pool)) {
    if (value === null || typeof value !== "object") continue;
    const server = value as Record<string, unknown>;
    for (const name of ["server_err", "server_timedout", "server_eof"]) add(name, server[name]);
  }
  return totals;
}

/** The gravity router's own `stats` counters, over a short-lived connection. */
async function routerStats(port: number): Promise<Map<string, string>> {
  const client = new Client({ servers: [`${HOST}:${port}`] });
  try {
    const stats = await client.stats();
    return [...stats.values()][0] ?? new Map();
  } finally {
    await client.close();
  }
}

requireBinary(MEMCASLAP);
requireBinary(MEMCACHED);
requireBinary(NUTCRACKER);
requireBinary(COMPILED_GRAVITY);
const peers = {
  memcached: firstLine([MEMCACHED, "-V"]),
  nutcracker: firstLine([NUTCRACKER, "-V"]),
  memcaslap: firstLine([MEMCASLAP, "-V"]),
  gravity: firstLine([COMPILED_GRAVITY, "--version"]),
};
const host = machine();
console.log(
  `router vs twemproxy: memcaslap -T ${CLIENT_THREADS} -c ${CONCURRENCY} -X ${VALUE_BYTES} -t ${seconds}s ` +
    `-S ${seconds}s, ${repeats} alternating runs each after ${warmup}s warm-up; gravity --threads ${threads}; ketama + md5 over ` +
    `2 memcached (-t 1, 64 MB); ${host.cpus} cpus (${host.cpuModel}), ${host.kernel}; ` +
    `${peers.memcached}; ${peers.nutcracker}`,
);

const configDir = mkdtempSync(join(tmpdir(), "gravity-bench-router-"));
process.on("exit", () => rmSync(configDir, { recursive: true, force: true }));
const samples: Sample[] = [];
let twemproxy: TwemproxyProcess | undefined;
let router: ServerProcess | undefined;
const health: Record<string, unknown> = {};
try {
  console.log("starting 2 memcached leaves");
  const leaves = await Promise.all(
    [0, 1].map(() => startMemcached({ memoryMb: 64, extraArgs: ["-t", "1"] })),
  );
  console.log(`  memcached on ports ${leaves.map((leaf) => leaf.port).join(", ")}`);

  console.log("starting nutcracker (distribution ketama, hash md5)");
  twemproxy = await startTwemproxy({
    servers: leaves.map((leaf) => ({ host: leaf.host, port: leaf.port })),
    hash: "md5",
    distribution: "ketama",
  });
  console.log(`  nutcracker on port ${twemproxy.port}`);

  console.log("starting the compiled gravity router (sharded pool, ketama, md5)");
  const configPath = join(configDir, "router.yaml");
  writeFileSync(
    configPath,
    [
      "pools:",
      "  leaves:",
      `    servers: [${leaves.map((leaf) => `"${leaf.host}:${leaf.port}"`).join(", ")}]`,
      "    hash: md5",
      "    distribution: ketama",
      "route: leaves",
      "",
    ].join("\n"),
  );
  router = await startRouter(["--config", configPath, "--port", "0", "--threads", String(threads)], {
    binary: "compiled",
  });
  console.log(`  gravity router on port ${router.port}`);

  const proxies: { name: ProxyName; port: number; pid: number }[] = [
    { name: ProxyName.Twemproxy, port: twemproxy.port, pid: twemproxy.pid },
    { name: ProxyName.Gravity, port: router.port, pid: router.pid },
  ];
  for (const proxy of proxies) {
    if (warmup === 0) break;
    console.log(`warm-up ${proxy.name} ${warmup}s`);
    await memcaslap(proxy.port, warmup);
  }
  for (let r = 1; r <= repeats; r++) {
    for (const proxy of proxies) {
      const run = await memcaslap(proxy.port, seconds);
      samples.push({ proxy: proxy.name, run: r, ...run });
      const p99 = run.p99BoundUs === null ? "p99 n/a" : `p99 <= ${run.p99BoundUs} us`;
      const rss = ((await rssBytes(proxy.pid)) / 2 ** 20).toFixed(0);
      console.log(
        `  ${proxy.name.padEnd(9)}  run ${r}/${repeats}  ${run.tps} TPS  ${p99}  ` +
          `avg ${run.avgUs ?? "n/a"} us  get misses ${run.getMisses}  rss ${rss} MiB`,
      );
    }
  }

  const gravityStats = await routerStats(router.port);
  health.gravity = {
    // With --threads N, `stats` answers for the thread that serves its connection only.
    statsOfThread: `${gravityStats.get("thread")} of ${gravityStats.get("threads")}`,
    routeErrors: Number(gravityStats.get("route_errors")),
    cmdGet: Number(gravityStats.get("cmd_get")),
    cmdSet: Number(gravityStats.get("cmd_set")),
    rssBytes: await rssBytes(router.pid),
    peakRssBytes: await peakRssBytes(router.pid),
  };
  health.twemproxy = {
    errors: twemproxyErrors(await twemproxyStats(twemproxy.statsPort)),
    rssBytes: await rssBytes(twemproxy.pid),
    peakRssBytes: await peakRssBytes(twemproxy.pid),
  };
} finally {
  await Promise.allSettled([stopAllTwemproxy(), stopAll()]);
}

const summary = (proxy: ProxyName) => {
  const own = samples.filter((s) => s.proxy === proxy);
  const tps = own.map((s) => s.tps);
  // The repeats' histograms added up: a percentile of every reply, still a log2 bucket's edge.
  const pooled: number[] = [];
  for (const s of own) {
    for (const [k, count] of s.dist.entries()) pooled[k] = (pooled[k] ?? 0) + count;
  }
  return {
    tps: Math.round(median(tps)),
    minTps: Math.min(...tps),
    maxTps: Math.max(...tps),
    p99BoundUs: log2Percentile(
      Array.from(pooled, (count) => count ?? 0),
      0.99,
    ),
  };
};
const twem = summary(ProxyName.Twemproxy);
const grav = summary(ProxyName.Gravity);
const ratio = grav.tps / twem.tps;
const p99Cell = (us: number | null) => (us === null ? "n/a" : `<= ${us}`);

console.log("\n| proxy | TPS (median) | TPS min-max | p99 µs (all runs, log2 bucket edge) |");
console.log("|---|---|---|---|");
for (const [name, s] of [
  ["twemproxy", twem],
  ["gravity router", grav],
] as const) {
  console.log(`| ${name} | ${s.tps} | ${s.minTps}-${s.maxTps} | ${p99Cell(s.p99BoundUs)} |`);
}
console.log(
  `\nratio gravity / twemproxy: ${ratio.toFixed(2)}x (target >= 1.0x: ${ratio >= 1 ? "met" : "not met"})`,
);
console.log(`router health: ${JSON.stringify(health)}`);

const written = writeResults(resultName, {
  peers,
  parameters: {
    seconds,
    repeats,
    warmup,
    clientThreads: CLIENT_THREADS,
    concurrency: CONCURRENCY,
    valueBytes: VALUE_BYTES,
    memcaslapStatsFlag: `-S ${seconds}s`,
    leaves: "2 x memcached -t 1 -m 64",
    twemproxy: "distribution ketama, hash md5, auto_eject_hosts false, server_connections 1 (default)",
    gravity: "dist/gravity router; one sharded pool, hash md5, distribution ketama, connections 2 (default)",
    gravityThreads: threads,
    p99:
      "upper edge of memcaslap's log2 latency bucket (2^(k-1) < t <= 2^k us) holding the 99th percentile; " +
      "summary: of the repeats' histograms added up",
  },
  summary: { twemproxy: twem, gravity: grav, ratio },
  health,
  samples,
});
console.log(`\nwrote ${written}`);

const chart = join(REPO_ROOT, "bench", "charts", `${resultName}.svg`);
await writeChart(
  chart,
  barChartSpec({
    title: "Proxy throughput — memcaslap, 90% get / 10% set",
    subtitle: `median of ${repeats} runs, whiskers min-max; ${host.cpus} cpus; 2 memcached, ketama md5; gravity --threads ${threads}`,
    xTitle: "proxy",
    yTitle: "transactions per second",
    bars: [
      { category: "twemproxy", series: "median TPS", value: twem.tps, low: twem.minTps, high: twem.maxTps },
      {
        category: "gravity router",
        series: "median TPS",
        value: grav.tps,
        low: grav.minTps,
        high: grav.maxTps,
      },
    ],
  }),
);
console.log(`wrote ${chart}`);

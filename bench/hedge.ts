// Hedged reads against a slow replica: tail latency and extra requests with hedging off and on.
//
//   npm run bench:hedge [-- --requests 50000 --concurrency 16 --rounds 2 --seed 1
//                           --inject 1%:50ms --connections 2 --hedge-delay adaptive --budget 0.05
//                           --slow-leaves 1]
//   --slow-leaves 3: the second scenario, each replica slow on its own (as in "The Tail at
//   Scale"), written to bench/results/hedge-all-slow.json and bench/charts/hedge-all-slow.svg
//
//   `concurrency` clients ──> gravity router (compiled) ──┬──> leaf 0 --inject-latency 1%:50ms
//   (one connection each,     replicated pool of 3,       ├──> leaf 1
//    one get in flight)       reads: one | hedged         └──> leaf 2
//
// Three compiled `gravity leaf` processes hold the same `keys` keys (set on each directly); leaf 0
// holds a share of its replies back (--inject-latency: a share of its socket reads get their
// replies delayed, and that connection stops reading meanwhile). The router reads from one
// preferred replica, chosen by Math.random() when the route is built (src/router/handles/
// replicated.ts), so each run starts routers until a short probe shows the replica wanted is the
// preferred one: every round runs both modes with leaf 0, 1 and 2 preferred, so the slow leaf is
// preferred in exactly a third of the runs of each mode, alternating off, on, off, on...
//   off: reads: one
//   on:  reads: hedged, hedge: { delayMs: adaptive, budget: 0.05 } (p95 of the pool, 1..1000 ms)
// (the defaults; --hedge-delay, --budget and --connections, the pool's connections per leaf, are
// there to explore why a figure is what it is).
//
// A run: `warmup` unrecorded gets (they also fill the router's latency window), then `requests`
// gets of keys drawn uniformly by a seeded PRNG (the same sequence in every run), each timed with
// performance.now() from the call to the reply into a preallocated Float64Array. Extra-request
// share = the router's hedges_sent / cmd_get over the run (`stats` before and after), checked
// against the leaves' own cmd_get. Slow share = gets that took at least half the injected delay:
// how many gets the injection actually held up (it stalls a whole leaf connection, so with
// pipelining it can be more than its share of reads). Prints p50/p99/p99.9/max per mode (all
// runs, and the runs with the slow leaf preferred), the ratio p99(off)/p99(on), writes
// bench/results/hedge.json (per-run summaries and a latency histogram per mode) and draws
// bench/charts/hedge.svg.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseFlags } from "../src/cli/args.ts";
import { Client } from "../src/client/index.ts";
import {
  COMPILED_GRAVITY,
  HOST,
  type LeafProcess,
  peakRssBytes,
  REPO_ROOT,
  requireBinary,
  rssBytes,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "../test/helpers/servers.ts";
import { type LinePoint, lineChartSpec, writeChart } from "./charts.ts";
import {
  concatSamples,
  firstLine,
  type Latencies as LatencySummary,
  machine,
  stopOnSignal,
  summariseLatencies,
  writeResults,
} from "./report.ts";
import { Rng } from "./workloads.ts";

const flags = parseFlags(process.argv.slice(2), [
  {
    name: "requests",
    kind: "integer",
    default: 50_000,
    min: 100,
    max: 10_000_000,
    help: "timed gets per run",
  },
  {
    name: "warmup",
    kind: "integer",
    default: 2000,
    min: 0,
    max: 1_000_000,
    help: "untimed gets per run first",
  },
  { name: "concurrency", kind: "integer", default: 16, min: 1, max: 1024, help: "gets in flight (clients)" },
  {
    name: "rounds",
    kind: "integer",
    default: 2,
    min: 1,
    max: 20,
    help: "rounds of 6 runs: both modes with each leaf preferred",
  },
  { name: "keys", kind: "integer", default: 10_000, min: 1, max: 1_000_000, help: "distinct keys" },
  { name: "value-bytes", kind: "integer", default: 100, min: 1, max: 1_000_000, help: "value size" },
  { name: "seed", kind: "integer", default: 1, min: 0, max: 2 ** 32 - 1, help: "seed of the key sequence" },
  { name: "inject", kind: "string", default: "1%:50ms", help: "the slow leaf's --inject-latency" },
  {
    name: "connections",
    kind: "integer",
    default: 2,
    min: 1,
    max: 64,
    help: "the pool's connections per leaf (2 is the router's default)",
  },
  {
    name: "hedge-delay",
    kind: "string",
    default: "adaptive",
    help: 'hedge.delayMs: "adaptive" or a number of ms',
  },
  { name: "budget", kind: "string", default: "0.05", help: "hedge.budget: the most hedges per read, 0..1" },
  {
    name: "max-connections",
    kind: "integer",
    default: 0,
    min: 0,
    max: 256,
    help: "the pool's maxConnections per leaf (0: the router's default)",
  },
  {
    name: "slow-leaves",
    kind: "integer",
    default: 1,
    min: 1,
    max: 3,
    help: "leaves started with --inject: 1 (leaf 0) or 3 (each, independently)",
  },
]);
const requests = flags.requests as number;
const warmup = flags.warmup as number;
const concurrency = flags.concurrency as number;
const rounds = flags.rounds as number;
const keyCount = flags.keys as number;
const valueBytes = flags["value-bytes"] as number;
const seed = flags.seed as number;
const inject = flags.inject as string;
const connections = flags.connections as number;
const slowLeaves = flags["slow-leaves"] as number;
const maxConnections = flags["max-connections"] as number;
// Where results and the chart go: one file per scenario.
const scenario =
  slowLeaves === 1 ? "hedge" : slowLeaves === 3 ? "hedge-all-slow" : `hedge-${slowLeaves}-slow`;
const injectedDelayMs = Number(/:(\d+)ms$/.exec(inject)?.[1] ?? Number.NaN);
if (!(injectedDelayMs > 0)) {
  console.error(`--inject: expected PERCENT%:MILLISECONDSms (e.g. 1%:50ms), got ${JSON.stringify(inject)}`);
  process.exit(2);
}
const hedgeDelay = flags["hedge-delay"] as string;
const budget = Number(flags.budget);
if (!(budget >= 0 && budget <= 1)) {
  console.error(`--budget: expected a fraction from 0 to 1, got ${JSON.stringify(flags.budget)}`);
  process.exit(2);
}
if (hedgeDelay !== "adaptive" && !/^\d+$/.test(hedgeDelay)) {
  console.error(`--hedge-delay: expected "adaptive" or a number of ms, got ${JSON.stringify(hedgeDelay)}`);
  process.exit(2);
}

const REPLICAS = 3;
const SLOW = 0; // the first leaf started with --inject-latency; leaves SLOW..slowLeaves-1 are slow
const PROBE_GETS = 30;
const MAX_ROUTER_STARTS = 30;
const PERCENTILES = [50, 90, 99, 99.9] as const;

const Mode = { Off: "off", On: "on" } as const;
type Mode = (typeof Mode)[keyof typeof Mode];
const ROUTE: Record<Mode, string[]> = {
  off: ["  reads: one"],
  on: ["  reads: hedged", `  hedge: { delayMs: ${hedgeDelay}, budget: ${budget} }`],
};

interface Latencies extends LatencySummary {
  /** Share of gets that took at least half the injected delay. */
  slowShare: number;
}

interface RunResult extends Latencies {
  mode: Mode;
  round: number;
  preferred: number;
  slowPreferred: boolean;
  /** Routers started before one preferred the replica wanted. */
  routerStarts: number;
  requests: number;
  elapsedMs: number;
  getsPerSecond: number;
  errors: number;
  misses: number;
  /** From the router's stats over the timed gets. */
  cmdGet: number;
  hedgesSent: number;
  hedgesWon: number;
  routeErrors: number;
  extraShare: number;
  /** cmd_get of each leaf over the timed gets. */
  leafGets: number[];
  /** (sum of leafGets - cmdGet) / cmdGet: the extra requests as the leaves saw them. */
  leafExtraShare: number;
  routerRssBytes: number;
  routerPeakRssBytes: number;
  routerExit: number | null;
}

stopOnSignal(() => [stopAll()]);

function summarise(latencies: Float64Array): Latencies {
  let slow = 0;
  for (const ms of latencies) if (ms >= injectedDelayMs / 2) slow++;
  return { slowShare: slow / latencies.length, ...summariseLatencies(latencies) };
}

// Histogram buckets an eighth of a power of two wide (~9%): bucket b holds 2^((b-1)/8) < µs <= 2^(b/8).
const BUCKETS_PER_DOUBLING = 8;

/** Latencies as [upper edge µs, count] pairs of the non-empty buckets, ascending. */
function histogram(latencies: Float64Array): [number, number][] {
  const counts = new Map<number, number>();
  for (const ms of latencies) {
    const bucket = Math.max(0, Math.ceil(BUCKETS_PER_DOUBLING * Math.log2(Math.max(1, ms * 1000))));
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([bucket, count]) => [Number((2 ** (bucket / BUCKETS_PER_DOUBLING)).toFixed(1)), count]);
}

/**
 * Sends `count` gets of keys[sequence[i]] through `clients`, each client one get at a time, and
 * records each get's latency in ms into `latencies` (when given) at the get's index.
 */
async function drive(
  clients: readonly Client[],
  keys: readonly string[],
  sequence: Uint32Array,
  count: number,
  latencies: Float64Array | null,
): Promise<{ errors: number; misses: number; elapsedMs: number; firstError?: string }> {
  let next = 0;
  let errors = 0;
  let misses = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const worker = async (client: Client) => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const key = keys[sequence[i % sequence.length] as number] as string;
      const sent = performance.now();
      try {
        if ((await client.get(key)) === null) misses++;
      } catch (error) {
        errors++;
        firstError ??= String(error);
      }
      if (latencies !== null) latencies[i] = performance.now() - sent;
    }
  };
  await Promise.all(clients.map(worker));
  const result = { errors, misses, elapsedMs: performance.now() - start };
  return firstError === undefined ? result : { ...result, firstError };
}

async function statsOf(client: Client): Promise<Map<string, string>> {
  return [...(await client.stats()).values()][0] ?? new Map();
}

async function leafGets(leafClients: readonly Client[]): Promise<number[]> {
  return Promise.all(leafClients.map(async (client) => Number((await statsOf(client)).get("cmd_get"))));
}

/** The leaf a freshly started router reads from: the one whose cmd_get grows under a few gets. */
async function preferredLeaf(routerPort: number, leafClients: readonly Client[], keys: readonly string[]) {
  const client = new Client({ servers: [`${HOST}:${routerPort}`] });
  try {
    const before = await leafGets(leafClients);
    for (let i = 0; i < PROBE_GETS; i++) await client.get(keys[i % keys.length] as string);
    const after = await leafGets(leafClients);
    const deltas = after.map((n, i) => n - (before[i] as number));
    const best = deltas.indexOf(Math.max(...deltas));
    if ((deltas[best] as number) < PROBE_GETS) {
      throw new Error(`probe gets did not all reach one leaf: ${deltas.join(", ")}`);
    }
    return best;
  } finally {
    await client.close();
  }
}

/** Starts routers with `config` until one prefers leaf `wanted` (each start draws it anew). */
async function routerPreferring(
  config: string,
  wanted: number,
  leafClients: readonly Client[],
  keys: readonly string[],
): Promise<{ router: ServerProcess; starts: number }> {
  for (let starts = 1; starts <= MAX_ROUTER_STARTS; starts++) {
    const router = await startRouter(["--config", config, "--port", "0"], { binary: "compiled" });
    if ((await preferredLeaf(router.port, leafClients, keys)) === wanted) return { router, starts };
    await router.stop();
  }
  throw new Error(`no router preferred leaf ${wanted} in ${MAX_ROUTER_STARTS} starts`);
}

async function run(
  mode: Mode,
  round: number,
  preferred: number,
  config: string,
  leafClients: readonly Client[],
  keys: readonly string[],
  sequence: Uint32Array,
  latencies: Float64Array,
): Promise<RunResult> {
  const { router, starts } = await routerPreferring(config, preferred, leafClients, keys);
  const clients = Array.from(
    { length: concurrency },
    () => new Client({ servers: [`${HOST}:${router.port}`], connectionsPerServer: 1 }),
  );
  const statsClient = new Client({ servers: [`${HOST}:${router.port}`] });
  let result: Omit<RunResult, "routerExit">;
  let routerExit: number | null;
  try {
    if (warmup > 0) await drive(clients, keys, sequence, warmup, null);
    const routerBefore = await statsOf(statsClient);
    const leavesBefore = await leafGets(leafClients);
    const driven = await drive(clients, keys, sequence, requests, latencies);
    const routerAfter = await statsOf(statsClient);
    const leavesAfter = await leafGets(leafClients);
    const delta = (name: string) => Number(routerAfter.get(name)) - Number(routerBefore.get(name));
    const cmdGet = delta("cmd_get");
    const hedgesSent = delta("hedges_sent");
    const leafDeltas = leavesAfter.map((n, i) => n - (leavesBefore[i] as number));
    const leafTotal = leafDeltas.reduce((a, b) => a + b, 0);
    if (driven.firstError !== undefined) console.log(`    first error: ${driven.firstError}`);
    result = {
      mode,
      round,
      preferred,
      slowPreferred: preferred < SLOW + slowLeaves,
      routerStarts: starts,
      requests,
      elapsedMs: driven.elapsedMs,
      getsPerSecond: (requests / driven.elapsedMs) * 1000,
      errors: driven.errors,
      misses: driven.misses,
      cmdGet,
      hedgesSent,
      hedgesWon: delta("hedges_won"),
      routeErrors: delta("route_errors"),
      extraShare: hedgesSent / cmdGet,
      leafGets: leafDeltas,
      leafExtraShare: (leafTotal - cmdGet) / cmdGet,
      routerRssBytes: await rssBytes(router.pid),
      routerPeakRssBytes: await peakRssBytes(router.pid),
      ...summarise(latencies),
    };
  } finally {
    await Promise.allSettled([...clients, statsClient].map((client) => client.close()));
    routerExit = await router.stop();
    if (routerExit !== 0) console.log(`    router exited with ${routerExit}: ${router.stderr().trim()}`);
  }
  return { ...result, routerExit };
}

const ms = (value: number) => (value >= 10 ? value.toFixed(1) : value.toFixed(3));
const pct = (share: number) => `${(share * 100).toFixed(2)}%`;

const slowLabel = slowLeaves === 1 ? `leaf ${SLOW}` : `leaves ${SLOW}..${SLOW + slowLeaves - 1}`;
requireBinary(COMPILED_GRAVITY);
const gravity = firstLine([COMPILED_GRAVITY, "--version"]);
const host = machine();
console.log(
  `hedged reads: ${REPLICAS} compiled leaves (${slowLabel}: --inject-latency ${inject}), router reads one vs ` +
    `hedged (delayMs ${hedgeDelay}, budget ${budget}), ${connections} connections per leaf; ` +
    `${rounds} rounds x 3 preferred leaves x 2 modes; ${requests} timed gets ` +
    `per run after ${warmup}, ${concurrency} in flight, ${keyCount} keys of ${valueBytes} bytes, seed ${seed}; ` +
    `${host.cpus} cpus (${host.cpuModel}), ${host.kernel}; ${gravity}`,
);

const configDir = mkdtempSync(join(tmpdir(), "gravity-bench-hedge-"));
process.on("exit", () => rmSync(configDir, { recursive: true, force: true }));
const keys = Array.from({ length: keyCount }, (_, i) => `hedge:${i}`);
const rng = new Rng(seed);
const sequence = Uint32Array.from({ length: requests }, () => rng.nextInt(keyCount));
const runs: RunResult[] = [];
const samples: Record<Mode, Float64Array[]> = { off: [], on: [] };
const slowSamples: Record<Mode, Float64Array[]> = { off: [], on: [] };
const leafClients: Client[] = [];
try {
  console.log(`starting ${REPLICAS} leaves`);
  const leaves: LeafProcess[] = await Promise.all(
    Array.from({ length: REPLICAS }, (_, i) =>
      startLeaf(
        [
          "--port",
          "0",
          "--memory",
          "64mb",
          "--threads",
          "1",
          ...(i >= SLOW && i < SLOW + slowLeaves ? ["--inject-latency", inject] : []),
        ],
        { binary: "compiled" },
      ),
    ),
  );
  console.log(`  leaves on ports ${leaves.map((leaf) => leaf.port).join(", ")} (${slowLabel} slow)`);
  for (const leaf of leaves) leafClients.push(new Client({ servers: [`${HOST}:${leaf.port}`] }));

  console.log(`setting ${keyCount} keys on every leaf`);
  const value = new Uint8Array(valueBytes).fill(0x76);
  for (const client of leafClients) {
    for (let from = 0; from < keyCount; from += 1000) {
      await Promise.all(keys.slice(from, from + 1000).map((key) => client.set(key, value)));
    }
  }

  const configs = {} as Record<Mode, string>;
  for (const mode of [Mode.Off, Mode.On]) {
    configs[mode] = join(configDir, `router-${mode}.yaml`);
    writeFileSync(
      configs[mode],
      [
        "pools:",
        "  replicas:",
        `    servers: [${leaves.map((leaf) => `"${leaf.host}:${leaf.port}"`).join(", ")}]`,
        `    connections: ${connections}`,
        ...(maxConnections > 0 ? [`    maxConnections: ${maxConnections}`] : []),
        "route:",
        "  type: replicated",
        "  pool: replicas",
        ...ROUTE[mode],
        "",
      ].join("\n"),
    );
  }

  const total = rounds * REPLICAS * 2;
  for (let round = 1; round <= rounds; round++) {
    for (let preferred = 0; preferred < REPLICAS; preferred++) {
      for (const mode of [Mode.Off, Mode.On]) {
        const latencies = new Float64Array(requests);
        const result = await run(
          mode,
          round,
          preferred,
          configs[mode],
          leafClients,
          keys,
          sequence,
          latencies,
        );
        runs.push(result);
        samples[mode].push(latencies);
        if (result.slowPreferred) slowSamples[mode].push(latencies);
        console.log(
          `  run ${runs.length}/${total}  hedging ${mode.padEnd(3)}  preferred leaf ${preferred}` +
            `${result.slowPreferred ? " (slow)" : "       "}  router starts ${result.routerStarts}  ` +
            `slow ${pct(result.slowShare)}  p50 ${ms(result.p50)}  p99 ${ms(result.p99)}  ` +
            `p99.9 ${ms(result.p999)}  max ${ms(result.max)} ms  ` +
            `${Math.round(result.getsPerSecond)} gets/s  hedges ${result.hedgesSent} (won ${result.hedgesWon})  ` +
            `leaf extra ${pct(result.leafExtraShare)}  errors ${result.errors}  misses ${result.misses}  ` +
            `rss ${(result.routerRssBytes / 2 ** 20).toFixed(0)} MiB`,
        );
      }
    }
  }
} finally {
  await Promise.allSettled(leafClients.map((client) => client.close()));
  await stopAll();
}

interface ModeSummary extends Latencies {
  mode: Mode;
  subset: "all runs" | "slow leaf preferred";
  runs: number;
  requests: number;
  cmdGet: number;
  hedgesSent: number;
  hedgesWon: number;
  extraShare: number;
  leafExtraShare: number;
  errors: number;
  routeErrors: number;
}

function summariseMode(mode: Mode, slowOnly: boolean): ModeSummary {
  const own = runs.filter((r) => r.mode === mode && (!slowOnly || r.slowPreferred));
  const sum = (pick: (r: RunResult) => number) => own.reduce((n, r) => n + pick(r), 0);
  const cmdGet = sum((r) => r.cmdGet);
  const leafTotal = sum((r) => r.leafGets.reduce((a, b) => a + b, 0));
  return {
    mode,
    subset: slowOnly ? "slow leaf preferred" : "all runs",
    runs: own.length,
    requests: sum((r) => r.requests),
    cmdGet,
    hedgesSent: sum((r) => r.hedgesSent),
    hedgesWon: sum((r) => r.hedgesWon),
    extraShare: sum((r) => r.hedgesSent) / cmdGet,
    leafExtraShare: (leafTotal - cmdGet) / cmdGet,
    errors: sum((r) => r.errors),
    routeErrors: sum((r) => r.routeErrors),
    ...summarise(concatSamples((slowOnly ? slowSamples : samples)[mode])),
  };
}

const summaries = [
  summariseMode(Mode.Off, false),
  summariseMode(Mode.On, false),
  summariseMode(Mode.Off, true),
  summariseMode(Mode.On, true),
];
console.log(
  "\n| hedging | runs | gets | slow share | p50 ms | p99 ms | p99.9 ms | max ms | " +
    "extra requests (router) | (leaves) | hedges won | errors |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const s of summaries) {
  console.log(
    `| ${s.mode}, ${s.subset} | ${s.runs} | ${s.requests} | ${pct(s.slowShare)} | ` +
      `${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.p999)} | ` +
      `${ms(s.max)} | ${pct(s.extraShare)} | ${pct(s.leafExtraShare)} | ${s.hedgesWon} | ${s.errors} |`,
  );
}
const [offAll, onAll, offSlow, onSlow] = summaries as [ModeSummary, ModeSummary, ModeSummary, ModeSummary];
const ratioAll = offAll.p99 / onAll.p99;
const ratioSlow = offSlow.p99 / onSlow.p99;
const met = (ok: boolean) => (ok ? "met" : "not met");
console.log(
  `\np99(off) / p99(on): ${ratioAll.toFixed(1)}x over all runs, ${ratioSlow.toFixed(1)}x with the slow leaf ` +
    `preferred (target >= 10x: ${met(ratioAll >= 10)} / ${met(ratioSlow >= 10)})`,
);
const ratio999All = offAll.p999 / onAll.p999;
const ratio999Slow = offSlow.p999 / onSlow.p999;
console.log(
  `p99.9(off) / p99.9(on): ${ratio999All.toFixed(1)}x over all runs, ${ratio999Slow.toFixed(1)}x with a slow ` +
    `leaf preferred (target >= 5x: ${met(ratio999All >= 5)} / ${met(ratio999Slow >= 5)})`,
);
const extraMax = Math.max(onAll.extraShare, onSlow.extraShare);
console.log(
  `extra requests with hedging: ${pct(onAll.extraShare)} over all runs, ${pct(onSlow.extraShare)} with a slow ` +
    `leaf preferred (target <= 5%: ${met(extraMax <= 0.05)})`,
);

const written = writeResults(scenario, {
  peers: { gravity },
  parameters: {
    requests,
    warmup,
    concurrency,
    rounds,
    keys: keyCount,
    valueBytes,
    seed,
    replicas: REPLICAS,
    slowLeaves: slowLabel,
    injectLatency: inject,
    leaves: "dist/gravity leaf --memory 64mb --threads 1",
    router: `dist/gravity router, one replicated pool of the 3 leaves, connections ${connections}`,
    modes: { off: "reads: one", on: `reads: hedged, hedge: { delayMs: ${hedgeDelay}, budget: ${budget} }` },
    client: "src/client, one connection per in-flight get, no pipelining; latency = call to reply",
    keySequence: "uniform over the keys, sfc32 (bench/workloads.ts Rng) from the seed; the same in every run",
    preferredReplica: `routers restarted until ${PROBE_GETS} probe gets all reach the wanted leaf`,
  },
  ratios: {
    p99OffOverOnAllRuns: ratioAll,
    p99OffOverOnSlowPreferred: ratioSlow,
    p999OffOverOnAllRuns: ratio999All,
    p999OffOverOnSlowPreferred: ratio999Slow,
  },
  summaries,
  runs,
  histograms: {
    note: `latency in µs: [upper edge, count], buckets 2^(1/${BUCKETS_PER_DOUBLING}) wide`,
    off: histogram(concatSamples(samples.off)),
    on: histogram(concatSamples(samples.on)),
  },
});
console.log(`\nwrote ${written}`);

const points: LinePoint[] = [];
const series = (s: ModeSummary) =>
  `hedging ${s.mode}, ${s.subset === "all runs" ? "all runs" : "slow leaf preferred"}`;
const at: Record<(typeof PERCENTILES)[number], keyof Latencies> = {
  50: "p50",
  90: "p90",
  99: "p99",
  99.9: "p999",
};
for (const s of summaries) for (const p of PERCENTILES) points.push({ series: series(s), x: p, y: s[at[p]] });
const chart = join(REPO_ROOT, "bench", "charts", `${scenario}.svg`);
await writeChart(
  chart,
  lineChartSpec({
    title: `Get latency through the router, ${slowLeaves === 1 ? "one slow replica" : `${slowLeaves} slow replicas`} of 3`,
    subtitle:
      `${slowLabel} --inject-latency ${inject}; hedge delay ${hedgeDelay}, budget ${budget}; ` +
      `${connections} connections per leaf; ${concurrency} gets in flight; ` +
      `${rounds * REPLICAS} runs per mode, a slow leaf preferred in ${slowLeaves} of 3`,
    xTitle: "percentile",
    yTitle: "latency (ms, log scale)",
    points,
    yScale: "log",
  }),
);
console.log(`wrote ${chart}`);

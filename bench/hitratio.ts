// Hit ratio of the store's eviction policies beside LRU, ristretto and Belady's offline optimum.
//
//   npm run bench:hitratio [-- --policies lru,tinylfu --requests 5000000 --seed 1]
//   npm run bench:hitratio -- --trace FILE      (a trace of your own: one key per line)
//   npm run bench:hitratio -- --binary PATH     (an already built hitratio_bench; no build)
//   npm run bench:hitratio -- --arc-dir ""      (without the ARC traces)
//   npm run bench:hitratio -- --ristretto false (without ristretto)
//
// Builds native/bench/hitratio.cc (target hitratio_bench, Release, in build/bench-release) and the
// ristretto replayer bench/ristretto/main.go (build/ristretto-replay: Go against Debian's
// golang-github-dgraph-io-ristretto-dev, GOPATH mode, offline), generates the standard traces into
// bench/results/traces/ (reused while their parameters match), and replays each trace through the
// real Store (one shard, look-aside: get, on a miss set) and through ristretto (synchronous sets,
// cost 1 per item) for capacities of 1%, 5% and 10% of the trace's distinct keys. Prints a table
// with the targets and writes bench/results/hitratio.json and bench/charts/hitratio.svg. Store hit
// ratios are deterministic for a given seed; ristretto's vary a little from run to run (its reads
// reach its policy through lossy buffers). A policy the store does not know is reported as such,
// never silently replaced by LRU.
//
// ARC traces (--arc-dir, default ../shared/traces/: P2.lis.zst and P12.lis.zst, read through
// `zstd -dc`; each line `start count ...` is count lookups of consecutive blocks). Results obtained
// with them cite: Nimrod Megiddo and Dharmendra S. Modha, "ARC: A Self-Tuning, Low Overhead
// Replacement Cache," USENIX FAST 03, pp. 115-130, 2003.
//
// Standard traces (requests = --requests, 5M by default; ~2 minutes on 2 cores with lru+tinylfu):
//   zipf-0.99, zipf-0.7   Zipf over 1M keys
//   loop+scan             a hot Zipf(0.99) set of 100k keys; 4 episodes of a hot-only run (20%)
//                         then a one-time scan of fresh keys (64%) with a hot request after every
//                         4 scan keys (16%);
//                         "loop+scan hot alone" is the same hot requests without the scans, run
//                         at the same capacities in items
//   shifting              Zipf(0.99) over 1M keys, the popularity order reshuffled every 500k
//
// Targets: tinylfu >= max(lru, ristretto) - 0.5 points on every trace and capacity; on the ARC
// traces tinylfu within 10 points of belady wherever ristretto is; on zipf-0.99 tinylfu within 5
// points of belady; on loop+scan tinylfu's hit ratio on the hot requests >= 90% of its hit ratio
// on the hot set alone.

import { existsSync, readdirSync, unlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { parseFlags } from "../src/cli/args.ts";
import { type Bar, barChartSpec, writeChart } from "./charts.ts";
import { writeResults } from "./report.ts";
import { buildRistretto, ristrettoBinary } from "./ristretto/build.ts";
import {
  type LoopScanSpec,
  loopScanTrace,
  type ShiftingSpec,
  shiftingTrace,
  writeTrace,
  type ZipfSpec,
  zipfTrace,
} from "./workloads.ts";

const REPO_ROOT = join(import.meta.dir, "..");
const BUILD_DIR = join(REPO_ROOT, "build", "bench-release");
const BUILT_BINARY = join(BUILD_DIR, "hitratio_bench");
const RISTRETTO_BINARY = ristrettoBinary("replay");
const ARC_TRACES = ["P2", "P12"];
const TRACE_DIR = join(REPO_ROOT, "bench", "results", "traces");
const RESULTS = join(REPO_ROOT, "bench", "results", "hitratio.json");
const CHART = join(REPO_ROOT, "bench", "charts", "hitratio.svg");
const CAPACITIES = ["1%", "5%", "10%"];
const NO_TRACE = "generated";
const GENERATED = /^(zipf-0\.99|zipf-0\.7|loop-scan|loop-scan-hot|shifting)-[0-9a-z]+\.txt$/;

const flags = parseFlags(process.argv.slice(2), [
  { name: "binary", kind: "string", default: BUILT_BINARY, help: "a hitratio_bench to use unbuilt" },
  { name: "trace", kind: "string", default: NO_TRACE, help: "a trace file (one key per line) instead" },
  { name: "policies", kind: "string", default: "lru,tinylfu", help: "store policies beside belady" },
  { name: "requests", kind: "integer", default: 5_000_000, min: 10_000, max: 100_000_000, help: "per trace" },
  { name: "seed", kind: "integer", default: 1, min: 0, max: 2 ** 31, help: "base seed of the traces" },
  {
    name: "arc-dir",
    kind: "string",
    default: join(REPO_ROOT, "..", "shared", "traces"),
    help: 'the ARC traces (P2.lis.zst, P12.lis.zst); "" for none',
  },
  { name: "ristretto", kind: "boolean", default: true, help: "replay through ristretto too" },
  { name: "value-size", kind: "integer", default: 16, min: 0, max: 1 << 20, help: "bytes per cached value" },
]);
const withRistretto = flags.ristretto as boolean;
const arcDir = flags["arc-dir"] as string;
const storePolicyNames = (flags.policies as string)
  .split(",")
  .filter((p) => p !== "" && p !== "belady" && p !== "ristretto");
const policies = [...storePolicyNames, ...(withRistretto ? ["ristretto"] : []), "belady"];
const requests = flags.requests as number;
const seed = flags.seed as number;
const valueSize = flags["value-size"] as number;
const BINARY = flags.binary as string;

type Spec = ZipfSpec | LoopScanSpec | ShiftingSpec;

interface TraceRun {
  name: string;
  file: string;
  format: "keys" | "arc";
  spec: Spec | null; // null for a user trace
  capacities: string[]; // "1%" or a number of items
  capacityLabels?: string[]; // shown instead of capacities (the hot-alone trace)
  scanRequests?: number;
}

interface Result {
  trace: string;
  policy: string;
  capacity: string;
  capacity_items: number;
  requests: number;
  distinct: number;
  hits?: number;
  hit_ratio?: number;
  items_at_end?: number;
  seconds?: number;
  error?: string;
}

function run(cmd: string[], what: string): string {
  const proc = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", cwd: REPO_ROOT });
  if (proc.exitCode !== 0) {
    throw new Error(
      `${what} failed (exit ${proc.exitCode}):\n${proc.stdout.toString()}${proc.stderr.toString()}`,
    );
  }
  return proc.stdout.toString();
}

async function runAsync(cmd: string[], what: string): Promise<string> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", cwd: REPO_ROOT });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`${what} failed (exit ${code}):\n${out}${err}`);
  return out;
}

function buildBinary(): void {
  run(
    ["cmake", "-S", "native", "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release", "-DGRAVITY_BENCH=ON"],
    "cmake configure",
  );
  // Incremental: picks up store changes (a new policy) without a full rebuild.
  run(["cmake", "--build", BUILD_DIR, "--target", "hitratio_bench", "-j", "2"], "cmake build");
}

/** The standard traces, generated unless a file with the same parameters exists. */
function standardTraces(): { runs: TraceRun[]; hotAlone: TraceRun } {
  const zipf = (s: number, offset: number): ZipfSpec => ({
    kind: "zipf",
    keys: 1_000_000,
    s,
    requests,
    seed: seed + offset,
  });
  const episodes = 4;
  const episode = Math.floor(requests / episodes);
  const loopScan: LoopScanSpec = {
    kind: "loop+scan",
    hotKeys: 100_000,
    s: 0.99,
    episodes,
    hotRun: Math.floor(episode * 0.2),
    scanLength: Math.floor(episode * 0.64),
    scanBurst: 4,
    seed: seed + 2,
  };
  const shifting: ShiftingSpec = {
    kind: "shifting",
    keys: 1_000_000,
    s: 0.99,
    requests,
    phaseLength: 500_000,
    seed: seed + 3,
  };
  const fileFor = (name: string, spec: Spec) =>
    join(TRACE_DIR, `${name.replace(/\+/g, "-")}-${Bun.hash(JSON.stringify(spec)).toString(36)}.txt`);
  const generate = (name: string, spec: Spec, make: () => Uint32Array): string => {
    const file = fileFor(name, spec);
    if (!existsSync(file)) {
      const started = performance.now();
      writeTrace(file, make());
      console.log(`  generated ${basename(file)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
    return file;
  };

  const z99 = zipf(0.99, 0);
  const z70 = zipf(0.7, 1);
  const runs: TraceRun[] = [
    {
      name: "zipf-0.99",
      spec: z99,
      file: generate("zipf-0.99", z99, () => zipfTrace(z99)),
      format: "keys",
      capacities: CAPACITIES,
    },
    {
      name: "zipf-0.7",
      spec: z70,
      file: generate("zipf-0.7", z70, () => zipfTrace(z70)),
      format: "keys",
      capacities: CAPACITIES,
    },
  ];
  const loopFile = fileFor("loop+scan", loopScan);
  const hotFile = fileFor("loop+scan-hot", loopScan);
  if (!existsSync(loopFile) || !existsSync(hotFile)) {
    const started = performance.now();
    const generated = loopScanTrace(loopScan);
    writeTrace(loopFile, generated.trace);
    writeTrace(hotFile, generated.hotOnly);
    console.log(`  generated ${basename(loopFile)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  }
  runs.push({
    name: "loop+scan",
    spec: loopScan,
    file: loopFile,
    format: "keys",
    capacities: CAPACITIES,
    scanRequests: loopScan.episodes * loopScan.scanLength,
  });
  runs.push({
    name: "shifting",
    spec: shifting,
    file: generate("shifting", shifting, () => shiftingTrace(shifting)),
    format: "keys",
    capacities: CAPACITIES,
  });
  // Generated traces of other parameters (earlier runs) are deleted; other files are left alone.
  const current = new Set([...runs.map((r) => basename(r.file)), basename(hotFile)]);
  for (const file of readdirSync(TRACE_DIR)) {
    if (GENERATED.test(file) && !current.has(file)) unlinkSync(join(TRACE_DIR, file));
  }
  // Capacities filled in from the loop+scan results (the same number of items).
  const hotAlone: TraceRun = {
    name: "loop+scan hot alone",
    spec: loopScan,
    file: hotFile,
    format: "keys",
    capacities: [],
  };
  return { runs, hotAlone };
}

/** The ARC traces in arcDir, each checked to exist: a missing one is an error, not a skip. */
function arcTraces(): TraceRun[] {
  if (arcDir === "") return [];
  return ARC_TRACES.map((name) => {
    const file = join(arcDir, `${name}.lis.zst`);
    if (!existsSync(file)) throw new Error(`no ARC trace at ${file} (pass --arc-dir "" to run without)`);
    return { name, file, format: "arc", spec: null, capacities: CAPACITIES };
  });
}

const parseLines = (out: string): Result[] =>
  out
    .trim()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Result);

/** The store's policies and Belady through hitratio_bench, and ristretto beside them (in parallel). */
async function replay(trace: TraceRun, peers = true): Promise<Result[]> {
  const started = performance.now();
  const common = ["--trace", trace.file, "--format", trace.format, "--name", trace.name];
  const capacities = ["--capacities", trace.capacities.join(",")];
  const store = runAsync(
    [
      BINARY,
      ...common,
      ...capacities,
      "--policies",
      policies.filter((p) => p !== "ristretto").join(","),
      "--value-size",
      String(valueSize),
    ],
    `hitratio_bench on ${trace.name}`,
  );
  const ristretto =
    peers && withRistretto
      ? runAsync([RISTRETTO_BINARY, ...common, ...capacities], `ristretto-replay on ${trace.name}`)
      : Promise.resolve("");
  const [storeOut, ristrettoOut] = await Promise.all([store, ristretto]);
  const results = [...parseLines(storeOut), ...parseLines(ristrettoOut)];
  console.log(`  replayed ${trace.name} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  return results;
}

const pct = (ratio: number | undefined): string => (ratio === undefined ? "n/a" : (ratio * 100).toFixed(2));

const totalStarted = performance.now();
if (BINARY === BUILT_BINARY) {
  console.log("building hitratio_bench (Release)...");
  buildBinary();
}
if (withRistretto) {
  console.log("building ristretto-replay (Go, Debian's ristretto)...");
  buildRistretto("replay", "pass --ristretto false");
}

let runs: TraceRun[];
let hotAlone: TraceRun | null = null;
if (flags.trace !== NO_TRACE) {
  runs = [
    {
      name: basename(flags.trace as string),
      file: flags.trace as string,
      format: "keys",
      spec: null,
      capacities: CAPACITIES,
    },
  ];
} else {
  console.log(`traces in ${TRACE_DIR}:`);
  ({ runs, hotAlone } = standardTraces());
  runs.push(...arcTraces());
}

const results: Result[] = [];
for (const trace of runs) results.push(...(await replay(trace)));
const loopRun = runs.find((r) => r.name === "loop+scan");
if (hotAlone !== null && loopRun !== undefined) {
  const byCapacity = new Map(
    results.filter((r) => r.trace === "loop+scan" && r.policy === "belady").map((r) => [r.capacity, r]),
  );
  hotAlone.capacities = CAPACITIES.map((c) => String(byCapacity.get(c)?.capacity_items));
  hotAlone.capacityLabels = CAPACITIES;
  results.push(
    ...(await replay(hotAlone, false)).map((r) => {
      const i = hotAlone.capacities.indexOf(r.capacity);
      return { ...r, capacity: CAPACITIES[i] ?? r.capacity };
    }),
  );
  runs.push(hotAlone);
}

const find = (trace: string, capacity: string, policy: string): Result | undefined =>
  results.find((r) => r.trace === trace && r.capacity === capacity && r.policy === policy);

interface Check {
  trace: string;
  capacity: string;
  target: string;
  value: string;
  pass: boolean | null; // null: not measurable (policy missing)
}
const checks: Check[] = [];
const storePolicies = policies.filter((p) => p !== "belady" && p !== "ristretto");

console.log(
  `\nhit ratio (%), look-aside through the Store (1 shard, ${valueSize}-byte values); belady = exact offline optimum`,
);
console.log(
  `\n| trace | distinct keys | capacity | items | ${policies.join(" | ")} | tinylfu - max(lru, ristretto) >= -0.5 | trace target |`,
);
console.log(`|---|---|---|---|${policies.map(() => "---|").join("")}---|---|`);
for (const trace of runs) {
  for (const capacity of CAPACITIES) {
    const row = policies.map((p) => find(trace.name, capacity, p));
    const first = row.find((r) => r !== undefined);
    if (first === undefined) continue;
    const tinylfu = find(trace.name, capacity, "tinylfu")?.hit_ratio;
    const lru = find(trace.name, capacity, "lru")?.hit_ratio;
    const ristretto = find(trace.name, capacity, "ristretto")?.hit_ratio;
    const opt = find(trace.name, capacity, "belady")?.hit_ratio;
    let geLru = "n/a";
    if (tinylfu !== undefined && lru !== undefined && trace.name !== "loop+scan hot alone") {
      const best = Math.max(lru, ristretto ?? 0);
      const margin = (tinylfu - best) * 100;
      const pass = margin >= -0.5;
      geLru = `${margin >= 0 ? "+" : ""}${margin.toFixed(2)} ${pass ? "ok" : "FAIL"}`;
      checks.push({
        trace: trace.name,
        capacity,
        target: "tinylfu >= max(lru, ristretto) - 0.5 pp",
        value: margin.toFixed(2),
        pass,
      });
    }
    let target = "";
    if (ARC_TRACES.includes(trace.name) && tinylfu !== undefined && opt !== undefined) {
      // Within 10 points of belady wherever ristretto is.
      const gap = (opt - tinylfu) * 100;
      const ristrettoGap = ristretto === undefined ? undefined : (opt - ristretto) * 100;
      const applies = ristrettoGap === undefined || ristrettoGap <= 10;
      const pass = !applies || gap <= 10;
      target = `belady - tinylfu = ${gap.toFixed(2)} pp${
        ristrettoGap === undefined ? "" : ` (ristretto ${ristrettoGap.toFixed(2)})`
      }${applies ? ` (<= 10) ${pass ? "ok" : "FAIL"}` : ", ristretto not within 10 either"}`;
      checks.push({
        trace: trace.name,
        capacity,
        target: "belady - tinylfu <= 10 pp where ristretto is",
        value: gap.toFixed(2),
        pass,
      });
    }
    if (trace.name === "zipf-0.99" && opt !== undefined) {
      if (tinylfu === undefined) {
        target = "n/a (no tinylfu)";
        checks.push({
          trace: trace.name,
          capacity,
          target: "belady - tinylfu <= 5 pp",
          value: "n/a",
          pass: null,
        });
      } else {
        const gap = (opt - tinylfu) * 100;
        const pass = gap <= 5;
        target = `belady - tinylfu = ${gap.toFixed(2)} pp (<= 5) ${pass ? "ok" : "FAIL"}`;
        checks.push({
          trace: trace.name,
          capacity,
          target: "belady - tinylfu <= 5 pp",
          value: gap.toFixed(2),
          pass,
        });
      }
    } else if (trace.name === "loop+scan" && trace.scanRequests !== undefined) {
      const hotRequests = first.requests - trace.scanRequests;
      const parts: string[] = [];
      for (const policy of storePolicies) {
        const mixed = find("loop+scan", capacity, policy)?.hits;
        const alone = find("loop+scan hot alone", capacity, policy)?.hit_ratio;
        if (mixed === undefined || alone === undefined) {
          parts.push(`${policy} n/a`);
          if (policy === "tinylfu") {
            checks.push({ trace: trace.name, capacity, target: "hot kept >= 90%", value: "n/a", pass: null });
          }
          continue;
        }
        const kept = mixed / hotRequests / alone;
        parts.push(`${policy} keeps ${(kept * 100).toFixed(1)}%`);
        if (policy === "tinylfu") {
          checks.push({
            trace: trace.name,
            capacity,
            target: "hot kept >= 90%",
            value: (kept * 100).toFixed(1),
            pass: kept >= 0.9,
          });
        }
      }
      target = `hot hit ratio vs hot alone: ${parts.join(", ")} (tinylfu >= 90%)`;
    }
    const items =
      trace.capacityLabels !== undefined ? `${first.capacity_items} (as loop+scan)` : first.capacity_items;
    const cells = row.map((r) => (r?.error !== undefined ? r.error : pct(r?.hit_ratio)));
    console.log(
      `| ${trace.name} | ${first.distinct} | ${capacity} | ${items} | ${cells.join(" | ")} | ${geLru} | ${target} |`,
    );
  }
}

const unknown = [...new Set(results.filter((r) => r.error !== undefined).map((r) => r.policy))];
if (unknown.length > 0) console.log(`\nnot measured: the store has no policy ${unknown.join(", ")}`);
const failed = checks.filter((c) => c.pass === false);
const open = checks.filter((c) => c.pass === null);
console.log(
  `targets: ${checks.length - failed.length - open.length} met, ${failed.length} failed, ${open.length} not measurable`,
);

writeResults("hitratio", {
  parameters: {
    policies,
    capacities: CAPACITIES,
    valueSize,
    requests,
    seed,
    shards: 1,
    mode: "look-aside: find -> touch on hit, allocate + link on miss",
    ristretto: withRistretto
      ? "dgraph-io/ristretto (Debian package), look-aside Get then Set(cost 1) on a miss, waiting for each Set to apply; MaxCost = capacity, NumCounters = 10 x capacity, BufferItems 64"
      : "not run",
    arcTraces:
      arcDir === ""
        ? "not run"
        : "Megiddo and Modha, ARC: A Self-Tuning, Low Overhead Replacement Cache, FAST 03",
    belady: "exact optimum for equal-size items with bypass (farthest next use, requested key included)",
    traces: runs.map((r) => ({
      name: r.name,
      file: basename(r.file),
      format: r.format,
      spec: r.spec,
      scanRequests: r.scanRequests,
    })),
  },
  checks,
  results,
  seconds: (performance.now() - totalStarted) / 1000,
});
// Grouped bars: one group per trace and capacity, one bar per policy (belady last).
const bars: Bar[] = results
  .filter((r) => r.hit_ratio !== undefined)
  .map((r) => ({
    category: `${r.trace} ${r.capacity}`,
    series: r.policy,
    value: (r.hit_ratio as number) * 100,
  }));
await writeChart(
  CHART,
  barChartSpec({
    title: "Hit ratio by eviction policy",
    subtitle: `look-aside through the Store, ${requests} requests per trace, seed ${seed}; belady = offline optimum`,
    xTitle: "trace, capacity (% of distinct keys)",
    yTitle: "hit ratio (%)",
    bars,
    seriesOrder: policies,
    categoryOrder: runs.flatMap((r) => CAPACITIES.map((c) => `${r.name} ${c}`)),
    labelAngle: -35,
    width: 960,
  }),
);
console.log(
  `\nwrote ${RESULTS} and ${CHART} (${((performance.now() - totalStarted) / 1000).toFixed(0)} s in all)`,
);

// Hit ratio over the network at equal memory: `gravity leaf --memory M` beside `memcached -m M`,
// driven by the same look-aside client replaying the same traces with realistic value sizes.
//
//   npm run bench:hitratio-network [-- --memory-mb 16 --requests 2000000 --traces zipf-0.99,P2,P12]
//
//   trace ──> client: get key; on a miss, set key (value of the key's size) ──> gravity leaf -m M
//                                                                          └─> memcached -m M
//
// Unlike bench:hitratio (the store in-process, equal-size items, capacity in items), this counts
// what a user sees: the real protocol path, shards, per-item overhead and value sizes from 100 to
// 1,000 bytes (each key's size fixed by a hash of the key, so both servers store the same bytes).
// Requests go in windows of --window gets at once (then the sets for their misses), the same on
// both sides, so a key repeated inside one window misses on both. At the end each server's
// curr_items, bytes and limit_maxbytes are read: items held per MiB is the bytes-per-item side of
// the comparison. Writes bench/results/hitratio-network.json and bench/charts/hitratio-network.svg.
//
// Traces: the synthetic ones of bench/workloads.ts, and the ARC traces P2 and P12 from --arc-dir
// (read through `zstd -dc`, `start count` lines expanded into block keys), truncated to
// --requests lookups. Results obtained with the ARC traces must cite Nimrod Megiddo and
// Dharmendra S. Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache," USENIX FAST 03.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseFlags } from "../src/cli/args.ts";
import { Client } from "../src/client/index.ts";
import { ServerError } from "../src/errors.ts";
import {
  COMPILED_GRAVITY,
  HOST,
  MEMCACHED,
  REPO_ROOT,
  requireBinary,
  type ServerProcess,
  startLeaf,
  startMemcached,
  stopAll,
} from "../test/helpers/servers.ts";
import { type Bar, barChartSpec, writeChart } from "./charts.ts";
import { firstLine, machine, stopOnSignal, writeResults } from "./report.ts";
import { loopScanTrace, shiftingTrace, zipfTrace } from "./workloads.ts";

const flags = parseFlags(process.argv.slice(2), [
  { name: "memory-mb", kind: "integer", default: 16, min: 2, max: 4096, help: "memory of each server, MiB" },
  {
    name: "requests",
    kind: "integer",
    default: 2_000_000,
    min: 1000,
    max: 100_000_000,
    help: "lookups per trace (traces are cut there)",
  },
  { name: "traces", kind: "string", default: "zipf-0.99,loop+scan,shifting,P2,P12", help: "which traces" },
  { name: "window", kind: "integer", default: 32, min: 1, max: 4096, help: "gets in flight at once" },
  { name: "arc-dir", kind: "string", default: join(REPO_ROOT, "..", "shared", "traces"), help: "ARC traces" },
  {
    name: "seed",
    kind: "integer",
    default: 1,
    min: 0,
    max: 2 ** 32 - 1,
    help: "seed of the synthetic traces",
  },
]);
const memoryMb = flags["memory-mb"] as number;
const requests = flags.requests as number;
const window = flags.window as number;
const arcDir = flags["arc-dir"] as string;
const seed = flags.seed as number;
const wanted = (flags.traces as string).split(",").filter(Boolean);

const MIN_VALUE = 100;
const MAX_VALUE = 1000;

// A key's value size: a hash of the key spread over [MIN_VALUE, MAX_VALUE].
function valueSize(key: string): number {
  let hash = 2166136261;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 16777619);
  return MIN_VALUE + ((hash >>> 0) % (MAX_VALUE - MIN_VALUE + 1));
}
const VALUE = new Uint8Array(MAX_VALUE).fill(0x61);

/** The first `count` keys of a trace, as strings. */
async function traceKeys(name: string): Promise<string[]> {
  const synthetic = (trace: Uint32Array) => Array.from(trace.subarray(0, requests), (key) => `k${key}`);
  switch (name) {
    case "zipf-0.99":
      return synthetic(zipfTrace({ kind: "zipf", keys: 1_000_000, s: 0.99, requests, seed }));
    case "loop+scan": {
      // bench:hitratio's loop+scan: 4 episodes of a hot run (20%) then a one-time scan (64%).
      const episode = Math.floor(requests / 4);
      const spec = {
        kind: "loop+scan",
        hotKeys: 100_000,
        s: 0.99,
        episodes: 4,
        hotRun: Math.floor(episode * 0.2),
        scanLength: Math.floor(episode * 0.64),
        scanBurst: 4,
        seed: seed + 2,
      } as const;
      return synthetic(loopScanTrace(spec).trace);
    }
    case "shifting":
      return synthetic(
        shiftingTrace({
          kind: "shifting",
          keys: 1_000_000,
          s: 0.99,
          requests,
          phaseLength: 500_000,
          seed: seed + 3,
        }),
      );
    default:
      return await arcKeys(name);
  }
}

// An ARC trace's block keys: each `start count ...` line is `count` lookups of consecutive blocks.
async function arcKeys(name: string): Promise<string[]> {
  const file = join(arcDir, `${name}.lis.zst`);
  if (!existsSync(file))
    throw new Error(`no ARC trace at ${file}: is --arc-dir right? (--traces without it)`);
  const proc = Bun.spawn(["zstd", "-dc", file], { stdout: "pipe", stderr: "inherit" });
  const keys: string[] = [];
  const decoder = new TextDecoder();
  let rest = "";
  outer: for await (const chunk of proc.stdout) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      const [start, count] = line.trim().split(/\s+/).map(Number);
      if (start === undefined || count === undefined || Number.isNaN(start) || Number.isNaN(count)) continue;
      for (let i = 0; i < count; i++) {
        keys.push(`b${start + i}`);
        if (keys.length >= requests) break outer;
      }
    }
  }
  proc.kill();
  return keys;
}

interface SideResult {
  server: string;
  hits: number;
  lookups: number;
  hitRatio: number;
  currItems: number;
  bytes: number;
  limitMaxbytes: number;
  itemsPerMiB: number;
  /** Sets the server refused with SERVER_ERROR out of memory (a look-aside client goes on). */
  refusedSets: number;
  seconds: number;
}

async function replay(server: ServerProcess, label: string, keys: readonly string[]): Promise<SideResult> {
  const client = new Client({ servers: [`${HOST}:${server.port}`], timeoutMs: 10_000 });
  const started = performance.now();
  let hits = 0;
  let refusedSets = 0;
  // memcached refuses a set when no page can be freed for its class ("SERVER_ERROR out of memory
  // storing object"); a look-aside client carries on without caching the value.
  const refused = (error: unknown) => {
    if (!(error instanceof ServerError && /out of memory/.test(error.text))) throw error;
    refusedSets++;
  };
  try {
    for (let at = 0; at < keys.length; at += window) {
      const slice = keys.slice(at, at + window);
      const got = await Promise.all(slice.map((key) => client.get(key)));
      const misses: Promise<void>[] = [];
      got.forEach((value, i) => {
        if (value !== null) hits++;
        else {
          const key = slice[i] as string;
          misses.push(client.set(key, VALUE.subarray(0, valueSize(key))).catch(refused));
        }
      });
      await Promise.all(misses);
    }
    const stats = [...(await client.stats()).values()][0] ?? new Map<string, string>();
    const number = (name: string) => Number(stats.get(name) ?? Number.NaN);
    const currItems = number("curr_items");
    return {
      server: label,
      hits,
      lookups: keys.length,
      hitRatio: hits / keys.length,
      currItems,
      bytes: number("bytes"),
      limitMaxbytes: number("limit_maxbytes"),
      itemsPerMiB: currItems / memoryMb,
      refusedSets,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await client.close();
  }
}

stopOnSignal(() => [stopAll()]);
requireBinary(COMPILED_GRAVITY);
requireBinary(MEMCACHED);
const gravityVersion = firstLine([COMPILED_GRAVITY, "--version"]);
const memcachedVersion = firstLine([MEMCACHED, "-V"]);
console.log(
  `hit ratio over the network: gravity leaf --memory ${memoryMb}mb vs memcached -m ${memoryMb}; values ` +
    `${MIN_VALUE}-${MAX_VALUE} bytes; ${requests} lookups per trace, ${window} gets at a time; ${gravityVersion}, ${memcachedVersion}`,
);

const results: { trace: string; sides: SideResult[] }[] = [];
try {
  for (const trace of wanted) {
    const keys = await traceKeys(trace);
    const sides: SideResult[] = [];
    // A fresh pair of servers per trace, gravity first then memcached (the order does not matter:
    // each side replays alone).
    for (const side of ["gravity", "memcached"] as const) {
      const server =
        side === "gravity"
          ? await startLeaf(["--port", "0", "--memory", `${memoryMb}mb`], { binary: "compiled" })
          : await startMemcached({ memoryMb });
      try {
        const result = await replay(server, side, keys);
        sides.push(result);
        console.log(
          `  ${trace.padEnd(10)} ${side.padEnd(9)} hit ratio ${(result.hitRatio * 100).toFixed(2)}%  ` +
            `items ${result.currItems} (${result.itemsPerMiB.toFixed(0)} per MiB)  refused sets ${result.refusedSets}  ${result.seconds.toFixed(1)} s`,
        );
      } finally {
        await server.stop();
      }
    }
    results.push({ trace, sides });
  }
} finally {
  await stopAll();
}

console.log(
  "\n| trace | gravity hit ratio | memcached hit ratio | difference (points) | gravity items/MiB | memcached items/MiB |",
);
console.log("|---|---|---|---|---|---|");
for (const { trace, sides } of results) {
  const [gravity, memcached] = sides as [SideResult, SideResult];
  console.log(
    `| ${trace} | ${(gravity.hitRatio * 100).toFixed(2)}% | ${(memcached.hitRatio * 100).toFixed(2)}% | ` +
      `${((gravity.hitRatio - memcached.hitRatio) * 100).toFixed(2)} | ${gravity.itemsPerMiB.toFixed(0)} | ${memcached.itemsPerMiB.toFixed(0)} |`,
  );
}
console.log(
  "\nTarget: gravity >= memcached + 3 points on each trace, at bytes per item <= memcached's. ARC traces: Megiddo and Modha, FAST 03.",
);

const written = writeResults("hitratio-network", {
  peers: { gravity: gravityVersion, memcached: memcachedVersion },
  parameters: {
    memoryMb,
    requests,
    window,
    valueBytes: [MIN_VALUE, MAX_VALUE],
    traces: wanted,
    seed,
    arcDir,
  },
  citation:
    'Nimrod Megiddo and Dharmendra S. Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache," USENIX FAST 03',
  machineSummary: machine(),
  results,
});
console.log(`wrote ${written}`);
const bars: Bar[] = results.flatMap(({ trace, sides }) =>
  sides.map((side) => ({ category: trace, series: side.server, value: side.hitRatio * 100 })),
);
const chart = join(REPO_ROOT, "bench", "charts", "hitratio-network.svg");
await writeChart(
  chart,
  barChartSpec({
    title: `Hit ratio over the network at ${memoryMb} MiB`,
    subtitle: `look-aside client, values ${MIN_VALUE}-${MAX_VALUE} bytes, ${requests} lookups per trace`,
    xTitle: "trace",
    yTitle: "hit ratio (%)",
    bars,
  }),
);
console.log(`wrote ${chart}`);

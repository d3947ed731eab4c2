// What every benchmark script shares: medians and percentiles, the machine and commit a result came from, and
// writing bench/results/<suite>.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../test/helpers/servers.ts";

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Nearest-rank percentile (p in 0..100) of an ascending, non-empty array. */
export function percentile(sorted: Float64Array, p: number): number {
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** Percentiles, maximum and mean of a run's latencies (any unit), which it leaves unsorted. */
export interface Latencies {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Several runs' samples as one array, in order. */
export function concatSamples(arrays: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    all.set(a, at);
    at += a.length;
  }
  return all;
}

export function summariseLatencies(latencies: Float64Array): Latencies {
  const sorted = Float64Array.from(latencies).sort();
  let sum = 0;
  for (const value of latencies) sum += value;
  return {
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted[sorted.length - 1] as number,
    mean: sum / latencies.length,
  };
}

/**
 * Ctrl-C or SIGTERM: runs `stop` (the helpers' stopAll...), then exits 130 or 143; past the
 * helpers' deadlines process.exit runs their exit hooks, which SIGKILL whatever is left.
 */
export function stopOnSignal(stop: () => Promise<unknown>[]): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      void Promise.allSettled(stop()).then(() => process.exit(128 + (signal === "SIGINT" ? 2 : 15)));
    });
  }
}

/** The first line a command prints (stdout, then stderr): versions of peers and tools. */
export function firstLine(cmd: string[]): string {
  const proc = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", cwd: REPO_ROOT });
  return `${proc.stdout.toString()}${proc.stderr.toString()}`.trim().split("\n")[0] ?? "";
}

/** The machine a result was measured on. */
export function machine(): Record<string, string | number> {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryBytes: totalmem(),
    kernel: release(),
    compiler: firstLine(["c++", "--version"]),
  };
}

/** The commit measured, and whether the work tree had uncommitted changes. */
export function commit(): { commit: string; dirty: boolean } {
  return {
    commit: firstLine(["git", "rev-parse", "HEAD"]),
    dirty: firstLine(["git", "status", "--porcelain"]) !== "",
  };
}

/** Writes bench/results/<suite>.json with the commit and machine beside `data`; returns the path. */
export function writeResults(suite: string, data: Record<string, unknown>): string {
  const dir = join(REPO_ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${suite}.json`);
  writeFileSync(path, `${JSON.stringify({ ...commit(), machine: machine(), ...data }, null, 2)}\n`);
  return path;
}

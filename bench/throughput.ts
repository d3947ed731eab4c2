// Native store throughput: million ops/s against threads for the Read / Write / Mixed (Zipfian)
// workloads, from C++ threads (native/bench/throughput.cc) over a Zipf key trace.
//
//   npm run bench:throughput [-- --seconds 1 --repeats 3 --policies lru,tinylfu]
//
// Prints the median of the repeats per (workload, policy, threads) beside the issue's targets at
// 2 threads, and writes bench/results/throughput.json with every sample.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { FlagKind, parseFlags } from "../src/cli/args.ts";
import { REPO_ROOT } from "../test/helpers/servers.ts";
import { median, writeResults } from "./report.ts";
import { writeTrace, zipfTrace } from "./workloads.ts";

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: FlagKind.Integer, default: 1, min: 1, max: 60, help: "length of one run" },
  { name: "repeats", kind: FlagKind.Integer, default: 3, min: 1, max: 20, help: "runs per point" },
  { name: "policies", kind: FlagKind.String, default: "lru,tinylfu", help: "comma-separated policies" },
  { name: "threads", kind: FlagKind.String, default: "1,2,4,8,16", help: "comma-separated thread counts" },
]);
const seconds = flags.seconds as number;
const repeats = flags.repeats as number;
const policies = (flags.policies as string).split(",");
const threadCounts = (flags.threads as string).split(",").map(Number);
const WORKLOADS = ["read", "write", "mixed"] as const;
/** Targets at 2 threads, natively (million ops/s), from the issue. */
const TARGETS: Record<(typeof WORKLOADS)[number], number> = { read: 12, mixed: 4, write: 2.5 };
const KEYS = 1_000_000;
const REQUESTS = 4_000_000;
const SEED = 7;

const BUILD_DIR = join(REPO_ROOT, "build", "bench-release");
const BINARY = join(BUILD_DIR, "throughput_bench");

function run(cmd: string[], what: string): string {
  const proc = Bun.spawnSync(cmd, { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) {
    throw new Error(
      `${what} failed (exit ${proc.exitCode}): ${proc.stdout.toString()}${proc.stderr.toString()}`,
    );
  }
  return proc.stdout.toString();
}

run(
  ["cmake", "-S", "native", "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release", "-DGRAVITY_BENCH=ON"],
  "cmake configure",
);
run(["cmake", "--build", BUILD_DIR, "--target", "throughput_bench", "-j", "2"], "cmake build");

const traceDir = join(REPO_ROOT, "bench", "results", "traces");
mkdirSync(traceDir, { recursive: true });
const trace = join(traceDir, `throughput-zipf-0.99-${KEYS}-${REQUESTS}-seed${SEED}.txt`);
if (!existsSync(trace))
  writeTrace(trace, zipfTrace({ kind: "zipf", s: 0.99, keys: KEYS, requests: REQUESTS, seed: SEED }));

interface Sample {
  workload: string;
  policy: string;
  threads: number;
  mops: number;
}
const samples: Sample[] = [];
for (const workload of WORKLOADS) {
  for (const policy of policies) {
    for (const threads of threadCounts) {
      for (let r = 0; r < repeats; r++) {
        const out = run(
          [
            BINARY,
            "--trace",
            trace,
            "--workload",
            workload,
            "--threads",
            String(threads),
            "--seconds",
            String(seconds),
            "--policy",
            policy,
          ],
          `throughput_bench ${workload} ${policy} ${threads}`,
        );
        const result = JSON.parse(out.trim()) as { mops: number };
        samples.push({ workload, policy, threads, mops: result.mops });
      }
      const point = samples.filter(
        (s) => s.workload === workload && s.policy === policy && s.threads === threads,
      );
      console.log(
        `  ${workload.padEnd(5)} ${policy.padEnd(7)} ${String(threads).padStart(2)} threads  ${median(point.map((s) => s.mops)).toFixed(2)} M ops/s`,
      );
    }
  }
}

console.log(
  `\nnative store throughput, million ops/s (median of ${repeats} x ${seconds} s), Zipf 0.99 over ${KEYS} keys, 16-byte values\n`,
);
console.log(
  `| workload | policy | ${threadCounts.map((t) => `${t} thr`).join(" | ")} | target at 2 threads |`,
);
console.log(`|---|---|${threadCounts.map(() => "---").join("|")}|---|`);
const rows = [];
for (const workload of WORKLOADS) {
  for (const policy of policies) {
    const byThreads = threadCounts.map((threads) =>
      median(
        samples
          .filter((s) => s.workload === workload && s.policy === policy && s.threads === threads)
          .map((s) => s.mops),
      ),
    );
    const atTwo = byThreads[threadCounts.indexOf(2)];
    const verdict =
      atTwo === undefined ? "n/a" : `${atTwo >= TARGETS[workload] ? "ok" : "FAIL"} (>= ${TARGETS[workload]})`;
    console.log(
      `| ${workload} | ${policy} | ${byThreads.map((m) => m.toFixed(2)).join(" | ")} | ${verdict} |`,
    );
    rows.push({ workload, policy, threads: threadCounts, mops: byThreads });
  }
}

const written = writeResults("throughput", {
  parameters: {
    seconds,
    repeats,
    policies,
    threadCounts,
    keys: KEYS,
    requests: REQUESTS,
    seed: SEED,
    valueBytes: 16,
    zipf: 0.99,
  },
  targetsAtTwoThreads: TARGETS,
  rows,
  samples,
});
console.log(`\nwrote ${written}`);

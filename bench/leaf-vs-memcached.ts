// Leaf vs memcached under memcaslap: same flags, same machine, alternating runs (A B A B ...).
//
//   npm run bench:leaf [-- --seconds 10 --repeats 3]
//
// For each row (gravity --threads 1 vs memcached -t 1, then --threads 2 vs -t 2) it runs memcaslap
// with 1 client thread, 32 concurrent connections, 100-byte values, the default 90% get / 10% set,
// prints the median TPS of each and their ratio, writes bench/results/leaf.json with every sample and
// draws bench/charts/leaf.svg (median TPS, whiskers min-max).

import { join } from "node:path";
import { parseFlags } from "../src/cli/args.ts";
import {
  REPO_ROOT,
  requireBinary,
  type ServerProcess,
  startLeaf,
  startMemcached,
} from "../test/helpers/servers.ts";
import { barChartSpec, writeChart } from "./charts.ts";
import { firstLine, machine, median, writeResults } from "./report.ts";

const MEMCASLAP = "/usr/bin/memcaslap";

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: "integer", default: 10, min: 1, max: 600, help: "length of one run" },
  { name: "repeats", kind: "integer", default: 3, min: 1, max: 20, help: "runs per server and row" },
  { name: "warmup", kind: "integer", default: 2, min: 0, max: 60, help: "seconds of warm-up per server" },
]);
const seconds = flags.seconds as number;
const repeats = flags.repeats as number;
const warmup = flags.warmup as number;

interface Sample {
  server: string;
  threads: number;
  tps: number;
}

function memcaslap(port: number, runSeconds: number): number {
  const proc = Bun.spawnSync(
    [MEMCASLAP, "-s", `127.0.0.1:${port}`, "-T", "1", "-c", "32", "-X", "100", "-t", `${runSeconds}s`],
    { stdout: "pipe", stderr: "pipe" },
  );
  const output = proc.stdout.toString();
  const match = /TPS: (\d+)/.exec(output);
  if (proc.exitCode !== 0 || match === null) {
    throw new Error(`memcaslap failed (exit ${proc.exitCode}): ${output}${proc.stderr.toString()}`);
  }
  return Number(match[1]);
}

async function row(threads: number): Promise<Sample[]> {
  const servers: { name: string; start: () => Promise<ServerProcess> }[] = [
    {
      name: "gravity",
      start: () =>
        startLeaf(["--port", "0", "--memory", "64mb", "--threads", String(threads)], { binary: "compiled" }),
    },
    { name: "memcached", start: () => startMemcached({ memoryMb: 64, extraArgs: ["-t", String(threads)] }) },
  ];
  const samples: Sample[] = [];
  const running = await Promise.all(servers.map((s) => s.start()));
  try {
    for (const server of running) if (warmup > 0) memcaslap(server.port, warmup);
    for (let r = 0; r < repeats; r++) {
      servers.forEach((s, i) => {
        const tps = memcaslap((running[i] as ServerProcess).port, seconds);
        samples.push({ server: s.name, threads, tps });
        console.log(`  threads ${threads}  ${s.name.padEnd(9)}  run ${r + 1}/${repeats}  ${tps} TPS`);
      });
    }
  } finally {
    await Promise.all(running.map((s) => s.stop("SIGTERM")));
  }
  return samples;
}

requireBinary(MEMCASLAP);
const peers = { memcached: firstLine(["/usr/bin/memcached", "-V"]), memcaslap: firstLine([MEMCASLAP, "-V"]) };
const host = machine();
console.log(
  `leaf vs memcached: memcaslap -T 1 -c 32 -X 100 -t ${seconds}s, ${repeats} alternating runs each, ` +
    `${host.cpus} cpus (${host.cpuModel}), ${host.kernel}, ${peers.memcached}`,
);
const samples: Sample[] = [];
for (const threads of [1, 2]) samples.push(...(await row(threads)));

console.log("\n| threads | gravity TPS (median) | memcached TPS (median) | ratio |");
console.log("|---|---|---|---|");
const rows = [1, 2].map((threads) => {
  const of = (server: string) =>
    median(samples.filter((s) => s.server === server && s.threads === threads).map((s) => s.tps));
  const gravity = of("gravity");
  const memcached = of("memcached");
  const ratio = gravity / memcached;
  console.log(`| ${threads} | ${gravity} | ${memcached} | ${ratio.toFixed(2)} |`);
  return { threads, gravity, memcached, ratio };
});

const written = writeResults("leaf", {
  peers,
  parameters: { seconds, repeats, warmup, clientThreads: 1, concurrency: 32, valueBytes: 100 },
  rows,
  samples,
});
console.log(`\nwrote ${written}`);

const chart = join(REPO_ROOT, "bench", "charts", "leaf.svg");
await writeChart(
  chart,
  barChartSpec({
    title: "Leaf vs memcached — memcaslap, 90% get / 10% set",
    subtitle: `median of ${repeats} alternating ${seconds} s runs, whiskers min-max; ${host.cpus} cpus; ${peers.memcached}`,
    xTitle: "server threads",
    yTitle: "transactions per second",
    seriesOrder: ["gravity", "memcached"],
    bars: [1, 2].flatMap((threads) =>
      ["gravity", "memcached"].map((server) => {
        const tps = samples.filter((s) => s.server === server && s.threads === threads).map((s) => s.tps);
        return {
          category: String(threads),
          series: server,
          value: median(tps),
          low: Math.min(...tps),
          high: Math.max(...tps),
        };
      }),
    ),
  }),
);
console.log(`wrote ${chart}`);

// HTTP API throughput: GET /v1/cache/{group}/{key} hits per second against a leaf's HTTP server
// (nativeBackend, leaf metrics registered), beside a bare Bun.serve that answers every request
// with a fixed body of the same size (the floor: HTTP parsing and writing alone).
//
//   bun bench/http.ts [--seconds 2 --repeats 3 --clients 2 --connections 32 --keys 10000
//                      --value-bytes 100 --out bench/results/http.json]
//
//   driver ──spawn──> server process (--serve api|bare): configures the store, fills the keys, prints its port
//          ──spawn──> N client processes (--client): C concurrent fetch loops each for --seconds,
//                     random keys from a seeded generator; each prints how many GETs returned 200
//
// Server and clients share the machine, so the figure is a rough one. Prints the median and half
// the min-max spread of the repeats, and writes every sample with the machine and commit.

import { nativeBackend } from "../src/cache/backend.ts";
import { FlagKind, parseFlags } from "../src/cli/args.ts";
import { startHttpServer } from "../src/http/server.ts";
import { createRegistry, leafMetrics } from "../src/metrics/registry.ts";
import { native } from "../src/native/index.ts";
import { commit, machine, median, writeResults } from "./report.ts";

const SERIES = ["api", "bare"] as const;
type Series = (typeof SERIES)[number];
const GROUP = "bench";
const MIB = 1024 * 1024;
const SEED = 42;

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: FlagKind.Integer, default: 2, min: 1, max: 60, help: "length of one run" },
  { name: "repeats", kind: FlagKind.Integer, default: 3, min: 1, max: 20, help: "runs per series" },
  { name: "clients", kind: FlagKind.Integer, default: 2, min: 1, max: 64, help: "client processes" },
  { name: "connections", kind: FlagKind.Integer, default: 32, min: 1, max: 1024, help: "loops per client" },
  { name: "keys", kind: FlagKind.Integer, default: 10_000, min: 1, max: 10_000_000, help: "distinct keys" },
  { name: "value-bytes", kind: FlagKind.Integer, default: 100, min: 0, max: MIB / 2, help: "value size" },
  { name: "out", kind: FlagKind.String, default: "", help: "results file (default bench/results/http.json)" },
  { name: "serve", kind: FlagKind.String, default: "", help: "internal: run a server (api or bare)" },
  {
    name: "client",
    kind: FlagKind.String,
    default: "",
    help: "internal: run a client against this base URL",
  },
  { name: "client-seed", kind: FlagKind.Integer, default: SEED, min: 0, max: 2 ** 31, help: "internal" },
]);
const seconds = flags.seconds as number;
const keys = flags.keys as number;
const valueBytes = flags["value-bytes"] as number;

// mulberry32: a small seeded generator, so every run asks for the same keys.
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function serve(series: Series): void {
  const value = new Uint8Array(valueBytes).fill(0x61);
  let port: number;
  if (series === "api") {
    native.configure({ memoryBytes: 256 * MIB, maxItemBytes: MIB, threads: 1, version: "bench" });
    for (let i = 0; i < keys; i++) native.set(`${GROUP}:k${i}`, value);
    const registry = createRegistry({ role: "leaf", version: "bench" });
    leafMetrics(registry);
    port = startHttpServer({
      host: "127.0.0.1",
      port: 0,
      backend: nativeBackend(),
      ready: () => true,
      registry,
    }).port;
  } else {
    const headers = { "content-type": "application/octet-stream" };
    port =
      Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(value, { headers }) }).port ?? 0;
  }
  console.log(`listening ${port}`);
}

async function client(base: string, seed: number): Promise<void> {
  const next = random(seed);
  const deadline = performance.now() + seconds * 1000;
  let ok = 0;
  let other = 0;
  const loop = async () => {
    while (performance.now() < deadline) {
      const response = await fetch(`${base}/v1/cache/${GROUP}/k${Math.floor(next() * keys)}`);
      await response.arrayBuffer();
      if (response.status === 200) ok++;
      else other++;
    }
  };
  await Promise.all(Array.from({ length: flags.connections as number }, loop));
  console.log(JSON.stringify({ ok, other }));
}

async function run(series: Series): Promise<number[]> {
  const server = Bun.spawn([process.execPath, import.meta.path, "--serve", series, ...sizeArgs()], {
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    const reader = server.stdout.getReader();
    let text = "";
    while (!/listening (\d+)/.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${series} server exited before listening`);
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const base = `http://127.0.0.1:${/listening (\d+)/.exec(text)?.[1]}`;
    const samples: number[] = [];
    for (let repeat = 0; repeat <= (flags.repeats as number); repeat++) {
      const clients = Array.from({ length: flags.clients as number }, (_, index) =>
        Bun.spawn(
          [
            process.execPath,
            import.meta.path,
            "--client",
            base,
            "--client-seed",
            String(SEED + repeat * 1000 + index),
            ...sizeArgs(),
          ],
          { stdout: "pipe", stderr: "inherit" },
        ),
      );
      const counts = await Promise.all(
        clients.map(
          async (proc) => JSON.parse(await new Response(proc.stdout).text()) as { ok: number; other: number },
        ),
      );
      const other = counts.reduce((sum, count) => sum + count.other, 0);
      if (other > 0) throw new Error(`${series}: ${other} GETs did not return 200`);
      const perSecond = counts.reduce((sum, count) => sum + count.ok, 0) / seconds;
      if (repeat > 0) samples.push(perSecond); // the first run warms up
    }
    return samples;
  } finally {
    server.kill();
    await server.exited;
  }
}

function sizeArgs(): string[] {
  return [
    "--seconds",
    String(seconds),
    "--keys",
    String(keys),
    "--value-bytes",
    String(valueBytes),
    "--connections",
    String(flags.connections),
  ];
}

if (flags.serve !== "") {
  if (!(SERIES as readonly string[]).includes(flags.serve as string))
    throw new Error(`--serve ${flags.serve}`);
  serve(flags.serve as Series);
} else if (flags.client !== "") {
  await client(flags.client as string, flags["client-seed"] as number);
} else {
  const results: Record<string, number[]> = {};
  console.log(
    `HTTP GET hits, ${flags.clients} client processes x ${flags.connections} connections, ${seconds} s runs, ` +
      `${keys} keys of ${valueBytes} bytes`,
  );
  console.log("series   median req/s   ± half spread");
  for (const series of SERIES) {
    const samples = await run(series);
    results[series] = samples;
    const spread = (Math.max(...samples) - Math.min(...samples)) / 2;
    console.log(`${series.padEnd(8)} ${median(samples).toFixed(0).padStart(12)}   ± ${spread.toFixed(0)}`);
  }
  const parameters = {
    seconds,
    repeats: flags.repeats,
    clients: flags.clients,
    connections: flags.connections,
    keys,
    valueBytes,
    seed: SEED,
  };
  const data = { parameters, samples: results };
  let path = flags.out as string;
  if (path === "") path = writeResults("http", data);
  else await Bun.write(path, `${JSON.stringify({ ...commit(), machine: machine(), ...data }, null, 2)}\n`);
  console.log(`wrote ${path}`);
}

// The NATS transport against the TCP transport for the same pool: throughput and tail latency
// through the router, side by side.
//
//   npm run bench:nats [-- --requests 50000 --concurrency 32 --repeats 3 --warmup 2000
//                          --keys 10000 --value-bytes 100 --set-percent 10 --seed 1 --tls]
//
// --tls: nats-server requires TLS with client certificates (`verify: true`) and a user and
// password; leaves and the NATS router present them (a CA from test/helpers/tls.ts). The TCP
// router is unchanged, so NATS/TCP with and without --tls gives what TLS and auth cost NATS.
// Results go to bench/results/nats-tls.json then.
//
//                                       ┌─ router T: pool over TCP ──────────────────┐
//   `concurrency` clients ──> one of ───┤  (pooled pipelined connections, 2 a leaf)  ├──> leaf a
//   (one connection each,               │                                            │
//    one request in flight)             └─ router N: pool over NATS ─> nats-server ──┴──> leaf b
//                                          (request/reply on gravity.leaf.np.{a,b})
//
// One nats-server, two compiled `gravity leaf` processes serving both over TCP and over NATS
// (--nats URL --nats-pool np --nats-leaf-id a|b), and two compiled `gravity router` processes
// whose configs differ only in the pool's transport: both pools list the same two leaves with the
// ketama names a and b (a NATS leaf's id is its name), so every key lives on the same leaf either
// way. `keys` keys of `value-bytes` bytes are set through each router first.
//
// Runs alternate T, N, T, N... (`repeats` of each). A run: `concurrency` fresh clients (createClient,
// one connection each), `warmup` unrecorded requests, then `requests` requests of a fixed seeded
// sequence (the same in every run): keys drawn uniformly, `set-percent` % sets and the rest gets,
// each timed with performance.now() from the call to the reply into a preallocated Float64Array.
// Prints a line per run, then one table: per transport the median throughput over its runs and
// p50/p99/p99.9/max over all its requests, with the ratio NATS/TCP; writes bench/results/nats.json
// (machine, commit, parameters, per-run summaries, the summary per transport and the ratios).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseFlags } from "../src/cli/args.ts";
import { type Client, createClient } from "../src/client/index.ts";
import { NATS_SERVER, type NatsServer, startNats, stopAllNats } from "../test/helpers/nats.ts";
import {
  COMPILED_GRAVITY,
  HOST,
  type LeafProcess,
  requireBinary,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "../test/helpers/servers.ts";
import { makeTestPki } from "../test/helpers/tls.ts";
import {
  concatSamples,
  firstLine,
  type Latencies,
  machine,
  median,
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
    help: "timed requests per run",
  },
  {
    name: "warmup",
    kind: "integer",
    default: 2000,
    min: 0,
    max: 1_000_000,
    help: "untimed requests per run first",
  },
  {
    name: "concurrency",
    kind: "integer",
    default: 32,
    min: 1,
    max: 1024,
    help: "requests in flight (clients)",
  },
  { name: "repeats", kind: "integer", default: 3, min: 1, max: 50, help: "runs of each transport" },
  { name: "keys", kind: "integer", default: 10_000, min: 1, max: 1_000_000, help: "distinct keys" },
  { name: "value-bytes", kind: "integer", default: 100, min: 1, max: 500_000, help: "value size" },
  { name: "set-percent", kind: "integer", default: 10, min: 0, max: 100, help: "share of sets, %" },
  { name: "seed", kind: "integer", default: 1, min: 0, max: 2 ** 32 - 1, help: "seed of the sequence" },
  { name: "tls", kind: "boolean", default: false, help: "NATS over TLS with client certificates and a user" },
]);
const requests = flags.requests as number;
const warmup = flags.warmup as number;
const concurrency = flags.concurrency as number;
const repeats = flags.repeats as number;
const keyCount = flags.keys as number;
const valueBytes = flags["value-bytes"] as number;
const setPercent = flags["set-percent"] as number;
const seed = flags.seed as number;
const tls = flags.tls as boolean;

const POOL = "np";
const LEAF_IDS = ["a", "b"] as const;
const CLIENT_TIMEOUT_MS = 5000;
const PRESET_BATCH = 1000;

const Transport = { Tcp: "tcp", Nats: "nats" } as const;
type Transport = (typeof Transport)[keyof typeof Transport];
const TRANSPORTS = [Transport.Tcp, Transport.Nats] as const;
const LABEL: Record<Transport, string> = { tcp: "TCP", nats: "NATS" };

interface RunResult extends Latencies {
  transport: Transport;
  repeat: number;
  requests: number;
  gets: number;
  sets: number;
  elapsedMs: number;
  requestsPerSecond: number;
  errors: number;
  misses: number;
  firstError?: string;
}

stopOnSignal(() => [stopAll(), stopAllNats()]);

/** The request sequence: key indexes and which of them are sets, the same in every run. */
interface Sequence {
  keys: Uint32Array;
  isSet: Uint8Array;
}

/**
 * Sends `count` requests of `sequence` (from its start) through `clients`, each client one request
 * at a time, and records each latency in ms into `latencies` (when given) at the request's index.
 */
async function drive(
  clients: readonly Client[],
  keys: readonly string[],
  value: Uint8Array,
  sequence: Sequence,
  count: number,
  latencies: Float64Array | null,
): Promise<{ errors: number; misses: number; elapsedMs: number; firstError?: string }> {
  let next = 0;
  let errors = 0;
  let misses = 0;
  let firstError: string | undefined;
  const length = sequence.keys.length;
  const start = performance.now();
  const worker = async (client: Client) => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const at = i % length;
      const key = keys[sequence.keys[at] as number] as string;
      const sent = performance.now();
      try {
        if (sequence.isSet[at] === 1) await client.set(key, value);
        else if ((await client.get(key)) === null) misses++;
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

async function run(
  transport: Transport,
  repeat: number,
  router: ServerProcess,
  keys: readonly string[],
  value: Uint8Array,
  sequence: Sequence,
  latencies: Float64Array,
): Promise<RunResult> {
  const clients = Array.from({ length: concurrency }, () =>
    createClient({
      servers: [`${HOST}:${router.port}`],
      connectionsPerServer: 1,
      timeoutMs: CLIENT_TIMEOUT_MS,
    }),
  );
  try {
    if (warmup > 0) await drive(clients, keys, value, sequence, warmup, null);
    const driven = await drive(clients, keys, value, sequence, requests, latencies);
    let sets = 0;
    for (let i = 0; i < requests; i++) sets += sequence.isSet[i % sequence.isSet.length] as number;
    const result: RunResult = {
      transport,
      repeat,
      requests,
      gets: requests - sets,
      sets,
      elapsedMs: driven.elapsedMs,
      requestsPerSecond: (requests / driven.elapsedMs) * 1000,
      errors: driven.errors,
      misses: driven.misses,
      ...summariseLatencies(latencies),
    };
    if (driven.firstError !== undefined) result.firstError = driven.firstError;
    return result;
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
  }
}

/** Sets every key through `router`, PRESET_BATCH at a time, over one client. */
async function preset(router: ServerProcess, keys: readonly string[], value: Uint8Array): Promise<void> {
  const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: CLIENT_TIMEOUT_MS });
  try {
    for (let from = 0; from < keys.length; from += PRESET_BATCH) {
      await Promise.all(keys.slice(from, from + PRESET_BATCH).map((key) => client.set(key, value)));
    }
  } finally {
    await client.close();
  }
}

/** A CA, nats-server's TLS and users blocks, and what leaves and the router present to it. */
function natsSecurity() {
  const pki = makeTestPki();
  const passwordFile = join(pki.dir, "password");
  writeFileSync(passwordFile, "bench-password\n");
  return {
    serverConfig:
      `tls { cert_file: "${pki.serverCertFile}", key_file: "${pki.serverKeyFile}", ca_file: "${pki.caFile}", verify: true }\n` +
      'authorization { users = [ { user: bench, password: "bench-password" } ] }',
    leafFlags: [
      "--nats-ca",
      pki.caFile,
      "--nats-cert",
      pki.clientCertFile,
      "--nats-key",
      pki.clientKeyFile,
      "--nats-user",
      "bench",
      "--nats-password-file",
      passwordFile,
    ],
    routerFields: {
      ca: pki.caFile,
      cert: pki.clientCertFile,
      key: pki.clientKeyFile,
      user: "bench",
      passwordFile,
    },
  };
}

const ms = (value: number) => (value >= 10 ? value.toFixed(1) : value.toFixed(3));

requireBinary(COMPILED_GRAVITY);
const gravity = firstLine([COMPILED_GRAVITY, "--version"]);
const natsVersion = firstLine([NATS_SERVER, "--version"]);
const host = machine();
console.log(
  `NATS vs TCP transport: router pool "${POOL}" of ${LEAF_IDS.length} compiled leaves, over TCP and over ` +
    `NATS; ${repeats} runs of each, alternating; ${requests} timed requests per run after ${warmup}, ` +
    `${concurrency} in flight, ${100 - setPercent}/${setPercent} get/set, ${keyCount} keys of ` +
    `${valueBytes} bytes, seed ${seed}; ${host.cpus} cpus (${host.cpuModel}), ${host.kernel}; ` +
    `${gravity}; ${natsVersion}`,
);

const configDir = mkdtempSync(join(tmpdir(), "gravity-bench-nats-"));
process.on("exit", () => rmSync(configDir, { recursive: true, force: true }));
const keys = Array.from({ length: keyCount }, (_, i) => `natsbench:${i}`);
const value = new Uint8Array(valueBytes).fill(0x76);
const rng = new Rng(seed);
const sequence: Sequence = { keys: new Uint32Array(requests), isSet: new Uint8Array(requests) };
for (let i = 0; i < requests; i++) {
  sequence.keys[i] = rng.nextInt(keyCount);
  sequence.isSet[i] = rng.nextInt(100) < setPercent ? 1 : 0;
}

const runs: RunResult[] = [];
const samples: Record<Transport, Float64Array[]> = { tcp: [], nats: [] };
const started = performance.now();
try {
  const security = tls ? natsSecurity() : { serverConfig: undefined, leafFlags: [], routerFields: {} };
  const natsServer: NatsServer = await startNats({ config: security.serverConfig });
  console.log(`nats-server on ${natsServer.url}${tls ? " (TLS, verify: true, user and password)" : ""}`);
  const leaves: LeafProcess[] = await Promise.all(
    LEAF_IDS.map((id) =>
      startLeaf(
        [
          "--port",
          "0",
          "--memory",
          "64mb",
          "--threads",
          "1",
          "--nats",
          natsServer.url,
          "--nats-pool",
          POOL,
          "--nats-leaf-id",
          id,
          ...security.leafFlags,
        ],
        { binary: "compiled" },
      ),
    ),
  );
  await Promise.all(leaves.map((leaf) => leaf.waitForStdout(/nats connected/)));
  console.log(
    `leaves ${leaves.map((leaf, i) => `${LEAF_IDS[i]} on port ${leaf.port}`).join(", ")} (TCP and NATS)`,
  );

  // The same servers with the same ketama names: only the transport differs.
  const servers = leaves.map((leaf, i) => ({ host: leaf.host, port: leaf.port, name: LEAF_IDS[i] }));
  const configs: Record<Transport, object> = {
    tcp: { pools: { [POOL]: { servers } }, route: POOL },
    nats: {
      nats: { servers: [natsServer.url], ...security.routerFields },
      pools: { [POOL]: { transport: "nats", servers } },
      route: POOL,
    },
  };
  const routers = {} as Record<Transport, ServerProcess>;
  for (const transport of TRANSPORTS) {
    const file = join(configDir, `router-${transport}.json`);
    writeFileSync(file, `${JSON.stringify(configs[transport], null, 2)}\n`);
    routers[transport] = await startRouter(["--config", file, "--port", "0"], { binary: "compiled" });
    if (transport === Transport.Nats) await routers[transport].waitForStdout(/nats connected/);
    console.log(`router ${LABEL[transport]} on port ${routers[transport].port}`);
  }

  for (const transport of TRANSPORTS) {
    const t0 = performance.now();
    await preset(routers[transport], keys, value);
    console.log(
      `set ${keyCount} keys through router ${LABEL[transport]} in ${(performance.now() - t0).toFixed(0)} ms`,
    );
  }

  const total = repeats * TRANSPORTS.length;
  for (let repeat = 1; repeat <= repeats; repeat++) {
    for (const transport of TRANSPORTS) {
      const latencies = new Float64Array(requests);
      const result = await run(transport, repeat, routers[transport], keys, value, sequence, latencies);
      runs.push(result);
      samples[transport].push(latencies);
      console.log(
        `run ${runs.length}/${total}  ${LABEL[transport].padEnd(4)}  repeat ${repeat}  ` +
          `${Math.round(result.requestsPerSecond)} req/s  p50 ${ms(result.p50)}  p99 ${ms(result.p99)}  ` +
          `p99.9 ${ms(result.p999)}  max ${ms(result.max)} ms  errors ${result.errors}  misses ${result.misses}` +
          (result.firstError === undefined ? "" : `  first error: ${result.firstError}`),
      );
    }
  }
  for (const transport of TRANSPORTS) {
    const router = routers[transport];
    if (router.exitCode() !== undefined) {
      throw new Error(`router ${LABEL[transport]} exited during the runs: ${router.stderr().trim()}`);
    }
  }
} finally {
  const stopped = await Promise.allSettled([stopAll(), stopAllNats()]);
  for (const outcome of stopped) {
    if (outcome.status === "rejected") console.log(`stopping: ${String(outcome.reason)}`);
  }
}

interface TransportSummary extends Latencies {
  transport: Transport;
  runs: number;
  requests: number;
  /** Median over the runs of each run's requests per second. */
  medianRequestsPerSecond: number;
  minRequestsPerSecond: number;
  maxRequestsPerSecond: number;
  errors: number;
  misses: number;
}

function summariseTransport(transport: Transport): TransportSummary {
  const own = runs.filter((r) => r.transport === transport);
  const rates = own.map((r) => r.requestsPerSecond);
  return {
    transport,
    runs: own.length,
    requests: own.reduce((n, r) => n + r.requests, 0),
    medianRequestsPerSecond: median(rates),
    minRequestsPerSecond: Math.min(...rates),
    maxRequestsPerSecond: Math.max(...rates),
    errors: own.reduce((n, r) => n + r.errors, 0),
    misses: own.reduce((n, r) => n + r.misses, 0),
    ...summariseLatencies(concatSamples(samples[transport])),
  };
}

const tcp = summariseTransport(Transport.Tcp);
const nats = summariseTransport(Transport.Nats);
const ratios = {
  throughput: nats.medianRequestsPerSecond / tcp.medianRequestsPerSecond,
  p50: nats.p50 / tcp.p50,
  p99: nats.p99 / tcp.p99,
  p999: nats.p999 / tcp.p999,
  max: nats.max / tcp.max,
};
const rows: [string, (s: TransportSummary) => string, number | null][] = [
  [
    "throughput, median of runs (req/s)",
    (s) => String(Math.round(s.medianRequestsPerSecond)),
    ratios.throughput,
  ],
  [
    "throughput, min..max of runs (req/s)",
    (s) => `${Math.round(s.minRequestsPerSecond)}..${Math.round(s.maxRequestsPerSecond)}`,
    null,
  ],
  ["p50 (ms)", (s) => ms(s.p50), ratios.p50],
  ["p99 (ms)", (s) => ms(s.p99), ratios.p99],
  ["p99.9 (ms)", (s) => ms(s.p999), ratios.p999],
  ["max (ms)", (s) => ms(s.max), ratios.max],
  ["requests (runs)", (s) => `${s.requests} (${s.runs})`, null],
  ["errors / misses", (s) => `${s.errors} / ${s.misses}`, null],
];
console.log("\n| | TCP | NATS | NATS / TCP |");
console.log("|---|---|---|---|");
for (const [label, cell, ratio] of rows) {
  console.log(
    `| ${label} | ${cell(tcp)} | ${cell(nats)} | ${ratio === null ? "" : `${ratio.toFixed(2)}x`} |`,
  );
}
console.log(`\ntotal time ${((performance.now() - started) / 1000).toFixed(1)} s`);

const written = writeResults(tls ? "nats-tls" : "nats", {
  peers: { gravity, natsServer: natsVersion },
  parameters: {
    requests,
    warmup,
    concurrency,
    repeats,
    keys: keyCount,
    valueBytes,
    setPercent,
    seed,
    leaves: `${LEAF_IDS.length} x dist/gravity leaf --memory 64mb --threads 1 --nats URL --nats-pool ${POOL} --nats-leaf-id a|b`,
    routers: {
      tcp: `dist/gravity router, pool ${POOL}: the leaves over TCP (default 2 connections per leaf), names a, b`,
      nats: `dist/gravity router, pool ${POOL}: transport nats, the same leaves, names (leaf ids) a, b`,
    },
    natsServer: tls
      ? "nats-server -c: tls { verify: true } (P-256 certificates), authorization { users: [one user] }"
      : "nats-server -a 127.0.0.1 (defaults)",
    client: `src/client createClient, one connection per in-flight request, timeout ${CLIENT_TIMEOUT_MS} ms; latency = call to reply`,
    sequence: `uniform keys, ${setPercent}% sets, sfc32 (bench/workloads.ts Rng) from the seed; the same in every run`,
    order: "runs alternate TCP, NATS, TCP, NATS...; keys set through each router before the runs",
    throughput: "median over a transport's runs of requests / elapsed time of the run",
    latency: "percentiles (nearest rank) over all requests of a transport's runs",
  },
  ratios: { natsOverTcp: ratios },
  summaries: [tcp, nats],
  runs,
});
console.log(`wrote ${written}`);

// gRPC Get throughput: calls per second with 64 calls in flight on one connection, for
//
//   grpc-js client ──> gRPC server (nativeBackend, this process's store)            "grpc leaf"
//   grpc-js client ──> gRPC server (routeBackend: ShardedRoute, Pool) ──> leaf      "grpc router"
//   TS memcached client ──────────────────────────────────────────────> leaf        "memcached"
//
// the last as the neighbour: the same Get over the memcached protocol to the same leaf process.
// Client and gRPC server share this process (and its one JS thread), so the gRPC figures include
// grpc-js's client-side cost. Runs alternate (L R M L R M ...); prints the median calls/s and the
// min-max of the repeats, and writes bench/results/grpc.json with every sample.
//
//   bun bench/grpc.ts [--seconds 3 --repeats 3 --warmup 1 --concurrency 64]

import { nativeBackend, routeBackend } from "../src/cache/backend.ts";
import { parseFlags } from "../src/cli/args.ts";
import { Client } from "../src/client/index.ts";
import { GrpcCacheClient } from "../src/grpc/client.ts";
import { type GrpcServer, startGrpcServer } from "../src/grpc/server.ts";
import { native } from "../src/native/index.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { ShardedRoute } from "../src/router/handles/sharded.ts";
import { Pool } from "../src/router/pool.ts";
import { HOST, startLeaf, stopAll } from "../test/helpers/servers.ts";
import { median, writeResults } from "./report.ts";

const VALUE_BYTES = 100;
const KEYS = 1000;
const GROUP = "bench";

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: "integer", default: 3, min: 1, max: 600, help: "length of one run" },
  { name: "repeats", kind: "integer", default: 3, min: 1, max: 20, help: "runs per target" },
  { name: "warmup", kind: "integer", default: 1, min: 0, max: 60, help: "seconds of warm-up per target" },
  { name: "concurrency", kind: "integer", default: 64, min: 1, max: 1000, help: "calls in flight" },
]);
const seconds = flags.seconds as number;
const repeats = flags.repeats as number;
const warmup = flags.warmup as number;
const concurrency = flags.concurrency as number;

/** Runs `concurrency` loops of `call` for `runSeconds`; returns completed calls per second. */
async function measure(call: (index: number) => Promise<unknown>, runSeconds: number): Promise<number> {
  const deadline = performance.now() + runSeconds * 1000;
  let completed = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await call(next++ % KEYS);
        completed++;
      }
    }),
  );
  return completed / ((performance.now() - started) / 1000);
}

const servers: GrpcServer[] = [];
const grpcClients: GrpcCacheClient[] = [];
let pool: Pool | undefined;
let memcached: Client | undefined;
try {
  native.configure({
    memoryBytes: 256 * 1024 * 1024,
    maxItemBytes: 1024 * 1024,
    threads: 1,
    version: "bench",
  });
  const leaf = await startLeaf(["--port", "0"]);
  pool = new Pool("bench", { ...POOL_DEFAULTS, servers: [{ host: HOST, port: leaf.port, weight: 1 }] });
  const leafServer = await startGrpcServer({ host: HOST, port: 0, backend: nativeBackend() });
  const routerServer = await startGrpcServer({
    host: HOST,
    port: 0,
    backend: routeBackend(new ShardedRoute(pool)),
  });
  servers.push(leafServer, routerServer);
  const leafClient = new GrpcCacheClient(`${HOST}:${leafServer.port}`);
  const routerClient = new GrpcCacheClient(`${HOST}:${routerServer.port}`);
  grpcClients.push(leafClient, routerClient);
  memcached = new Client({ servers: [`${HOST}:${leaf.port}`] });

  // Every key is a hit: the leaf's store through both gRPC paths, this process's store for "grpc leaf".
  const value = new Uint8Array(VALUE_BYTES).fill(0x61);
  for (let i = 0; i < KEYS; i++) {
    await leafClient.set(GROUP, `k${i}`, value);
    await routerClient.set(GROUP, `k${i}`, value);
  }
  const mc = memcached;
  const targets: { name: string; call: (index: number) => Promise<unknown> }[] = [
    { name: "grpc leaf", call: (i) => leafClient.get(GROUP, `k${i}`) },
    { name: "grpc router", call: (i) => routerClient.get(GROUP, `k${i}`) },
    { name: "memcached", call: (i) => mc.get(`${GROUP}:k${i}`) },
  ];
  for (const target of targets) await measure(target.call, warmup);

  const samples = new Map<string, number[]>(targets.map((target) => [target.name, []]));
  for (let repeat = 0; repeat < repeats; repeat++) {
    for (const target of targets) samples.get(target.name)?.push(await measure(target.call, seconds));
  }

  console.log(
    `Get, ${VALUE_BYTES}-byte values, ${concurrency} in flight on one connection, ${repeats} x ${seconds} s`,
  );
  console.log("target         median calls/s   min - max");
  const rows: Record<string, unknown>[] = [];
  for (const [name, values] of samples) {
    const row = {
      name,
      median: median(values),
      min: Math.min(...values),
      max: Math.max(...values),
      samples: values,
    };
    rows.push(row);
    console.log(
      `${name.padEnd(14)} ${Math.round(row.median).toString().padStart(14)}   ${Math.round(row.min)} - ${Math.round(row.max)}`,
    );
  }
  const path = writeResults("grpc", {
    parameters: { seconds, repeats, warmup, concurrency, valueBytes: VALUE_BYTES, keys: KEYS },
    results: rows,
  });
  console.log(`wrote ${path}`);
} finally {
  for (const client of grpcClients) client.close();
  await Promise.all(servers.map((server) => server.close(1000)));
  for (const destination of pool?.destinations ?? []) await destination.close();
  await memcached?.close();
  await stopAll();
}

// Thundering herd ("Scaling Memcache at Facebook" §3.2.1): many clients read one hot key that is
// deleted every second; every miss may send a query to the origin. Prints origin queries per
// second with look-aside clients (no leases, no singleflight) and through routers whose loader
// route uses singleflight and leases.
//
//   npm run bench:herd [-- --clients 64 --seconds 6 --routers 2 --origin-ms 20]
//
//   off: client loop: get hot ── miss ──> origin query ──> set hot          (straight to the leaf)
//   on:  client loop: get hot via router r (loader route, leases) ── miss ──> one origin query
//   both: every second the hot key is deleted on the leaf (an invalidation)
//
// Writes bench/results/herd.json and draws bench/charts/herd.svg (origin queries/s, off vs on).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlagKind, parseFlags } from "../src/cli/args.ts";
import { createClient } from "../src/client/index.ts";
import {
  HOST,
  REPO_ROOT,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "../test/helpers/servers.ts";
import { barChartSpec, writeChart } from "./charts.ts";
import { median, writeResults } from "./report.ts";

const flags = parseFlags(process.argv.slice(2), [
  { name: "clients", kind: FlagKind.Integer, default: 64, min: 1, max: 1024, help: "client loops" },
  { name: "seconds", kind: FlagKind.Integer, default: 4, min: 2, max: 120, help: "length of each run" },
  { name: "repeats", kind: FlagKind.Integer, default: 3, min: 1, max: 20, help: "alternating runs per mode" },
  { name: "routers", kind: FlagKind.Integer, default: 2, min: 1, max: 8, help: "routers in the on mode" },
  { name: "origin-ms", kind: FlagKind.Integer, default: 20, min: 0, max: 5000, help: "origin query time" },
]);
const clients = flags.clients as number;
const seconds = flags.seconds as number;
const routerCount = flags.routers as number;
const repeats = flags.repeats as number;
const originMs = flags["origin-ms"] as number;
const KEY = "hot";

let originQueries = 0;
const origin = Bun.serve({
  hostname: HOST,
  port: 0,
  async fetch() {
    originQueries++;
    if (originMs > 0) await Bun.sleep(originMs);
    return new Response("the hot value");
  },
});
const originUrl = `http://${HOST}:${origin.port}/items/`;

interface ModeResult {
  mode: string;
  seconds: number;
  reads: number;
  originQueries: number;
  originQueriesPerSecond: number;
  errors: number;
}

// Runs `read` in `clients` loops for `seconds`, deleting the hot key on the leaf every second.
async function runMode(
  mode: string,
  leafPort: number,
  read: (client: number) => Promise<void>,
): Promise<ModeResult> {
  const invalidator = createClient({ servers: [`${HOST}:${leafPort}`] });
  await invalidator.delete(KEY);
  const startQueries = originQueries;
  const start = performance.now();
  const end = start + seconds * 1000;
  let reads = 0;
  let errors = 0;
  const tick = setInterval(() => void invalidator.delete(KEY).catch(() => {}), 1000);
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (performance.now() < end) {
        try {
          await read(client);
          reads++;
        } catch {
          errors++;
        }
      }
    }),
  );
  clearInterval(tick);
  await invalidator.close();
  const elapsed = (performance.now() - start) / 1000;
  const queries = originQueries - startQueries;
  const result = {
    mode,
    seconds: elapsed,
    reads,
    originQueries: queries,
    originQueriesPerSecond: queries / elapsed,
    errors,
  };
  console.log(
    `${mode.padEnd(28)} ${String(reads).padStart(8)} reads  ${queries} origin queries  ${(queries / elapsed).toFixed(1)}/s  errors ${errors}`,
  );
  return result;
}

try {
  const leaf = await startLeaf(["--port", "0"], { binary: "compiled" });
  const dir = mkdtempSync(join(tmpdir(), "gravity-bench-herd-"));
  const config = join(dir, "router.json");
  writeFileSync(
    config,
    JSON.stringify({
      loaders: { origin: { type: "http", url: `${originUrl}{key}` } },
      pools: { main: { servers: [`${HOST}:${leaf.port}`] } },
      route: { type: "loader", loader: "origin", route: "main", ttlSeconds: 60, leases: true, waitMs: 5000 },
    }),
  );
  const routers: ServerProcess[] = [];
  for (let i = 0; i < routerCount; i++)
    routers.push(await startRouter(["--port", "0", "--config", config], { binary: "compiled" }));
  // Off: look-aside clients straight to the leaf, as a web server without leases does it.
  const direct = Array.from({ length: clients }, () => createClient({ servers: [`${HOST}:${leaf.port}`] }));
  // On: the same clients through routers with a loader route (singleflight + leases).
  const viaRouters = Array.from({ length: clients }, (_, client) =>
    createClient({ servers: [`${HOST}:${routers[client % routers.length]?.port}`], timeoutMs: 10_000 }),
  );
  const offRuns: ModeResult[] = [];
  const onRuns: ModeResult[] = [];
  for (let repeat = 1; repeat <= repeats; repeat++) {
    offRuns.push(
      await runMode(`look-aside (no leases) ${repeat}/${repeats}`, leaf.port, async (client) => {
        const cache = direct[client] as ReturnType<typeof createClient>;
        if ((await cache.get(KEY)) !== null) return;
        const value = await (await fetch(`${originUrl}${KEY}`)).text();
        await cache.set(KEY, value, { ttlSeconds: 60 });
      }),
    );
    onRuns.push(
      await runMode(`routers x${routerCount} (leases) ${repeat}/${repeats}`, leaf.port, async (client) => {
        await (viaRouters[client] as ReturnType<typeof createClient>).get(KEY);
      }),
    );
  }
  for (const client of [...direct, ...viaRouters]) await client.close();
  const summary = (mode: string, list: ModeResult[]) => ({
    mode,
    originQueriesPerSecond: median(list.map((run) => run.originQueriesPerSecond)),
    reads: list.reduce((sum, run) => sum + run.reads, 0),
    errors: list.reduce((sum, run) => sum + run.errors, 0),
  });
  const off = summary("look-aside (no leases)", offRuns);
  const on = summary(`routers x${routerCount} (singleflight + leases)`, onRuns);
  const ratio = off.originQueriesPerSecond / Math.max(on.originQueriesPerSecond, 1e-9);
  console.log(
    `\norigin queries/s: ${off.originQueriesPerSecond.toFixed(1)} without, ${on.originQueriesPerSecond.toFixed(1)} with leases and singleflight: ${ratio.toFixed(1)}x fewer (target >= 10x: ${ratio >= 10 ? "met" : "not met"})`,
  );
  const file = writeResults("herd", {
    parameters: { clients, seconds, routers: routerCount, originMs, repeats },
    off,
    on,
    ratio,
    runs: { off: offRuns, on: onRuns },
  });
  console.log(`wrote ${file}`);
  const chart = join(REPO_ROOT, "bench", "charts", "herd.svg");
  await writeChart(
    chart,
    barChartSpec({
      title: "Thundering herd — origin queries per second",
      subtitle: `${clients} clients on one hot key deleted every second, origin ${originMs} ms; ${ratio.toFixed(1)}x fewer with leases`,
      xTitle: "mode",
      yTitle: "origin queries per second",
      bars: [
        { category: "off: look-aside", series: "origin queries/s", value: off.originQueriesPerSecond },
        {
          category: `on: ${routerCount} routers, leases`,
          series: "origin queries/s",
          value: on.originQueriesPerSecond,
        },
      ],
    }),
  );
  console.log(`wrote ${chart}`);
} finally {
  origin.stop(true);
  await stopAll();
}

// Memory per item: the leaf beside memcached, each loaded with the same items.
//
//   npm run bench:memory [-- --items 1000000 --value-bytes 100]
//
// Starts `dist/gravity leaf` and memcached with room for every item (no eviction), reads each
// process's RSS, stores N items (keys "key:<n>", fixed-size values) with pipelined noreply sets,
// reads RSS and `stats` again, and prints bytes per item by RSS growth and by the server's own
// `bytes` figure. Then the flood: a leaf and memcached at --memory/-m FLOOD_MB receive 10x that
// in values of random sizes from 1 KB to 900 KB (same seeded sequence for both), and the table
// shows each one's peak RSS (VmHWM), RSS at the end and 2 s later, as multiples of the limit, and
// what the flood added to the idle RSS (the fixed overhead) as a multiple of the limit.
// Writes bench/results/memory.json and draws bench/charts/memory.svg.

import { join } from "node:path";
import { FlagKind, parseFlags } from "../src/cli/args.ts";
import { McClient } from "../test/helpers/mc-client.ts";
import {
  MEMCACHED,
  peakRssBytes,
  REPO_ROOT,
  rssBytes,
  type ServerProcess,
  startLeaf,
  startMemcached,
} from "../test/helpers/servers.ts";
import { type Bar, barChartSpec, writeChart } from "./charts.ts";
import { firstLine, median, writeResults } from "./report.ts";

const flags = parseFlags(process.argv.slice(2), [
  {
    name: "repeats",
    kind: FlagKind.Integer,
    default: 3,
    min: 1,
    max: 20,
    help: "alternating runs per server",
  },
  {
    name: "items",
    kind: FlagKind.Integer,
    default: 1_000_000,
    min: 1000,
    max: 100_000_000,
    help: "items stored",
  },
  {
    name: "value-bytes",
    kind: FlagKind.Integer,
    default: 100,
    min: 1,
    max: 100_000,
    help: "bytes per value",
  },
  {
    name: "flood-only",
    kind: FlagKind.Boolean,
    default: false,
    help: "run only the mixed-size flood (no bytes-per-item runs, no results written)",
  },
  {
    name: "flood-repeats",
    kind: FlagKind.Integer,
    default: 3,
    min: 1,
    max: 20,
    help: "alternating flood runs per server",
  },
  {
    name: "executable",
    kind: FlagKind.String,
    default: "",
    help: "run this gravity executable instead of dist/gravity (e.g. an older build)",
  },
]);
const floodOnly = flags["flood-only"] as boolean;
const executable = (flags.executable as string) || undefined;
const repeats = flags.repeats as number;
const floodRepeats = flags["flood-repeats"] as number;
const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
const items = flags.items as number;
const valueBytes = flags["value-bytes"] as number;
/** Enough memory for every item in either server, so nothing is evicted. */
const memoryMb = Math.ceil((items * (valueBytes + 200)) / (1024 * 1024)) + 64;
const BATCH = 5000;

async function stats(client: McClient): Promise<Map<string, string>> {
  await client.send("stats\r\n");
  const out = new Map<string, string>();
  for (;;) {
    const line = await client.readLine();
    if (line === "END") return out;
    const [, name, value] = line.split(" ");
    if (name !== undefined && value !== undefined) out.set(name, value);
  }
}

async function load(server: ServerProcess): Promise<Record<string, number>> {
  const client = await McClient.connect(server.port);
  const value = "v".repeat(valueBytes);
  const before = await rssBytes(server.pid);
  for (let start = 0; start < items; start += BATCH) {
    let batch = "";
    for (let n = start; n < Math.min(items, start + BATCH); n++) {
      batch += `set key:${n} 0 0 ${valueBytes} noreply\r\n${value}\r\n`;
    }
    await client.send(batch);
    // A round trip per batch keeps the pipeline bounded.
    await client.send("version\r\n");
    await client.readLine();
  }
  const after = await rssBytes(server.pid);
  const s = await stats(client);
  client.close();
  const currItems = Number(s.get("curr_items"));
  if (currItems !== items) throw new Error(`${server.name} holds ${currItems} items, expected ${items}`);
  return {
    rssBeforeBytes: before,
    rssAfterBytes: after,
    rssPerItem: (after - before) / items,
    statsBytes: Number(s.get("bytes")),
    statsBytesPerItem: Number(s.get("bytes")) / items,
  };
}

// Alternating fresh servers (gravity, memcached, gravity, ...); the table shows each one's median.
const servers: [string, () => Promise<ServerProcess>][] = [
  [
    "gravity",
    () => startLeaf(["--port", "0", "--memory", `${memoryMb}mb`], { binary: "compiled", executable }),
  ],
  ["memcached", () => startMemcached({ memoryMb })],
];
const runs: Record<string, Record<string, number>[]> = { gravity: [], memcached: [] };
for (let repeat = 1; repeat <= (floodOnly ? 0 : repeats); repeat++) {
  for (const [name, start] of servers) {
    const server = await start();
    try {
      const run = await load(server);
      runs[name]?.push(run);
      console.log(
        `  ${name.padEnd(9)} run ${repeat}/${repeats}  ${(run.rssPerItem as number).toFixed(1)} bytes/item RSS, ${(run.statsBytesPerItem as number).toFixed(1)} stats`,
      );
    } finally {
      await server.stop("SIGTERM");
    }
  }
}
// The flood: mixed sizes at 10x the limit, through one pipelined connection. RSS is read idle
// (before), at its peak (VmHWM) and at the end; the idle RSS is the fixed overhead (for the leaf,
// the Bun runtime), so what the flood adds is (RSS - idle) / limit: the target is <= 1.15.
const FLOOD_MB = 64;
const SETTLE_MS = 2000;
async function flood(server: ServerProcess): Promise<Record<string, number>> {
  const client = await McClient.connect(server.port);
  const limit = FLOOD_MB * 1024 * 1024;
  const idle = await rssBytes(server.pid);
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const chunk = "x".repeat(900 * 1000);
  let written = 0;
  let n = 0;
  while (written < 10 * limit) {
    let batch = "";
    for (let i = 0; i < 16; i++, n++) {
      const size = 1000 + Math.floor(next() * 899_000);
      batch += `set flood:${n} 0 0 ${size} noreply\r\n${chunk.slice(0, size)}\r\n`;
      written += size;
    }
    await client.send(batch);
    await client.send("version\r\n");
    await client.readLine();
  }
  const peak = await peakRssBytes(server.pid);
  const end = await rssBytes(server.pid);
  await Bun.sleep(SETTLE_MS);
  const settled = await rssBytes(server.pid);
  const s = await stats(client);
  client.close();
  return {
    idleBytes: idle,
    peakBytes: peak,
    endBytes: end,
    settledBytes: settled,
    peakRatio: peak / limit,
    endRatio: end / limit,
    peakOverIdleRatio: (peak - idle) / limit,
    endOverIdleRatio: (end - idle) / limit,
    settledOverIdleRatio: (settled - idle) / limit,
    items: Number(s.get("curr_items")),
    statsBytes: Number(s.get("bytes")),
  };
}
// Alternating fresh servers, as above; the table shows each one's median.
const floodRuns: Record<string, Record<string, number>[]> = { gravity: [], memcached: [] };
for (let repeat = 1; repeat <= floodRepeats; repeat++) {
  for (const [name, start] of [
    [
      "gravity",
      () => startLeaf(["--port", "0", "--memory", `${FLOOD_MB}mb`], { binary: "compiled", executable }),
    ],
    ["memcached", () => startMemcached({ memoryMb: FLOOD_MB })],
  ] as [string, () => Promise<ServerProcess>][]) {
    const server = await start();
    try {
      const run = await flood(server);
      floodRuns[name]?.push(run);
      console.log(
        `  flood ${name.padEnd(9)} run ${repeat}/${floodRepeats}  idle ${mb(run.idleBytes as number)}, peak ${mb(run.peakBytes as number)}, end ${mb(run.endBytes as number)}, after ${SETTLE_MS} ms ${mb(run.settledBytes as number)}`,
      );
    } finally {
      await server.stop("SIGTERM");
    }
  }
}
const floods: Record<string, Record<string, number>> = {};
for (const [name, list] of Object.entries(floodRuns)) {
  const first = list[0];
  if (first === undefined) continue;
  floods[name] = Object.fromEntries(
    Object.keys(first).map((key) => [key, median(list.map((run) => run[key] as number))]),
  );
}
console.log(
  `\nflood: 10 x ${FLOOD_MB} MB of values from 1 KB to 900 KB into --memory ${FLOOD_MB}mb / -m ${FLOOD_MB}, median of ${floodRepeats}`,
);
console.log(
  "\n| server | idle RSS | peak RSS / limit | RSS at end / limit | (peak - idle) / limit | (end - idle) / limit | after 2 s, (RSS - idle) / limit | items at end |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const [name, f] of Object.entries(floods)) {
  console.log(
    `| ${name} | ${mb(f.idleBytes as number)} | ${(f.peakRatio as number).toFixed(2)}x | ${(f.endRatio as number).toFixed(2)}x | ${(f.peakOverIdleRatio as number).toFixed(2)}x | ${(f.endOverIdleRatio as number).toFixed(2)}x | ${(f.settledOverIdleRatio as number).toFixed(2)}x | ${f.items} |`,
  );
}

if (floodOnly) process.exit(0);
const results: Record<string, Record<string, number>> = {};
for (const [name, list] of Object.entries(runs)) {
  results[name] = {
    rssPerItem: median(list.map((run) => run.rssPerItem as number)),
    statsBytesPerItem: median(list.map((run) => run.statsBytesPerItem as number)),
  };
}

console.log(
  `memory per item: ${items} items, ${valueBytes}-byte values, keys "key:<n>", median of ${repeats} runs`,
);
console.log("\n| server | RSS growth per item (bytes) | `stats bytes` per item |");
console.log("|---|---|---|");
for (const [name, r] of Object.entries(results)) {
  console.log(
    `| ${name} | ${(r.rssPerItem as number).toFixed(1)} | ${(r.statsBytesPerItem as number).toFixed(1)} |`,
  );
}
const ratio = (results.gravity?.rssPerItem as number) / (results.memcached?.rssPerItem as number);
console.log(`\ngravity/memcached RSS per item: ${ratio.toFixed(2)} (target <= 1.00)`);

const peers = { memcached: firstLine([MEMCACHED, "-V"]) };
const written = writeResults("memory", {
  peers,
  parameters: { items, valueBytes, memoryMb, repeats },
  results,
  runs,
  ratio,
  floods,
});
console.log(`wrote ${written}`);

const chart = join(REPO_ROOT, "bench", "charts", "memory.svg");
const bars: Bar[] = Object.entries(results).flatMap(([server, r]) => [
  { category: "RSS growth", series: server, value: r.rssPerItem as number },
  { category: "`stats bytes`", series: server, value: r.statsBytesPerItem as number },
]);
await writeChart(
  chart,
  barChartSpec({
    title: "Memory per item",
    subtitle: `${items} items, ${valueBytes}-byte values, keys "key:<n>"; ${peers.memcached}`,
    xTitle: "measure",
    yTitle: "bytes per item",
    bars,
    seriesOrder: ["gravity", "memcached"],
  }),
);
console.log(`wrote ${chart}`);

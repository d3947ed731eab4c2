// Config reload under load, on real processes (issue 14's fault suite): raw memcached clients
// pipeline sets and gets through a router while its config file is changed several times, by the
// file watch and by SIGHUP: a leaf added to the pool, a leaf removed, the pool's connection settings
// changed (every destination replaced), the route changed (sharded to replicated to prefix), and a
// bad config that must be refused. Every request must get a reply that
// is not an error, and no client connection may be closed.
//
// A key may miss after a reload (its set went to the leaf the old tree chose, its get to the one the
// new tree chooses): misses are allowed, errors are not.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Load, startLoad } from "./helpers/load.ts";
import { McClient } from "./helpers/mc-client.ts";
import { HOST, type LeafProcess, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const COMPILED = { binary: "compiled" } as const;
const CLIENTS = 4;
/** set + get pairs written at once by each client per step: its pipeline depth. */
const PAIRS_PER_STEP = 32;

const dir = mkdtempSync(join(tmpdir(), "gravity-fault-reload-"));
afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

// Written beside the file and renamed over it, as an editor saves: the watch never reads half a file.
function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** One step of a client: PAIRS_PER_STEP sets and gets in one write, then every reply checked. */
async function pipelinedStep(client: McClient, c: number, i: number): Promise<string | undefined> {
  let batch = "";
  const keys: string[] = [];
  for (let p = 0; p < PAIRS_PER_STEP; p++) {
    const key = `reload:${c}:${(i * PAIRS_PER_STEP + p) % 500}`;
    keys.push(key);
    batch += `set ${key} 0 0 6\r\nv${String(i % 100_000).padStart(5, "0")}\r\nget ${key}\r\n`;
  }
  await client.send(batch);
  for (const key of keys) {
    const stored = await client.readLine();
    if (stored !== "STORED") return `set ${key}: ${stored}`;
    const first = await client.readLine();
    if (first === "END") continue; // a miss across a reload
    if (!first.startsWith(`VALUE ${key} 0 6`)) return `get ${key}: ${first}`;
    await client.readLine(); // the value
    const end = await client.readLine();
    if (end !== "END") return `get ${key}: ${end} after the value`;
  }
  return undefined;
}

test("config reloads under pipelined load (leaf added, leaf removed, route changed, bad config refused): 0 failed requests, no connection closed", async () => {
  const leaves: LeafProcess[] = await Promise.all([0, 1, 2].map(() => startLeaf(["--port", "0"], COMPILED)));
  const [a, b, c] = leaves.map((leaf) => `${HOST}:${leaf.port}`) as [string, string, string];
  const file = join(dir, "router.json");
  const pools = (servers: string[]) => ({ main: { servers, timeoutMs: 3000 } });
  writeAtomically(file, JSON.stringify({ pools: pools([a, b]), route: "main" }));
  const router = await startRouter(["--port", "0", "--config", file], COMPILED);

  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => McClient.connect(router.port)));
  const loads: Load[] = clients.map((client, c) => startLoad((i) => pipelinedStep(client, c, i)));
  const reloads = () => router.stdout().match(/: reloaded /g)?.length ?? 0;
  const refusals = () => router.stderr().match(/keeping the previous config/g)?.length ?? 0;
  // Applies `config` by the file watch, or with SIGHUP sent at once (whichever reads it first
  // reloads it; the other finds the text unchanged), and lets the load run on the new tree.
  const change = async (config: unknown, how: "watch" | "SIGHUP") => {
    const before = reloads();
    writeAtomically(file, JSON.stringify(config));
    if (how === "SIGHUP") router.signal("SIGHUP");
    await pollUntil(() => (reloads() > before ? true : undefined), {
      deadlineMs: 10_000,
      what: `a reload (${how}) of ${JSON.stringify(config)}`,
    });
    await Promise.all(loads.map((load) => load.progress(20)));
  };

  try {
    await Promise.all(loads.map((load) => load.progress(20)));
    await change({ pools: pools([a, b, c]), route: "main" }, "watch"); // a leaf added
    await change({ pools: pools([b, c]), route: "main" }, "SIGHUP"); // a leaf removed
    // New connection settings: every destination is replaced, the old ones retire with requests in flight.
    await change(
      { pools: { main: { servers: [b, c], timeoutMs: 2500, connections: 2 } }, route: "main" },
      "watch",
    );
    await change({ pools: pools([b, c]), route: { type: "replicated", pool: "main" } }, "SIGHUP");
    await change(
      {
        pools: { ...pools([b, c]), other: { servers: [a], timeoutMs: 3000 } },
        route: { type: "prefix", routes: { "reload:0:": "other", "*": "main" } },
      },
      "SIGHUP",
    );
    // A bad config (a route naming a pool that does not exist) is refused; the old tree serves on.
    const before = refusals();
    writeAtomically(file, JSON.stringify({ pools: pools([b, c]), route: "nowhere" }));
    router.signal("SIGHUP");
    await pollUntil(() => (refusals() > before ? true : undefined), {
      deadlineMs: 10_000,
      what: "the bad config to be refused",
    });
    await Promise.all(loads.map((load) => load.progress(20)));
    await change({ pools: pools([a, b, c]), route: "main" }, "watch"); // and back to three leaves
  } finally {
    const failures = (await Promise.all(loads.map((load) => load.stop()))).flat();
    expect(failures).toEqual([]);
  }
  expect(clients.map((client) => client.closed)).toEqual(clients.map(() => false));
  expect(router.stderr()).toContain("nowhere");
  for (const client of clients) client.close();
  await router.stop();
}, 30_000);

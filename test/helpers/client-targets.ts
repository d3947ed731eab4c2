// The servers a real-client test runs against: real memcached (the reference), a gravity leaf,
// and a gravity router sharding over a pool of two leaves. Stop them with `afterAll(stopAll)`.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HOST, type ServerProcess, startLeaf, startMemcached, startRouter } from "./servers.ts";

/** Reference memcached, one leaf, and a router over two more leaves (sharded by ketama). */
export interface ClientTargets {
  memcached: ServerProcess;
  leaf: ServerProcess;
  router: ServerProcess;
}

/** A router on a free port sharding over `leaves` as one pool, with `flags` added. */
export async function startShardedRouter(
  leaves: readonly ServerProcess[],
  flags: readonly string[] = [],
): Promise<ServerProcess> {
  const file = join(mkdtempSync(join(tmpdir(), "gravity-client-targets-")), "router.json");
  writeFileSync(
    file,
    JSON.stringify({
      pools: { main: { servers: leaves.map((leaf) => `${HOST}:${leaf.port}`) } },
      route: { type: "sharded", pool: "main" },
    }),
  );
  return startRouter(["--port", "0", "--config", file, ...flags]);
}

/** Starts memcached, a leaf, and a router over two sharded leaves. */
export async function startClientTargets(): Promise<ClientTargets> {
  const [memcached, leaf, shardA, shardB] = await Promise.all([
    startMemcached(),
    startLeaf(["--port", "0"]),
    startLeaf(["--port", "0"]),
    startLeaf(["--port", "0"]),
  ]);
  return { memcached, leaf, router: await startShardedRouter([shardA, shardB]) };
}

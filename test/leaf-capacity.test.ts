// A leaf holds what its memory allows: filled with values of mixed sizes (100 to 1,000 bytes, as
// caches see), a leaf keeps at least as many items as fit in --memory at memcached's bytes per
// item, less a margin, whatever its allocator does with size classes, pages and shards.
import { afterAll, expect, test } from "bun:test";
import { Client } from "../src/client/index.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startMemcached, stopAll } from "./helpers/servers.ts";

afterAll(stopAll);

const ITEMS = 30_000;
const valueSize = (i: number) => 100 + ((i * 7919) % 901);
const VALUE = new Uint8Array(1000).fill(0x61);

// Sets ITEMS keys of mixed sizes (pipelined, 200 at a time) and returns the server's curr_items.
async function fill(port: number): Promise<number> {
  const client = new Client({ servers: [`${HOST}:${port}`], timeoutMs: 10_000 });
  try {
    for (let at = 0; at < ITEMS; at += 200) {
      await Promise.all(
        Array.from({ length: 200 }, (_, j) =>
          client.set(`cap:${at + j}`, VALUE.subarray(0, valueSize(at + j))),
        ),
      );
    }
    const stats = [...(await client.stats()).values()][0];
    return Number(stats?.get("curr_items"));
  } finally {
    await client.close();
  }
}

for (const memoryMb of [16, 64]) {
  test(
    `a ${memoryMb} MiB leaf full of 100-1,000-byte values holds at least 90% of what memcached -m ${memoryMb} holds`,
    async () => {
      const [leaf, memcached] = await Promise.all([
        startLeaf(["--port", "0", "--memory", `${memoryMb}mb`]),
        startMemcached({ memoryMb }),
      ]);
      const [ours, theirs] = [await fill(leaf.port), await fill(memcached.port)];
      // 30,000 values of ~550 bytes (~17 MB) overfill 16 MiB and fit in 64 MiB.
      expect(theirs).toBeGreaterThan(10_000);
      expect(ours).toBeGreaterThanOrEqual(Math.floor(theirs * 0.9));
    },
    SERVER_TEST_MS,
  );
}

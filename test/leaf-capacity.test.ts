// A leaf holds what its memory allows: overfilled with values of mixed sizes (100 to 1,000 bytes,
// as caches see, spanning ~40 of its size classes), a leaf keeps at least as many items as
// memcached -m does in the same memory, less a margin, whatever its allocator does with size
// classes, pages and shards; and the memory it holds for them (`stats slabs` total_malloced:
// pages, free chunks and other allocations) stays within --memory.
import { afterAll, expect, test } from "bun:test";
import { Client } from "../src/client/index.ts";
import { HOST, startLeaf, startMemcached, stopAll } from "./helpers/servers.ts";

afterAll(stopAll);

const valueSize = (i: number) => 100 + ((i * 7919) % 901);
const VALUE = new Uint8Array(1000).fill(0x61);
const MIB = 1024 * 1024;

// Sets `count` keys of mixed sizes (pipelined, 200 at a time); returns the server's stats.
async function fill(port: number, count: number): Promise<{ items: number; held: number; limit: number }> {
  const client = new Client({ servers: [`${HOST}:${port}`], timeoutMs: 10_000 });
  try {
    for (let at = 0; at < count; at += 200) {
      await Promise.all(
        Array.from({ length: 200 }, (_, j) =>
          client.set(`cap:${at + j}`, VALUE.subarray(0, valueSize(at + j))),
        ),
      );
    }
    const stats = [...(await client.stats()).values()][0];
    const slabs = [...(await client.stats("slabs")).values()][0];
    return {
      items: Number(stats?.get("curr_items")),
      held: Number(slabs?.get("total_malloced")),
      limit: Number(stats?.get("limit_maxbytes")),
    };
  } finally {
    await client.close();
  }
}

for (const memoryMb of [16, 64]) {
  // Twice what fits: ~650 bytes an item with its overhead.
  const count = Math.ceil((2 * memoryMb * MIB) / 650 / 200) * 200;
  test(`a ${memoryMb} MiB leaf overfilled with 100-1,000-byte values holds at least 95% of what memcached -m ${memoryMb} holds`, async () => {
    const [leaf, memcached] = await Promise.all([
      startLeaf(["--port", "0", "--memory", `${memoryMb}mb`]),
      startMemcached({ memoryMb }),
    ]);
    const [ours, theirs] = [await fill(leaf.port, count), await fill(memcached.port, count)];
    expect(theirs.items).toBeGreaterThan(count / 3);
    expect(theirs.items).toBeLessThan(count); // both had to evict
    expect(ours.items).toBeGreaterThanOrEqual(Math.floor(theirs.items * 0.95));
    expect(ours.limit).toBe(memoryMb * MIB);
    expect(ours.held).toBeLessThanOrEqual(ours.limit);
  }, 60_000);
}

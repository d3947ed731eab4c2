// Every legal item is stored (issue 13): a real leaf at --memory 64mb under its default policy
// (tinylfu), full of 1 KB items the policy has seen read, stores sets of 50 KB to 900 KB and the
// item limit, and a get on the same connection returns each one. Admission decides what is
// evicted afterwards, never whether a client's write fails.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fromLatin1, latin1, McClient } from "./helpers/mc-client.ts";
import { type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";

const MIB = 1024 * 1024;
const SMALL_BYTES = 1000;
const BATCH = 500; // pipelined requests per round trip

let leaf: LeafProcess;
beforeAll(async () => {
  leaf = await startLeaf(["--port", "0", "--memory", "64mb", "--max-item-size", "1m"]);
}, SERVER_TEST_MS);
afterAll(stopAll);

function value(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = 97 + ((i * 31 + seed) % 26);
  return out;
}

function setRequest(key: string, bytes: Uint8Array): Uint8Array {
  return Buffer.concat([latin1(`set ${key} 0 0 ${bytes.length}\r\n`), bytes, latin1("\r\n")]);
}

async function stats(client: McClient): Promise<Map<string, string>> {
  await client.send("stats\r\n");
  const map = new Map<string, string>();
  for (const line of fromLatin1(await client.readThroughLine("END")).split("\r\n")) {
    const match = /^STAT (\S+) (.*)$/.exec(line);
    if (match !== null) map.set(match[1] as string, match[2] as string);
  }
  return map;
}

test("a full tinylfu leaf stores sets of 50 KB to the item limit, each readable right after", async () => {
  const client = await McClient.connect(leaf.port);
  try {
    // Fill past the limit with 1 KB items (until evictions start), reading each twice so the
    // sketch knows them better than any new key.
    const small = value(SMALL_BYTES, 1);
    let n = 0;
    for (;;) {
      const keys = Array.from({ length: BATCH }, (_, i) => `small:${n + i}`);
      await client.sendChunks(keys.map((key) => setRequest(key, small)));
      expect(new Set(await client.readLines(BATCH))).toEqual(new Set(["STORED"]));
      await client.send(keys.map((key) => `mg ${key}\r\nmg ${key}\r\n`).join(""));
      await client.readLines(2 * BATCH);
      n += BATCH;
      if (Number((await stats(client)).get("evictions")) > 2 * BATCH) break;
    }
    expect(n).toBeGreaterThan((64 * MIB) / (2 * SMALL_BYTES));

    const itemLimit = MIB - 56 - "large:limit".length - 1 - 2; // memcached's item_size_ok
    const sizes = [50_000, 100_000, 200_000, 500_000, 700_000, 900_000, itemLimit];
    const refused: string[] = [];
    for (let round = 0; round < 2; round++) {
      for (const size of sizes) {
        const key = size === itemLimit ? "large:limit" : `large:${round}:${size}`;
        const bytes = value(size, size + round);
        await client.send(setRequest(key, bytes));
        const reply = await client.readLine();
        if (reply !== "STORED") {
          refused.push(`${key}: ${reply}`);
          continue;
        }
        await client.send(`get ${key}\r\n`);
        expect(await client.readLine()).toBe(`VALUE ${key} 0 ${size}`);
        const got = await client.readBytes(size + 2);
        expect(Buffer.from(got.subarray(0, size)).equals(Buffer.from(bytes))).toBe(true);
        expect(await client.readLine()).toBe("END");
      }
    }
    expect(refused).toEqual([]);
    const after = await stats(client);
    expect(Number(after.get("bytes"))).toBeLessThanOrEqual(64 * MIB);
  } finally {
    client.close();
  }
}, 60_000);

// The router answers questions about its routing on its memcached port, as mcrouter's
// `get __mcrouter__.route(get,KEY)` does: which leaves a command on a key would reach, in which
// role, and the route tree itself; and `stats` sums its leaves' items and bytes, `stats servers`
// shows each leaf. Checked against real leaves and against a ketama client's pick.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { fromLatin1, McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  type LeafProcess,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";

const address = (leaf: ServerProcess) => `${HOST}:${leaf.port}`;

let shards: LeafProcess[];
let replicas: LeafProcess[];
let router: ServerProcess;
let client: McClient;

beforeAll(async () => {
  [shards, replicas] = await Promise.all([
    Promise.all(Array.from({ length: 3 }, () => startLeaf(["--port", "0"]))),
    Promise.all(Array.from({ length: 3 }, () => startLeaf(["--port", "0"]))),
  ]);
  const file = join(mkdtempSync(join(tmpdir(), "gravity-introspection-")), "router.json");
  writeFileSync(
    file,
    JSON.stringify({
      pools: { main: { servers: shards.map(address) }, replicas: { servers: replicas.map(address) } },
      route: {
        type: "prefix",
        routes: {
          "rep:": { type: "replicated", pool: "replicas", reads: "hedged" },
          "*": { type: "sharded", pool: "main" },
        },
      },
    }),
  );
  router = await startRouter(["--port", "0", "--config", file]);
  client = await McClient.connect(router.port);
}, SERVER_TEST_MS);

afterAll(async () => {
  client?.close();
  await stopAll();
});

// The value of a single-key get, as text.
async function getValue(key: string): Promise<string> {
  await client.send(`get ${key}\r\n`);
  const reply = fromLatin1(await client.readThroughLine("END"));
  const header = /^VALUE (\S+) 0 (\d+)\r\n/.exec(reply);
  if (header === null) throw new Error(`not a value: ${JSON.stringify(reply)}`);
  expect(header[1]).toBe(key);
  const text = reply.slice(header[0].length, header[0].length + Number(header[2]));
  expect(reply.slice(header[0].length + Number(header[2]))).toBe("\r\nEND\r\n");
  return text;
}

describe("__gravity__.route(OP,KEY)", () => {
  test("a sharded key names the leaf a ketama client picks", async () => {
    const ketama = createClient({ servers: shards.map(address), hash: "md5" });
    try {
      for (let i = 0; i < 20; i++) {
        const key = `user:${i}`;
        const expected = shards[ketama.serverFor(new TextEncoder().encode(key))] as LeafProcess;
        for (const op of ["get", "set", "delete"]) {
          expect(await getValue(`__gravity__.route(${op},${key})`)).toBe(`${address(expected)} shard\r\n`);
        }
      }
    } finally {
      await ketama.close();
    }
  });

  test("a replicated key: a read goes to one replica then hedges; a write and a delete reach all", async () => {
    const read = (await getValue("__gravity__.route(get,rep:k)")).split("\r\n").filter(Boolean);
    expect(read.length).toBe(3);
    expect(read.map((line) => line.split(" ")[1])).toEqual(["read", "hedge", "hedge"]);
    expect(new Set(read.map((line) => line.split(" ")[0]))).toEqual(new Set(replicas.map(address)));
    for (const op of ["set", "delete", "ms"]) {
      const lines = (await getValue(`__gravity__.route(${op},rep:k)`)).split("\r\n").filter(Boolean);
      expect(lines).toEqual(replicas.map((replica) => `${address(replica)} write`));
    }
  });

  test("the tree, one handle per line", async () => {
    expect(await getValue("__gravity__.tree")).toBe(
      'prefix("rep:", "*")\r\n' +
        "  replicated(pool=replicas, writes=all-sync, reads=hedged)\r\n" +
        "  sharded(pool=main)\r\n",
    );
  });

  test("a question it cannot answer is CLIENT_ERROR, and the connection goes on", async () => {
    expect(await client.command("get __gravity__.route(frobnicate,k)")).toMatch(
      /^CLIENT_ERROR unknown operation "frobnicate"/,
    );
    expect(await client.command("get __gravity__.nothing")).toMatch(/^CLIENT_ERROR unknown question/);
    expect(await client.command("version")).toMatch(/^VERSION /);
  });
});

describe("stats through the router", () => {
  // Reads a stats reply into a map.
  async function stats(group = ""): Promise<Map<string, string>> {
    await client.send(`stats${group === "" ? "" : ` ${group}`}\r\n`);
    const text = fromLatin1(await client.readThroughLine("END"));
    const found = new Map<string, string>();
    for (const line of text.split("\r\n")) {
      const match = /^STAT (\S+) (.*)$/.exec(line);
      if (match !== null) found.set(match[1] as string, match[2] as string);
    }
    return found;
  }

  test("stats sums the leaves' curr_items, bytes and limit_maxbytes, and says how many answered", async () => {
    for (let i = 0; i < 10; i++) expect(await client.command(`set totals:${i} 0 0 1\r\nx`)).toBe("STORED");
    expect(await client.command("set rep:totals 0 0 1\r\nx")).toBe("STORED");
    const all = await stats();
    // The router's own counters are still there.
    expect(Number(all.get("cmd_set"))).toBeGreaterThanOrEqual(11);
    expect(all.get("leaves_answered")).toBe("6");
    expect(all.get("leaves_total")).toBe("6");
    // Ask every leaf directly: the router's sums are theirs.
    let items = 0;
    let bytes = 0;
    let limit = 0;
    for (const leaf of [...shards, ...replicas]) {
      const direct = await McClient.connect(leaf.port);
      await direct.send("stats\r\n");
      const text = fromLatin1(await direct.readThroughLine("END"));
      items += Number(/STAT curr_items (\d+)/.exec(text)?.[1]);
      bytes += Number(/STAT bytes (\d+)/.exec(text)?.[1]);
      limit += Number(/STAT limit_maxbytes (\d+)/.exec(text)?.[1]);
      direct.close();
    }
    expect(items).toBeGreaterThanOrEqual(13); // 10 sharded keys, one key on three replicas
    expect(all.get("curr_items")).toBe(String(items));
    expect(all.get("bytes")).toBe(String(bytes));
    expect(all.get("limit_maxbytes")).toBe(String(limit));
  });

  test("stats items, slabs and sizes are the leaves' merged: item counts add up, sizes as memcached's", async () => {
    const items = await stats("items");
    let perClass = 0;
    for (const [name, value] of items) if (/^items:\d+:number$/.test(name)) perClass += Number(value);
    const all = await stats();
    expect(perClass).toBe(Number(all.get("curr_items")));
    expect(perClass).toBeGreaterThan(0);
    const slabs = await stats("slabs");
    expect(Number(slabs.get("total_malloced"))).toBeGreaterThan(0);
    expect(Object.fromEntries(await stats("sizes"))).toEqual({ sizes_status: "disabled" });
  });

  test("stats servers: one line per leaf of every pool with its state and counts", async () => {
    const servers = await stats("servers");
    const names = [
      ...shards.map((leaf) => `main/${address(leaf)}`),
      ...replicas.map((leaf) => `replicas/${address(leaf)}`),
    ];
    expect([...servers.keys()].sort()).toEqual(names.sort());
    for (const [, fields] of servers) {
      expect(fields).toMatch(/^state:up requests:\d+ errors:0 avg_latency_us:\d+ in_flight:\d+$/);
    }
    // Every replica took the replicated set: each has answered at least one request.
    for (const leaf of replicas)
      expect(
        Number(/requests:(\d+)/.exec(servers.get(`replicas/${address(leaf)}`) ?? "")?.[1]),
      ).toBeGreaterThan(0);
  });
});

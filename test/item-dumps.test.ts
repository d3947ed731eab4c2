// Item dumps and per-class statistics on a leaf, as tools that read them from memcached use them:
// libmemcached's memcdump ("stats cachedump N 0" for N = 0..63), the npm `memcached` client's
// items(), and "lru_crawler metadump all", whose lines must have memcached
// 1.6's shape for the same keys. (The npm client's items() and cachedump() against a leaf and a
// router are in test/clients/memcached-npm.test.ts, memcdump through a router in
// test/clients/libmemcached-tools.test.ts.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Memcached from "memcached";
import { startShardedRouter } from "./helpers/client-targets.ts";
import { McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  requireBinary,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

// Keys of several sizes (so they fall in several classes), one with an expiry, one needing
// URI encoding in a metadump line.
const KEYS: [string, number, number][] = [
  ["small", 3, 0],
  ["with%percent", 10, 0],
  ["expiring", 20, 3600],
  ["medium", 700, 0],
  ["large", 5000, 0],
  ["huge", 200_000, 0],
];

let leaf: ServerProcess;
let memcached: ServerProcess;
let router: ServerProcess;
let replicated: ServerProcess;

async function load(server: ServerProcess): Promise<void> {
  const client = await McClient.connect(server.port);
  try {
    for (const [key, bytes, exptime] of KEYS) {
      await client.send(`set ${key} 0 ${exptime} ${bytes}\r\n${"v".repeat(bytes)}\r\n`);
      expect(await client.readLine()).toBe("STORED");
    }
    await client.send("get small\r\n");
    await client.readThroughLine("END");
  } finally {
    client.close();
  }
}

// A metadump's lines checked against memcached 1.6's shape: [key, { exp, fetch }] sorted by key.
function parseMetadump(dump: string): [string, { exp: string; fetch: string }][] {
  const shape = /^key=(\S+) exp=(-1|\d+) la=\d+ cas=\d+ fetch=(yes|no) cls=\d+ size=\d+$/;
  expect(dump.endsWith("\nEND\r\n")).toBe(true);
  const lines = dump
    .slice(0, -"END\r\n".length)
    .split("\n")
    .filter((line) => line !== "");
  const byKey = new Map<string, { exp: string; fetch: string }>();
  for (const line of lines) {
    const m = shape.exec(line);
    expect(m, line).not.toBeNull();
    if (m)
      byKey.set(decodeURIComponent(m[1] as string), {
        exp: m[2] === "-1" ? "never" : "set",
        fetch: m[3] as string,
      });
  }
  expect(byKey.size).toBe(lines.length); // each key once
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
}

// Sends one command and returns its reply through the final "END\r\n" (metadump lines end in a
// bare "\n", so the reply is not read line by line).
async function command(server: ServerProcess, line: string): Promise<string> {
  let reply = "";
  let done: () => void = () => {};
  const ended = new Promise<void>((resolve) => {
    done = resolve;
  });
  const socket = await Bun.connect({
    hostname: server.host,
    port: server.port,
    socket: {
      data(_socket, data) {
        reply += Buffer.from(data).toString("latin1");
        if (reply.endsWith("END\r\n")) done();
      },
    },
  });
  try {
    socket.write(`${line}\r\n`);
    await withDeadline(ended, 10_000, `${line} against ${server.name}`);
    return reply;
  } finally {
    socket.end();
  }
}

function call<T>(what: string, method: (callback: (err: unknown, result: T) => void) => void): Promise<T> {
  const result = new Promise<T>((resolve, reject) => {
    method((err, value) => (err ? reject(err) : resolve(value)));
  });
  return withDeadline(result, 10_000, `memcached client: ${what}`);
}

beforeAll(async () => {
  let leaves: ServerProcess[];
  [leaf, memcached, ...leaves] = await Promise.all([
    startLeaf(["--port", "0"]),
    startMemcached(),
    ...[0, 1, 2, 3].map(() => startLeaf(["--port", "0"])),
  ]);
  router = await startShardedRouter(leaves.slice(0, 2));
  const config = join(mkdtempSync(join(tmpdir(), "gravity-item-dumps-")), "replicated.json");
  writeFileSync(
    config,
    JSON.stringify({
      pools: { replicas: { servers: leaves.slice(2).map((replica) => `${HOST}:${replica.port}`) } },
      route: { type: "replicated", pool: "replicas", writes: "all-sync" },
    }),
  );
  replicated = await startRouter(["--port", "0", "--config", config]);
  await Promise.all([load(leaf), load(memcached), load(router), load(replicated)]);
}, SERVER_TEST_MS);

afterAll(() => stopAll());

describe("item dumps on a leaf", () => {
  test("memcdump lists exactly the stored keys, as against memcached", async () => {
    const memcdump = requireBinary("/usr/bin/memcdump");
    const run = async (server: ServerProcess) => {
      const proc = Bun.spawn([memcdump, `--servers=${server.host}:${server.port}`], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const out = new Response(proc.stdout).text();
      await withDeadline(proc.exited, 10_000, `memcdump against ${server.name}`);
      expect(proc.exitCode).toBe(0);
      return (await out)
        .split("\n")
        .filter((line) => line !== "")
        .sort();
    };
    const expected = KEYS.map(([key]) => key).sort();
    expect(await run(leaf)).toEqual(expected);
    // memcached is the harness check only: its cachedump walks one LRU segment of a class, so
    // items still in another segment are often missing from its dump (seen: 3 of 6, in some runs);
    // what it lists is always among the stored keys, in the same output format memcdump parses.
    const theirs = await run(memcached);
    expect(theirs.every((key) => expected.includes(key))).toBe(true);
  });

  test("metadump lines have memcached's shape for the same keys", async () => {
    const ours = parseMetadump(await command(leaf, "lru_crawler metadump all"));
    const theirs = parseMetadump(await command(memcached, "lru_crawler metadump all"));
    expect(ours).toEqual(theirs);
    expect(ours.map(([key]) => key)).toEqual(KEYS.map(([key]) => key).sort());
    expect(await command(leaf, "lru_crawler metadump all")).toContain("key=with%25percent ");
  });

  test("the npm memcached client's items() counts every key", async () => {
    const client = new Memcached(`${leaf.host}:${leaf.port}`);
    try {
      const items = await call<Memcached.StatusData[]>("items", (cb) => client.items(cb));
      expect(items.length).toBe(1);
      const classes = Object.entries(items[0] as Record<string, unknown>).filter(([id]) => id !== "server");
      expect(classes.length).toBeGreaterThan(1);
      let total = 0;
      for (const [, fields] of classes) total += Number((fields as Record<string, number>).number);
      expect(total).toBe(KEYS.length);
    } finally {
      client.end();
    }
  });

  test("stats sizes is memcached's reply; stats settings answers; stats conns in memcached's shape", async () => {
    expect(await command(leaf, "stats sizes")).toBe(await command(memcached, "stats sizes"));
    expect(await command(leaf, "stats settings")).toContain(`STAT item_size_max 1048576\r\n`);
    // The asking connection as memcached lists it: its peer, the listener, its state.
    const self = (server: ServerProcess) =>
      new RegExp(
        `STAT (\\d+):addr tcp:127\\.0\\.0\\.1:\\d+\r\nSTAT \\1:listen_addr tcp:127\\.0\\.0\\.1:${server.port}\r\n` +
          "STAT \\1:state conn_parse_cmd\r\nSTAT \\1:secs_since_last_cmd 0\r\n",
      );
    expect(await command(memcached, "stats conns")).toMatch(self(memcached));
    expect(await command(leaf, "stats conns")).toMatch(self(leaf));
    expect(await command(leaf, "stats slabs")).toMatch(
      /STAT active_slabs \d+\r\nSTAT total_malloced \d+\r\nEND\r\n$/,
    );
  });
});

// A router asks each leaf and merges their dumps (src/router/leaf-dumps.ts).
describe("item dumps through a router over two sharded leaves", () => {
  test("lru_crawler metadump all lists every key of both leaves once, as memcached lists them", async () => {
    const ours = parseMetadump(await command(router, "lru_crawler metadump all"));
    expect(ours).toEqual(parseMetadump(await command(memcached, "lru_crawler metadump all")));
  });

  test("through a replicated pool each key is listed once, though each replica holds it", async () => {
    const ours = parseMetadump(await command(replicated, "lru_crawler metadump all"));
    expect(ours.map(([key]) => key)).toEqual(KEYS.map(([key]) => key).sort());
  });

  test("stats cachedump merges the leaves' classes and keeps to the limit", async () => {
    const keysOf = (dump: string) =>
      [...dump.matchAll(/^ITEM (\S+) \[\d+ b; \d+ s\]\r\n/gm)].map((m) => m[1] as string).sort();
    const all: string[] = [];
    for (let id = 0; id < 64; id++) {
      const viaRouter = keysOf(await command(router, `stats cachedump ${id} 0`));
      all.push(...viaRouter);
      const limited = keysOf(await command(router, `stats cachedump ${id} 1`));
      expect(limited.length).toBe(Math.min(viaRouter.length, 1));
    }
    expect(all.sort()).toEqual(KEYS.map(([key]) => key).sort());
  });

  test("bad dump requests and the crawler's commands get memcached's replies, on a leaf and a router", async () => {
    const reply = async (server: ServerProcess, line: string) => {
      const client = await McClient.connect(server.port);
      try {
        return await client.command(line);
      } finally {
        client.close();
      }
    };
    // memcached's crawler runs (enable: "failed to start"); the leaf's expiry sweeper always runs,
    // and crawl sweeps now. (disable differs by design: memcached stops its crawler, the leaf
    // cannot stop its sweeper and says so.)
    for (const line of [
      "lru_crawler metadump 99",
      "stats cachedump 1 x",
      "lru_crawler metadump",
      "lru_crawler crawl all",
      "lru_crawler crawl 99",
      "lru_crawler crawl",
      "lru_crawler enable",
    ]) {
      const want = await reply(memcached, line);
      expect([await reply(leaf, line), await reply(router, line)], line).toEqual([want, want]);
    }
    expect(await reply(router, "lru_crawler disable")).toBe("ERROR failed to stop lru crawler thread");
  });
});

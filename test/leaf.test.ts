// A gravity leaf (source build) over real sockets: framing, binary safety, limits, bad input,
// backpressure, threads, shutdown and stats.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pkg from "../package.json" with { type: "json" };
import { fromLatin1, latin1, McClient } from "./helpers/mc-client.ts";
import {
  type LeafProcess,
  peakRssBytes,
  rssBytes,
  runGravity,
  SERVER_TEST_MS,
  startLeaf,
  stopAll,
} from "./helpers/servers.ts";

const MIB = 1024 * 1024;

let leaf: LeafProcess;
beforeAll(async () => {
  leaf = await startLeaf(["--port", "0", "--memory", "64mb", "--max-item-size", "1m"]);
}, SERVER_TEST_MS);
afterAll(stopAll);

/** The bytes memcached sends for a `get` hit on one key. */
function valueReply(key: string, flags: number, value: Uint8Array): Uint8Array {
  return Buffer.concat([latin1(`VALUE ${key} ${flags} ${value.length}\r\n`), value, latin1("\r\nEND\r\n")]);
}

function setRequest(key: string, flags: number, value: Uint8Array): Uint8Array {
  return Buffer.concat([latin1(`set ${key} ${flags} 0 ${value.length}\r\n`), value, latin1("\r\n")]);
}

/** Deterministic pseudo-random bytes (mulberry32), so a failing seed can be replayed. */
function randomBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (t ^ (t >>> 14)) & 0xff;
  }
  return out;
}

/** `count` CRLF-terminated lines of random bytes (so the parser sees many "commands"). */
function randomLines(seed: number, count: number): Uint8Array {
  const lines: Uint8Array[] = [];
  for (let i = 0; i < count; i++) lines.push(randomBytes(seed * 1000 + i, 1 + (i % 90)), latin1("\r\n"));
  return Buffer.concat(lines);
}

/** A value of `length` bytes holding every byte value, and CRLF and "END" sequences inside. */
function binaryValue(length: number): Uint8Array {
  const value = new Uint8Array(length);
  for (let i = 0; i < length; i++) value[i] = (i * 131 + (i >> 8)) & 0xff;
  value.set(latin1("\r\nEND\r\n"), 1000);
  return value;
}

/** Reads `count` replies that must each equal `expected`, byte for byte. */
async function expectReplies(client: McClient, expected: Uint8Array, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const got = await client.readBytes(expected.length);
    if (Buffer.compare(got, expected) !== 0) throw new Error(`reply ${i + 1} of ${count} differs`);
  }
}

async function version(port: number): Promise<string> {
  const client = await McClient.connect(port);
  try {
    return await client.command("version");
  } finally {
    client.close();
  }
}

// One pipelined batch: each request with the exact reply it must get ("" for noreply). The batch
// leaves the store as it found it, so it can run once per split.
const BATCH: [request: string, reply: string][] = [
  ["set split:a 1 0 5\r\nhello\r\n", "STORED\r\n"],
  ["get split:a\r\n", "VALUE split:a 1 5\r\nhello\r\nEND\r\n"],
  ["add split:a 0 0 1\r\nx\r\n", "NOT_STORED\r\n"],
  ["append split:a 0 0 3\r\n!!!\r\n", "STORED\r\n"],
  ["get split:a split:missing\r\n", "VALUE split:a 1 8\r\nhello!!!\r\nEND\r\n"],
  ["set split:crlf 0 0 6\r\nab\r\ncd\r\n", "STORED\r\n"],
  ["get split:crlf\r\n", "VALUE split:crlf 0 6\r\nab\r\ncd\r\nEND\r\n"],
  ["set split:n 0 0 2\r\n10\r\n", "STORED\r\n"],
  ["incr split:n 5\r\n", "15\r\n"],
  ["decr split:n 20\r\n", "0\r\n"],
  ["incr split:missing 1\r\n", "NOT_FOUND\r\n"],
  ["set split:quiet 0 0 4 noreply\r\nquie\r\n", ""],
  ["get split:quiet\r\n", "VALUE split:quiet 0 4\r\nquie\r\nEND\r\n"],
  ["delete split:quiet noreply\r\n", ""],
  ["delete split:a\r\n", "DELETED\r\n"],
  ["delete split:a\r\n", "NOT_FOUND\r\n"],
  ["delete split:crlf\r\n", "DELETED\r\n"],
  ["delete split:n\r\n", "DELETED\r\n"],
  ["bogus_command\r\n", "ERROR\r\n"],
  ["get split:quiet\r\n", "END\r\n"],
];

describe("framing", () => {
  const request = BATCH.map(([req]) => req).join("");
  const reply = BATCH.map(([, rep]) => rep).join("");

  test("a pipelined batch gets its replies in order", async () => {
    const client = await McClient.connect(leaf.port);
    await client.send(request);
    expect(fromLatin1(await client.readBytes(reply.length))).toBe(reply);
    expect(await client.command("version")).toMatch(/^VERSION /);
    client.close();
  });

  test("the batch split at every byte boundary gets identical replies", async () => {
    const wrong: string[] = [];
    for (let offset = 1; offset < request.length; offset++) {
      const client = await McClient.connect(leaf.port);
      await client.send(request.slice(0, offset));
      // The leaf reads the first part before the second is sent, so the split is a real read boundary.
      await client.waitPeerRead();
      await client.send(request.slice(offset));
      const got = fromLatin1(await client.readBytes(reply.length));
      if (got !== reply) wrong.push(`split at ${offset}: ${JSON.stringify(got)}`);
      client.reset();
    }
    expect(wrong).toEqual([]);
  }, 60_000);
});

test("noreply commands produce no output", async () => {
  const client = await McClient.connect(leaf.port);
  await client.command("delete quiet:k");
  await client.send(
    [
      "set quiet:k 0 0 1 noreply\r\na\r\n",
      "add quiet:k 0 0 1 noreply\r\nb\r\n",
      "replace quiet:k 0 0 1 noreply\r\nc\r\n",
      "append quiet:k 0 0 1 noreply\r\nd\r\n",
      "prepend quiet:k 0 0 1 noreply\r\ne\r\n",
      "set quiet:n 0 0 1 noreply\r\n5\r\n",
      "incr quiet:n 10 noreply\r\n",
      "decr quiet:n 3 noreply\r\n",
      "touch quiet:n 1000 noreply\r\n",
      "delete quiet:gone noreply\r\n",
      "version\r\n",
    ].join(""),
  );
  // The first reply on the connection must be the version's.
  expect(await client.readLine()).toMatch(/^VERSION /);
  await client.send("get quiet:k quiet:n\r\n");
  expect(await client.readLines(5)).toEqual(["VALUE quiet:k 0 3", "ecd", "VALUE quiet:n 0 2", "12", "END"]);
  await client.send("gets quiet:k\r\n");
  const [header = "", ...rest] = await client.readLines(3);
  expect(header).toMatch(/^VALUE quiet:k 0 3 \d+$/);
  expect(rest).toEqual(["ecd", "END"]);
  const cas = header.split(" ")[4];
  await client.send(
    `cas quiet:k 0 0 1 ${cas} noreply\r\nz\r\ndelete quiet:n noreply\r\nget quiet:k quiet:n\r\n`,
  );
  expect(await client.readLines(3)).toEqual(["VALUE quiet:k 0 1", "z", "END"]);
  client.close();
});

test("a ~900 KB value holding every byte value round-trips intact", async () => {
  const value = binaryValue(900 * 1024);
  expect(new Set(value).size).toBe(256);
  const client = await McClient.connect(leaf.port);
  await client.send(setRequest("big:binary", 4294967295, value));
  expect(await client.readLine()).toBe("STORED");
  await client.send("get big:binary\r\n");
  const expected = valueReply("big:binary", 4294967295, value);
  const got = await client.readBytes(expected.length);
  expect(Buffer.compare(got, expected)).toBe(0);
  client.close();
});

test("an oversized value gets SERVER_ERROR object too large for cache and the connection keeps working", async () => {
  const client = await McClient.connect(leaf.port);
  await client.send(setRequest("big:fits", 0, latin1("ok")));
  expect(await client.readLine()).toBe("STORED");
  await client.send(setRequest("big:oversized", 0, randomBytes(7, MIB + 1)));
  expect(await client.readLine()).toBe("SERVER_ERROR object too large for cache");
  // The value's bytes were swallowed, not parsed as commands: the next reply is the get's.
  await client.send("get big:oversized big:fits\r\n");
  expect(await client.readLines(3)).toEqual(["VALUE big:fits 0 2", "ok", "END"]);
  expect(await client.command("version")).toMatch(/^VERSION /);
  client.close();
});

test(
  "random garbage never kills the leaf",
  async () => {
    const flavours: [name: string, bytes: (seed: number) => Uint8Array][] = [
      ["random bytes", (seed) => randomBytes(seed, 64 * 1024)],
      ["random lines", (seed) => randomLines(seed, 200)],
      ["a 64 KiB line", () => latin1(`get ${"k".repeat(64 * 1024)}`)],
      [
        "huge lengths",
        (seed) => latin1(`set k${seed} 0 0 ${2 ** 31 + seed}\r\nincr k 99999999999999999999999\r\n`),
      ],
      ["control bytes in keys", (seed) => latin1(`get a\x00b\x7f${seed}\r\nset \x01 0 0 1\r\nx\r\n`)],
    ];
    for (let seed = 1; seed <= 10; seed++) {
      for (const [name, bytes] of flavours) {
        const client = await McClient.connect(leaf.port);
        // The leaf may close first (e.g. line too long); that is allowed, dying is not.
        await client.send(bytes(seed)).catch(() => {});
        client.endWrite();
        await client.waitClosed().catch((error: Error) => {
          throw new Error(`${name}, seed ${seed}: ${error.message}`);
        });
        expect(leaf.exitCode(), `${name}, seed ${seed}: ${leaf.stderr()}`).toBeUndefined();
      }
    }
    expect(await version(leaf.port)).toMatch(/^VERSION \S+$/);
  },
  SERVER_TEST_MS,
);

test(
  "a client that never reads keeps the leaf's memory bounded and others are served",
  async () => {
    const value = randomBytes(11, 900 * 1024);
    const writer = await McClient.connect(leaf.port);
    await writer.send(setRequest("slow:big", 0, value));
    expect(await writer.readLine()).toBe("STORED");
    const baseline = await rssBytes(leaf.pid);

    // 400 gets of 900 KB: 360 MB of replies that the leaf must not buffer.
    const gets = 400;
    const slow = await McClient.connect(leaf.port);
    slow.pause();
    await slow.send("get slow:big\r\n".repeat(gets));

    // Other clients are served meanwhile, and the big value still comes back whole.
    const expected = valueReply("slow:big", 0, value);
    for (let i = 0; i < 10; i++) {
      const other = await McClient.connect(leaf.port);
      await other.send("get slow:big\r\n");
      expect(Buffer.compare(await other.readBytes(expected.length), expected)).toBe(0);
      other.close();
    }
    // The slow client really did stop reading: most replies are still the leaf's problem.
    expect(slow.receivedBytes).toBeLessThan((gets * expected.length) / 4);
    const grown = (await peakRssBytes(leaf.pid)) - baseline;
    expect(grown, `peak RSS grew ${Math.round(grown / MIB)} MiB`).toBeLessThan(150 * MIB);

    // Reading again, the slow client gets every reply, intact.
    slow.resume();
    await expectReplies(slow, expected, gets);
    slow.close();
    writer.close();
  },
  SERVER_TEST_MS,
);

test("stats reports the required fields", async () => {
  const client = await McClient.connect(leaf.port);
  const stats = async () => {
    await client.send("stats\r\n");
    const lines = fromLatin1(await client.readThroughLine("END")).split("\r\n");
    const map = new Map<string, string>();
    for (const line of lines) {
      const match = /^STAT (\S+) (.*)$/.exec(line);
      if (match !== null) map.set(match[1] as string, match[2] as string);
    }
    return map;
  };
  const before = await stats();
  const numeric = [
    "pid",
    "uptime",
    "time",
    "curr_connections",
    "total_connections",
    "cmd_get",
    "cmd_set",
    "get_hits",
    "get_misses",
    "curr_items",
    "total_items",
    "bytes",
    "limit_maxbytes",
    "evictions",
  ];
  const missing = [...numeric, "version"].filter((name) => !before.has(name));
  expect(missing).toEqual([]);
  const notNumbers = numeric.filter((name) => !/^\d+$/.test(before.get(name) ?? ""));
  expect(notNumbers).toEqual([]);
  expect(before.get("pid")).toBe(String(leaf.pid));
  expect(before.get("version")).toContain(pkg.version);
  expect(before.get("limit_maxbytes")).toBe(String(64 * MIB));
  expect(Math.abs(Number(before.get("time")) - Date.now() / 1000)).toBeLessThan(5);
  expect(Number(before.get("curr_connections"))).toBeGreaterThanOrEqual(1);

  await client.send(setRequest("stats:k", 0, latin1("v")));
  expect(await client.readLine()).toBe("STORED");
  await client.send("get stats:k\r\nget stats:missing\r\n");
  await client.readLines(4);
  const after = await stats();
  const delta = (name: string) => Number(after.get(name)) - Number(before.get(name));
  expect({
    cmd_set: delta("cmd_set"),
    cmd_get: delta("cmd_get"),
    get_hits: delta("get_hits"),
    get_misses: delta("get_misses"),
  }).toEqual({ cmd_set: 1, cmd_get: 2, get_hits: 1, get_misses: 1 });
  client.close();
});

test(
  "--threads 2 serves one store to every connection",
  async () => {
    const threaded = await startLeaf(["--port", "0", "--threads", "2"]);
    expect(threaded.threads).toBe(2);
    const setter = await McClient.connect(threaded.port);
    await setter.send(setRequest("threads:k", 3, latin1("shared")));
    expect(await setter.readLine()).toBe("STORED");
    const clients = await Promise.all(Array.from({ length: 20 }, () => McClient.connect(threaded.port)));
    const replies = await Promise.all(
      clients.map(async (client) => {
        await client.send("get threads:k\r\n");
        return (await client.readLines(3)).join("|");
      }),
    );
    expect(replies).toEqual(Array(20).fill("VALUE threads:k 3 6|shared|END"));
    for (const client of [setter, ...clients]) client.close();
    expect(await threaded.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "SIGTERM exits 0 after a pipelined batch in flight gets all its replies",
  async () => {
    const stopping = await startLeaf(["--port", "0"]);
    const value = randomBytes(5, 500 * 1024);
    const client = await McClient.connect(stopping.port);
    await client.send(setRequest("term:big", 0, value));
    expect(await client.readLine()).toBe("STORED");

    // 100 gets of 500 KB: the leaf is still writing replies when the signal arrives.
    const gets = 100;
    const expected = valueReply("term:big", 0, value);
    await client.send("get term:big\r\n".repeat(gets));
    // Stop reading once replies flow, so most of them are still unsent when the leaf handles the
    // signal (it prints a line then); read again only after that.
    await client.read((unread) => (unread.length > 0 ? 0 : undefined), "the first reply bytes");
    client.pause();
    stopping.signal("SIGTERM");
    await stopping.waitForStdout(/SIGTERM, stopping/);
    expect(client.receivedBytes).toBeLessThan((gets * expected.length) / 2);
    client.resume();
    await expectReplies(client, expected, gets);
    await client.waitClosed();
    expect(client.buffered().length).toBe(0);
    expect(await stopping.waitExit(20_000)).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "connections over --max-connections get memcached's error and are closed; the others keep working",
  async () => {
    const limited = await startLeaf(["--port", "0", "--max-connections", "2"]);
    const first = await McClient.connect(limited.port);
    const second = await McClient.connect(limited.port);
    expect(await first.command("version")).toStartWith("VERSION ");
    expect(await second.command("version")).toStartWith("VERSION ");
    const third = await McClient.connect(limited.port);
    expect(await third.readLine()).toBe("ERROR Too many open connections");
    await third.waitClosed();
    expect(await first.command("version")).toStartWith("VERSION ");
    first.close();
    second.close();
    expect(await limited.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "SIGTERM closes idle connections whose clients never close, and exits 0",
  async () => {
    const stopping = await startLeaf(["--port", "0"]);
    const idle = await Promise.all(Array.from({ length: 5 }, () => McClient.connect(stopping.port)));
    for (const client of idle) expect(await client.command("version")).toStartWith("VERSION ");
    stopping.signal("SIGTERM");
    for (const client of idle) await client.waitClosed();
    expect(await stopping.waitExit(20_000)).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "a second leaf with --threads 2 on a port in use fails naming the port instead of sharing it",
  async () => {
    const first = await startLeaf(["--port", "0", "--threads", "2"]);
    const second = await runGravity(["leaf", "--port", String(first.port), "--threads", "2"]);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(`cannot listen on 127.0.0.1:${first.port} (--listen, --port)`);
    expect(await version(first.port)).toStartWith("VERSION ");
    expect(await first.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "the default policy (tinylfu) serves the protocol and reports admissions_rejected; an lru leaf's stats stay memcached's",
  async () => {
    const client = await McClient.connect(leaf.port);
    await client.send(setRequest("policy:k", 7, latin1("frequent")));
    expect(await client.readLine()).toBe("STORED");
    await client.send("get policy:k\r\n");
    expect(await client.readLines(3)).toEqual(["VALUE policy:k 7 8", "frequent", "END"]);
    await client.send("stats\r\n");
    const lines = fromLatin1(await client.readThroughLine("END")).split("\r\n");
    expect(lines.some((line) => /^STAT admissions_rejected \d+$/.test(line))).toBe(true);
    client.close();

    const lru = await startLeaf(["--port", "0", "--policy", "lru"]);
    const lruClient = await McClient.connect(lru.port);
    await lruClient.send("stats\r\n");
    expect(fromLatin1(await lruClient.readThroughLine("END"))).not.toContain("admissions_rejected");
    lruClient.close();
    expect(await lru.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "--inject-latency delays the share of replies it names, and only when asked",
  async () => {
    const slow = await startLeaf(["--port", "0", "--inject-latency", "100%:150ms"]);
    const fast = await startLeaf(["--port", "0", "--inject-latency", "0%:5000ms"]);
    const timeSet = async (port: number) => {
      const client = await McClient.connect(port);
      const start = performance.now();
      await client.send("set k 0 0 1\r\nv\r\n");
      expect(await client.readLine()).toBe("STORED");
      const elapsed = performance.now() - start;
      client.close();
      return elapsed;
    };
    // Every reply of the slow leaf waits 150 ms (a lower bound: a loaded machine only adds to it);
    // the 0% leaf would take 5 s if it delayed anything, past the test's deadline.
    expect(await timeSet(slow.port)).toBeGreaterThanOrEqual(145);
    expect(await timeSet(fast.port)).toBeLessThan(5000);
    expect(await slow.stop("SIGTERM")).toBe(0);
    expect(await fast.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

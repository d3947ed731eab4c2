// The npm `memcached` client (text protocol, callback API) as a new user drives it, on Bun: one
// script of set/get/getMulti/gets+cas/add/replace/append/prepend/del/incr/decr/touch/flush run
// against real memcached, a leaf and a router over two sharded leaves; every result must be
// what memcached gave. Then stats and version, which differ in values but not in shape, and the
// item dumps items() and cachedump(), which must list exactly the keys stored.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Memcached from "memcached";
import { type ClientTargets, startClientTargets } from "../helpers/client-targets.ts";
import { McClient } from "../helpers/mc-client.ts";
import { SERVER_TEST_MS, type ServerProcess, startMemcached, stopAll } from "../helpers/servers.ts";
import { withDeadline } from "../helpers/wait.ts";

/** One step's outcome: the error message the client gave, or its result. */
type Outcome = { error: string } | { result: unknown };

// Calls one callback-style method and resolves with its outcome (never rejects before the deadline).
function call<T>(what: string, method: (callback: (err: unknown, result: T) => void) => void) {
  const outcome = new Promise<Outcome>((resolve) => {
    method((err, result) => {
      if (err !== undefined && err !== null) {
        const errors = Array.isArray(err) ? err : [err];
        resolve({ error: errors.map((e) => (e instanceof Error ? e.message : String(e))).join("; ") });
      } else resolve({ result });
    });
  });
  return withDeadline(outcome, 10_000, `memcached client: ${what}`);
}

function connect(server: ServerProcess): Memcached {
  return new Memcached(`${server.host}:${server.port}`);
}

function end(client: Memcached): void {
  client.end();
}

// The script: [step name, outcome] in order. cas tokens differ between servers by design, so a
// gets is reduced to its value and whether a token came with it.
async function script(client: Memcached): Promise<[string, Outcome][]> {
  const steps: [string, Outcome][] = [];
  const step = async <T>(name: string, method: (callback: (err: unknown, result: T) => void) => void) => {
    const outcome = await call(name, method);
    steps.push([name, outcome]);
    return outcome;
  };
  await step("flush", (cb) => client.flush(cb));
  await step("get missing", (cb) => client.get("missing", cb));
  await step("set string", (cb) => client.set("greeting", "hello", 0, cb));
  await step("get string", (cb) => client.get("greeting", cb));
  await step("set number", (cb) => client.set("number", 42, 0, cb));
  await step("get number (flags say numeric)", (cb) => client.get("number", cb));
  await step("set object", (cb) => client.set("object", { a: [1, 2], b: "c" }, 0, cb));
  await step("get object (flags say JSON)", (cb) => client.get("object", cb));
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  await step("set Buffer", (cb) => client.set("buffer", bytes, 0, cb));
  const gotBuffer = await call("get Buffer", (cb: (err: unknown, result: unknown) => void) =>
    client.get("buffer", cb),
  );
  steps.push([
    "get Buffer intact",
    { result: "result" in gotBuffer && Buffer.isBuffer(gotBuffer.result) && bytes.equals(gotBuffer.result) },
  ]);
  await step("set unicode", (cb) => client.set("unicode", "ключ → ✓", 0, cb));
  await step("get unicode", (cb) => client.get("unicode", cb));
  await step("set a value with CRLF", (cb) => client.set("crlf", "line one\r\nEND\r\n", 0, cb));
  await step("get a value with CRLF", (cb) => client.get("crlf", cb));
  const big = "x".repeat(700 * 1024);
  await step("set 700 KiB", (cb) => client.set("big", big, 0, cb));
  const gotBig = await call("get 700 KiB", (cb: (err: unknown, result: unknown) => void) =>
    client.get("big", cb),
  );
  steps.push(["get 700 KiB intact", { result: "result" in gotBig && gotBig.result === big }]);
  await step("set over the client's 1 MiB limit", (cb) => client.set("huge", "y".repeat(1048577), 0, cb));

  const keys = Array.from({ length: 20 }, (_, i) => `multi:${i}`);
  for (const key of keys) await step(`set ${key}`, (cb) => client.set(key, `value of ${key}`, 0, cb));
  await step("getMulti across shards", (cb) => client.getMulti([...keys, "missing"], cb));
  await step("getMulti none found", (cb) => client.getMulti(["nope1", "nope2"], cb));

  await step("add new", (cb) => client.add("added", "first", 0, cb));
  await step("add existing", (cb) => client.add("added", "second", 0, cb));
  await step("get added", (cb) => client.get("added", cb));
  await step("replace existing", (cb) => client.replace("added", "replaced", 0, cb));
  await step("replace missing", (cb) => client.replace("never", "x", 0, cb));
  await step("append", (cb) => client.append("greeting", " world", cb));
  await step("prepend", (cb) => client.prepend("greeting", ">> ", cb));
  await step("get appended and prepended", (cb) => client.get("greeting", cb));
  await step("append missing", (cb) => client.append("never", "x", cb));

  const gets = await call(
    "gets",
    (cb: (err: unknown, result: { cas?: string; greeting?: unknown }) => void) => client.gets("greeting", cb),
  );
  const found = "result" in gets ? (gets.result as { cas?: string; greeting?: unknown }) : undefined;
  const token = found?.cas ?? "";
  steps.push(["gets", { result: { greeting: found?.greeting, hasCas: /^\d+$/.test(token) } }]);
  await step("cas with the token", (cb) => client.cas("greeting", "swapped", token, 0, cb));
  await step("get after cas", (cb) => client.get("greeting", cb));
  await step("cas with the stale token", (cb) => client.cas("greeting", "lost", token, 0, cb));
  await step("get after stale cas", (cb) => client.get("greeting", cb));
  await step("cas missing key", (cb) => client.cas("never", "x", "1", 0, cb));
  await step("gets missing", (cb) => client.gets("never", cb));

  await step("del", (cb) => client.del("greeting", cb));
  await step("del again", (cb) => client.del("greeting", cb));
  await step("get deleted", (cb) => client.get("greeting", cb));

  await step("set counter", (cb) => client.set("counter", "10", 0, cb));
  await step("incr", (cb) => client.incr("counter", 5, cb));
  await step("decr", (cb) => client.decr("counter", 3, cb));
  await step("decr below zero stops at 0", (cb) => client.decr("counter", 100, cb));
  await step("incr missing", (cb) => client.incr("never", 1, cb));
  await step("decr missing", (cb) => client.decr("never", 1, cb));
  await step("incr non-numeric", (cb) => client.incr("added", 1, cb));
  await step("get counter", (cb) => client.get("counter", cb));

  // @types/memcached declares touch's callback without the result the client passes it.
  const touch = (key: string, lifetime: number) => (cb: (err: unknown, result: unknown) => void) =>
    client.touch(key, lifetime, cb as (err: unknown) => void);
  await step("touch", touch("counter", 3600));
  await step("touch missing", touch("never", 3600));
  await step("touch with a past expiry", touch("added", -1));
  await step("get after touch to the past", (cb) => client.get("added", cb));

  // Keys the client accepts: it sends control bytes as they are and hashes keys over 250 bytes.
  for (const [name, key] of [
    ["escape byte", "k\x1bx"],
    ["unicode", "clé·ключ"],
    ["300 characters (the client hashes it)", "k".repeat(300)],
  ] as const) {
    await step(`set key with ${name}`, (cb) => client.set(key, "kv", 0, cb));
    await step(`get key with ${name}`, (cb) => client.get(key, cb));
  }

  await step("flush again", (cb) => client.flush(cb));
  await step("getMulti after flush", (cb) => client.getMulti(keys.slice(0, 5), cb));
  return steps;
}

/** Stats a user of this client reads per server, and their type after the client parsed them. */
const POOL_STATS = [
  "pid",
  "uptime",
  "curr_connections",
  "total_connections",
  "cmd_get",
  "cmd_set",
  "get_hits",
  "get_misses",
  "curr_items",
  "bytes",
  "limit_maxbytes",
  "threads",
];

let targets: ClientTargets;
let reference: [string, Outcome][];

afterAll(stopAll);

beforeAll(async () => {
  targets = await startClientTargets();
  const client = connect(targets.memcached);
  reference = await script(client);
  end(client);
}, SERVER_TEST_MS);

test("against memcached the script gets what the client documents (the harness works)", () => {
  const byName = Object.fromEntries(reference);
  expect(byName).toMatchObject({
    "get string": { result: "hello" },
    "get number (flags say numeric)": { result: 42 },
    "get object (flags say JSON)": { result: { a: [1, 2], b: "c" } },
    "get Buffer intact": { result: true },
    "get 700 KiB intact": { result: true },
    "set over the client's 1 MiB limit": { error: "The length of the value is greater than 1048576" },
    "add existing": { error: "Item is not stored" },
    "replace missing": { error: "Item is not stored" },
    "get appended and prepended": { result: ">> hello world" },
    gets: { result: { greeting: ">> hello world", hasCas: true } },
    "cas with the token": { result: true },
    "cas with the stale token": { result: false },
    "del again": { result: false },
    incr: { result: 15 },
    "decr below zero stops at 0": { result: 0 },
    "incr missing": { result: false },
    "incr non-numeric": { error: "cannot increment or decrement non-numeric value" },
    "get after touch to the past": { result: undefined },
    "get key with escape byte": { result: "kv" },
    "get key with 300 characters (the client hashes it)": { result: "kv" },
  });
  const multi = byName["getMulti across shards"];
  expect(multi !== undefined && "result" in multi && Object.keys(multi.result as object).length).toBe(20);
});

describe.each([
  ["a leaf", () => targets.leaf],
  ["a router over two sharded leaves", () => targets.router],
] as const)("the npm memcached client against %s", (_, target) => {
  let client: Memcached;

  beforeAll(() => {
    client = connect(target());
  });
  afterAll(() => end(client));

  test("every step gives what it gives against memcached", async () => {
    expect(await script(client)).toEqual(reference);
  }, 30_000);
});

describe.each([
  ["memcached", () => targets.memcached],
  ["a leaf", () => targets.leaf],
  ["a router over two sharded leaves", () => targets.router],
] as const)("the npm memcached client's stats and version against %s", (_, target) => {
  let client: Memcached;

  beforeAll(() => {
    client = connect(target());
  });
  afterAll(() => end(client));

  test("stats: one entry for the server, with its counters and fill level as numbers", async () => {
    const outcome = await call("stats", (cb: (err: unknown, result: Memcached.StatusData[]) => void) =>
      client.stats(cb),
    );
    expect(outcome).toHaveProperty("result");
    const entries = "result" in outcome ? (outcome.result as Record<string, unknown>[]) : [];
    expect(entries.map((entry) => entry.server)).toEqual([`${target().host}:${target().port}`]);
    const types = Object.fromEntries(POOL_STATS.map((name) => [name, typeof entries[0]?.[name]]));
    expect(types).toEqual(Object.fromEntries(POOL_STATS.map((name) => [name, "number"])));
  });

  test("version: the client parses the server's version line", async () => {
    const raw = await McClient.connect(target().port);
    const line = await raw.command("version");
    raw.close();
    // The client takes the trailing N.N.N of `VERSION <version>`.
    const trailing = /(\d+)\.(\d+)\.(\d+)$/.exec(line);
    expect(trailing, line).not.toBeNull();
    const outcome = await call("version", (cb: (err: unknown, result: unknown) => void) =>
      client.version(cb),
    );
    expect(outcome).toEqual({
      result: [
        {
          server: `${target().host}:${target().port}`,
          version: trailing?.slice(1).join("."),
          major: trailing?.[1],
          minor: trailing?.[2],
          bugfix: trailing?.[3],
        },
      ],
    });
  });
});

// items() lists the classes that hold items; cachedump(server, class, limit) lists a class's keys.
// (The client empties the array it hands a callback once the callback returns: copy it there.)
// The reference is a fresh memcached without its segmented LRU (no_lru_maintainer): its cachedump lists one LRU of a
// class, which then holds every item of the class (with segments, new items sit in another LRU
// for a while and flushed ones are counted until reclaimed).
describe.each([
  ["memcached -o no_lru_maintainer", () => startMemcached({ extraArgs: ["-o", "no_lru_maintainer"] })],
  ["a leaf", async () => targets.leaf],
  ["a router over two sharded leaves", async () => targets.router],
] as const)("the npm memcached client's items() and cachedump() against %s", (_, start) => {
  const keys = Array.from({ length: 12 }, (_, i) => `dump:${i}:${"k".repeat(i * 20)}`);
  let server: ServerProcess;
  let client: Memcached;
  const target = () => server;

  beforeAll(async () => {
    server = await start();
    client = connect(server);
    await call("flush", (cb) => client.flush(cb));
    for (const [i, key] of keys.entries()) {
      await call(`set ${key}`, (cb) => client.set(key, "v".repeat(i * 100), 0, cb));
    }
  });
  afterAll(() => end(client));

  async function classes(): Promise<Map<string, number>> {
    const outcome = await call("items", (cb: (err: unknown, result: Memcached.StatusData[]) => void) =>
      client.items(cb),
    );
    expect(outcome).toHaveProperty("result");
    const [entry = {}] = "result" in outcome ? (outcome.result as Record<string, unknown>[]) : [];
    expect(entry.server).toBe(`${target().host}:${target().port}`);
    const numbers = new Map<string, number>();
    for (const [id, fields] of Object.entries(entry)) {
      if (id !== "server") numbers.set(id, (fields as { number: number }).number);
    }
    return numbers;
  }

  test("items(): the classes holding items count every key", async () => {
    const numbers = await classes();
    expect(numbers.size).toBeGreaterThan(0);
    expect([...numbers.values()].reduce((a, b) => a + b, 0)).toBe(keys.length);
  });

  test("cachedump() of each class lists the stored keys", async () => {
    const listed: string[] = [];
    const server = `${target().host}:${target().port}`;
    for (const id of (await classes()).keys()) {
      const dump = await withDeadline(
        new Promise<unknown>((resolve, reject) => {
          client.cachedump(server, Number(id), 0, (err, result) => {
            if (err) reject(err);
            else resolve(Array.isArray(result) ? [...result] : result);
          });
        }),
        10_000,
        `cachedump ${id}`,
      );
      // An empty dump is one undefined entry.
      const entries = (Array.isArray(dump) ? dump : [dump]).filter((entry) => entry !== undefined) as {
        key: string;
        b: number;
        s: number;
      }[];
      for (const entry of entries) {
        expect(entry.b).toBe(keys.indexOf(entry.key) * 100);
        expect(entry.s).toBe(0);
        listed.push(entry.key);
      }
    }
    expect(listed.sort()).toEqual([...keys].sort());
  });

  test("cachedump() with a limit lists at most that many keys of the class", async () => {
    const [id] = [...(await classes())].sort(([, a], [, b]) => b - a)[0] ?? ["1"];
    const dump = await new Promise<unknown>((resolve, reject) => {
      client.cachedump(`${target().host}:${target().port}`, Number(id), 2, (err, result) => {
        if (err) reject(err);
        else resolve(Array.isArray(result) ? [...result] : [result]);
      });
    });
    expect((dump as unknown[]).length).toBeGreaterThan(0);
    expect((dump as unknown[]).length).toBeLessThanOrEqual(2);
  });
});

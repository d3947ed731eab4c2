// Read-through loader routes against real leaves (in-process route tree, a sharded pool of two
// gravity leaves) and real origins: a SQLite file, an HTTP server (Bun.serve) that counts its
// requests, and a PostgreSQL and a MariaDB server started for this file, whose lookup functions
// count their calls (the same tests run against both).
// Requests are parsed from wire text by the router's own parser; replies are read as the bytes a
// client would get.

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL } from "bun";
import type { Reply } from "../src/protocol/reply.ts";
import { encodeReply } from "../src/protocol/reply-encoder.ts";
import type { Request } from "../src/protocol/request.ts";
import { RequestParser } from "../src/protocol/request-parser.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { type LoaderCounters, type LoaderOptions, LoaderRoute } from "../src/router/handles/loader.ts";
import { ShardedRoute } from "../src/router/handles/sharded.ts";
import { HttpOrigin } from "../src/router/loader/http-origin.ts";
import type { Origin } from "../src/router/loader/origin.ts";
import { redactedUrl, SqlOrigin } from "../src/router/loader/sql-origin.ts";
import { SqliteOrigin } from "../src/router/loader/sqlite-origin.ts";
import { Pool } from "../src/router/pool.ts";
import type { SqlServer } from "./helpers/database-process.ts";
import { startMariadb, stopAllMariadb } from "./helpers/mariadb.ts";
import { startPostgres, stopAllPostgres } from "./helpers/postgres.ts";
import { HOST, type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const TTL_SECONDS = 300;
const latin1 = new TextDecoder("latin1");

let leaves: LeafProcess[] = [];
let pool: Pool;
let child: ShardedRoute;
const origins: Origin[] = [];
let tempDir: string;

beforeAll(async () => {
  leaves = await Promise.all([startLeaf(["--port", "0"]), startLeaf(["--port", "0"])]);
  pool = new Pool("loaded", {
    ...POOL_DEFAULTS,
    servers: leaves.map((leaf) => ({ host: HOST, port: leaf.port, weight: 1 })),
    timeoutMs: 5000,
  });
  child = new ShardedRoute(pool);
  tempDir = mkdtempSync(join(tmpdir(), "gravity-loader-"));
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const origin of origins) await origin.close();
  for (const destination of pool?.destinations ?? []) await destination.close();
  await stopAll();
  rmSync(tempDir, { recursive: true, force: true });
});

/** The one request that `line` (wire text, CRLFs added) parses to, as the router's server gets it. */
function parse(line: string): Request {
  const requests: Request[] = [];
  const parser = new RequestParser(
    {
      onRequest: (request) => requests.push(request),
      onError: (reply) => {
        throw new Error(`${line}: ${latin1.decode(reply)}`);
      },
    },
    { maxItemBytes: 1024 * 1024 },
  );
  parser.feed(new TextEncoder().encode(`${line}\r\n`));
  const [request] = requests;
  if (request === undefined || requests.length !== 1) throw new Error(`${line} parsed to ${requests.length}`);
  return request;
}

/** What a client reads for `reply`. */
function wire(reply: Reply): string {
  return latin1.decode(reply.raw ?? encodeReply(reply));
}

/** The reply a client reads for `line` through `route`. */
async function ask(route: { route(request: Request): Promise<Reply> }, line: string): Promise<string> {
  return wire(await route.route(parse(line)));
}

/** What the leaves hold for `key`, read past the loader: `mg <key> v f t` (EN if nothing). */
function stored(key: string): Promise<string> {
  return ask(child, `mg ${key} v f t`);
}

function loader(origin: Origin, options: Partial<LoaderOptions> = {}): LoaderRoute {
  origins.push(origin);
  return new LoaderRoute(child, origin, {
    ttlSeconds: TTL_SECONDS,
    negativeTtlSeconds: 60,
    timeoutMs: 2000,
    waitMs: 2000,
    ...options,
  });
}

function counters(): LoaderCounters {
  return { loads: 0, notFound: 0, failed: 0, notStored: 0 };
}

/** The remaining TTL in an `mg ... t` reply. */
function ttlOf(reply: string): number {
  const match = / t(-?\d+)/.exec(reply);
  if (match === null) throw new Error(`no t flag in ${reply}`);
  return Number(match[1]);
}

describe("SQLite origin", () => {
  let path: string;
  let database: Database;
  let route: LoaderRoute;
  let count: LoaderCounters;

  beforeAll(() => {
    path = join(tempDir, "origin.db");
    database = new Database(path, { create: true });
    database.run("CREATE TABLE items (k TEXT PRIMARY KEY, v BLOB)");
    const insert = database.prepare("INSERT INTO items VALUES (?, ?)");
    insert.run("sq:text", "hello sqlite");
    insert.run("sq:blob", new Uint8Array([0, 1, 2, 255]));
    insert.run("sq:gets", "with cas");
    insert.run("sq:mg", "meta value");
    insert.run("sq:wire", "wire value");
    count = counters();
    route = loader(new SqliteOrigin({ path, query: "SELECT v FROM items WHERE k = $key" }), {
      counters: count,
    });
  });

  afterAll(() => database.close());

  test("a miss loads the value, stores it with the route's TTL and answers as a hit", async () => {
    expect(await stored("sq:text")).toBe("EN\r\n");
    expect(await ask(route, "get sq:text")).toBe("VALUE sq:text 0 12\r\nhello sqlite\r\nEND\r\n");
    const held = await stored("sq:text");
    expect(held.startsWith("VA 12 f0 t")).toBe(true);
    expect(ttlOf(held)).toBeGreaterThan(TTL_SECONDS - 5);
    expect(ttlOf(held)).toBeLessThanOrEqual(TTL_SECONDS);
    // The second read is the leaf's hit: no origin query.
    expect(await ask(route, "get sq:text")).toBe("VALUE sq:text 0 12\r\nhello sqlite\r\nEND\r\n");
    expect(count.loads).toBe(1);
  });

  test("a BLOB column is the value byte for byte", async () => {
    const reply = await route.route(parse("get sq:blob"));
    expect(reply.items?.[0]?.value).toEqual(new Uint8Array([0, 1, 2, 255]));
  });

  test("gets answers a loaded value with the CAS the leaf stored it under", async () => {
    const loaded = await ask(route, "gets sq:gets");
    const cas = /^VALUE sq:gets 0 8 (\d+)\r\nwith cas\r\nEND\r\n$/.exec(loaded)?.[1];
    expect(cas).toBeDefined();
    expect(cas).not.toBe("0");
    expect(await ask(child, "gets sq:gets")).toBe(loaded);
  });

  test("mg v loads and answers with the flags it can honour, in the client's order, as the leaf would", async () => {
    const line = "mg sq:mg s v Oab12 k f c t h l q";
    const loaded = await ask(route, line);
    // Now the leaf holds the item and answers the same request itself.
    const fromLeaf = await ask(child, line);
    const withoutTtl = (reply: string) => reply.replace(/ t\d+/, " t");
    expect(withoutTtl(loaded)).toBe(withoutTtl(fromLeaf.replace(" h1", " h0").replace(/ l\d+/, " l0")));
    expect(loaded).toMatch(/^VA 10 s10 Oab12 ksq:mg f0 c\d+ t\d+ h0 l0\r\nmeta value\r\n$/);
    expect(ttlOf(loaded)).toBe(TTL_SECONDS);
  });

  test("mg with a base64 key loads the decoded key and returns the key as sent", async () => {
    const key = Buffer.from("sq:wire").toString("base64");
    expect(await ask(route, `mg ${key} b v k`)).toBe(`VA 10 k${key} b\r\nwire value\r\n`);
    expect(await ask(route, "get sq:wire")).toBe("VALUE sq:wire 0 10\r\nwire value\r\nEND\r\n");
  });

  test("mg without v, and gat, never load", async () => {
    const before = count.loads;
    expect(await ask(route, "mg sq:absent-1 f")).toBe("EN\r\n");
    expect(await ask(route, "gat 10 sq:absent-1")).toBe("END\r\n");
    expect(count.loads).toBe(before);
    expect(await stored("sq:absent-1")).toBe("EN\r\n");
  });

  test("not found is a miss, cached as a negative entry that reads as a miss to every client", async () => {
    const before = { ...count };
    expect(await ask(route, "get sq:none")).toBe("END\r\n");
    expect(count.loads - before.loads).toBe(1);
    expect(count.notFound - before.notFound).toBe(1);
    const held = await stored("sq:none");
    expect(held.startsWith("VA 0 f4294967295 t")).toBe(true);
    expect(ttlOf(held)).toBeGreaterThan(55);
    expect(ttlOf(held)).toBeLessThanOrEqual(60);
    expect(await ask(route, "get sq:none")).toBe("END\r\n");
    expect(await ask(route, "gets sq:none")).toBe("END\r\n");
    expect(await ask(route, "gat 60 sq:none")).toBe("END\r\n");
    expect(await ask(route, "mg sq:none v")).toBe("EN\r\n");
    expect(await ask(route, "mg sq:none s v f")).toBe("EN\r\n");
    // As the leaf answers a miss: O and k echoed in the client's order.
    expect(await ask(route, "mg sq:none k Oxy")).toBe("EN ksq:none Oxy\r\n");
    expect(await ask(child, "mg sq:nothing k Oxy")).toBe("EN ksq:nothing Oxy\r\n");
    const quiet = await route.route(parse("mg sq:none v q"));
    expect(wire(quiet)).toBe("EN\r\n"); // the server hides it: q hides EN
    expect(count.loads - before.loads).toBe(1); // the negative entry answered every read
  });

  test("writes and deletes pass through unchanged", async () => {
    const before = count.loads;
    expect(await ask(route, "set sq:written 5 0 3\r\nabc")).toBe("STORED\r\n");
    expect(await ask(route, "get sq:written")).toBe("VALUE sq:written 5 3\r\nabc\r\nEND\r\n");
    expect(await ask(route, "delete sq:written")).toBe("DELETED\r\n");
    expect(await stored("sq:written")).toBe("EN\r\n");
    // A set replaces a negative entry: the value is then a hit.
    expect(await ask(route, "get sq:late")).toBe("END\r\n");
    expect(await ask(route, "set sq:late 0 0 4\r\nlate")).toBe("STORED\r\n");
    expect(await ask(route, "get sq:late")).toBe("VALUE sq:late 0 4\r\nlate\r\nEND\r\n");
    expect(count.loads).toBe(before + 1);
  });

  test("a SQL error rejects with the reason and nothing is cached", async () => {
    const broken = loader(new SqliteOrigin({ path, query: "SELECT v FROM missing WHERE k = ?" }));
    await expect(broken.route(parse("get sq:broken"))).rejects.toThrow(
      `origin sqlite:${path}: no such table: missing`,
    );
    expect(await stored("sq:broken")).toBe("EN\r\n");
    const absent = loader(
      new SqliteOrigin({ path: join(tempDir, "absent.db"), query: "SELECT 1 WHERE ? = 1" }),
    );
    await expect(absent.route(parse("get sq:broken"))).rejects.toThrow("unable to open database file");
    expect(await stored("sq:broken")).toBe("EN\r\n");
  });
});

describe("HTTP origin", () => {
  const items = new Map<string, string>([["h:value", "from http"]]);
  const requests = new Map<string, number>(); // key -> requests received
  const paths: string[] = []; // every request's path as received
  let server: ReturnType<typeof Bun.serve>;
  let base: string;
  let releaseSlow: () => void = () => {};
  const slowReleased = new Promise<void>((resolve) => {
    releaseSlow = resolve;
  });
  let onRace: () => Promise<void> = async () => {};

  beforeAll(() => {
    server = Bun.serve({
      hostname: HOST,
      port: 0,
      async fetch(request) {
        const path = new URL(request.url).pathname;
        paths.push(path);
        const key = decodeURIComponent(path.replace(/^\/items\//, ""));
        requests.set(key, (requests.get(key) ?? 0) + 1);
        if (key === "h:boom") return new Response("exploded", { status: 500 });
        if (key === "h:slow") {
          await slowReleased;
          return new Response("too late");
        }
        if (key === "h:race") {
          await onRace();
          return new Response("origin value");
        }
        if (key.startsWith("h:cold")) return new Response(`cold ${key}`);
        const value = items.get(key);
        return value === undefined ? new Response("no", { status: 404 }) : new Response(value);
      },
    });
    base = `http://${HOST}:${server.port}/items/{key}`;
  });

  afterAll(async () => {
    releaseSlow();
    await server.stop(true);
  });

  const hits = (key: string) => requests.get(key) ?? 0;

  test("200 loads the body; 404 is a negative entry; the origin sees one request per load", async () => {
    const route = loader(new HttpOrigin({ urlTemplate: base }));
    expect(await ask(route, "get h:value")).toBe("VALUE h:value 0 9\r\nfrom http\r\nEND\r\n");
    expect(await ask(route, "get h:value")).toBe("VALUE h:value 0 9\r\nfrom http\r\nEND\r\n");
    expect(hits("h:value")).toBe(1);
    expect(await ask(route, "get h:missing")).toBe("END\r\n");
    expect(await ask(route, "mg h:missing v")).toBe("EN\r\n");
    expect(hits("h:missing")).toBe(1);
  });

  test("the key is percent-encoded into the URL", async () => {
    const route = loader(new HttpOrigin({ urlTemplate: base }));
    expect(await ask(route, "get h:a/b%c")).toBe("END\r\n");
    expect(paths).toContain("/items/h%3Aa%2Fb%25c");
    expect(hits("h:a/b%c")).toBe(1);
  });

  test("a negative entry expires after negativeTtlSeconds; the next read loads again", async () => {
    const route = loader(new HttpOrigin({ urlTemplate: base }), { negativeTtlSeconds: 1 });
    expect(await ask(route, "get h:later")).toBe("END\r\n");
    const held = await stored("h:later");
    expect(held.startsWith("VA 0 f4294967295 t")).toBe(true);
    expect(ttlOf(held)).toBeLessThanOrEqual(1);
    expect(await ask(route, "get h:later")).toBe("END\r\n");
    expect(hits("h:later")).toBe(1);
    items.set("h:later", "arrived");
    await pollUntil(async () => ((await stored("h:later")) === "EN\r\n" ? true : undefined), {
      deadlineMs: 5000,
      intervalMs: 100,
      what: "the negative entry for h:later to expire",
    });
    expect(await ask(route, "get h:later")).toBe("VALUE h:later 0 7\r\narrived\r\nEND\r\n");
    expect(hits("h:later")).toBe(2);
  });

  test("HTTP 500 rejects with the status as the reason and nothing is cached", async () => {
    const count = counters();
    const route = loader(new HttpOrigin({ urlTemplate: base }), { counters: count });
    await expect(route.route(parse("get h:boom"))).rejects.toThrow(`origin ${base}: HTTP 500`);
    await expect(route.route(parse("mg h:boom v"))).rejects.toThrow("HTTP 500");
    expect(await stored("h:boom")).toBe("EN\r\n");
    expect(hits("h:boom")).toBe(2); // a failure is not cached: each read asks again
    expect(count).toEqual({ loads: 2, notFound: 0, failed: 2, notStored: 0 });
  });

  test("a load past timeoutMs rejects with 'timed out after N ms' and nothing is cached", async () => {
    const route = loader(new HttpOrigin({ urlTemplate: base }), { timeoutMs: 150 });
    await expect(route.route(parse("get h:slow"))).rejects.toThrow(`origin ${base}: timed out after 150 ms`);
    expect(await stored("h:slow")).toBe("EN\r\n");
    expect(route.loadsInFlight).toBe(0);
  });

  test("a miss waiting on another's load fails after waitMs with its own error", async () => {
    const route = loader(new HttpOrigin({ urlTemplate: base }), { timeoutMs: 1000, waitMs: 50 });
    // Whichever miss reaches the singleflight first loads; the other waits.
    const outcomes = await Promise.allSettled([
      route.route(parse("get h:slow")),
      route.route(parse("get h:slow")),
    ]);
    const messages = outcomes.map((outcome) =>
      outcome.status === "rejected" ? String((outcome.reason as Error).message) : "resolved",
    );
    messages.sort((a, b) => Number(a.includes("waited")) - Number(b.includes("waited")));
    expect(messages[0]).toContain("timed out after 1000 ms");
    expect(messages[1]).toContain("waited 50 ms for a load in flight");
    expect(route.loadsInFlight).toBe(0);
  });

  test("a refused connection rejects with the reason", async () => {
    const closed = Bun.serve({ hostname: HOST, port: 0, fetch: () => new Response("") });
    const port = closed.port;
    await closed.stop(true);
    const route = loader(new HttpOrigin({ urlTemplate: `http://${HOST}:${port}/{key}` }));
    await expect(route.route(parse("get h:refused"))).rejects.toThrow(
      `origin http://${HOST}:${port}/{key}: request failed`,
    );
    expect(await stored("h:refused")).toBe("EN\r\n");
  });

  test("200 concurrent gets for one cold key make exactly one origin request", async () => {
    const count = counters();
    const route = loader(new HttpOrigin({ urlTemplate: base }), { counters: count });
    const replies = await Promise.all(Array.from({ length: 200 }, () => ask(route, "get h:cold1")));
    for (const reply of replies) expect(reply).toBe("VALUE h:cold1 0 12\r\ncold h:cold1\r\nEND\r\n");
    expect(hits("h:cold1")).toBe(1);
    expect(count.loads).toBe(1);
    expect(route.loadsInFlight).toBe(0);
  });

  test("a client's write that lands during the load is kept; the read still gets the origin's value", async () => {
    const count = counters();
    const route = loader(new HttpOrigin({ urlTemplate: base }), { counters: count });
    onRace = async () => {
      expect(await ask(route, "set h:race 0 0 12\r\nclient value")).toBe("STORED\r\n");
    };
    expect(await ask(route, "get h:race")).toBe("VALUE h:race 0 12\r\norigin value\r\nEND\r\n");
    expect(await ask(route, "get h:race")).toBe("VALUE h:race 0 12\r\nclient value\r\nEND\r\n");
    expect(count.notStored).toBe(1);
  });
});

/**
 * One SQL server the SqlOrigin is tested against: how to start it, and the SQL that differs.
 * Each database counts its own lookups (the `lookup` function bumps a row per call), so the tests
 * read the number of origin queries from the server rather than from the route.
 */
interface SqlDatabase {
  name: string;
  start(): Promise<SqlServer>;
  stopAll(): Promise<void>;
  /** The prefix of this database's keys: the leaves are shared by the whole file. */
  prefix: string;
  /** The schema: `items`, `lookups` and the `lookup(key)` function; one statement each. */
  schema: string[];
  /** The query placeholder for the one parameter. */
  param: string;
  /** The server's own reason for a query on a table `missing` that does not exist. */
  missingTable: string;
  /** A query that sleeps `slowSeconds` for the key `{prefix}slow` and answers any other key at once. */
  slowQuery: string;
  slowSeconds: number;
  /** Counts the slow queries still running, from another connection. */
  runningSlow: string;
}

const SQL_DATABASES: SqlDatabase[] = [
  {
    name: "PostgreSQL",
    start: () => startPostgres(),
    stopAll: stopAllPostgres,
    prefix: "pg:",
    schema: [
      "CREATE TABLE items (k text PRIMARY KEY, v text)",
      "CREATE TABLE lookups (k text PRIMARY KEY, n integer NOT NULL)",
      `CREATE FUNCTION lookup(key text) RETURNS text LANGUAGE sql VOLATILE AS $$
        INSERT INTO lookups VALUES (key, 1) ON CONFLICT (k) DO UPDATE SET n = lookups.n + 1;
        SELECT v FROM items WHERE k = key;
      $$`,
    ],
    param: "$1",
    missingTable: 'relation "missing" does not exist',
    // PostgreSQL cancels a query on request: 30 s would outlast the test if it did not.
    slowQuery:
      "SELECT (SELECT v FROM items WHERE k = $1::text) FROM pg_sleep(CASE WHEN $1::text = 'pg:slow' THEN 30 ELSE 0 END)",
    slowSeconds: 30,
    runningSlow:
      "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%THEN 30 ELSE%' AND pid <> pg_backend_pid()" +
      " AND state = 'active'",
  },
  {
    name: "MariaDB",
    start: () => startMariadb(),
    stopAll: stopAllMariadb,
    prefix: "my:",
    schema: [
      "CREATE TABLE items (k VARCHAR(250) PRIMARY KEY, v TEXT)",
      "CREATE TABLE lookups (k VARCHAR(250) PRIMARY KEY, n INT NOT NULL)",
      `CREATE FUNCTION lookup(key_ VARCHAR(250)) RETURNS TEXT MODIFIES SQL DATA
       BEGIN
         INSERT INTO lookups VALUES (key_, 1) ON DUPLICATE KEY UPDATE n = n + 1;
         RETURN (SELECT v FROM items WHERE k = key_);
       END`,
      `CREATE FUNCTION slow_lookup(key_ VARCHAR(250)) RETURNS TEXT READS SQL DATA
       BEGIN
         IF key_ = 'my:slow' THEN DO SLEEP(2); END IF;
         RETURN (SELECT v FROM items WHERE k = key_);
       END`,
    ],
    param: "?",
    missingTable: "Table 'origin.missing' doesn't exist",
    // MySQL's protocol has no cancel: a query already sent runs to its end (2 s here).
    slowQuery: "SELECT slow_lookup(?)",
    slowSeconds: 2,
    runningSlow:
      // The process list shows the statement running inside the function.
      "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'DO SLEEP(2)'",
  },
];

describe.each(SQL_DATABASES)("$name origin", (database) => {
  const { prefix } = database;
  let server: SqlServer;
  let url: string;
  let admin: SQL;
  const lookupQuery = () => `SELECT lookup(${database.param})`;

  beforeAll(async () => {
    server = await database.start();
    url = await server.createDatabase("origin");
    admin = new SQL({ url, max: 1 });
    for (const statement of database.schema) await admin.unsafe(statement);
    const rows: [string, string][] = [
      ["value", "from the database"],
      ["cold", "cold database"],
      ["after", "after the timeout"],
      ["restart", "after the restart"],
    ];
    for (const [key, value] of rows)
      await admin.unsafe(`INSERT INTO items VALUES (${database.param}, ${placeholder(2)})`, [
        `${prefix}${key}`,
        value,
      ]);
  }, SERVER_TEST_MS);

  afterAll(async () => {
    await admin?.close();
    await database.stopAll();
  });

  // The second placeholder: PostgreSQL numbers them, MySQL does not.
  function placeholder(n: number): string {
    return database.param === "?" ? "?" : `$${n}`;
  }

  // How many times the origin ran the lookup for `key`: counted by the server, in the lookups table.
  async function lookups(key: string): Promise<number> {
    const rows = await admin.unsafe(`SELECT n FROM lookups WHERE k = ${database.param}`, [key]).values();
    return Number(rows[0]?.[0] ?? 0);
  }

  test("a miss loads the row; a missing row is a negative entry", async () => {
    const route = loader(new SqlOrigin({ url, query: lookupQuery(), maxConnections: 4 }));
    const key = `${prefix}value`;
    expect(await ask(route, `get ${key}`)).toBe(`VALUE ${key} 0 17\r\nfrom the database\r\nEND\r\n`);
    // The leaf's hit, without the f and s flags the route added to spot a negative entry.
    const hit = await ask(route, `mg ${key} v t`);
    expect(hit).toMatch(/^VA 17 t\d+\r\nfrom the database\r\n$/);
    expect(ttlOf(hit)).toBeGreaterThan(TTL_SECONDS - 5);
    expect(await lookups(key)).toBe(1);
    const none = `${prefix}none`;
    expect(await ask(route, `get ${none}`)).toBe("END\r\n");
    expect(await ask(route, `gets ${none}`)).toBe("END\r\n");
    expect(await ask(route, `mg ${none} v`)).toBe("EN\r\n");
    expect((await stored(none)).startsWith("VA 0 f4294967295 t")).toBe(true);
    expect(await lookups(none)).toBe(1);
  });

  test("a SQL error rejects with the server's reason and nothing is cached", async () => {
    const route = loader(new SqlOrigin({ url, query: `SELECT v FROM missing WHERE k = ${database.param}` }));
    const key = `${prefix}error`;
    await expect(route.route(parse(`get ${key}`))).rejects.toThrow(
      `origin ${redactedUrl(url)}: ${database.missingTable}`,
    );
    expect(await stored(key)).toBe("EN\r\n");
  });

  test("a slow query times out, ends, and the pool goes on serving", async () => {
    const route = loader(new SqlOrigin({ url, query: database.slowQuery, maxConnections: 1 }), {
      timeoutMs: 200,
    });
    await expect(route.route(parse(`get ${prefix}slow`))).rejects.toThrow("timed out after 200 ms");
    expect(await stored(`${prefix}slow`)).toBe("EN\r\n");
    // Nothing of it is still running (PostgreSQL cancelled it; MariaDB ran it to its end).
    await pollUntil(
      async () => {
        const rows = await admin.unsafe(database.runningSlow).values();
        return Number(rows[0]?.[0]) === 0 ? true : undefined;
      },
      { deadlineMs: database.slowSeconds * 1000 + 5000, intervalMs: 50, what: "the slow query to end" },
    );
    // The pool's one connection is free again.
    expect(await ask(route, `get ${prefix}after`)).toBe(
      `VALUE ${prefix}after 0 17\r\nafter the timeout\r\nEND\r\n`,
    );
  });

  test("200 concurrent gets for one cold key make exactly one origin query", async () => {
    const route = loader(new SqlOrigin({ url, query: lookupQuery(), maxConnections: 4 }));
    const key = `${prefix}cold`;
    const replies = await Promise.all(Array.from({ length: 200 }, () => ask(route, `get ${key}`)));
    for (const reply of replies) expect(reply).toBe(`VALUE ${key} 0 13\r\ncold database\r\nEND\r\n`);
    expect(await lookups(key)).toBe(1);
  });

  test(
    "while the database is down misses fail and nothing is cached; after it restarts they load again",
    async () => {
      const count = counters();
      const route = loader(new SqlOrigin({ url, query: lookupQuery(), maxConnections: 2 }), {
        counters: count,
      });
      const key = `${prefix}restart`;
      expect(await ask(route, `get ${prefix}value`)).toBe(
        `VALUE ${prefix}value 0 17\r\nfrom the database\r\nEND\r\n`,
      ); // the pool holds a connection now
      await server.stop();
      await expect(route.route(parse(`get ${key}`))).rejects.toThrow(`origin ${redactedUrl(url)}: `);
      await expect(route.route(parse(`get ${key}`))).rejects.toThrow(`origin ${redactedUrl(url)}: `);
      expect(await stored(key)).toBe("EN\r\n");
      expect(count.failed).toBe(2);
      await server.restart();
      // The pool replaces the connections the restart broke.
      expect(await ask(route, `get ${key}`)).toBe(`VALUE ${key} 0 17\r\nafter the restart\r\nEND\r\n`);
      expect(await stored(key)).toMatch(/^VA 17 f0 t\d+\r\n/);
      expect(await lookups(key)).toBe(1); // the failed loads never reached a database
    },
    SERVER_TEST_MS,
  );
});

// Read-through as `gravity router` runs it (config `loaders` + a route of type loader): misses
// loaded from a real HTTP origin, from SQLite and from MariaDB (a `sql` loader with a mysql://
// URL), concurrent misses sharing one origin request, origin errors as SERVER_ERROR.
import { Database } from "bun:sqlite";
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL } from "bun";
import { createClient } from "../src/client/index.ts";
import { startMariadb, stopAllMariadb } from "./helpers/mariadb.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";

afterAll(async () => {
  await stopAll();
  await stopAllMariadb();
});

test(
  "a router loads misses from HTTP and SQLite origins, once per key however many clients miss",
  async () => {
    let originRequests = 0;
    const origin = Bun.serve({
      hostname: HOST,
      port: 0,
      async fetch(request) {
        originRequests++;
        const key = decodeURIComponent(new URL(request.url).pathname.split("/").pop() ?? "");
        await Bun.sleep(50); // a slow origin: concurrent misses overlap
        if (key === "broken") return new Response("boom", { status: 500 });
        if (key.startsWith("missing")) return new Response("", { status: 404 });
        return new Response(`origin:${key}`);
      },
    });
    const dir = mkdtempSync(join(tmpdir(), "gravity-router-loader-"));
    const dbPath = join(dir, "items.db");
    const db = new Database(dbPath);
    db.run("CREATE TABLE items (k TEXT PRIMARY KEY, v BLOB)");
    db.run("INSERT INTO items VALUES ('sql:1', 'from sqlite')");
    db.close();
    const leaf = await startLeaf(["--port", "0"]);
    const config = join(dir, "router.json");
    writeFileSync(
      config,
      JSON.stringify({
        loaders: {
          web: { type: "http", url: `http://${HOST}:${origin.port}/items/{key}` },
          local: { type: "sqlite", path: dbPath, query: "SELECT v FROM items WHERE k = ?" },
        },
        pools: { main: { servers: [`${HOST}:${leaf.port}`] } },
        route: {
          type: "prefix",
          routes: {
            "sql:": { type: "loader", loader: "local", route: "main", ttlSeconds: 60 },
            "*": { type: "loader", loader: "web", route: "main", ttlSeconds: 60, negativeTtlSeconds: 30 },
          },
        },
      }),
    );
    const router = await startRouter(["--port", "0", "--config", config]);
    const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 5000 });

    // 200 concurrent misses for one cold key: one origin request, 200 answers.
    const values = await Promise.all(Array.from({ length: 200 }, () => client.getString("hot")));
    expect(new Set(values)).toEqual(new Set(["origin:hot"]));
    expect(originRequests).toBe(1);
    // Stored: the leaf has it, and the next get does not reach the origin.
    const direct = createClient({ servers: [`${HOST}:${leaf.port}`] });
    expect(await direct.getString("hot")).toBe("origin:hot");
    expect(await client.getString("hot")).toBe("origin:hot");
    expect(originRequests).toBe(1);
    // Not found: a miss, cached as a negative entry (no second origin request).
    expect(await client.get("missing-1")).toBeNull();
    expect(await client.get("missing-1")).toBeNull();
    expect(originRequests).toBe(2);
    // An origin error reaches the client as SERVER_ERROR with the reason; nothing is stored.
    await expect(client.get("broken")).rejects.toThrow(/SERVER_ERROR .*500/);
    expect(await direct.get("broken")).toBeNull();
    // SQLite.
    expect(await client.getString("sql:1")).toBe("from sqlite");
    expect(await direct.getString("sql:1")).toBe("from sqlite");
    await direct.close();
    await client.close();
    expect(await router.stop("SIGTERM")).toBe(0);
    origin.stop(true);
  },
  SERVER_TEST_MS,
);

test(
  "with leases, misses on two routers share one origin load; without, each router loads",
  async () => {
    let originRequests = 0;
    const origin = Bun.serve({
      hostname: HOST,
      port: 0,
      async fetch(request) {
        originRequests++;
        await Bun.sleep(500); // a slow origin (under the loader's 1 s timeout): the routers' misses overlap even on a loaded machine
        return new Response(`v:${new URL(request.url).pathname}`);
      },
    });
    const leaf = await startLeaf(["--port", "0"]);
    const dir = mkdtempSync(join(tmpdir(), "gravity-router-leases-"));
    const routerWith = async (leases: boolean) => {
      const config = join(dir, `router-${leases}-${Math.random()}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          loaders: { web: { type: "http", url: `http://${HOST}:${origin.port}/items/{key}` } },
          pools: { main: { servers: [`${HOST}:${leaf.port}`] } },
          route: { type: "loader", loader: "web", route: "main", ttlSeconds: 60, leases },
        }),
      );
      return startRouter(["--port", "0", "--config", config]);
    };
    const herd = async (leases: boolean, key: string) => {
      const routers = [await routerWith(leases), await routerWith(leases)];
      const clients = routers.map((router) =>
        createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 5000 }),
      );
      const before = originRequests;
      const values = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          (clients[i % 2] as ReturnType<typeof createClient>).getString(key),
        ),
      );
      expect(new Set(values)).toEqual(new Set([`v:/items/${key}`]));
      for (const client of clients) await client.close();
      for (const router of routers) expect(await router.stop("SIGTERM")).toBe(0);
      return originRequests - before;
    };
    expect(await herd(false, "cold-a")).toBe(2); // singleflight: one load per router
    expect(await herd(true, "cold-b")).toBe(1); // leases: one load for both routers
    origin.stop(true);
  },
  SERVER_TEST_MS,
);

test(
  "a router loads misses from MariaDB; a SQL error or a stopped database is SERVER_ERROR and nothing is cached",
  async () => {
    const mariadb = await startMariadb();
    const url = await mariadb.createDatabase("telemetry");
    const admin = new SQL({ url, max: 1 });
    await admin.unsafe("CREATE TABLE metrics (k VARCHAR(250) PRIMARY KEY, v TEXT)");
    await admin.unsafe("INSERT INTO metrics VALUES ('cpu:nf-1', '0.42'), ('cpu:nf-2', '0.17')");
    await admin.close();
    const leaf = await startLeaf(["--port", "0"]);
    const dir = mkdtempSync(join(tmpdir(), "gravity-router-mariadb-"));
    const config = join(dir, "router.json");
    writeFileSync(
      config,
      JSON.stringify({
        loaders: {
          db: { type: "sql", url, query: "SELECT v FROM metrics WHERE k = ?", maxConnections: 2 },
          broken: { type: "sql", url, query: "SELECT v FROM missing WHERE k = ?" },
        },
        pools: { main: { servers: [`${HOST}:${leaf.port}`] } },
        route: {
          type: "prefix",
          routes: {
            "broken:": { type: "loader", loader: "broken", route: "main", ttlSeconds: 60 },
            "*": { type: "loader", loader: "db", route: "main", ttlSeconds: 60, negativeTtlSeconds: 30 },
          },
        },
      }),
    );
    const router = await startRouter(["--port", "0", "--config", config]);
    const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 5000 });
    const direct = createClient({ servers: [`${HOST}:${leaf.port}`] });

    const values = await Promise.all(Array.from({ length: 50 }, () => client.getString("cpu:nf-1")));
    expect(new Set(values)).toEqual(new Set(["0.42"]));
    expect(await direct.getString("cpu:nf-1")).toBe("0.42");
    expect(await client.get("cpu:absent")).toBeNull(); // a negative entry
    await expect(client.get("broken:1")).rejects.toThrow(
      /SERVER_ERROR .*Table 'telemetry.missing' doesn't exist/,
    );
    expect(await direct.get("broken:1")).toBeNull();

    // The database stops: hits still answer, misses are SERVER_ERROR; after it restarts they load.
    await mariadb.stop();
    expect(await client.getString("cpu:nf-1")).toBe("0.42");
    await expect(client.get("cpu:nf-2")).rejects.toThrow(/SERVER_ERROR origin mysql:/);
    expect(await direct.get("cpu:nf-2")).toBeNull();
    await mariadb.restart();
    expect(await client.getString("cpu:nf-2")).toBe("0.17");
    await direct.close();
    await client.close();
    expect(await router.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

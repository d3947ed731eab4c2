// Leases (Scaling Memcache at Facebook §3.2.1) through a router: the leaf implements them with the
// meta protocol as memcached does (mg N = win/wait, md I = stale, ms C = compare), and the router
// passes them through unchanged to the leaf that owns the key.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";

let router: ServerProcess;

beforeAll(async () => {
  const leaves = await Promise.all([startLeaf(["--port", "0"]), startLeaf(["--port", "0"])]);
  const dir = mkdtempSync(join(tmpdir(), "gravity-leases-"));
  const config = join(dir, "router.json");
  writeFileSync(
    config,
    JSON.stringify({
      pools: { main: { servers: leaves.map((leaf) => `${HOST}:${leaf.port}`) } },
      route: "main",
    }),
  );
  router = await startRouter(["--port", "0", "--config", config]);
}, SERVER_TEST_MS);
afterAll(stopAll);

test(
  "one client wins the lease on a miss, the others are told to wait, the winner's value reaches them",
  async () => {
    const winner = await McClient.connect(router.port);
    const waiter = await McClient.connect(router.port);
    await winner.send("mg lease:a N30 v c\r\n");
    const [won] = await winner.readLines(1);
    expect(won).toMatch(/^VA 0 c\d+ W$/);
    await winner.readLines(1); // the empty data line
    await waiter.send("mg lease:a N30 v\r\n");
    expect(await waiter.readLines(2)).toEqual(["VA 0 Z", ""]);
    await winner.send("ms lease:a 5 T60\r\nfresh\r\n");
    expect(await winner.readLine()).toBe("HD");
    await waiter.send("mg lease:a v\r\n");
    expect(await waiter.readLines(2)).toEqual(["VA 5", "fresh"]);
    winner.close();
    waiter.close();
  },
  SERVER_TEST_MS,
);

test(
  "a set carrying a stale lease token is refused after the item was invalidated",
  async () => {
    const filler = await McClient.connect(router.port);
    const writer = await McClient.connect(router.port);
    await filler.send("mg lease:b N30 c\r\n");
    const line = await filler.readLine();
    const cas = /c(\d+)/.exec(line)?.[1];
    expect(line).toMatch(/ W$/);
    // A write elsewhere invalidates the item: md with I marks it stale and bumps its CAS.
    await writer.send("md lease:b I\r\n");
    expect(await writer.readLine()).toBe("HD");
    // The filler's set with its old token must not overwrite the newer state.
    await filler.send(`ms lease:b 3 C${cas}\r\nold\r\n`);
    expect(await filler.readLine()).toBe("EX");
    filler.close();
    writer.close();
  },
  SERVER_TEST_MS,
);

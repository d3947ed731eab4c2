// `transport: nats` through a real router, real leaves and a real nats-server: requests batched
// many per message with every reply matched to its own request, and a leaf that stops marked down
// (TKO) and probed back exactly as a TCP destination is (log, gravity_router_destination_down,
// /readyz).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { createClient } from "../src/client/index.ts";
import { parseExposition, sampleValue } from "../src/metrics/exposition.ts";
import { type NatsServer, startNats, stopAllNats } from "./helpers/nats.ts";
import {
  HOST,
  type LeafProcess,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

const HTTP_LINE = /http on (\S+):(\d+) /;
const dir = mkdtempSync(join(tmpdir(), "gravity-nats-router-"));
let nats: NatsServer;

function natsLeaf(pool: string, id: string): Promise<LeafProcess> {
  return startLeaf(["--port", "0", "--nats", nats.url, "--nats-pool", pool, "--nats-leaf-id", id]);
}

async function natsRouter(name: string, config: object, args: string[] = []): Promise<ServerProcess> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const router = await startRouter(["--port", "0", "--config", file, ...args]);
  await router.waitForStdout(/nats connected/);
  return router;
}

beforeAll(async () => {
  nats = await startNats();
}, SERVER_TEST_MS);

afterAll(async () => {
  await stopAll();
  await stopAllNats();
});

test(
  "batching under concurrent load: many requests per message, each reply its own request's",
  async () => {
    const leaves = await Promise.all([natsLeaf("np", "a"), natsLeaf("np", "b")]);
    await Promise.all(leaves.map((leaf) => leaf.waitForStdout(/nats connected/)));
    const router = await natsRouter("batch", {
      nats: { servers: [nats.url] },
      pools: {
        np: {
          transport: "nats",
          servers: leaves.map((leaf, i) => ({ host: HOST, port: leaf.port, name: i === 0 ? "a" : "b" })),
        },
      },
      route: "np",
    });
    // A plain subscriber (no queue group) sees a copy of every message the router sends a leaf.
    const watcher: NatsConnection = await connect({ servers: nats.url });
    let messages = 0;
    watcher.subscribe("gravity.leaf.np.*", {
      callback: () => {
        messages++;
      },
    });
    await watcher.flush();

    const client = createClient({ servers: [`${HOST}:${router.port}`], connectionsPerServer: 8 });
    const count = 2000;
    const keys = Array.from({ length: count }, (_, i) => `batch:${i}`);
    // Values of different lengths, each naming its key: a reply given to the wrong request shows.
    const expected = (key: string) => `${key}=${"v".repeat(Number(key.slice("batch:".length)) % 300)}`;
    await Promise.all(keys.map((key) => client.set(key, expected(key))));

    // Gets of the stored keys, misses, deletes and multi-gets, all in flight at once.
    const checks: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const key = keys[i] as string;
      checks.push(client.getString(key).then((value) => expect(value).toBe(expected(key))));
      checks.push(client.getString(`batch:none:${i}`).then((value) => expect(value).toBeNull()));
      if (i % 10 === 0) {
        const pair = [key, keys[(i + 1) % count] as string];
        checks.push(
          client.getMulti(pair).then((values) => {
            for (const k of pair) expect(new TextDecoder().decode(values.get(k))).toBe(expected(k));
          }),
        );
      }
    }
    const sent = messages;
    await withDeadline(Promise.all(checks), 30_000, "every concurrent request's reply");
    await watcher.flush();
    // Over 4,000 requests travelled in far fewer messages.
    const requests = 2 * count + Math.ceil(count / 10) * 2;
    expect(messages - sent).toBeLessThan(requests / 4);

    // Deletes answered per key: half deleted, then each get tells which.
    const deleted = await Promise.all(keys.map((key, i) => (i % 2 === 0 ? client.delete(key) : true)));
    expect(deleted.every((ok) => ok === true)).toBe(true);
    await Promise.all(
      keys.map((key, i) =>
        client.getString(key).then((value) => expect(value).toBe(i % 2 === 0 ? null : expected(key))),
      ),
    );
    await client.close();
    await watcher.close();
  },
  SERVER_TEST_MS,
);

test(
  "a stopped NATS leaf is marked down (TKO) and probed back, with the metric and /readyz",
  async () => {
    const leaf = await natsLeaf("solo", "c");
    await leaf.waitForStdout(/nats connected/);
    const router = await natsRouter(
      "tko",
      {
        nats: { servers: [nats.url] },
        pools: {
          solo: {
            transport: "nats",
            servers: [{ host: HOST, port: leaf.port, name: "c" }],
            tko: { failures: 3, probeIntervalMs: 100, maxProbeIntervalMs: 400 },
          },
        },
        route: "solo",
      },
      ["--http-port", "0"],
    );
    const [, host, port] = (await router.waitForStdout(HTTP_LINE)) as RegExpExecArray;
    const base = `http://${host}:${port}`;
    const down = async () =>
      sampleValue(
        parseExposition(await (await fetch(`${base}/metrics`)).text()),
        "gravity_router_destination_down",
        {
          pool: "solo",
          destination: "nats:solo/c",
        },
      );
    const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 3000 });
    await client.set("tko:k", "before");
    expect(await client.getString("tko:k")).toBe("before");
    expect(await down()).toBe(0);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    expect(await leaf.stop("SIGTERM")).toBe(0);
    // No leaf subscribed: each request fails at once; three in a row mark it down.
    for (let i = 0; i < 3; i++) await expect(client.get("tko:k")).rejects.toThrow(/SERVER_ERROR/);
    await router.waitForStdout(/nats:solo\/c marked down \(TKO\)/);
    await expect(client.get("tko:k")).rejects.toThrow(/marked down/);
    expect(await down()).toBe(1);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toContain("solo");

    // The same leaf id back: a probe (`version`) finds it and the destination is up again.
    const back = await natsLeaf("solo", "c");
    await back.waitForStdout(/nats connected/);
    await router.waitForStdout(/nats:solo\/c is back up/, 15_000);
    expect(await down()).toBe(0);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await client.set("tko:k", "after");
    expect(await client.getString("tko:k")).toBe("after");
    await client.close();
  },
  SERVER_TEST_MS,
);

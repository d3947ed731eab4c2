// NATS as the CLI wires it, with a real nats-server: leaves served over NATS (`gravity leaf
// --nats --nats-pool`) behind a router pool with `transport: nats`, the ingress of the original
// interface, and deletes invalidating another cluster's router.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, headers } from "nats";
import { createClient } from "../src/client/index.ts";
import { startNats, stopAllNats } from "./helpers/nats.ts";
import {
  HOST,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

afterAll(async () => {
  await stopAll();
  await stopAllNats();
});

const utf8 = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

async function holds(leaf: ServerProcess, key: string): Promise<string | null> {
  const client = createClient({ servers: [`${HOST}:${leaf.port}`] });
  try {
    return await client.getString(key);
  } finally {
    await client.close();
  }
}

test(
  "transport: nats, the ingress and the invalidation bus between two clusters",
  async () => {
    const nats = await startNats();
    const natsFlags = (id: string) => ["--nats", nats.url, "--nats-pool", "np", "--nats-leaf-id", id];
    const [a, b] = await Promise.all([
      startLeaf(["--port", "0", ...natsFlags("a")]),
      startLeaf(["--port", "0", ...natsFlags("b")]),
    ]);
    await a.waitForStdout(/nats connected/);
    await b.waitForStdout(/nats connected/);
    const dir = mkdtempSync(join(tmpdir(), "gravity-nats-cluster-"));
    const first = join(dir, "first.json");
    writeFileSync(
      first,
      JSON.stringify({
        nats: {
          servers: [nats.url],
          ingress: true,
          invalidation: { subject: "test.invalidate", clusterId: "one" },
        },
        pools: {
          np: {
            transport: "nats",
            servers: [
              { host: HOST, port: a.port, name: "a" },
              { host: HOST, port: b.port, name: "b" },
            ],
          },
        },
        route: "np",
      }),
    );
    const router = await startRouter(["--port", "0", "--config", first]);
    await router.waitForStdout(/nats connected/);

    // Memcached clients through the router; requests reach the leaves over NATS.
    const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 3000 });
    const keys = Array.from({ length: 20 }, (_, i) => `nk:${i}`);
    for (const key of keys) await client.set(key, `v-${key}`);
    for (const key of keys) expect(await client.getString(key)).toBe(`v-${key}`);
    let onA = 0;
    let onB = 0;
    for (const key of keys) {
      const [fromA, fromB] = [await holds(a, key), await holds(b, key)];
      expect((fromA === null) !== (fromB === null)).toBe(true); // exactly one leaf holds it
      if (fromA !== null) onA++;
      else onB++;
    }
    expect(onA).toBeGreaterThan(0);
    expect(onB).toBeGreaterThan(0);

    // The original interface: op and key headers on {prefix}.ingress.{pool}.
    const nc = await connect({ servers: nats.url });
    const call = async (op: string, key: string, value = "") => {
      const h = headers();
      h.set("op", op);
      h.set("key", key);
      const reply = await nc.request("gravity.ingress.np", utf8.encode(value), { timeout: 3000, headers: h });
      return { status: reply.headers?.get("status") ?? "", value: text(reply.data) };
    };
    expect((await call("set", "key with spaces.and.dots", "hello")).status).toBe("stored");
    expect(await call("get", "key with spaces.and.dots")).toEqual({ status: "hit", value: "hello" });
    expect((await call("get", "missing")).status).toBe("miss");

    // A second cluster (TCP pool over its own leaf) applies the first cluster's deletes.
    const c = await startLeaf(["--port", "0"]);
    const second = join(dir, "second.json");
    writeFileSync(
      second,
      JSON.stringify({
        nats: { servers: [nats.url], invalidation: { subject: "test.invalidate", clusterId: "two" } },
        pools: { local: { servers: [`${HOST}:${c.port}`] } },
        route: "local",
      }),
    );
    const other = await startRouter(["--port", "0", "--config", second]);
    await other.waitForStdout(/nats connected/);
    const otherClient = createClient({ servers: [`${HOST}:${other.port}`] });
    await otherClient.set("nk:0", "stale copy");
    expect(await client.delete("nk:0")).toBe(true);
    await pollUntil(async () => ((await holds(c, "nk:0")) === null ? true : undefined), {
      deadlineMs: 5000,
      what: "the other cluster to apply the delete",
    });
    expect(await client.get("nk:0")).toBeNull();
    await otherClient.close();
    await client.close();
    await nc.close();
  },
  SERVER_TEST_MS,
);

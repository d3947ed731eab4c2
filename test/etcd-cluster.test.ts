// Leaves joining and leaving a running router through a real etcd: `gravity leaf --etcd --pool`
// and a router pool with `discovery: etcd`.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { startEtcd, stopAllEtcd } from "./helpers/etcd.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";

afterAll(async () => {
  await stopAll();
  await stopAllEtcd();
});

/** The bound: a join or a leave changes routing within this long. */
const MEMBERSHIP_MS = 2000;

test(
  "a leaf started with --etcd joins the router's pool within 2 s, and leaves it on SIGTERM",
  async () => {
    const etcd = await startEtcd();
    const dir = mkdtempSync(join(tmpdir(), "gravity-etcd-cluster-"));
    const config = join(dir, "router.yaml");
    writeFileSync(
      config,
      `etcd: { endpoints: ["${etcd.clientUrl}"], prefix: /test }
pools:
  dyn: { discovery: etcd, timeoutMs: 2000 }
route: dyn
`,
    );
    const router = await startRouter(["--port", "0", "--config", config]);
    const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 3000 });
    // No member yet: requests fail with a server error, not a hang.
    await expect(client.set("k", "v")).rejects.toThrow(/SERVER_ERROR/);

    const etcdFlags = ["--etcd", etcd.clientUrl, "--etcd-prefix", "/test", "--pool", "dyn"];
    const first = await startLeaf(["--port", "0", ...etcdFlags]);
    await router.waitForStdout(/membership changed \(pools dyn: 1\)/, MEMBERSHIP_MS);
    await client.set("k", "v");
    expect(await client.getString("k")).toBe("v");

    const second = await startLeaf(["--port", "0", ...etcdFlags, "--lease-ttl", "2"]);
    await router.waitForStdout(/membership changed \(pools dyn: 2\)/, MEMBERSHIP_MS);
    const keys = Array.from({ length: 40 }, (_, i) => `spread:${i}`);
    for (const key of keys) await client.set(key, key);
    const onSecond = [];
    const direct = createClient({ servers: [`${HOST}:${second.port}`] });
    for (const key of keys) if ((await direct.get(key)) !== null) onSecond.push(key);
    await direct.close();
    expect(onSecond.length).toBeGreaterThan(0); // both leaves take keys
    expect(onSecond.length).toBeLessThan(keys.length);

    // SIGTERM: the leaf deregisters before it closes; the router drops it within 2 s.
    expect(await second.stop("SIGTERM")).toBe(0);
    await pollRouterPools(router, 1);
    for (const key of keys) await client.set(key, key); // everything now lands on the first leaf
    for (const key of keys) expect(await client.getString(key)).toBe(key);
    await client.close();
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(await router.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

async function pollRouterPools(router: { stdout(): string }, count: number): Promise<void> {
  const pattern = new RegExp(`membership changed \\(pools dyn: ${count}\\)`, "g");
  const before = [...router.stdout().matchAll(pattern)].length;
  const start = performance.now();
  while ([...router.stdout().matchAll(pattern)].length <= before) {
    if (performance.now() - start > MEMBERSHIP_MS)
      throw new Error(`the router did not drop the leaf within ${MEMBERSHIP_MS} ms`);
    await Bun.sleep(20);
  }
}

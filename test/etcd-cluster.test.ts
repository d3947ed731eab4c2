// Leaves joining and leaving a running router through a real etcd: `gravity leaf --etcd --pool`
// and a router pool with `discovery: etcd`.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { startEtcd, stopAllEtcd } from "./helpers/etcd.ts";
import { startLoad } from "./helpers/load.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

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

    // SIGTERM under load: the leaf deregisters, the router drops it within 2 s, and the leaf
    // closes only after that: a client reading and writing all along sees no error.
    const load = startKeysLoad(client, keys);
    const seen = membershipLines(router, 1);
    const start = performance.now();
    const stopped = second.stop("SIGTERM");
    await pollUntil(() => (membershipLines(router, 1) > seen ? true : undefined), {
      deadlineMs: MEMBERSHIP_MS,
      what: "the router to drop the leaving leaf",
    });
    expect(performance.now() - start).toBeLessThan(MEMBERSHIP_MS);
    expect(await stopped).toBe(0);
    // etcd stopped and restarted under the same load: the router keeps its membership meanwhile.
    await etcd.stop();
    await pollUntil(() => (/etcd: .*unreachable/.test(router.stderr()) ? true : undefined), {
      deadlineMs: 10_000,
      what: "the router to notice etcd is gone (logged once)",
    });
    await load.progress(200);
    await etcd.restart();
    await load.progress(200);
    expect(await load.stop()).toEqual([]);
    for (const key of keys) await client.set(key, key); // everything now lands on the first leaf
    for (const key of keys) expect(await client.getString(key)).toBe(key);
    await client.close();
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(await router.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

function membershipLines(router: { stdout(): string }, count: number): number {
  return [...router.stdout().matchAll(new RegExp(`membership changed \\(pools dyn: ${count}\\)`, "g"))]
    .length;
}

// A client looping sets and gets of `keys` (each get must return what that loop last set, or miss
// while the key moves) until stopped.
function startKeysLoad(client: ReturnType<typeof createClient>, keys: readonly string[]) {
  return startLoad(async (i) => {
    const key = keys[i % keys.length] as string;
    try {
      await client.set(key, `${key}#${i}`);
      const value = await client.getString(key);
      // A miss is what a cache may answer while keys move to another leaf (a set that reached
      // the leaving leaf just before the router dropped it); another value never is.
      return value !== null && value !== `${key}#${i}`
        ? `${key}: read ${value}, wrote ${key}#${i}`
        : undefined;
    } catch (error) {
      return `${key}: ${(error as Error).message}`;
    }
  });
}

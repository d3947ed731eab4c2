// The delete spool as `gravity router` runs it (config `spool: { dir }`): deletes for a leaf that
// is down are answered DELETED, kept on disk, and applied when the leaf is back — also when the
// router was restarted in between.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

afterAll(stopAll);

test(
  "deletes spooled while a leaf is down are applied after it returns, across a router restart",
  async () => {
    // SIGSTOP keeps the leaf's data while it cannot answer: the spooled delete must remove it.
    const leaf = await startLeaf(["--port", "0"]);
    const dir = mkdtempSync(join(tmpdir(), "gravity-router-spool-"));
    const config = join(dir, "router.json");
    writeFileSync(
      config,
      JSON.stringify({
        spool: { dir: join(dir, "spool") },
        pools: {
          main: {
            servers: [`${HOST}:${leaf.port}`],
            timeoutMs: 300,
            tko: { failures: 1, probeIntervalMs: 100 },
          },
        },
        route: "main",
      }),
    );
    const first = await startRouter(["--port", "0", "--config", config]);
    const client = createClient({ servers: [`${HOST}:${first.port}`], timeoutMs: 3000 });
    await client.set("gone", "stale");
    await client.set("kept", "fine");
    leaf.signal("SIGSTOP");
    // The first failure marks the leaf down; the delete is spooled and answered as done.
    await expect(client.get("kept")).rejects.toThrow(/SERVER_ERROR/);
    await first.waitForStdout(/marked down/);
    expect(await client.delete("gone")).toBe(true);
    await client.close();
    expect(await first.stop("SIGTERM")).toBe(0);

    // A new router on the same spool finds the delete and applies it once the leaf answers.
    leaf.signal("SIGCONT");
    const second = await startRouter(["--port", "0", "--config", config]);
    await second.waitForStdout(/delete spool holds deletes for/);
    const direct = createClient({ servers: [`${HOST}:${leaf.port}`] });
    await pollUntil(async () => ((await direct.get("gone")) === null ? true : undefined), {
      deadlineMs: 10_000,
      what: "the spooled delete to be replayed",
    });
    expect(await direct.getString("kept")).toBe("fine");
    await direct.close();
    expect(await second.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

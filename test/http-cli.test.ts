// The HTTP API and /metrics as the CLI serves them: `gravity leaf --http-port` and
// `gravity router --http-port`, over real processes.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";

afterAll(stopAll);

const HTTP_LINE = /http on (\S+):(\d+) /;

test(
  "a leaf with --http-port serves the cache API, probes and its store metrics",
  async () => {
    const leaf = await startLeaf(["--port", "0", "--http-port", "0"]);
    const [, host, port] = (await leaf.waitForStdout(HTTP_LINE)) as RegExpExecArray;
    const base = `http://${host}:${port}`;
    expect((await fetch(`${base}/v1/cache/users/42`, { method: "PUT", body: "alice" })).status).toBe(204);
    expect(await (await fetch(`${base}/v1/cache/users/42`)).text()).toBe("alice");
    // The same item through the memcached protocol: {group}:{key}.
    const client = createClient({ servers: [`${HOST}:${leaf.port}`] });
    expect(await client.getString("users:42")).toBe("alice");
    await client.close();
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^gravity_store_items 1$/m);
    expect(metrics).toContain("gravity_store_admissions_rejected_total");
    expect(await leaf.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "a router with --http-port routes the cache API and reports request and destination metrics",
  async () => {
    const leaf = await startLeaf(["--port", "0"]);
    const dir = mkdtempSync(join(tmpdir(), "gravity-http-cli-"));
    const config = join(dir, "router.json");
    writeFileSync(
      config,
      JSON.stringify({ pools: { main: { servers: [`${HOST}:${leaf.port}`] } }, route: "main" }),
    );
    const router = await startRouter(["--port", "0", "--config", config, "--http-port", "0"]);
    const [, host, port] = (await router.waitForStdout(HTTP_LINE)) as RegExpExecArray;
    const base = `http://${host}:${port}`;
    expect((await fetch(`${base}/v1/cache/g/k`, { method: "PUT", body: "v" })).status).toBe(204);
    const client = createClient({ servers: [`${HOST}:${router.port}`] });
    expect(await client.getString("g:k")).toBe("v");
    expect(await client.get("g:missing")).toBeNull();
    await client.close();
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^gravity_router_requests_total\{op="get",result="hit"\} 1$/m);
    expect(metrics).toMatch(/^gravity_router_requests_total\{op="get",result="miss"\} 1$/m);
    expect(metrics).toMatch(
      new RegExp(
        `^gravity_router_destination_request_duration_seconds_count\\{destination="${HOST}:${leaf.port}"\\} [1-9]`,
        "m",
      ),
    );
    expect(metrics).toMatch(/^gravity_router_pool_destinations\{pool="main"\} 1$/m);
    expect(await router.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

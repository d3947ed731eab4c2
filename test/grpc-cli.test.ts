// gRPC as the CLI serves it: `gravity leaf --grpc-port` and `gravity router --grpc-port`.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { GrpcCacheClient } from "../src/grpc/client.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";

afterAll(stopAll);

const GRPC_LINE = /grpc on (\S+):(\d+) /;
const utf8 = new TextEncoder();

test(
  "leaf and router serve the Cache service with --grpc-port; items are {group}:{key} for memcached clients",
  async () => {
    const leaf = await startLeaf(["--port", "0", "--grpc-port", "0"]);
    const [, leafHost, leafPort] = (await leaf.waitForStdout(GRPC_LINE)) as RegExpExecArray;
    const direct = new GrpcCacheClient(`${leafHost}:${leafPort}`);
    await direct.set("users", "7", utf8.encode("seven"));
    expect(new TextDecoder().decode((await direct.get("users", "7")).value)).toBe("seven");
    direct.close();

    const dir = mkdtempSync(join(tmpdir(), "gravity-grpc-cli-"));
    const config = join(dir, "router.json");
    writeFileSync(
      config,
      JSON.stringify({ pools: { main: { servers: [`${HOST}:${leaf.port}`] } }, route: "main" }),
    );
    const router = await startRouter(["--port", "0", "--config", config, "--grpc-port", "0"]);
    const [, host, port] = (await router.waitForStdout(GRPC_LINE)) as RegExpExecArray;
    const routed = new GrpcCacheClient(`${host}:${port}`);
    expect((await routed.get("users", "7")).found).toBe(true);
    await routed.set("users", "8", utf8.encode("eight"));
    routed.close();
    const memcached = createClient({ servers: [`${HOST}:${router.port}`] });
    expect(await memcached.getString("users:8")).toBe("eight");
    await memcached.close();
    expect(await router.stop("SIGTERM")).toBe(0);
    expect(await leaf.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

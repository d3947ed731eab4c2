// examples/telemetry/run.ts as a user runs it (`--check`: it exits after one read over each
// protocol, 0 if the memcached protocol, HTTP and gRPC returned the same loaded value): with its
// embedded SQLite default, and with a MariaDB URL.
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { startMariadb, stopAllMariadb } from "./helpers/mariadb.ts";
import { REPO_ROOT, SERVER_TEST_MS } from "./helpers/servers.ts";

afterAll(stopAllMariadb);

const RUN = join(REPO_ROOT, "examples/telemetry/run.ts");
const FREE_PORTS = ["--port", "0", "--leaf-port", "0", "--http-port", "0", "--grpc-port", "0"];

async function runExample(args: string[]): Promise<{ code: number; output: string }> {
  const child = Bun.spawn([process.execPath, RUN, "--check", "--functions", "50", ...FREE_PORTS, ...args], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, output: stdout + stderr };
}

const LOADED = /-> \{"function":"smf-0007","metric":"cpu_util","ts":\d+,"value":[\d.]+\}/g;

test(
  "the telemetry example serves a loaded metric over memcached, HTTP and gRPC from SQLite",
  async () => {
    const { code, output } = await runExample([]);
    expect(output).toContain("300 rows in SQLite");
    expect([...output.matchAll(LOADED)].length).toBe(3);
    expect(code).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "the telemetry example loads from MariaDB given --url",
  async () => {
    const mariadb = await startMariadb();
    const url = await mariadb.createDatabase("telemetry");
    const { code, output } = await runExample(["--url", url]);
    expect(output).toContain("300 rows in mysql:");
    expect([...output.matchAll(LOADED)].length).toBe(3);
    expect(code).toBe(0);
  },
  SERVER_TEST_MS,
);

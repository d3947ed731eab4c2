// libmemcached's memccapable, ASCII protocol checks (-a), against real memcached (so a broken
// harness shows), against a gravity leaf and against a router over leaves: every check must pass.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  MEMCCAPABLE,
  requireBinary,
  type ServerProcess,
  startLeaf,
  startMemcached,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

/** memcached 1.6 passes this many ASCII checks. */
const ASCII_CHECKS = 27;

interface CapableRun {
  exitCode: number | null;
  output: string;
  /** Check name -> verdict: "pass", "skip" or "FAIL". */
  verdicts: Map<string, string>;
}

// memccapable prints each check's name padded to 40 columns on stdout (flushed), runs it, then
// prints `[pass]`, `[skip]` or `[FAIL]` on stderr, with any assertion text in between. Both
// streams go to one pipe so they stay in order.
async function runMemccapable(server: ServerProcess): Promise<CapableRun> {
  const args = ["-h", server.host, "-p", String(server.port), "-a", "-t", "5"];
  const proc = Bun.spawn(["sh", "-c", 'exec "$0" "$@" 2>&1', requireBinary(MEMCCAPABLE), ...args], {
    stdout: "pipe",
  });
  const output = new Response(proc.stdout).text();
  try {
    await withDeadline(proc.exited, 90_000, "memccapable to finish");
  } catch (error) {
    proc.kill("SIGKILL");
    throw error;
  }
  return { exitCode: proc.exitCode, output: await output, verdicts: parseVerdicts(await output) };
}

function parseVerdicts(output: string): Map<string, string> {
  const verdicts = new Map<string, string>();
  const verdict = /\[(pass|skip|FAIL)\]\n/g;
  let at = 0;
  while (/^ascii /.test(output.slice(at))) {
    const name = output.slice(at, at + 40).trim();
    verdict.lastIndex = at + 40;
    const match = verdict.exec(output);
    if (match === null) break;
    verdicts.set(name, match[1] as string);
    at = verdict.lastIndex;
  }
  return verdicts;
}

function failed(run: CapableRun): string[] {
  return [...run.verdicts]
    .filter(([, verdict]) => verdict !== "pass")
    .map(([name, verdict]) => `${name}: ${verdict}`);
}

afterAll(stopAll);

test("memcached passes every ASCII check (the harness works)", async () => {
  const run = await runMemccapable(await startMemcached());
  expect(failed(run), run.output).toEqual([]);
  expect(run.verdicts.size, run.output).toBe(ASCII_CHECKS);
  expect(run.exitCode, run.output).toBe(0);
}, 120_000);

test("the leaf passes every ASCII check memcached passes", async () => {
  const leaf = await startLeaf(["--port", "0"]);
  // memccapable picks its checks by the server's version: below 1.6 it expects the errors that
  // old memcached gave (e.g. to `version foo bar`), so the reported version matters.
  const client = await McClient.connect(leaf.port);
  const version = await client.command("version");
  client.close();
  const run = await runMemccapable(leaf);
  const context = `leaf replied ${JSON.stringify(version)} to version\n${run.output}`;
  expect(failed(run), context).toEqual([]);
  expect(run.verdicts.size, context).toBe(ASCII_CHECKS);
  expect(run.exitCode, context).toBe(0);
}, 120_000);

test("a router over two sharded leaves passes every ASCII check memcached passes", async () => {
  const leaves = await Promise.all([startLeaf(["--port", "0"]), startLeaf(["--port", "0"])]);
  const dir = mkdtempSync(join(tmpdir(), "gravity-memccapable-"));
  const config = join(dir, "router.json");
  writeFileSync(
    config,
    JSON.stringify({
      pools: { main: { servers: leaves.map((leaf) => `${HOST}:${leaf.port}`) } },
      route: { type: "sharded", pool: "main" },
    }),
  );
  const router = await startRouter(["--port", "0", "--config", config]);
  const run = await runMemccapable(router);
  expect(failed(run), run.output).toEqual([]);
  expect(run.verdicts.size, run.output).toBe(ASCII_CHECKS);
  expect(run.exitCode, run.output).toBe(0);
}, 120_000);

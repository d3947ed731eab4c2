// libmemcached's memccapable, its ASCII checks (-a) and its binary checks (-b), against real
// memcached (so a broken harness shows), against a gravity leaf and against a router over two
// sharded leaves: every check of each suite must pass.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startShardedRouter } from "./helpers/client-targets.ts";
import { McClient } from "./helpers/mc-client.ts";
import {
  MEMCCAPABLE,
  requireBinary,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

/** A memccapable suite: its flag, and how many checks memcached 1.6 passes in it. */
const SUITES = {
  ascii: { flag: "-a", checks: 27 },
  binary: { flag: "-b", checks: 27 },
} as const;
type Suite = keyof typeof SUITES;

interface CapableRun {
  exitCode: number | null;
  output: string;
  /** Check name -> verdict: "pass", "skip" or "FAIL". */
  verdicts: Map<string, string>;
}

// memccapable prints each check's name padded to 40 columns on stdout (flushed), runs it, then
// prints `[pass]`, `[skip]` or `[FAIL]` on stderr, with any assertion text in between. Both
// streams go to one pipe so they stay in order.
async function runMemccapable(server: ServerProcess, suite: Suite): Promise<CapableRun> {
  const args = ["-h", server.host, "-p", String(server.port), SUITES[suite].flag, "-t", "5"];
  const proc = Bun.spawn(["sh", "-c", 'exec "$0" "$@" 2>&1', requireBinary(MEMCCAPABLE), ...args], {
    stdout: "pipe",
  });
  const output = new Response(proc.stdout).text();
  try {
    await withDeadline(proc.exited, 90_000, `memccapable ${SUITES[suite].flag} to finish`);
  } catch (error) {
    proc.kill("SIGKILL");
    throw error;
  }
  return { exitCode: proc.exitCode, output: await output, verdicts: parseVerdicts(await output, suite) };
}

function parseVerdicts(output: string, suite: Suite): Map<string, string> {
  const verdicts = new Map<string, string>();
  const verdict = /\[(pass|skip|FAIL)\]\n/g;
  let at = 0;
  while (output.startsWith(`${suite} `, at)) {
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

const servers: Record<string, ServerProcess> = {};

afterAll(stopAll);

beforeAll(async () => {
  const [memcached, leaf, shardA, shardB] = await Promise.all([
    startMemcached(),
    startLeaf(["--port", "0"]),
    startLeaf(["--port", "0"]),
    startLeaf(["--port", "0"]),
  ]);
  Object.assign(servers, { memcached, leaf, router: await startShardedRouter([shardA, shardB]) });
}, SERVER_TEST_MS);

describe.each([
  ["memcached (the harness works)", "memcached"],
  ["a leaf", "leaf"],
  ["a router over two sharded leaves", "router"],
] as const)("memccapable against %s", (_, name) => {
  test.each(Object.keys(SUITES) as Suite[])(
    "passes every %s check memcached passes",
    async (suite) => {
      const server = servers[name] as ServerProcess;
      // memccapable picks its checks by the server's version: below 1.6 it expects the errors that
      // old memcached gave (e.g. to `version foo bar`), so the reported version matters.
      const client = await McClient.connect(server.port);
      const version = await client.command("version");
      client.close();
      const run = await runMemccapable(server, suite);
      const context = `${name} replied ${JSON.stringify(version)} to version\n${run.output}`;
      expect(failed(run), context).toEqual([]);
      expect(run.verdicts.size, context).toBe(SUITES[suite].checks);
      expect(run.exitCode, context).toBe(0);
    },
    120_000,
  );
});

// pymemcache (Debian's python3-pymemcache) as a new user drives it: pymemcache_script.py runs the
// same script against real memcached, a leaf and a router over two sharded leaves, and every
// result must be what memcached gave: storage, get_many, cas, counters, touch, noreply mode,
// unusual keys pymemcache accepts, flush_all, stats and version.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type ClientTargets, startClientTargets } from "../helpers/client-targets.ts";
import { SERVER_TEST_MS, type ServerProcess, stopAll } from "../helpers/servers.ts";
import { withDeadline } from "../helpers/wait.ts";

// Debian's interpreter, where python3-pymemcache installs: a python3 earlier on PATH (pyenv, a
// virtualenv) does not see it.
const PYTHON = "/usr/bin/python3";
const SCRIPT = join(import.meta.dir, "pymemcache_script.py");

interface ScriptRun {
  /** [step name, repr of its result] in order. */
  steps: [string, string][];
  /** Stat name -> the Python type pymemcache converted its value to. */
  stats: Record<string, string>;
  version: string;
}

async function runScript(server: ServerProcess): Promise<ScriptRun> {
  const proc = Bun.spawn([PYTHON, SCRIPT, server.host, String(server.port)], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = new Response(proc.stdout).text();
  const stderr = new Response(proc.stderr).text();
  try {
    await withDeadline(proc.exited, 30_000, `pymemcache script against ${server.name}`);
  } catch (error) {
    proc.kill("SIGKILL");
    throw error;
  }
  if (proc.exitCode !== 0) {
    throw new Error(`pymemcache script against ${server.name} exited ${proc.exitCode}: ${await stderr}`);
  }
  return JSON.parse(await stdout) as ScriptRun;
}

/** The stats a pymemcache user reads for hit rates and fill level, each converted to an int. */
const POOL_STATS = [
  "pid",
  "uptime",
  "curr_connections",
  "total_connections",
  "cmd_get",
  "cmd_set",
  "get_hits",
  "get_misses",
  "curr_items",
  "bytes",
  "limit_maxbytes",
  "threads",
];

let targets: ClientTargets;
let reference: ScriptRun;

afterAll(stopAll);

beforeAll(async () => {
  const check = Bun.spawnSync([PYTHON, "-c", "import pymemcache"], { stderr: "pipe" });
  if (check.exitCode !== 0) {
    throw new Error(
      `${PYTHON} cannot import pymemcache (Debian package python3-pymemcache; .ci/run installs it): ${check.stderr.toString()}`,
    );
  }
  targets = await startClientTargets();
  reference = await runScript(targets.memcached);
}, SERVER_TEST_MS);

test("against memcached the script gets what pymemcache documents (the harness works)", () => {
  expect(Object.fromEntries(reference.steps)).toMatchObject({
    get: "b'hello'",
    "set 2 MiB (over the item limit)": `"MemcacheServerError: b'object too large for cache'"`,
    get_many: "[('a', b'1'), ('b', b'2'), ('greeting', b'hello')]",
    "add existing": "False",
    "replace missing": "False",
    "get appended and prepended": "b'>> hello world'",
    gets: "(b'>> hello world', True)",
    "cas with the token": "True",
    "cas with the stale token": "False",
    "cas missing key": "None",
    "incr wraps at 2**64": "0",
    "get key with escape byte": "b'kv'",
    "get unicode key": "b'utf8'",
    "serde get dict": "{'n': 1, 'l': [1, 2]}",
    "get after noreply writes": "b'012'",
    "get after noreply cas": "b'cas'",
    "get after noreply flush_all": "{}",
  });
  for (const name of POOL_STATS) expect(reference.stats[name], name).toBe("int");
});

describe.each([
  ["a leaf", () => targets.leaf],
  ["a router over two sharded leaves", () => targets.router],
] as const)("pymemcache against %s", (_, target) => {
  let run: ScriptRun;

  beforeAll(async () => {
    run = await runScript(target());
  }, SERVER_TEST_MS);

  test("every step gives what it gives against memcached", () => {
    expect(run.steps).toEqual(reference.steps);
  });

  test("stats has the counters and fill level a pool is watched by, as integers", () => {
    const types = Object.fromEntries(POOL_STATS.map((name) => [name, run.stats[name]]));
    expect(types).toEqual(Object.fromEntries(POOL_STATS.map((name) => [name, "int"])));
  });

  test("version is a memcached-style version string", () => {
    expect(run.version).toMatch(/^\d+\.\d+\.\d+\S*$/);
  });
});

test("a leaf's stats have every stat memcached has, with the same type", async () => {
  const run = await runScript(targets.leaf);
  const missing = Object.entries(reference.stats).filter(([name, type]) => run.stats[name] !== type);
  expect(missing).toEqual([]);
});

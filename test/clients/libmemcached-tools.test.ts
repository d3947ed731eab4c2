// libmemcached's command-line tools (Debian's libmemcached-tools) as a user runs them, against real
// memcached, a leaf and a router over two sharded leaves: memccp copies files in (set, add,
// replace, flags, expiry), memccat reads them back byte for byte, memcexist, memctouch, memcrm,
// memcping and memcflush; each run's exit code and output must be what memcached gives. memcstat
// prints the server's stats, which must count what the tools just did; memcdump lists the keys.
// The same session over the binary protocol (--binary) runs against a leaf and a router.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClientTargets, startClientTargets } from "../helpers/client-targets.ts";
import { McClient } from "../helpers/mc-client.ts";
import {
  requireBinary,
  SERVER_TEST_MS,
  type ServerProcess,
  startMemcached,
  stopAll,
} from "../helpers/servers.ts";
import { withDeadline } from "../helpers/wait.ts";

interface ToolRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

// Runs /usr/bin/<tool> --servers=<server> ...args in `cwd`; output is latin1 so bytes survive.
async function runTool(tool: string, server: ServerProcess, args: string[], cwd: string): Promise<ToolRun> {
  const binary = requireBinary(`/usr/bin/${tool}`);
  const proc = Bun.spawn([binary, `--servers=${server.host}:${server.port}`, ...args], {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = new Response(proc.stdout).arrayBuffer();
  const stderr = new Response(proc.stderr).text();
  try {
    await withDeadline(proc.exited, 10_000, `${tool} ${args.join(" ")} against ${server.name}`);
  } catch (error) {
    proc.kill("SIGKILL");
    throw error;
  }
  return {
    exitCode: proc.exitCode,
    stdout: Buffer.from(await stdout).toString("latin1"),
    stderr: (await stderr).replaceAll(`:${server.port}`, ":PORT"),
  };
}

// A file worth copying: every byte value, lines that look like protocol, and 300 KiB of noise.
function blob(): Buffer {
  const noise = Buffer.alloc(300 * 1024);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
  return Buffer.concat([
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.from("\r\nEND\r\nVALUE x 0 1\r\n"),
    noise,
  ]);
}

/** [command line, exit code, stdout, stderr] for each tool run, in order. */
type Transcript = [string, number | null, string, string][];

// The session a user has with the tools; returns a transcript to compare with memcached's.
// `protocol` is passed to every tool: [] for text, ["--binary"] for the binary protocol.
async function session(server: ServerProcess, protocol: string[] = []): Promise<Transcript> {
  const dir = mkdtempSync(join(tmpdir(), "gravity-libmemcached-tools-"));
  const content = blob();
  writeFileSync(join(dir, "blob.bin"), content);
  writeFileSync(join(dir, "small.txt"), "hello");
  writeFileSync(join(dir, "huge.bin"), Buffer.alloc(2 * 1024 * 1024, "z"));
  const transcript: Transcript = [];
  const run = async (tool: string, ...args: string[]) => {
    const result = await runTool(tool, server, [...protocol, ...args], dir);
    transcript.push([[tool, ...args].join(" "), result.exitCode, result.stdout, result.stderr]);
    return result;
  };
  await run("memcflush");
  await run("memccp", "--flags=123", "--expire=3600", "blob.bin");
  await run("memccat", "--file=copy.bin", "blob.bin");
  transcript.push([
    "copy.bin equals blob.bin",
    null,
    String(readFileSync(join(dir, "copy.bin")).equals(content)),
    "",
  ]);
  await run("memccp", "small.txt");
  await run("memccat", "small.txt");
  await run("memccp", "--flags=123", "small.txt");
  await run("memccat", "--flags", "small.txt");
  await run("memccat", "--verbose", "small.txt");
  await run("memcexist", "blob.bin");
  await run("memctouch", "--expire=3600", "blob.bin");
  await run("memccp", "--add", "blob.bin");
  await run("memccp", "--replace", "small.txt");
  await run("memcrm", "blob.bin");
  await run("memccat", "blob.bin");
  await run("memccat", "--verbose", "blob.bin");
  await run("memcexist", "blob.bin");
  await run("memctouch", "--expire=3600", "blob.bin");
  await run("memcrm", "blob.bin");
  await run("memccp", "--replace", "blob.bin");
  await run("memccp", "--add", "blob.bin");
  await run("memccat", "--file=again.bin", "blob.bin");
  transcript.push([
    "again.bin equals blob.bin",
    null,
    String(readFileSync(join(dir, "again.bin")).equals(content)),
    "",
  ]);
  await run("memccp", "huge.bin");
  await run("memccat", "small.txt");
  await run("memcping");
  await run("memcflush");
  await run("memccat", "small.txt");
  return transcript;
}

/** memcstat's report: `Server: <host> (<port>)` then a tab-indented `name: value` line per stat. */
function parseMemcstat(output: string): { server: string; stats: Record<string, string> } {
  const [first = "", ...lines] = output.trimEnd().split("\n");
  const stats: Record<string, string> = {};
  for (const line of lines) {
    const match = /^\t([^:]+): (.*)$/.exec(line);
    if (match === null) throw new Error(`memcstat printed an unexpected line ${JSON.stringify(line)}`);
    stats[match[1] as string] = match[2] as string;
  }
  return { server: first, stats };
}

/** Stats memcstat users read, each an unsigned integer on every target. */
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
let reference: Transcript;

afterAll(stopAll);

beforeAll(async () => {
  targets = await startClientTargets();
  reference = await session(targets.memcached);
}, SERVER_TEST_MS);

test("against memcached the tools do what their manuals say (the harness works)", () => {
  const byCommand = new Map<string, [number | null, string, string][]>();
  for (const [command, ...rest] of reference) {
    byCommand.set(command, [...(byCommand.get(command) ?? []), rest]);
  }
  expect(byCommand.get("copy.bin equals blob.bin")).toEqual([[null, "true", ""]]);
  expect(byCommand.get("again.bin equals blob.bin")).toEqual([[null, "true", ""]]);
  expect(byCommand.get("memccat small.txt")).toEqual([
    [0, "hello\n", ""],
    [0, "hello\n", ""],
    [1, "", ""],
  ]);
  expect(byCommand.get("memccat --flags small.txt")).toEqual([[0, "123\nhello\n", ""]]);
  expect(byCommand.get("memccat --verbose small.txt")).toEqual([[0, "key: small.txt\nvalue: hello\n", ""]]);
  // memccat names a missing key only when --verbose.
  expect(byCommand.get("memccat blob.bin")).toEqual([[1, "", ""]]);
  expect(byCommand.get("memccat --verbose blob.bin")).toEqual([
    [1, "", "Could not find key 'blob.bin': NOT FOUND\n"],
  ]);
  expect(byCommand.get("memcexist blob.bin")?.map(([code]) => code)).toEqual([0, 1]);
  expect(byCommand.get("memcrm blob.bin")?.map(([code]) => code)).toEqual([0, 1]);
  expect(byCommand.get("memccp --add blob.bin")).toEqual([
    [1, "", "Error occurred during memcached_add('blob.bin'): NOT STORED\n"],
    [0, "", ""],
  ]);
  expect(byCommand.get("memccp --replace blob.bin")?.map(([code]) => code)).toEqual([1]);
  expect(byCommand.get("memccp huge.bin")?.map(([code]) => code)).toEqual([1]);
});

describe.each([
  ["a leaf", () => targets.leaf],
  ["a router over two sharded leaves", () => targets.router],
] as const)("libmemcached's tools against %s", (_, target) => {
  test("every run exits and prints as it does against memcached", async () => {
    expect(await session(target())).toEqual(reference);
  }, 60_000);
});

describe.each([
  ["memcached", () => targets.memcached],
  ["a leaf", () => targets.leaf],
  ["a router over two sharded leaves", () => targets.router],
] as const)("memcstat against %s", (_, target) => {
  const dir = mkdtempSync(join(tmpdir(), "gravity-memcstat-"));

  async function memcstat(...args: string[]): Promise<ToolRun> {
    const run = await runTool("memcstat", target(), args, dir);
    expect(run.exitCode, run.stderr).toBe(0);
    return run;
  }

  test("prints the server's stats, counting the items and requests the tools just made", async () => {
    const server = target();
    writeFileSync(join(dir, "one.txt"), "1");
    writeFileSync(join(dir, "two.txt"), "22");
    const before = parseMemcstat((await memcstat()).stdout);
    expect(before.server).toBe(`Server: ${server.host} (${server.port})`);
    for (const name of POOL_STATS) expect(before.stats[name], name).toMatch(/^\d+$/);
    expect(before.stats.pid).toBe(String(server.pid));

    for (const file of ["one.txt", "two.txt"]) {
      expect((await runTool("memccp", server, [file], dir)).exitCode).toBe(0);
    }
    expect((await runTool("memccat", server, ["one.txt"], dir)).stdout).toBe("1\n");
    const after = parseMemcstat((await memcstat()).stdout).stats;
    const delta = (name: string) => Number(after[name]) - Number(before.stats[name]);
    expect({
      curr_items: delta("curr_items"),
      cmd_set: delta("cmd_set"),
      cmd_get: delta("cmd_get"),
      get_hits: delta("get_hits"),
    }).toEqual({ curr_items: 2, cmd_set: 2, cmd_get: 1, get_hits: 1 });
  });

  test("--server-version prints the version the server reports", async () => {
    const server = target();
    const raw = await McClient.connect(server.port);
    const line = await raw.command("version");
    raw.close();
    // libmemcached reads major.minor.micro from the start of `VERSION <version>`.
    const version = /^VERSION (\d+\.\d+\.\d+)/.exec(line);
    expect(version, line).not.toBeNull();
    // memcstat prints this report on stderr.
    expect(await memcstat("--server-version")).toMatchObject({
      stdout: "",
      stderr: `${server.host}:PORT ${version?.[1]}\n`,
    });
  });

  test("--analyze reports on the one server", async () => {
    const { stdout } = await memcstat("--analyze");
    expect(stdout).toContain("Memcached Cluster Analysis Report");
    expect(stdout).toMatch(/Number of Servers Analyzed\s+: 1\n/);
    expect(stdout).toMatch(/Average Item Size \(incl\/overhead\)\s+: \d+ bytes\n/);
  });
});

describe("libmemcached's tools over the binary protocol (--binary)", () => {
  let binaryReference: Transcript;

  beforeAll(async () => {
    binaryReference = await session(targets.memcached, ["--binary"]);
  }, SERVER_TEST_MS);

  test("against memcached the copies read back intact (the harness works)", () => {
    const verdicts = binaryReference.filter(([command]) => command.endsWith("equals blob.bin"));
    expect(verdicts.map(([, , out]) => out)).toEqual(["true", "true"]);
  });

  test("against a leaf every run exits and prints as it does against memcached", async () => {
    expect(await session(targets.leaf, ["--binary"])).toEqual(binaryReference);
  }, 60_000);

  test("through a router over two sharded leaves every run exits and prints as it does against memcached", async () => {
    expect(await session(targets.router, ["--binary"])).toEqual(binaryReference);
  }, 60_000);

  test.each([
    ["memcached", () => targets.memcached],
    ["a leaf", () => targets.leaf],
    ["a router over two sharded leaves", () => targets.router],
  ] as const)("memcstat --binary prints the stats of %s", async (_, target) => {
    const server = target();
    const run = await runTool("memcstat", server, ["--binary"], tmpdir());
    expect(run.exitCode, run.stderr).toBe(0);
    const report = parseMemcstat(run.stdout);
    expect(report.server).toBe(`Server: ${server.host} (${server.port})`);
    for (const name of POOL_STATS) expect(report.stats[name], name).toMatch(/^\d+$/);
    expect(report.stats.pid).toBe(String(server.pid));
  });
});

// memcdump lists a server's keys with "stats cachedump <class> 0" for every class; a router asks
// each leaf and merges (src/router/leaf-dumps.ts). The reference is a fresh memcached without its
// segmented LRU (no_lru_maintainer), whose cachedump then lists every item of a class.
describe.each([
  ["memcached -o no_lru_maintainer", () => startMemcached({ extraArgs: ["-o", "no_lru_maintainer"] })],
  ["a leaf", async () => targets.leaf],
  ["a router over two sharded leaves", async () => targets.router],
] as const)("memcdump against %s", (_, start) => {
  test("lists exactly the keys memccp stored", async () => {
    const server = await start();
    const dir = mkdtempSync(join(tmpdir(), "gravity-memcdump-"));
    const files = Array.from({ length: 20 }, (_, i) => `dump-${i}.txt`);
    for (const [i, file] of files.entries()) writeFileSync(join(dir, file), "x".repeat(i * 500));
    expect((await runTool("memcflush", server, [], dir)).exitCode).toBe(0);
    expect((await runTool("memccp", server, files, dir)).exitCode).toBe(0);
    const run = await runTool("memcdump", server, [], dir);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(
      run.stdout
        .split("\n")
        .filter((line) => line !== "")
        .sort(),
    ).toEqual([...files].sort());
  });
});

// The gravity command line: bad flags exit 2 with one line naming the flag, --help and --version
// exit 0, and the compiled executable runs alone, with nothing beside it.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { McClient } from "./helpers/mc-client.ts";
import {
  COMPILED_GRAVITY,
  freePort,
  HOST,
  runGravity,
  SERVER_TEST_MS,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const dirsToRemove: string[] = [];
afterAll(async () => {
  await stopAll();
  for (const dir of dirsToRemove) rmSync(dir, { recursive: true, force: true });
});

describe("bad flags exit 2 with one line naming the flag", () => {
  const cases: { args: string[]; env?: Record<string, string>; names: string[] }[] = [
    { args: ["leaf", "--bogus"], names: ["--bogus"] },
    { args: ["leaf", "--port", "abc"], names: ["--port", "abc"] },
    { args: ["leaf", "--port=70000"], names: ["--port", "70000"] },
    { args: ["leaf", "--memory", "12xb"], names: ["--memory", "12xb"] },
    { args: ["leaf", "--threads", "0"], names: ["--threads", "0"] },
    { args: ["leaf", "--port"], names: ["--port"] },
    { args: ["leaf"], env: { GRAVITY_PORT: "abc" }, names: ["GRAVITY_PORT", "abc"] },
    { args: ["nonsense"], names: ["nonsense"] },
    { args: [], names: ["missing command"] },
    { args: ["leaf", "--memory", "1m", "--max-item-size", "1m"], names: ["--max-item-size", "--memory"] },
    { args: ["leaf", "--max-connections", "0"], names: ["--max-connections", "0"] },
    { args: ["leaf", "--policy", "fifo"], names: ["--policy", "fifo"] },
    { args: ["leaf", "--inject-latency", "5%"], names: ["--inject-latency", "5%"] },
    { args: ["leaf", "--inject-latency", "101%:5ms"], names: ["--inject-latency", "101%:5ms"] },
    { args: ["router"], names: ["--config"] },
    { args: ["router", "--config", "/nonexistent/gravity.yaml"], names: ["/nonexistent/gravity.yaml"] },
    { args: ["router", "--config", "deploy/router.example.yaml", "--port", "-5"], names: ["--port", "-5"] },
    { args: ["cluster", "--leaf-memory", "1k"], names: ["--leaf-memory", "1k"] },
    {
      args: ["router", "--config", "deploy/router.example.yaml", "--max-inflight", "0"],
      names: ["--max-inflight", "0"],
    },
    {
      args: ["router", "--config", "deploy/router.example.yaml", "--max-buffered-bytes", "12xb"],
      names: ["--max-buffered-bytes", "12xb"],
    },
    {
      args: ["router", "--config", "deploy/router.example.yaml", "--max-client-buffered-bytes", "1k"],
      names: ["--max-client-buffered-bytes", "1k"],
    },
    // memcached's short flags name themselves as given.
    { args: ["leaf", "-U", "11211"], names: ["-U", "11211"] },
    { args: ["leaf", "-m", "0"], names: ["-m", "0"] },
    { args: ["leaf", "-x"], names: ["-x"] },
    { args: ["leaf", "-vvvv"], names: ["-vvvv"] },
    // --check-config says what is wrong and exits 2, as a start would.
    { args: ["router", "--check-config", "/nonexistent/gravity.yaml"], names: ["/nonexistent/gravity.yaml"] },
    // Credential flags without the connection they are for are refused, not ignored.
    ...["--etcd-ca", "--etcd-cert", "--etcd-key", "--etcd-user", "--etcd-password-file"].map((flag) => ({
      args: ["leaf", flag, "some-file"],
      names: [`${flag}: only with --etcd`],
    })),
    ...[
      "--nats-ca",
      "--nats-cert",
      "--nats-key",
      "--nats-user",
      "--nats-password-file",
      "--nats-token-file",
      "--nats-nkey-file",
      "--nats-creds",
    ].map((flag) => ({ args: ["leaf", flag, "some-file"], names: [`${flag}: only with --nats`] })),
    { args: ["leaf", "--pool", "main"], names: ["--pool: only with --etcd"] },
  ];
  for (const { args, env, names } of cases) {
    const label = `${env === undefined ? "" : `${Object.entries(env)[0]?.join("=")} `}gravity ${args.join(" ")}`;
    test(
      label,
      async () => {
        const run = await runGravity(args, env === undefined ? {} : { env });
        expect(run.exitCode, run.stderr).toBe(2);
        const lines = run.stderr.trimEnd().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toStartWith("gravity: ");
        for (const name of names) expect(lines[0]).toContain(name);
        expect(run.stdout).not.toContain("listening");
      },
      SERVER_TEST_MS,
    );
  }
});

test(
  "--help exits 0 and lists the commands",
  async () => {
    const run = await runGravity(["--help"]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain("usage: gravity");
    expect(run.stdout).toContain("leaf");
  },
  SERVER_TEST_MS,
);

test(
  "leaf --help exits 0 and lists the leaf's flags",
  async () => {
    const run = await runGravity(["leaf", "--help"]);
    expect(run.exitCode, run.stderr).toBe(0);
    for (const flag of ["--port", "--memory", "--max-item-size", "--threads"])
      expect(run.stdout).toContain(flag);
  },
  SERVER_TEST_MS,
);

test(
  "router --check-config: a valid file exits 0 and says what it configures",
  async () => {
    const run = await runGravity(["router", "--check-config", "deploy/router.example.yaml"]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(
      "gravity router: deploy/router.example.yaml: valid; pools main (3 servers, tcp), " +
        "replicas (3 servers, tcp), gutter (1 server, tcp); route prefix",
    );
    expect(run.stdout).not.toContain("listening");
  },
  SERVER_TEST_MS,
);

test(
  "leaf with memcached's short flags: -p -l -m (megabytes) -t -c -I -U 0, and -vv logs each connection",
  async () => {
    const leaf = await startLeaf([
      "-p",
      "0",
      "-l",
      "127.0.0.1",
      "-m",
      "8",
      "-t",
      "1",
      "-c",
      "10",
      "-I",
      "512k",
      "-U",
      "0",
      "-vv",
    ]);
    expect(leaf.memoryBytes).toBe(8 * 1024 * 1024);
    expect(leaf.maxItemBytes).toBe(512 * 1024);
    const client = await McClient.connect(leaf.port);
    expect(await client.command("version")).toStartWith("VERSION ");
    await leaf.waitForStdout(/gravity leaf: connection from 127\.0\.0\.1 \(1 open\)/);
    client.close();
    await leaf.waitForStdout(/gravity leaf: connection from 127\.0\.0\.1 closed/);
    expect(await leaf.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "router -v logs route errors, verbosity N changes the level at run time, and -vv logs connections",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "gravity-verbose-"));
    dirsToRemove.push(dir);
    const config = join(dir, "router.json");
    // A pool whose only leaf listens nowhere: every get is a route error.
    writeFileSync(
      config,
      JSON.stringify({ pools: { main: { servers: [`${HOST}:${await freePort()}`] } }, route: "main" }),
    );
    const router = await startRouter(["--port", "0", "--config", config, "-v"]);
    const client = await McClient.connect(router.port);
    expect(await client.command("get verbose:a")).toStartWith("SERVER_ERROR ");
    await pollUntil(() => (/gravity router: get verbose:a: /.test(router.stderr()) ? true : undefined), {
      deadlineMs: 10_000,
      what: "the route error on stderr",
    });
    expect(await client.command("verbosity 0")).toBe("OK");
    expect(await client.command("get verbose:b")).toStartWith("SERVER_ERROR ");
    expect(await client.command("verbosity 2")).toBe("OK");
    // Level 2 logs a new connection: by then the get at level 0 has long been answered.
    const second = await McClient.connect(router.port);
    await router.waitForStdout(/gravity router: connection from 127\.0\.0\.1 \(2 open\)/);
    expect(router.stderr()).not.toContain("verbose:b");
    second.close();
    client.close();
    expect(await router.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "--version exits 0 and prints the package version",
  async () => {
    const run = await runGravity(["--version"]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(`gravity ${pkg.version}`);
  },
  SERVER_TEST_MS,
);

describe("the compiled executable, copied alone to an empty directory", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  // A fresh directory holding only a copy of dist/gravity.
  function lonelyCopy(): string {
    if (!existsSync(COMPILED_GRAVITY))
      throw new Error(`${COMPILED_GRAVITY} is missing: run \`npm run build\` first`);
    const dir = mkdtempSync(join(tmpdir(), "gravity-alone-"));
    dirs.push(dir);
    const executable = join(dir, "gravity");
    copyFileSync(COMPILED_GRAVITY, executable);
    expect(readdirSync(dir)).toEqual(["gravity"]);
    return executable;
  }

  for (const threads of [1, 2]) {
    test(
      `starts with --threads ${threads} and answers version over TCP`,
      async () => {
        const executable = lonelyCopy();
        const leaf = await startLeaf(["--port", "0", "--threads", String(threads)], {
          executable,
          cwd: join(executable, ".."),
        });
        const clients = await Promise.all(Array.from({ length: 4 }, () => McClient.connect(leaf.port)));
        for (const client of clients) {
          const reply = await client.command("version");
          expect(reply).toStartWith("VERSION ");
          expect(reply).toContain(pkg.version);
          client.close();
        }
        expect(await leaf.stop("SIGTERM")).toBe(0);
      },
      SERVER_TEST_MS,
    );
  }
});

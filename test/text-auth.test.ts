// memcached's text-protocol authentication (-Y / --auth-file) on the compiled leaf and on a router
// in front of a leaf, against memcached -Y itself: the same bytes get the same replies, and the
// connection closes where memcached's does.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromLatin1, McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  runGravity,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";

const dir = mkdtempSync(join(tmpdir(), "gravity-text-auth-"));
const AUTH_FILE = join(dir, "auth");
writeFileSync(AUTH_FILE, "alice:wonder\nbob:builder\n");

const targets: Record<string, ServerProcess> = {};

beforeAll(async () => {
  const config = join(dir, "router.json");
  const [memcached, leaf, backend] = await Promise.all([
    startMemcached({ extraArgs: ["-Y", AUTH_FILE] }),
    startLeaf(["--port", "0", "-Y", AUTH_FILE]),
    startLeaf(["--port", "0"]),
  ]);
  writeFileSync(
    config,
    JSON.stringify({ pools: { main: { servers: [`${HOST}:${backend.port}`] } }, route: "main" }),
  );
  const router = await startRouter(["--port", "0", "--config", config, "--auth-file", AUTH_FILE]);
  Object.assign(targets, { memcached, leaf, router });
}, SERVER_TEST_MS);

afterAll(stopAll);

/** Sends `input`, half-closes, and returns every byte the server sent before it closed. */
async function exchange(port: number, input: string): Promise<string> {
  const client = await McClient.connect(port);
  await client.send(input);
  client.endWrite();
  await client.waitClosed();
  return fromLatin1(client.buffered());
}

const CASES: [string, string][] = [
  ["a command before authenticating", "get a\r\n"],
  ["credentials, then commands", "set auth 0 0 12\r\nalice wonder\r\nset k 0 0 1\r\nz\r\nget k\r\n"],
  ["credentials with noreply", "set auth 0 0 13 noreply\r\nbob  builder\r\nget k\r\n"],
  ["a wrong password", "set auth 0 0 11\r\nalice wrong\r\nget k\r\n"],
  ["an unknown user", "set auth 0 0 12\r\nmallory evil\r\nget k\r\n"],
  ["a malformed set", "set auth\r\nget k\r\n"],
  ["another storage command", "add auth 0 0 12\r\nalice wonder\r\nget k\r\n"],
];

describe("text authentication answers as memcached -Y does", () => {
  for (const [name, input] of CASES) {
    test(name, async () => {
      const want = await exchange(targets.memcached?.port as number, input);
      expect(want).toMatch(/^(STORED|CLIENT_ERROR)/);
      expect(await exchange(targets.leaf?.port as number, input)).toBe(want);
      expect(await exchange(targets.router?.port as number, input)).toBe(want);
    });
  }
});

test(
  "an --auth-file that names no user exits 2 naming the flag and the file",
  async () => {
    const bad = join(dir, "bad");
    writeFileSync(bad, "no colon here\n");
    for (const role of [
      ["leaf", "--port", "0"],
      ["router", "--config", "deploy/router.example.yaml"],
    ]) {
      const run = await runGravity([...role, "--auth-file", bad]);
      expect([run.exitCode, run.stderr]).toEqual([
        2,
        expect.stringContaining(`--auth-file: ${JSON.stringify(bad)} has no user:password line`),
      ]);
    }
  },
  SERVER_TEST_MS,
);

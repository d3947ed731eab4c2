// The memcached binary protocol through the router (the compiled gravity): a router sharding over
// two leaves and a router over a replicated pool, driven by memjs and by raw frames whose replies
// are compared byte for byte with what a leaf answers to the same frames (CAS values aside).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client as MemjsClient } from "memjs";
import {
  badFrames,
  concat,
  conversation,
  exchange,
  frame,
  Op,
  SENTINEL,
  u32s,
} from "./helpers/binary-frames.ts";
import { startShardedRouter } from "./helpers/client-targets.ts";
import { McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  MEMCCAPABLE,
  requireBinary,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

afterAll(stopAll);

// Reads "one" keeps each client connection's requests in order on each replica (read-your-writes
// within a pipelined stream); hedged reads give that up by design, so they are tried with memjs,
// which waits for each reply.
async function startReplicatedRouter(
  leaves: readonly ServerProcess[],
  reads: "one" | "hedged",
): Promise<ServerProcess> {
  const file = join(mkdtempSync(join(tmpdir(), "gravity-binary-router-")), "router.json");
  writeFileSync(
    file,
    JSON.stringify({
      pools: { replicas: { servers: leaves.map((leaf) => `${HOST}:${leaf.port}`) } },
      route: { type: "replicated", pool: "replicas", writes: "all-sync", reads },
    }),
  );
  return startRouter(["--port", "0", "--config", file]);
}

let reference: ServerProcess; // a leaf on its own: what a router should answer
const routers: Record<string, ServerProcess> = {};
let shards: ServerProcess[] = [];

beforeAll(async () => {
  const leaves = await Promise.all([0, 1, 2, 3, 4].map(() => startLeaf(["--port", "0"])));
  reference = leaves[0] as ServerProcess;
  shards = leaves.slice(1, 3);
  routers.sharded = await startShardedRouter(shards);
  routers.replicated = await startReplicatedRouter(leaves.slice(3, 5), "one");
  routers.hedged = await startReplicatedRouter(leaves.slice(3, 5), "hedged");
}, SERVER_TEST_MS);

const quiet = { retries: 0, timeout: 5, logger: { log() {} } };

// memjs as an application uses it, every reply awaited before the next request.
function memjsTest(name: string, router: () => ServerProcess): void {
  test("memjs: set, get, add, replace, append, delete, incr, decr, touch, stats, flush", async () => {
    const client = MemjsClient.create(`${HOST}:${router().port}`, quiet);
    try {
      const k = (key: string) => `memjs:${name}:${key}`;
      for (const key of ["a", "b", "c", "d", "e", "f"])
        expect(await client.set(k(key), `v-${key}`)).toBe(true);
      for (const key of ["a", "b", "c", "d", "e", "f"])
        expect((await client.get(k(key))).value?.toString()).toBe(`v-${key}`);
      expect((await client.get(k("missing"))).value).toBeNull();
      expect(await client.add(k("a"), "again")).toBe(false);
      expect(await client.replace(k("a"), "world")).toBe(true);
      expect(await client.append(k("a"), "!")).toBe(true);
      expect((await client.get(k("a"))).value?.toString()).toBe("world!");
      expect(await client.delete(k("a"))).toBe(true);
      expect(await client.delete(k("a"))).toBe(false);

      expect(await client.increment(k("n"), 5, { initial: 10 })).toEqual({ success: true, value: 10 });
      expect(await client.increment(k("n"), 5, {})).toEqual({ success: true, value: 15 });
      expect(await client.decrement(k("n"), 20, {})).toEqual({ success: true, value: 0 });
      await expect(client.increment(k("b"), 1, {})).rejects.toThrow();

      expect(await client.touch(k("c"), 200)).toBe(true);
      expect(await client.touch(k("missing"), 200)).toBe(false);

      const stats = await new Promise<Record<string, string>>((resolve, reject) => {
        client.stats((err, _server, values) => (err || !values ? reject(err) : resolve(values)));
      });
      expect(stats.pid).toBe(String(router().pid));

      const flushed = await client.flush();
      expect(Object.values(flushed)).toEqual([true]);
      expect((await client.get(k("c"))).value).toBeNull();
    } finally {
      client.close();
    }
  });
}

describe("binary protocol through a replicated router with hedged reads", () => {
  memjsTest("hedged", () => routers.hedged as ServerProcess);
});

describe.each(["sharded", "replicated"])("binary protocol through a %s router", (name) => {
  const router = () => routers[name] as ServerProcess;
  memjsTest(name, router);

  test("raw frames: the router answers byte for byte as a leaf does (CAS aside)", async () => {
    const stream = conversation(`raw:${name}:${Date.now()}:`);
    const want = await exchange(reference, stream, { untilOpaque: SENTINEL });
    const got = await exchange(router(), stream, { untilOpaque: SENTINEL });
    expect(got.frames).toEqual(want.frames);
    expect(got.cas.map((cas) => cas !== 0n)).toEqual(want.cas.map((cas) => cas !== 0n));
  });

  test("raw frames: the same frames one byte per write", async () => {
    const stream = conversation(`bytes:${name}:${Date.now()}:`);
    const want = await exchange(reference, stream, { untilOpaque: SENTINEL });
    const got = await exchange(router(), stream, { untilOpaque: SENTINEL, byteByByte: true });
    expect(got.frames).toEqual(want.frames);
  });

  test("raw frames: CAS from a get makes a set succeed once, then it exists", async () => {
    const key = `cas:${name}:${Date.now()}`;
    const set = (opaque: number, cas: bigint) =>
      frame({ opcode: Op.Set, key, extras: u32s(0, 0), value: `v${opaque}`, cas, opaque });
    const first = await exchange(router(), concat([set(1, 0n), frame({ opcode: Op.Get, key, opaque: 2 })]), {
      untilOpaque: 2,
    });
    const cas = first.cas[1] ?? 0n;
    expect(cas).not.toBe(0n);
    expect(first.cas[0]).toBe(cas); // the set's reply carries the item's CAS, as memcached's does
    const second = await exchange(router(), concat([set(3, cas), set(4, cas)]), { untilOpaque: 4 });
    expect(second.frames.map((hex) => Buffer.from(hex, "hex").readUInt16BE(6))).toEqual([0x0000, 0x0002]);
  });

  test("raw frames: a key with a space and control bytes is stored and read back", async () => {
    const key = `odd key\x01\x1b:${name}`;
    const got = await exchange(
      router(),
      concat([
        frame({ opcode: Op.Set, key, extras: u32s(7, 0), value: "odd", opaque: 1 }),
        frame({ opcode: Op.GetK, key, opaque: 2 }),
      ]),
      { untilOpaque: 2 },
    );
    const reply = Buffer.from(got.frames[1] ?? "", "hex");
    expect(reply.readUInt16BE(6)).toBe(0);
    expect(reply.subarray(24 + 4).toString("latin1")).toBe(`${key}odd`);
  });

  for (const [frameName, bytes] of Object.entries(badFrames)) {
    test(`raw frames: ${frameName} gets the leaf's reply and close`, async () => {
      const want = await exchange(reference, bytes, { expectClose: true });
      const got = await exchange(router(), bytes, { expectClose: true });
      expect(got.closed).toBe(true);
      expect(got.frames).toEqual(want.frames);
    });
  }

  test("text still works on the same port", async () => {
    const client = await McClient.connect(router().port, HOST);
    try {
      expect(await client.command(`set text:${name} 0 0 1\r\nx`)).toBe("STORED");
    } finally {
      client.close();
    }
  });
});

test("sharded: binary sets spread over both leaves", async () => {
  const client = MemjsClient.create(`${HOST}:${routers.sharded?.port}`, quiet);
  try {
    for (let i = 0; i < 40; i++) expect(await client.set(`spread:${i}`, "x")).toBe(true);
  } finally {
    client.close();
  }
  for (const shard of shards) {
    const text = await McClient.connect(shard.port, HOST);
    try {
      await text.send("stats\r\n");
      let items = -1;
      for (let line = await text.readLine(); line !== "END"; line = await text.readLine()) {
        const match = /^STAT curr_items (\d+)$/.exec(line);
        if (match) items = Number(match[1]);
      }
      expect(items).toBeGreaterThan(0);
    } finally {
      text.close();
    }
  }
});

// libmemcached's memccapable, binary checks only (-b), through the router.
test.each(["sharded", "replicated"])(
  "memccapable -b passes through a %s router",
  async (name) => {
    const router = routers[name] as ServerProcess;
    const args = ["-h", router.host, "-p", String(router.port), "-b", "-t", "5"];
    const proc = Bun.spawn(["sh", "-c", 'exec "$0" "$@" 2>&1', requireBinary(MEMCCAPABLE), ...args], {
      stdout: "pipe",
    });
    const output = new Response(proc.stdout).text();
    await withDeadline(proc.exited, 60_000, "memccapable -b to finish");
    const verdicts = [...(await output).matchAll(/\[(pass|skip|FAIL)\]/g)].map((m) => m[1]);
    expect(verdicts.length, await output).toBeGreaterThan(0);
    expect(
      verdicts.every((v) => v === "pass"),
      await output,
    ).toBe(true);
    expect(proc.exitCode, await output).toBe(0);
  },
  130_000,
);

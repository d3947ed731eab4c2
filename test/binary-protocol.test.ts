// The memcached binary protocol on a leaf (the compiled gravity): memjs, a binary-only client, used
// as an application uses it; and raw frames whose replies are compared byte for byte with real
// memcached's replies to the same frames (CAS values aside: each server counts its own). SASL is in
// sasl.test.ts, memccapable's binary suite in memccapable.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client as MemjsClient, Utils as MemjsUtils } from "memjs";
import { badFrames, conversation, exchange, Op, SENTINEL } from "./helpers/binary-frames.ts";
import { McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  type LeafProcess,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  stopAll,
} from "./helpers/servers.ts";

afterAll(stopAll);

describe("binary protocol", () => {
  let leaf: LeafProcess;
  let memcached: ServerProcess;

  beforeAll(async () => {
    [leaf, memcached] = await Promise.all([startLeaf(["--port", "0"]), startMemcached()]);
  }, SERVER_TEST_MS);

  test("memjs: set, get, delete, incr, decr, touch, flush, stats, version", async () => {
    const client = MemjsClient.create(`${HOST}:${leaf.port}`, {
      retries: 0,
      timeout: 5,
      logger: { log() {} },
    });
    try {
      expect(await client.set("memjs:a", "hello", { expires: 0 })).toBe(true);
      const got = await client.get("memjs:a");
      expect(got.value?.toString()).toBe("hello");
      expect((await client.get("memjs:missing")).value).toBeNull();
      expect(await client.add("memjs:a", "again")).toBe(false);
      expect(await client.replace("memjs:a", "world")).toBe(true);
      expect(await client.append("memjs:a", "!")).toBe(true);
      // (memjs 1.3's prepend() sends the append opcode, so it is not tried here; the raw frames
      // below compare prepend with memcached.)
      expect((await client.get("memjs:a")).value?.toString()).toBe("world!");

      expect(await client.delete("memjs:a")).toBe(true);
      expect(await client.delete("memjs:a")).toBe(false);
      expect((await client.get("memjs:a")).value).toBeNull();

      expect(await client.increment("memjs:n", 5, { initial: 10 })).toEqual({ success: true, value: 10 });
      expect(await client.increment("memjs:n", 5, {})).toEqual({ success: true, value: 15 });
      expect(await client.decrement("memjs:n", 20, {})).toEqual({ success: true, value: 0 });
      await client.set("memjs:s", "text");
      await expect(client.increment("memjs:s", 1, {})).rejects.toThrow();

      await client.set("memjs:t", "v", { expires: 100 });
      expect(await client.touch("memjs:t", 200)).toBe(true);
      expect(await client.touch("memjs:missing", 200)).toBe(false);

      const stats = await new Promise<Record<string, string>>((resolve, reject) => {
        client.stats((err, _server, values) => (err || !values ? reject(err) : resolve(values)));
      });
      expect(Number(stats.curr_items)).toBeGreaterThan(0);
      expect(stats.pid).toBe(String(leaf.pid));

      // memjs has no version(): send the request through its connection.
      client.incrSeq();
      const version = await new Promise<string>((resolve, reject) => {
        const request = MemjsUtils.makeRequestBuffer(Op.Version, "", "", "", client.seq);
        client.perform("", request, client.seq, (err, response) => {
          if (err) reject(err);
          else resolve(String(response.val));
        });
      });
      expect(version).toMatch(/^\d+\.\d+\.\d+/);

      const flushed = await client.flush();
      expect(Object.values(flushed)).toEqual([true]);
      expect((await client.get("memjs:t")).value).toBeNull();
    } finally {
      client.close();
    }
  });

  test("raw frames: the leaf answers byte for byte as memcached does (CAS aside)", async () => {
    const stream = conversation(`raw:${Date.now()}:`);
    const want = await exchange(memcached, stream, { untilOpaque: SENTINEL });
    const got = await exchange(leaf, stream, { untilOpaque: SENTINEL });
    expect(got.frames).toEqual(want.frames);
    // CAS is non-zero exactly where memcached's is.
    expect(got.cas.map((cas) => cas !== 0n)).toEqual(want.cas.map((cas) => cas !== 0n));
  });

  test("raw frames: the same frames one byte per write", async () => {
    const stream = conversation(`bytes:${Date.now()}:`);
    const want = await exchange(memcached, stream, { untilOpaque: SENTINEL });
    const got = await exchange(leaf, stream, { untilOpaque: SENTINEL, byteByByte: true });
    expect(got.frames).toEqual(want.frames);
  });

  for (const [name, bytes] of Object.entries(badFrames)) {
    test(`raw frames: ${name} gets memcached's reply and close`, async () => {
      const want = await exchange(memcached, bytes, { expectClose: true });
      const got = await exchange(leaf, bytes, { expectClose: true });
      expect(want.closed).toBe(true);
      expect(got.closed).toBe(true);
      expect(got.frames).toEqual(want.frames);
    });
  }

  test("text still works on the same port", async () => {
    const client = await McClient.connect(leaf.port, HOST);
    try {
      expect(await client.command("version")).toMatch(/^VERSION /);
      expect(await client.command("set text:k 0 0 1\r\nx")).toBe("STORED");
    } finally {
      client.close();
    }
  });
});

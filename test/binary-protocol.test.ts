// The memcached binary protocol on a leaf (the compiled gravity): memjs, a binary-only client, used
// as an application uses it; and raw frames whose replies are compared byte for byte with real
// memcached's replies to the same frames (CAS values aside: each server counts its own).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client as MemjsClient, Utils as MemjsUtils } from "memjs";
import { McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  type LeafProcess,
  MEMCCAPABLE,
  requireBinary,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  stopAll,
} from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

const REPLY_DEADLINE_MS = 10_000;
/** memcached 1.6 passes this many of memccapable's binary checks. */
const BINARY_CHECKS = 27;

afterAll(stopAll);

// ---- frames ----

const Op = {
  Get: 0x00,
  Set: 0x01,
  Add: 0x02,
  Replace: 0x03,
  Delete: 0x04,
  Increment: 0x05,
  Decrement: 0x06,
  Quit: 0x07,
  Flush: 0x08,
  GetQ: 0x09,
  Noop: 0x0a,
  Version: 0x0b,
  GetK: 0x0c,
  GetKQ: 0x0d,
  Append: 0x0e,
  Prepend: 0x0f,
  Stat: 0x10,
  SetQ: 0x11,
  DeleteQ: 0x14,
  IncrementQ: 0x15,
  Touch: 0x1c,
  Gat: 0x1d,
  GatQ: 0x1e,
  GatK: 0x23,
} as const;

interface FrameSpec {
  opcode: number;
  key?: string;
  extras?: Uint8Array;
  value?: string;
  opaque?: number;
  cas?: bigint;
}

function frame(spec: FrameSpec): Uint8Array {
  const key = Buffer.from(spec.key ?? "", "latin1");
  const extras = spec.extras ?? new Uint8Array(0);
  const value = Buffer.from(spec.value ?? "", "latin1");
  const out = Buffer.alloc(24 + extras.length + key.length + value.length);
  out[0] = 0x80;
  out[1] = spec.opcode;
  out.writeUInt16BE(key.length, 2);
  out[4] = extras.length;
  out.writeUInt32BE(extras.length + key.length + value.length, 8);
  out.writeUInt32BE(spec.opaque ?? 0, 12);
  out.writeBigUInt64BE(spec.cas ?? 0n, 16);
  out.set(extras, 24);
  out.set(key, 24 + extras.length);
  out.set(value, 24 + extras.length + key.length);
  return out;
}

function u32s(...values: number[]): Uint8Array {
  const out = Buffer.alloc(4 * values.length);
  for (const [i, v] of values.entries()) out.writeUInt32BE(v, 4 * i);
  return out;
}

function deltaExtras(delta: bigint, initial: bigint, expiration: number): Uint8Array {
  const out = Buffer.alloc(20);
  out.writeBigUInt64BE(delta, 0);
  out.writeBigUInt64BE(initial, 8);
  out.writeUInt32BE(expiration, 16);
  return out;
}

function concat(frames: Uint8Array[]): Uint8Array {
  return Buffer.concat(frames);
}

interface Exchange {
  /** Reply frames, CAS bytes zeroed, as hex (one string per frame: easy to diff). */
  frames: string[];
  /** CAS of each reply frame. */
  cas: bigint[];
  closed: boolean;
}

// Sends `bytes` on a fresh connection and reads reply frames until one with `untilOpaque` (or, with
// `expectClose`, until the server closes the connection).
async function exchange(
  server: ServerProcess,
  bytes: Uint8Array,
  options: { untilOpaque?: number; expectClose?: boolean },
): Promise<Exchange> {
  const client = await McClient.connect(server.port, HOST);
  const result: Exchange = { frames: [], cas: [], closed: false };
  try {
    await client.send(bytes);
    for (;;) {
      if (options.expectClose && client.closed && client.buffered().length === 0) break;
      let header: Buffer;
      try {
        header = Buffer.from(await client.readBytes(24, REPLY_DEADLINE_MS));
      } catch (error) {
        if (options.expectClose && client.closed) break;
        throw error;
      }
      const body = Buffer.from(await client.readBytes(header.readUInt32BE(8), REPLY_DEADLINE_MS));
      result.cas.push(header.readBigUInt64BE(16));
      header.fill(0, 16, 24);
      result.frames.push(Buffer.concat([header, body]).toString("hex"));
      if (options.untilOpaque !== undefined && header.readUInt32BE(12) === options.untilOpaque) break;
    }
    if (options.expectClose) {
      await client.waitClosed(REPLY_DEADLINE_MS);
      result.closed = true;
    }
  } finally {
    client.close();
  }
  return result;
}

const SENTINEL = 0x5e17;

// One stream covering the opcodes whose replies do not depend on the server's identity (version
// and stats do), ending in a noop that flushes the quiet ones.
function conversation(prefix: string): Uint8Array {
  const k = (name: string) => `${prefix}${name}`;
  const setExtras = (flags: number, exptime: number) => u32s(flags, exptime);
  return concat([
    frame({ opcode: Op.Get, key: k("a"), opaque: 1 }),
    frame({ opcode: Op.GetK, key: k("a"), opaque: 2 }),
    frame({ opcode: Op.GetQ, key: k("a"), opaque: 3 }),
    frame({ opcode: Op.Set, key: k("a"), extras: setExtras(0xbeef, 0), value: "alpha", opaque: 4 }),
    frame({ opcode: Op.Get, key: k("a"), opaque: 5 }),
    frame({ opcode: Op.GetK, key: k("a"), opaque: 6 }),
    frame({ opcode: Op.GetKQ, key: k("a"), opaque: 7 }),
    frame({ opcode: Op.Add, key: k("a"), extras: setExtras(0, 0), value: "x", opaque: 8 }),
    frame({ opcode: Op.Replace, key: k("none"), extras: setExtras(0, 0), value: "x", opaque: 9 }),
    frame({ opcode: Op.Append, key: k("a"), value: "!", opaque: 10 }),
    frame({ opcode: Op.Prepend, key: k("none"), value: "x", opaque: 11 }),
    frame({ opcode: Op.SetQ, key: k("b"), extras: setExtras(1, 0), value: "beta", opaque: 12 }),
    frame({ opcode: Op.Get, key: k("b"), opaque: 13 }),
    frame({ opcode: Op.Set, key: k("c"), extras: setExtras(0, 0), value: "x", cas: 1n, opaque: 14 }),
    frame({ opcode: Op.Increment, key: k("n"), extras: deltaExtras(1n, 10n, 0), opaque: 15 }),
    frame({ opcode: Op.Increment, key: k("n"), extras: deltaExtras(5n, 10n, 0), opaque: 16 }),
    frame({ opcode: Op.Decrement, key: k("n"), extras: deltaExtras(100n, 0n, 0), opaque: 17 }),
    frame({ opcode: Op.Decrement, key: k("m"), extras: deltaExtras(1n, 0n, 0xffffffff), opaque: 18 }),
    frame({ opcode: Op.Increment, key: k("a"), extras: deltaExtras(1n, 0n, 0), opaque: 19 }),
    frame({ opcode: Op.IncrementQ, key: k("n"), extras: deltaExtras(1n, 0n, 0), opaque: 20 }),
    frame({ opcode: Op.Touch, key: k("a"), extras: u32s(100), opaque: 21 }),
    frame({ opcode: Op.Touch, key: k("none"), extras: u32s(100), opaque: 22 }),
    frame({ opcode: Op.Gat, key: k("a"), extras: u32s(100), opaque: 23 }),
    frame({ opcode: Op.GatK, key: k("none"), extras: u32s(100), opaque: 24 }),
    frame({ opcode: Op.GatQ, key: k("none"), extras: u32s(100), opaque: 25 }),
    frame({ opcode: Op.Delete, key: k("b"), opaque: 26 }),
    frame({ opcode: Op.Delete, key: k("b"), opaque: 27 }),
    frame({ opcode: Op.DeleteQ, key: k("a"), opaque: 28 }),
    frame({ opcode: Op.Stat, key: "bogus", opaque: 29 }),
    frame({ opcode: 0x30, opaque: 30 }),
    frame({ opcode: Op.Get, key: k("n"), opaque: 31 }),
    frame({ opcode: Op.Noop, opaque: SENTINEL }),
  ]);
}

// Frames memcached answers with an error and a close (or a silent close), each on its own connection.
const badFrames: Record<string, Uint8Array> = {
  "key longer than 250 bytes": frame({ opcode: Op.Get, key: "k".repeat(251), opaque: 1 }),
  "get with extras": frame({ opcode: Op.Get, key: "k", extras: u32s(0), opaque: 2 }),
  "set without extras": frame({ opcode: Op.Set, key: "k", value: "v", opaque: 3 }),
  "noop with a body": frame({ opcode: Op.Noop, value: "x", opaque: 4 }),
  "key past the body": (() => {
    const f = frame({ opcode: Op.Get, key: "abc", opaque: 5 });
    f[11] = 1;
    return f;
  })(),
  "bad magic after a good frame": concat([frame({ opcode: Op.Noop, opaque: 6 }), new Uint8Array(24).fill(7)]),
  quit: concat([frame({ opcode: Op.Quit, opaque: 7 }), frame({ opcode: Op.Noop, opaque: 8 })]),
  quitq: concat([frame({ opcode: 0x17, opaque: 9 }), frame({ opcode: Op.Noop, opaque: 10 })]),
};

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
    const client = await McClient.connect(leaf.port, HOST);
    try {
      await client.sendChunks([...stream].map((byte) => Uint8Array.of(byte)));
      const frames: string[] = [];
      for (;;) {
        const header = Buffer.from(await client.readBytes(24, REPLY_DEADLINE_MS));
        const body = Buffer.from(await client.readBytes(header.readUInt32BE(8), REPLY_DEADLINE_MS));
        header.fill(0, 16, 24);
        frames.push(Buffer.concat([header, body]).toString("hex"));
        if (header.readUInt32BE(12) === SENTINEL) break;
      }
      expect(frames).toEqual(want.frames);
    } finally {
      client.close();
    }
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

  // libmemcached's memccapable, binary checks only (-b): every verdict a [pass], as for memcached.
  test("memccapable -b passes against memcached and the leaf", async () => {
    for (const server of [memcached, leaf]) {
      const args = ["-h", server.host, "-p", String(server.port), "-b", "-t", "5"];
      const proc = Bun.spawn(["sh", "-c", 'exec "$0" "$@" 2>&1', requireBinary(MEMCCAPABLE), ...args], {
        stdout: "pipe",
      });
      const output = new Response(proc.stdout).text();
      await withDeadline(proc.exited, 60_000, "memccapable -b to finish");
      const verdicts = [...(await output).matchAll(/\[(pass|skip|FAIL)\]/g)].map((m) => m[1]);
      expect(verdicts.length, `${server.name}: ${await output}`).toBe(BINARY_CHECKS);
      expect(
        verdicts.every((v) => v === "pass"),
        `${server.name}: ${await output}`,
      ).toBe(true);
      expect(proc.exitCode, await output).toBe(0);
    }
  }, 130_000);

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

// With --sasl-file (memcached's password file format) the leaf requires SASL PLAIN, as memcached -S
// does: memjs with the right credentials works, without them every request gets the auth error.
describe("binary protocol with SASL", () => {
  let leaf: LeafProcess;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "gravity-sasl-"));
    const passwords = join(dir, "memcached-sasl-pwdb");
    writeFileSync(passwords, "alice:secret\nbob:hunter2\n");
    leaf = await startLeaf(["--port", "0", "--sasl-file", passwords]);
  }, SERVER_TEST_MS);

  const quiet = { retries: 0, timeout: 5, logger: { log() {} } };

  test("memjs with the right credentials: set, get, incr, stats", async () => {
    const client = MemjsClient.create(`${HOST}:${leaf.port}`, {
      ...quiet,
      username: "alice",
      password: "secret",
    });
    try {
      expect(await client.set("sasl:a", "hello")).toBe(true);
      expect((await client.get("sasl:a")).value?.toString()).toBe("hello");
      expect(await client.increment("sasl:n", 1, { initial: 7 })).toEqual({ success: true, value: 7 });
      const stats = await new Promise<Record<string, string>>((resolve, reject) => {
        client.stats((err, _server, values) => (err || !values ? reject(err) : resolve(values)));
      });
      expect(Number(stats.auth_cmds)).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  });

  test("memjs with a wrong password or none is refused", async () => {
    for (const credentials of [{ username: "alice", password: "wrong" }, {}]) {
      const client = MemjsClient.create(`${HOST}:${leaf.port}`, { ...quiet, ...credentials });
      try {
        await expect(client.get("sasl:a")).rejects.toThrow();
      } finally {
        client.close();
      }
    }
  });

  test("an unauthenticated raw get gets memcached's auth error (0x20) and a close", async () => {
    const got = await exchange(leaf, frame({ opcode: Op.Get, key: "sasl:a", opaque: 9 }), {
      expectClose: true,
    });
    expect(got.closed).toBe(true);
    expect(got.frames.length).toBe(1);
    const reply = Buffer.from(got.frames[0] ?? "", "hex");
    expect(reply.readUInt16BE(6)).toBe(0x20);
    expect(reply.subarray(24).toString()).toBe("Auth failure.");
  });
});

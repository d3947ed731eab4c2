// The TypeScript client against real servers: memcached and a gravity leaf (every method, binary
// and large values, errors, pipelining), a raw socket that never replies (timeouts), memcached
// stopped and restarted on its port (reconnect), and a ketama-sharded pool of three servers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import {
  CasResult,
  type Client,
  ConnectionError,
  createClient,
  InvalidRequestError,
  OverloadedError,
  parseServer,
  ServerError,
  TimeoutError,
} from "../src/client/index.ts";
import {
  freePort,
  HOST,
  MEMCACHED,
  requireBinary,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  stopAll,
} from "./helpers/servers.ts";
import { pollUntil, withDeadline } from "./helpers/wait.ts";

const DEADLINE_MS = 10_000;
const text = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString("latin1"));

const clients: Client[] = [];
function client(
  servers: string[],
  options: Omit<Parameters<typeof createClient>[0], "servers"> = {},
): Client {
  const created = createClient({ servers, timeoutMs: DEADLINE_MS, ...options });
  clients.push(created);
  return created;
}

afterAll(async () => {
  await Promise.all(clients.map((each) => each.close()));
  await stopAll();
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

/** Every byte value, with CRLF and END lines inside, `length` bytes long. */
function binaryValue(length: number, seed = 0): Uint8Array {
  const value = new Uint8Array(length);
  for (let i = 0; i < length; i++) value[i] = (i * 131 + seed + (i >> 8)) & 0xff;
  if (length > 20) value.set(Buffer.from("\r\nEND\r\n", "latin1"), 10);
  return value;
}

const SERVERS = {
  memcached: () => startMemcached({ maxItemSize: "1m" }),
  leaf: () => startLeaf(["--port", "0", "--memory", "64mb", "--max-item-size", "1m"]),
};

for (const [kind, start] of Object.entries(SERVERS)) {
  describe(`client against ${kind}`, () => {
    let server: ServerProcess;
    let mc: Client;
    beforeAll(async () => {
      server = await start();
      mc = client([`${HOST}:${server.port}`]);
    }, SERVER_TEST_MS);

    test("set, get, getString, delete", async () => {
      expect(await mc.get("c:a")).toBeNull();
      await mc.set("c:a", "hello");
      expect(text(await mc.get("c:a"))).toBe("hello");
      expect(await mc.getString("c:a")).toBe("hello");
      expect(await mc.delete("c:a")).toBe(true);
      expect(await mc.delete("c:a")).toBe(false);
      expect(await mc.get("c:a")).toBeNull();
    });

    test("UTF-8 keys and values", async () => {
      await mc.set("c:ключ-€", "значение ✓");
      expect(await mc.getString("c:ключ-€")).toBe("значение ✓");
    });

    test("binary values, empty values and flags", async () => {
      const value = binaryValue(4096);
      await mc.set("c:bin", value, { flags: 4294967295 });
      expect(Buffer.compare((await mc.get("c:bin")) ?? new Uint8Array(), value)).toBe(0);
      expect((await mc.gets("c:bin"))?.flags).toBe(4294967295);
      await mc.set("c:empty", new Uint8Array(0));
      expect((await mc.get("c:empty"))?.length).toBe(0);
    });

    test(
      "a 900 KB value round-trips",
      async () => {
        const value = binaryValue(900 * 1024, 7);
        await mc.set("c:large", value);
        const got = await mc.get("c:large");
        expect(got?.length).toBe(value.length);
        expect(Buffer.compare(got ?? new Uint8Array(), value)).toBe(0);
      },
      SERVER_TEST_MS,
    );

    test(
      "a value over the item size limit is the server's SERVER_ERROR, and the connection goes on",
      async () => {
        const error = await rejection(mc.set("c:too-large", new Uint8Array(2 * 1024 * 1024)));
        expect(error).toBeInstanceOf(ServerError);
        expect((error as ServerError).kind).toBe("SERVER_ERROR");
        expect((error as ServerError).text).toBe("object too large for cache");
        expect(await mc.get("c:too-large")).toBeNull();
        await mc.set("c:after-large", "ok");
        expect(await mc.getString("c:after-large")).toBe("ok");
      },
      SERVER_TEST_MS,
    );

    test("bad keys are refused by the client: nothing is sent", async () => {
      for (const key of ["", "has space", "tab\there", "new\nline", "k".repeat(251)]) {
        expect(await rejection(mc.get(key))).toBeInstanceOf(InvalidRequestError);
        expect(await rejection(mc.set(key, "v"))).toBeInstanceOf(InvalidRequestError);
      }
      expect(await rejection(mc.getMulti(["fine", "not fine"]))).toBeInstanceOf(InvalidRequestError);
      expect(await rejection(mc.set("c:k", "v", { ttlSeconds: 1.5 }))).toBeInstanceOf(InvalidRequestError);
      // A 250-byte key is fine, and the connection is in step.
      await mc.set("k".repeat(250), "longest");
      expect(await mc.getString("k".repeat(250))).toBe("longest");
    });

    test("add and replace", async () => {
      expect(await mc.replace("c:ar", "x")).toBe(false);
      expect(await mc.add("c:ar", "first")).toBe(true);
      expect(await mc.add("c:ar", "second")).toBe(false);
      expect(await mc.getString("c:ar")).toBe("first");
      expect(await mc.replace("c:ar", "third", { flags: 9 })).toBe(true);
      expect(await mc.gets("c:ar")).toMatchObject({ flags: 9 });
      expect(await mc.getString("c:ar")).toBe("third");
    });

    test("append and prepend", async () => {
      expect(await mc.append("c:ap", "x")).toBe(false);
      await mc.set("c:ap", "mid");
      expect(await mc.append("c:ap", "-end")).toBe(true);
      expect(await mc.prepend("c:ap", "start-")).toBe(true);
      expect(await mc.getString("c:ap")).toBe("start-mid-end");
    });

    test("gets and cas", async () => {
      expect(await mc.gets("c:cas")).toBeNull();
      expect(await mc.cas("c:cas", "v", 1n)).toBe(CasResult.NotFound);
      await mc.set("c:cas", "v1", { flags: 3 });
      const first = await mc.gets("c:cas");
      expect(first === null ? null : text(first.value)).toBe("v1");
      expect(first?.flags).toBe(3);
      const token = first?.cas as bigint;
      expect(typeof token).toBe("bigint");
      expect(await mc.cas("c:cas", "v2", token)).toBe(CasResult.Stored);
      expect(await mc.cas("c:cas", "v3", token)).toBe(CasResult.Exists);
      expect(await mc.getString("c:cas")).toBe("v2");
      const second = await mc.gets("c:cas");
      expect(second?.cas).not.toBe(token);
    });

    test("touch and TTLs", async () => {
      expect(await mc.touch("c:ttl", 100)).toBe(false);
      await mc.set("c:ttl", "v", { ttlSeconds: 100 });
      expect(await mc.touch("c:ttl", 200)).toBe(true);
      expect(await mc.getString("c:ttl")).toBe("v");
      // A negative TTL expires at once (memcached's exptime rule): no waiting on a clock.
      expect(await mc.touch("c:ttl", -1)).toBe(true);
      expect(await mc.get("c:ttl")).toBeNull();
      await mc.set("c:ttl2", "v", { ttlSeconds: -1 });
      expect(await mc.get("c:ttl2")).toBeNull();
    });

    test("incr and decr", async () => {
      expect(await mc.incr("c:n", 1)).toBeNull();
      expect(await mc.decr("c:n", 1)).toBeNull();
      await mc.set("c:n", "10");
      expect(await mc.incr("c:n", 5)).toBe(15n);
      expect(await mc.incr("c:n")).toBe(16n);
      expect(await mc.decr("c:n", 100n)).toBe(0n);
      await mc.set("c:n", "18446744073709551615");
      expect(await mc.incr("c:n", 1)).toBe(0n);
      expect(await mc.incr("c:n", 18446744073709551615n)).toBe(18446744073709551615n);
      await mc.set("c:nan", "abc");
      const error = await rejection(mc.incr("c:nan", 1));
      expect(error).toBeInstanceOf(ServerError);
      expect((error as ServerError).kind).toBe("CLIENT_ERROR");
      expect((error as ServerError).text).toBe("cannot increment or decrement non-numeric value");
    });

    test("getMulti answers hits in key order, misses left out, repeats once", async () => {
      await mc.set("c:m1", "one");
      await mc.set("c:m2", "two");
      await mc.set("c:m3", "three");
      const got = await mc.getMulti(["c:m3", "c:missing", "c:m1", "c:m3", "c:m2"]);
      expect([...got].map(([key, value]) => [key, text(value)])).toEqual([
        ["c:m3", "three"],
        ["c:m1", "one"],
        ["c:m2", "two"],
      ]);
      expect((await mc.getMulti([])).size).toBe(0);
    });

    test("getMulti over more keys than one get line carries", async () => {
      const keys = Array.from({ length: 350 }, (_, i) => `c:many-${i}`);
      await Promise.all(keys.map((key, i) => (i % 3 === 0 ? Promise.resolve() : mc.set(key, `v${i}`))));
      const got = await mc.getMulti(keys);
      expect([...got.keys()]).toEqual(keys.filter((_, i) => i % 3 !== 0));
      for (const [key, value] of got) expect(text(value)).toBe(`v${key.slice("c:many-".length)}`);
    });

    test("thousands of concurrent calls on one connection each get their own answer", async () => {
      const count = 3000;
      await Promise.all(
        Array.from({ length: count }, (_, i) => mc.set(`c:p-${i}`, `value-${i}`, { flags: i })),
      );
      const calls = Array.from({ length: count }, (_, i) =>
        i % 2 === 0 ? mc.gets(`c:p-${i}`) : mc.incr(`c:p-missing-${i}`, 1),
      );
      const results = await Promise.all(calls);
      results.forEach((result, i) => {
        if (i % 2 === 1) expect(result).toBeNull();
        else expect(result).toMatchObject({ flags: i, value: new Uint8Array(Buffer.from(`value-${i}`)) });
      });
    });

    test("stats", async () => {
      await mc.set("c:stats", "v");
      const stats = (await mc.stats()).get(`${HOST}:${server.port}`);
      expect(Number(stats?.get("curr_items"))).toBeGreaterThan(0);
      expect(stats?.get("pid")).toMatch(/^\d+$/);
      const settings = (await mc.stats("settings")).get(`${HOST}:${server.port}`);
      expect(settings?.get("item_size_max")).toBe(String(1024 * 1024));
    });

    test("versions and flushAll", async () => {
      const versions = await mc.versions();
      expect([...versions.keys()]).toEqual([`${HOST}:${server.port}`]);
      expect(versions.get(`${HOST}:${server.port}`)).toMatch(/^\d+\.\d+\.\d+/);
      await mc.set("c:flush", "v");
      await mc.flushAll();
      expect(await mc.get("c:flush")).toBeNull();
    });
  });
}

describe("client failures", () => {
  test("a server that never replies: TimeoutError after timeoutMs", async () => {
    const silent = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } });
    try {
      const mc = client([`${HOST}:${silent.port}`], { timeoutMs: 100 });
      const started = performance.now();
      const error = await rejection(mc.get("t:a"));
      expect(error).toBeInstanceOf(TimeoutError);
      expect(error.message).toContain("no reply in 100 ms");
      expect(performance.now() - started).toBeGreaterThanOrEqual(95);
    } finally {
      silent.stop(true);
    }
  });

  test("an unreachable server: ConnectionError; a bad key there is still InvalidRequestError", async () => {
    const port = await freePort();
    const mc = client([`${HOST}:${port}`]);
    expect(await rejection(mc.get("u:a"))).toBeInstanceOf(ConnectionError);
    expect(await rejection(mc.get("bad key"))).toBeInstanceOf(InvalidRequestError);
  });

  test("in-flight and queued requests are bounded per connection", async () => {
    const silent = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } });
    try {
      const mc = client([`${HOST}:${silent.port}`], { maxInFlight: 4, maxQueued: 4, timeoutMs: 200 });
      const calls = Array.from({ length: 9 }, (_, i) => rejection(mc.get(`b:${i}`)));
      const errors = await Promise.all(calls);
      // 8 taken: the first times out; the others time out or fail with the socket it reset.
      expect(errors[0]).toBeInstanceOf(TimeoutError);
      for (const error of errors.slice(1, 8)) {
        expect(error instanceof TimeoutError || error instanceof ConnectionError).toBe(true);
      }
      expect(errors[8]).toBeInstanceOf(OverloadedError);
    } finally {
      silent.stop(true);
    }
  });

  test("close() fails later calls with ConnectionError", async () => {
    const mc = client([`${HOST}:${await freePort()}`]);
    await mc.close();
    expect(await rejection(mc.get("x"))).toBeInstanceOf(ConnectionError);
  });

  test("server specs", () => {
    expect(parseServer("127.0.0.1:11211")).toEqual({ host: "127.0.0.1", port: 11211 });
    expect(parseServer("[::1]:5")).toEqual({ host: "::1", port: 5 });
    expect(parseServer("cache.local:80")).toEqual({ host: "cache.local", port: 80 });
    for (const bad of ["nohost", "host:", "host:0", "host:65536", ":80", "a:b:c"]) {
      expect(() => parseServer(bad)).toThrow(InvalidRequestError);
    }
    expect(() => createClient({ servers: [] })).toThrow(InvalidRequestError);
  });
});

// memcached on a given port, so it can be stopped and started again where the client expects it.
async function memcachedOn(port: number): Promise<Subprocess> {
  const cmd = [requireBinary(MEMCACHED), "-l", HOST, "-p", String(port), "-U", "0", "-m", "64"];
  if (process.getuid?.() === 0) cmd.push("-u", "root");
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  await pollUntil(
    async () => {
      if (proc.exitCode !== null) {
        throw new Error(`memcached exited with ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
      }
      try {
        const socket = await Bun.connect({ hostname: HOST, port, socket: { data() {} } });
        socket.end();
        return true;
      } catch {
        return undefined;
      }
    },
    { deadlineMs: DEADLINE_MS, what: `memcached to accept on port ${port}` },
  );
  return proc;
}

test(
  "client reconnects after memcached is stopped and started again on its port",
  async () => {
    const port = await freePort();
    let proc = await memcachedOn(port);
    try {
      const mc = client([`${HOST}:${port}`], {
        timeoutMs: 2000,
        reconnectDelayMs: 10,
        maxReconnectDelayMs: 100,
      });
      await mc.set("r:a", "before");
      expect(await mc.getString("r:a")).toBe("before");

      proc.kill("SIGTERM");
      await withDeadline(proc.exited, DEADLINE_MS, "memcached to exit");
      expect(await rejection(mc.get("r:a"))).toBeInstanceOf(ConnectionError);

      proc = await memcachedOn(port);
      // The backoff delay is a clock, not an event: poll until a call goes through.
      await pollUntil(
        () =>
          mc.get("r:a").then(
            () => true,
            () => undefined,
          ),
        {
          deadlineMs: DEADLINE_MS,
          intervalMs: 10,
          what: "the client to reconnect",
        },
      );
      expect(await mc.get("r:a")).toBeNull(); // a fresh memcached
      await mc.set("r:a", "after");
      expect(await mc.getString("r:a")).toBe("after");
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  },
  SERVER_TEST_MS,
);

describe("several servers: ketama sharding", () => {
  let pool: ServerProcess[];
  let addresses: string[];
  beforeAll(async () => {
    pool = await Promise.all([
      startMemcached(),
      startMemcached(),
      startLeaf(["--port", "0", "--memory", "64mb"]),
    ]);
    addresses = pool.map((server) => `${HOST}:${server.port}`);
  }, SERVER_TEST_MS);

  const keys = Array.from({ length: 300 }, (_, i) => `shard:${i}`);
  const bytes = (key: string) => new TextEncoder().encode(key);

  test("each key is stored on the one server its ring picks, and every server gets some", async () => {
    const mc = client(addresses);
    await Promise.all(keys.map((key) => mc.set(key, `v-${key}`)));
    const direct = addresses.map((address) => client([address]));
    const perServer = addresses.map(() => 0);
    for (const key of keys) {
      const owner = mc.serverFor(bytes(key));
      perServer[owner] = (perServer[owner] as number) + 1;
      const found = await Promise.all(direct.map((each) => each.getString(key)));
      expect(found).toEqual(addresses.map((_, index) => (index === owner ? `v-${key}` : null)));
    }
    for (const count of perServer) expect(count).toBeGreaterThan(30);
    const got = await mc.getMulti(keys);
    expect([...got.keys()]).toEqual(keys);
  });

  test("placement follows server names, not list order", async () => {
    const forward = client(addresses);
    const reversed = client([...addresses].reverse());
    for (const key of keys) {
      const owner = addresses[forward.serverFor(bytes(key))];
      expect([...addresses].reverse()[reversed.serverFor(bytes(key))]).toBe(owner as string);
    }
  });

  test("removing a server moves only its keys", async () => {
    const all = client(addresses);
    const fewer = client(addresses.slice(0, 2));
    let moved = 0;
    for (const key of keys) {
      const owner = all.serverFor(bytes(key));
      if (owner < 2) expect(fewer.serverFor(bytes(key))).toBe(owner);
      else moved++;
    }
    expect(moved).toBeGreaterThan(0);
  });

  test("a weight gives a server a larger share", () => {
    const [a, b] = addresses.map((address) => parseServer(address)) as [
      ReturnType<typeof parseServer>,
      ReturnType<typeof parseServer>,
    ];
    const weighted = createClient({ servers: [{ ...a, weight: 3 }, b] });
    clients.push(weighted);
    const share = keys.filter((key) => weighted.serverFor(bytes(key)) === 0).length / keys.length;
    expect(share).toBeGreaterThan(0.6);
  });
});

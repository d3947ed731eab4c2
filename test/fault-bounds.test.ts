// Faults that must not grow the router's memory (issue 14), on real processes: clients that
// pipeline gets of a large value and never read, and a leaf that accepts connections and never
// answers. RSS is VmRSS of the router process, sampled while the fault lasts: a bound on
// behaviour, not a timing. The router runs with its default load limits (src/router/load-budget.ts).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { latin1, McClient } from "./helpers/mc-client.ts";
import { statOf as statOfPort, statsOf } from "./helpers/router-stats.ts";
import {
  HOST,
  rssBytes,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { sampleRss } from "./helpers/stalled-readers.ts";
import { pollUntil, settled, withDeadline } from "./helpers/wait.ts";

const MIB = 1024 * 1024;
/** What the router may grow by under either fault (issue 14's target). */
const RSS_BOUND_BYTES = 64 * MIB;

const dir = mkdtempSync(join(tmpdir(), "gravity-fault-bounds-test-"));
afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, config: unknown): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const stats = (server: ServerProcess) => statsOf(server.port);
const statOf = (server: ServerProcess, name: string) => statOfPort(server.port, name);

test("stalled readers: 20 clients pipeline gets of a 900 KB value and never read; RSS within idle + 64 MiB, then the router serves", async () => {
  const leaf = await startLeaf(["--port", "0", "--memory", "64m"]);
  const config = writeConfig("stalled", {
    pools: { main: { servers: [`${HOST}:${leaf.port}`] } },
    route: "main",
  });
  const router = await startRouter(["--port", "0", "--config", config]);
  const value = new Uint8Array(900 * 1024).fill(0x61);
  const writer = await McClient.connect(router.port);
  await writer.send(Buffer.concat([latin1(`set big 0 0 ${value.length}\r\n`), value, latin1("\r\n")]));
  expect(await writer.readLine()).toBe("STORED");
  const idle = await rssBytes(router.pid);

  const rss = sampleRss(router.pid);
  const clients: McClient[] = [];
  for (let i = 0; i < 20; i++) {
    const client = await McClient.connect(router.port);
    client.pause();
    // 2000 gets: 1.8 GB of replies, few enough bytes that the kernel takes them all at once.
    await client.send("get big\r\n".repeat(2000));
    clients.push(client);
  }
  // The fault at its worst: every client stalled, the router forwarding nothing more.
  const forwarded = await settled(() => statOf(leaf, "cmd_get"), "the leaf's cmd_get to stop growing");
  const peak = await rss.stop();
  expect(forwarded).toBeLessThan(20 * 2000);
  expect(peak - idle, `router RSS grew ${((peak - idle) / MIB).toFixed(1)} MiB`).toBeLessThan(
    RSS_BOUND_BYTES,
  );
  expect(Number((await stats(router)).get("overloaded"))).toBeGreaterThan(0);

  for (const client of clients) client.close();
  // Every client's share of the budget comes back: only the stats request itself is counted.
  await settled(() => statOf(router, "buffered_bytes"), "the router's buffered bytes to settle");
  const after = await stats(router);
  expect(after.get("inflight_requests")).toBe("1");
  expect(after.get("buffered_bytes")).toBe(String("stats\r\n".length));

  // It still serves, the large value whole.
  await writer.send("get big\r\n");
  const header = `VALUE big 0 ${value.length}\r\n`;
  const reply = await writer.readBytes(header.length + value.length + "\r\nEND\r\n".length);
  expect(new TextDecoder("latin1").decode(reply.subarray(0, header.length))).toBe(header);
  expect(Buffer.compare(reply.subarray(header.length, header.length + value.length), value)).toBe(0);
  writer.close();
  await router.stop();
  await leaf.stop();
}, 60_000);

/** A TCP server that accepts every connection and never answers (a black-holed leaf). */
function blackHole(port = 0): { listener: TCPSocketListener<undefined>; close(): void } {
  const sockets = new Set<Socket<undefined>>();
  const listener = Bun.listen<undefined>({
    hostname: HOST,
    port,
    socket: {
      open: (socket) => void sockets.add(socket),
      data: () => {},
      close: (socket) => void sockets.delete(socket),
    },
  });
  return {
    listener,
    close: () => {
      listener.stop(true);
      for (const socket of sockets) socket.terminate();
    },
  };
}

/** Counts the reply lines of one connection by their first word (SERVER_ERROR by its reason). */
class ReplyCounter {
  readonly kinds = new Map<string, number>();
  total = 0;
  private partial = "";

  add(data: Uint8Array): void {
    const text = this.partial + new TextDecoder("latin1").decode(data);
    const lines = text.split("\r\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      const kind = line.startsWith("SERVER_ERROR")
        ? `SERVER_ERROR ${/no reply in|marked down|overloaded|reset|lost|unreachable|closed/.exec(line)?.[0] ?? line}`
        : line;
      this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
      this.total++;
    }
  }
}

test("a black-holed leaf: 200,000 pipelined gets each answered or failed, RSS within idle + 64 MiB, TKO, recovery", async () => {
  const hole = blackHole();
  const port = hole.listener.port;
  const failures = 3;
  const config = writeConfig("black-hole", {
    pools: {
      main: {
        servers: [`${HOST}:${port}`],
        timeoutMs: 500,
        tko: { failures, probeIntervalMs: 100, maxProbeIntervalMs: 400 },
      },
    },
    route: "main",
  });
  const router = await startRouter(["--port", "0", "--config", config]);
  await statOf(router, "pid"); // one request served: the router is warm
  const idle = await rssBytes(router.pid);
  const rss = sampleRss(router.pid);

  const gets = 200_000;
  const counter = new ReplyCounter();
  let answered!: () => void;
  const allAnswered = new Promise<void>((resolve) => {
    answered = resolve;
  });
  const requests = latin1(Array.from({ length: gets }, (_, i) => `get key:${i}\r\n`).join(""));
  let sent = 0;
  const pump = (socket: Socket<undefined>) => {
    while (sent < requests.length) {
      const written = socket.write(requests.subarray(sent));
      if (written <= 0) return;
      sent += written;
    }
  };
  const client = await Bun.connect<undefined>({
    hostname: HOST,
    port: router.port,
    socket: {
      open: pump,
      drain: pump,
      data: (_socket, data) => {
        counter.add(data);
        if (counter.total >= gets) answered();
      },
    },
  });
  await withDeadline(allAnswered, 60_000, `${gets} replies (got ${counter.total})`);
  const peak = await rss.stop();
  client.end();

  // Every get answered, each with an error naming why (nothing was ever a miss or a hit).
  expect(counter.total).toBe(gets);
  expect(counter.kinds.get("END")).toBeUndefined();
  expect(peak - idle, `router RSS grew ${((peak - idle) / MIB).toFixed(1)} MiB`).toBeLessThan(
    RSS_BOUND_BYTES,
  );
  // Marked down after the configured failures: at most that many requests waited for a timeout.
  expect(counter.kinds.get("SERVER_ERROR no reply in") ?? 0).toBeLessThanOrEqual(failures);
  expect(counter.kinds.get("SERVER_ERROR marked down") ?? 0).toBeGreaterThan(gets / 2);
  await router.waitForStdout(new RegExp(`${HOST}:${port} marked down \\(TKO\\)`));

  // A real leaf on the black hole's address: the probe brings it back and requests are served.
  hole.close();
  const leaf = await startLeaf(["--port", String(port)]);
  await router.waitForStdout(new RegExp(`${HOST}:${port} is back up`));
  const after = await McClient.connect(router.port);
  await after.send("set back 0 0 3\r\nyes\r\nget back\r\n");
  expect(await after.readLines(4)).toEqual(["STORED", "VALUE back 0 3", "yes", "END"]);
  after.close();
  await router.stop();
  await leaf.stop();
}, 90_000);

test(
  "over --max-inflight, a memcached client gets SERVER_ERROR overloaded and an HTTP client 503",
  async () => {
    const hole = blackHole();
    const config = writeConfig("overload", {
      pools: { main: { servers: [`${HOST}:${hole.listener.port}`], timeoutMs: 3000 } },
      route: "main",
    });
    const router = await startRouter([
      "--port",
      "0",
      "--config",
      config,
      "--max-inflight",
      "1",
      "--http-port",
      "0",
    ]);
    const [, httpPort] = await router.waitForStdout(/http on \S+:(\d+)/);
    // One get waits on the black hole: the router's one request in flight.
    const waiting = await McClient.connect(router.port);
    await waiting.send("get a\r\n");
    // (Asked of /metrics, which the budget does not count: a `stats` would be refused now.)
    await pollUntil(
      async () => {
        const metrics = await (await fetch(`http://${HOST}:${httpPort}/metrics`)).text();
        return /^gravity_router_inflight_requests 1$/m.test(metrics) ? true : undefined;
      },
      { deadlineMs: 10_000, what: "the first get to be in flight" },
    );
    const refused = await McClient.connect(router.port);
    await refused.send("get b\r\n");
    expect(await refused.readLine()).toStartWith("SERVER_ERROR overloaded");
    const response = await fetch(`http://${HOST}:${httpPort}/v1/cache/group/key`);
    expect(response.status).toBe(503);
    expect(await response.text()).toContain("overloaded");
    // The refused requests cost nothing: the first still times out as a timeout.
    expect(await waiting.readLine()).toStartWith("SERVER_ERROR");
    refused.close();
    waiting.close();
    hole.close();
    await router.stop();
  },
  SERVER_TEST_MS,
);

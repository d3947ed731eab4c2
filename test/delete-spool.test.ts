// The delete spool against real leaves, in-process: deletes for a leaf that cannot be reached are
// spooled on disk and answered DELETED; once the leaf answers again they are replayed in order
// before anything else this router sends it; a new spool on the same directory (a router
// restart) replays what the old one left.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectionError, DestinationDownError, TimeoutError } from "../src/errors.ts";
import {
  encodeDelete,
  encodeGet,
  encodeMetaDelete,
  encodeStats,
  encodeStore,
} from "../src/protocol/encoder.ts";
import { type Reply, ReplyType } from "../src/protocol/reply.ts";
import { parseRequest } from "../src/protocol/request-parser.ts";
import { DeleteSpool, SpoolFullError } from "../src/router/spool.ts";
import { SpoolingSender, spooledReply } from "../src/router/spooling-sender.ts";
import { TcpDestination } from "../src/transport/tcp-destination.ts";
import type { TkoOptions } from "../src/transport/tko.ts";
import { freePort, HOST, type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const TKO: TkoOptions = { failures: 1, probeIntervalMs: 50, maxProbeIntervalMs: 200 };
const DEADLINE_MS = 10_000;
const text = new TextDecoder();
const opened: { close(): Promise<void> }[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const thing of opened) await thing.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  await stopAll();
});

async function spoolDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "gravity-delete-spool-"));
  dirs.push(dir);
  return dir;
}

async function openSpool(dir: string, maxBytes = 1 << 20): Promise<DeleteSpool> {
  const spool = await DeleteSpool.open({ dir, maxBytes });
  opened.push(spool);
  return spool;
}

function destination(port: number, timeoutMs = 300): TcpDestination {
  const made = new TcpDestination({
    host: HOST,
    port,
    connections: 1,
    timeoutMs,
    connectTimeoutMs: timeoutMs,
    tko: TKO,
  });
  opened.push(made);
  return made;
}

function spooling(inner: TcpDestination, spool: DeleteSpool, retryMs: number): SpoolingSender {
  const sender = new SpoolingSender(inner, spool, { retryMs });
  opened.push(sender);
  return sender;
}

const set = (sender: { send: TcpDestination["send"] }, key: string, value: string) =>
  sender.send(parseRequest(encodeStore("set", key, value)));
const del = (sender: { send: TcpDestination["send"] }, key: string) =>
  sender.send(parseRequest(encodeDelete(key)));

async function value(sender: { send: TcpDestination["send"] }, key: string): Promise<string | undefined> {
  const reply = await sender.send(parseRequest(encodeGet([key])));
  const item = reply.items?.[0];
  return item === undefined ? undefined : text.decode(item.value);
}

async function leafStat(port: number, name: string): Promise<number> {
  const reply = await destination(port, 2000).send(parseRequest(encodeStats()));
  const stat = reply.stats?.get(name);
  if (stat === undefined) throw new Error(`the leaf has no stat ${name}`);
  return Number(stat);
}

function waitUntil(what: string, done: () => boolean): Promise<true> {
  return pollUntil(() => (done() ? true : undefined), { deadlineMs: DEADLINE_MS, what });
}

function typeOf(reply: Reply): ReplyType {
  return reply.type;
}

describe("delete spool with a leaf that stops answering (SIGSTOP keeps its data)", () => {
  let leaf: LeafProcess;

  test(
    "deletes sent while it is down are spooled, replayed once it answers, and remove the values",
    async () => {
      leaf = await startLeaf(["--port", "0"]);
      const dir = await spoolDir();
      const spool = await openSpool(dir);
      const inner = destination(leaf.port);
      const sender = spooling(inner, spool, 20);
      for (const key of ["k1", "k2", "k3"])
        expect(typeOf(await set(sender, key, `v-${key}`))).toBe(ReplyType.Stored);

      leaf.signal("SIGSTOP");
      // A read times out and marks the leaf down; a read is never spooled.
      await expect(value(sender, "k2")).rejects.toBeInstanceOf(TimeoutError);
      expect(inner.down).toBe(true);
      // From now on the leaf's socket is not touched: only the spool can delete k1 and k3.
      expect(typeOf(await del(sender, "k1"))).toBe(ReplyType.Deleted);
      const md = await sender.send(parseRequest(encodeMetaDelete("k3", ["O42", "k"])));
      expect(md.type).toBe(ReplyType.MetaHeader);
      expect(md.text).toBe("O42 kk3");
      expect(sender.spooled).toBe(2);
      // On disk, as another process (a restarted router) would see them.
      const reader = await openSpool(dir);
      expect(reader.records(inner.name).map((record) => text.decode(record))).toEqual([
        "delete k1\r\n",
        "md k3 O42 k\r\n",
      ]);
      await reader.close();

      leaf.signal("SIGCONT");
      await waitUntil("the leaf to be marked up", () => !inner.down);
      await waitUntil("the spooled deletes to be replayed", () => sender.spooled === 0);
      const plain = destination(leaf.port, 2000);
      expect(await value(plain, "k1")).toBeUndefined();
      expect(await value(plain, "k3")).toBeUndefined();
      expect(await value(plain, "k2")).toBe("v-k2");
    },
    SERVER_TEST_MS,
  );

  test(
    "a write sent after a spooled delete lands after it: the first request to the revived leaf replays first",
    async () => {
      const spool = await openSpool(await spoolDir());
      const inner = destination(leaf.port);
      // No timer-driven replay in this test: only the ordering gate in send() can replay.
      const sender = spooling(inner, spool, 3_600_000);
      expect(typeOf(await set(sender, "k4", "old"))).toBe(ReplyType.Stored);
      expect(typeOf(await set(sender, "k5", "old"))).toBe(ReplyType.Stored);

      leaf.signal("SIGSTOP");
      await expect(value(sender, "k4")).rejects.toBeInstanceOf(TimeoutError);
      expect(inner.down).toBe(true);
      expect(typeOf(await del(sender, "k4"))).toBe(ReplyType.Deleted);
      expect(typeOf(await del(sender, "k5"))).toBe(ReplyType.Deleted);
      // A set while the leaf is down fails as before (it is not spooled).
      await expect(set(sender, "k4", "lost")).rejects.toBeInstanceOf(DestinationDownError);
      leaf.signal("SIGCONT");
      await waitUntil("the leaf to be marked up", () => !inner.down);
      expect(sender.spooled).toBe(2);

      expect(typeOf(await set(sender, "k4", "new"))).toBe(ReplyType.Stored);
      expect(sender.spooled).toBe(0);
      expect(await value(sender, "k4")).toBe("new");
      expect(await value(sender, "k5")).toBeUndefined();
    },
    SERVER_TEST_MS,
  );
});

describe("delete spool with a leaf that is killed and restarted on the same port", () => {
  test(
    "spooled deletes reach the restarted leaf, in order, and later writes stay",
    async () => {
      const leaf = await startLeaf(["--port", "0"]);
      const port = leaf.port;
      const dir = await spoolDir();
      const spool = await openSpool(dir);
      const inner = destination(port);
      const sender = spooling(inner, spool, 20);
      expect(typeOf(await set(sender, "k6", "before"))).toBe(ReplyType.Stored);

      await leaf.stop("SIGKILL");
      // The first delete finds the connection gone (ConnectionError) and marks the leaf down;
      // the others fail fast. All three are spooled.
      for (const key of ["k6", "k7", "k8"]) expect(typeOf(await del(sender, key))).toBe(ReplyType.Deleted);
      expect(inner.down).toBe(true);
      const reader = await openSpool(dir);
      expect(reader.records(inner.name).map((record) => text.decode(record))).toEqual([
        "delete k6\r\n",
        "delete k7\r\n",
        "delete k8\r\n",
      ]);
      await reader.close();

      const revived = await startLeaf(["--port", String(port)]);
      await waitUntil("the spooled deletes to be replayed", () => sender.spooled === 0);
      // The restarted leaf is empty: each replayed delete missed there, none was lost.
      expect(await leafStat(revived.port, "delete_misses")).toBe(3);
      expect(await value(sender, "k6")).toBeUndefined();
      expect(typeOf(await set(sender, "k6", "after"))).toBe(ReplyType.Stored);
      expect(await value(sender, "k6")).toBe("after");
      expect(await leafStat(revived.port, "delete_misses")).toBe(3); // replayed once, not again
    },
    SERVER_TEST_MS,
  );

  test(
    "a router restart: a new spool on the same directory replays what the old router left",
    async () => {
      const leaf = await startLeaf(["--port", "0"]);
      const port = leaf.port;
      const dir = await spoolDir();
      const first = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
      const oldInner = new TcpDestination({ host: HOST, port, connections: 1, timeoutMs: 300, tko: TKO });
      const oldSender = new SpoolingSender(oldInner, first, { retryMs: 20 });
      await leaf.stop("SIGKILL");
      expect(typeOf(await del(oldSender, "k9"))).toBe(ReplyType.Deleted);
      expect(typeOf(await del(oldSender, "k10"))).toBe(ReplyType.Deleted);
      // The old router stops with the deletes still spooled.
      await oldSender.close();
      await first.close();

      const revived = await startLeaf(["--port", String(port)]);
      // Someone wrote k9 on the new leaf: the replay must reach it (a delete hit there).
      expect(typeOf(await set(destination(port, 2000), "k9", "stale"))).toBe(ReplyType.Stored);

      const second = await openSpool(dir);
      const inner = destination(port);
      expect(second.records(inner.name).map((record) => text.decode(record))).toEqual([
        "delete k9\r\n",
        "delete k10\r\n",
      ]);
      // No request goes through the new sender: it replays by itself once the leaf answers.
      const sender = spooling(inner, second, 20);
      await waitUntil("the new router to replay the old spool", () => sender.spooled === 0);
      expect(await leafStat(revived.port, "delete_hits")).toBe(1);
      expect(await leafStat(revived.port, "delete_misses")).toBe(1);
      expect(await value(destination(port, 2000), "k9")).toBeUndefined();
      const third = await openSpool(dir);
      expect(third.pending(inner.name)).toBe(0);
    },
    SERVER_TEST_MS,
  );
});

describe("what the spool does not take", () => {
  test(
    "past maxBytes a delete fails (SERVER_ERROR for the client) instead of being dropped; reads are never spooled",
    async () => {
      const port = await freePort(); // nothing listens there
      const record = 8 + encodeDelete("a").length;
      const spool = await openSpool(await spoolDir(), record);
      const sender = spooling(destination(port), spool, 3_600_000);
      await expect(value(sender, "a")).rejects.toBeInstanceOf(ConnectionError);
      expect(typeOf(await del(sender, "a"))).toBe(ReplyType.Deleted);
      await expect(del(sender, "b")).rejects.toBeInstanceOf(SpoolFullError);
      await expect(set(sender, "a", "v")).rejects.toBeInstanceOf(DestinationDownError);
      expect(sender.spooled).toBe(1);
    },
    SERVER_TEST_MS,
  );

  test("which requests are spooled and what they answer", () => {
    const utf8 = new TextEncoder();
    const reply = (line: string) => spooledReply(parseRequest(utf8.encode(line)));
    expect(reply("delete k\r\n")?.type).toBe(ReplyType.Deleted);
    expect(reply("md k\r\n")?.type).toBe(ReplyType.MetaHeader);
    expect(reply("md k\r\n")?.text).toBe("");
    expect(reply("md a2V5 b k O9\r\n")?.text).toBe("ka2V5 O9 b");
    expect(reply("md k C123\r\n")).toBeUndefined(); // conditional: cannot be promised
    expect(reply("set k 0 0 1\r\nv\r\n")).toBeUndefined();
    expect(reply("get k\r\n")).toBeUndefined();
    // A quiet md is spooled too: the server hides its HD from the client.
    expect(reply("md k q O7\r\n")?.text).toBe("O7");
  });
});

import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectionError } from "../errors.ts";
import { Reply, ReplyType } from "../protocol/reply.ts";
import { DeleteSpool, SpoolFullError, SpoolIoError, spoolFileName } from "./spool.ts";

const DEST = "127.0.0.1:11211";
const utf8 = new TextEncoder();
const text = new TextDecoder();
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "gravity-spool-"));
  dirs.push(dir);
  return dir;
}

const del = (key: string) => utf8.encode(`delete ${key}\r\n`);
const texts = (records: Uint8Array[]) => records.map((record) => text.decode(record));
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const deleted = () => Promise.resolve(new Reply(ReplyType.Deleted));

describe("DeleteSpool", () => {
  test("file names are safe and reversible", () => {
    expect(spoolFileName("127.0.0.1:11211")).toBe("127.0.0.1%3A11211.spool");
    expect(spoolFileName("../etc/passwd")).toBe("..%2Fetc%2Fpasswd.spool");
    expect(spoolFileName("[::1]:5")).toBe("%5B%3A%3A1%5D%3A5.spool");
  });

  test("appends are on disk in order when they resolve, and a new instance finds them", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    // Concurrent appends share a write (group commit) and keep their call order.
    await Promise.all(["a", "b", "c", "d"].map((key) => spool.append(DEST, del(key))));
    await spool.append("10.0.0.2:11211", del("z"));
    expect(spool.pending(DEST)).toBe(4);
    expect(spool.destinations().sort()).toEqual([DEST, "10.0.0.2:11211"].sort());
    expect(readdirSync(dir).sort()).toEqual(["10.0.0.2%3A11211.spool", "127.0.0.1%3A11211.spool"]);
    // Not closed: as after a crash, what resolved must already be in the file.
    const reopened = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(reopened.records(DEST))).toEqual(["a", "b", "c", "d"].map((key) => `delete ${key}\r\n`));
    expect(texts(reopened.records("10.0.0.2:11211"))).toEqual(["delete z\r\n"]);
    expect(reopened.recovered).toEqual([]);
    await spool.close();
    await reopened.close();
  });

  test("replay sends one at a time in order and removes what was applied from disk", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    for (const key of ["a", "b", "c"]) await spool.append(DEST, del(key));
    const sent: string[] = [];
    let inFlight = 0;
    const result = await spool.replay(DEST, async (bytes) => {
      expect(++inFlight).toBe(1);
      sent.push(text.decode(bytes));
      await nextTurn(); // the reply arrives later; the next record must wait for it
      inFlight--;
      return new Reply(ReplyType.NotFound);
    });
    expect(sent).toEqual(["delete a\r\n", "delete b\r\n", "delete c\r\n"]);
    expect(result).toEqual({ applied: 3, errorReplies: 0, remaining: 0 });
    expect(spool.pending(DEST)).toBe(0);
    expect(spool.bytes).toBe(0);
    expect(statSync(join(dir, spoolFileName(DEST))).size).toBe(8); // the header alone
    const reopened = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(reopened.pending(DEST)).toBe(0);
    await spool.close();
    await reopened.close();
  });

  test("replay stops at the first failure and keeps that record and the rest, in order", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    for (const key of ["a", "b", "c", "d"]) await spool.append(DEST, del(key));
    const failure = new ConnectionError(DEST, "connection refused");
    const sent: string[] = [];
    const result = await spool.replay(DEST, (bytes) => {
      sent.push(text.decode(bytes));
      return sent.length === 3 ? Promise.reject(failure) : deleted();
    });
    expect(result).toEqual({ applied: 2, errorReplies: 0, remaining: 2, error: failure });
    const reopened = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(reopened.records(DEST))).toEqual(["delete c\r\n", "delete d\r\n"]);
    await reopened.close();
    // The next replay starts with the record that failed.
    const again: string[] = [];
    const second = await spool.replay(DEST, (bytes) => {
      again.push(text.decode(bytes));
      return deleted();
    });
    expect(again).toEqual(["delete c\r\n", "delete d\r\n"]);
    expect(second.remaining).toBe(0);
    await spool.close();
  });

  test("error replies apply a record (the destination answered) and are counted", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    await spool.append(DEST, del("a"));
    await spool.append(DEST, del("b"));
    const result = await spool.replay(DEST, async () => new Reply(ReplyType.ServerError));
    expect(result).toEqual({ applied: 2, errorReplies: 2, remaining: 0 });
    await spool.close();
  });

  test("a torn last record is dropped on open, the file truncated, and appends continue after it", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    for (const key of ["a", "b"]) await spool.append(DEST, del(key));
    await spool.close();
    const path = join(dir, spoolFileName(DEST));
    const good = statSync(path).size;
    // A crash cut the third record short: its frame says 10 bytes, 4 made it to disk.
    const torn = new Uint8Array(8 + 4);
    new DataView(torn.buffer).setUint32(0, 10, true);
    torn.set(utf8.encode("dele"), 8);
    appendFileSync(path, torn);

    const reopened = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(reopened.records(DEST))).toEqual(["delete a\r\n", "delete b\r\n"]);
    expect(reopened.recovered).toEqual([
      {
        destination: DEST,
        reason: "torn",
        detail: `the record at byte ${good} runs past the end of the file`,
        records: 2,
        droppedBytes: torn.length,
      },
    ]);
    expect(reopened.counters.droppedBytes).toEqual({ torn: torn.length, corrupt: 0, over_limit: 0 });
    expect(statSync(path).size).toBe(good);
    await reopened.append(DEST, del("c"));
    await reopened.close();
    const third = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(third.records(DEST))).toEqual(["delete a\r\n", "delete b\r\n", "delete c\r\n"]);
    expect(third.recovered).toEqual([]);
    await third.close();
  });

  test("a last record whose checksum fails is dropped; a torn header leaves an empty log", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    for (const key of ["a", "b"]) await spool.append(DEST, del(key));
    await spool.close();
    const path = join(dir, spoolFileName(DEST));
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] = "X".charCodeAt(0); // "delete b" -> "delete X" on disk, checksum unchanged
    writeFileSync(path, bytes);
    const other = join(dir, spoolFileName("10.0.0.9:1"));
    writeFileSync(other, "GSPO"); // the process died while creating the file

    const reopened = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(reopened.records(DEST))).toEqual(["delete a\r\n"]);
    expect(reopened.recovered.map(({ destination, reason }) => [destination, reason])).toEqual([
      ["10.0.0.9:1", "torn"],
      [DEST, "corrupt"],
    ]);
    expect(reopened.recovered[1]?.detail).toMatch(/^the record at byte \d+ fails its checksum$/);
    expect(reopened.pending("10.0.0.9:1")).toBe(0);
    expect(statSync(other).size).toBe(0);
    await reopened.append("10.0.0.9:1", del("q"));
    await reopened.close();
    const third = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(third.records("10.0.0.9:1"))).toEqual(["delete q\r\n"]);
    await third.close();
  });

  test("a file that is not a spool is moved aside, not overwritten, and the spool opens without it", async () => {
    const dir = await freshDir();
    const path = join(dir, spoolFileName(DEST));
    writeFileSync(path, "something else entirely\n");
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(spool.pending(DEST)).toBe(0);
    expect(spool.recovered).toEqual([
      {
        destination: DEST,
        reason: "corrupt",
        detail: `not a delete spool file (no GSPOOL1 header): moved to ${path}.corrupt`,
        records: 0,
        droppedBytes: 24,
      },
    ]);
    expect(readFileSync(`${path}.corrupt`, "latin1")).toBe("something else entirely\n");
    await spool.append(DEST, del("a"));
    await spool.close();
    const reopened = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(reopened.records(DEST))).toEqual(["delete a\r\n"]);
    expect(reopened.recovered).toEqual([]);
    await reopened.close();
    // A second foreign file finds the name taken: it goes beside the first, which is kept.
    writeFileSync(path, "another stranger\n");
    const third = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(third.recovered[0]?.detail).toBe(
      `not a delete spool file (no GSPOOL1 header): moved to ${path}.corrupt.1`,
    );
    expect(readFileSync(`${path}.corrupt`, "latin1")).toBe("something else entirely\n");
    expect(readFileSync(`${path}.corrupt.1`, "latin1")).toBe("another stranger\n");
    await third.close();
  });

  test("reopened with a lower maxBytes, each log keeps its oldest records in turn; the rest is dropped and counted", async () => {
    const dir = await freshDir();
    const record = 8 + del("k0").length;
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    for (const key of ["a0", "a1", "a2", "a3"]) await spool.append(DEST, del(key));
    for (const key of ["b0"]) await spool.append("10.0.0.2:1", del(key));
    await spool.close();

    const lowered = await DeleteSpool.open({ dir, maxBytes: record * 3 });
    expect(texts(lowered.records("10.0.0.2:1"))).toEqual(["delete b0\r\n"]);
    expect(texts(lowered.records(DEST))).toEqual(["delete a0\r\n", "delete a1\r\n"]);
    expect(lowered.bytes).toBe(record * 3);
    expect(lowered.recovered).toEqual([
      {
        destination: DEST,
        reason: "over_limit",
        detail: `the spool held more than maxBytes ${record * 3}: the newest 2 deletes went`,
        records: 2,
        droppedBytes: record * 2,
      },
    ]);
    expect(lowered.counters.droppedBytes.over_limit).toBe(record * 2);
    expect(statSync(join(dir, spoolFileName(DEST))).size).toBe(8 + record * 2);
    await lowered.close();
    const again = await DeleteSpool.open({ dir, maxBytes: record * 3 });
    expect(again.recovered).toEqual([]);
    expect(texts(again.records(DEST))).toEqual(["delete a0\r\n", "delete a1\r\n"]);
    await again.close();
  });

  test("past maxBytes appends are refused (nothing written, counted, logged once) until a replay frees room", async () => {
    const dir = await freshDir();
    const record = 8 + del("k0").length; // frame + payload
    const lines: string[] = [];
    const spool = await DeleteSpool.open({ dir, maxBytes: record * 3, log: (line) => lines.push(line) });
    for (const key of ["k0", "k1", "k2"]) await spool.append(DEST, del(key));
    expect(spool.bytes).toBe(record * 3);
    const refused = spool.append(DEST, del("k3"));
    await expect(refused).rejects.toBeInstanceOf(SpoolFullError);
    expect(spool.counters.refused).toEqual({ full: 1, io: 0 });
    await expect(refused).rejects.toThrow("delete spool full");
    // The bound covers every destination together.
    await expect(spool.append("10.0.0.2:1", del("k4"))).rejects.toBeInstanceOf(SpoolFullError);
    expect(spool.pending(DEST)).toBe(3);
    const size = statSync(join(dir, spoolFileName(DEST))).size;
    expect(size).toBe(8 + record * 3);
    expect(spool.counters.refused).toEqual({ full: 2, io: 0 });
    expect(lines).toEqual([
      `delete spool is full (holds ${record * 3} of ${record * 3} bytes): refusing deletes (SERVER_ERROR) until it can take them`,
    ]);

    await spool.replay(DEST, deleted);
    expect(spool.bytes).toBe(0);
    expect(spool.counters.replayed).toBe(3);
    await spool.append(DEST, del("k5"));
    expect(lines.slice(1)).toEqual(["delete spool takes deletes again (2 refused while it was full)"]);
    expect(texts(spool.records(DEST))).toEqual(["delete k5\r\n"]);
    // A new instance counts what is on disk against the bound.
    await spool.append(DEST, del("k6"));
    await spool.append(DEST, del("k7"));
    await spool.close();
    const reopened = await DeleteSpool.open({ dir, maxBytes: record * 3 });
    expect(reopened.bytes).toBe(record * 3);
    await expect(reopened.append(DEST, del("k8"))).rejects.toBeInstanceOf(SpoolFullError);
    await reopened.close();
  });

  test("appends admitted before the spool filled, completing after, do not announce that it takes deletes again", async () => {
    const dir = await freshDir();
    const record = 8 + del("k0").length;
    const lines: string[] = [];
    const spool = await DeleteSpool.open({ dir, maxBytes: record * 2, log: (line) => lines.push(line) });
    const admitted = [spool.append(DEST, del("k0")), spool.append(DEST, del("k1"))];
    await expect(spool.append(DEST, del("k2"))).rejects.toBeInstanceOf(SpoolFullError);
    await Promise.all(admitted);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("delete spool is full");
    await spool.replay(DEST, deleted);
    await spool.append(DEST, del("k3"));
    expect(lines.slice(1)).toEqual(["delete spool takes deletes again (1 refused while it was full)"]);
    await spool.close();
  });

  test("a write that fails is refused with SpoolIoError, counted and logged once", async () => {
    const dir = await freshDir();
    const lines: string[] = [];
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20, log: (line) => lines.push(line) });
    // The log's path is a directory: opening it for append fails as a full or broken disk would.
    mkdirSync(join(dir, spoolFileName(DEST)));
    await expect(spool.append(DEST, del("a"))).rejects.toBeInstanceOf(SpoolIoError);
    await expect(spool.append(DEST, del("b"))).rejects.toBeInstanceOf(SpoolIoError);
    expect(spool.counters.refused).toEqual({ full: 0, io: 2 });
    expect(lines.length).toBe(1);
    expect(lines[0]).toStartWith("delete spool cannot write (");
    await spool.append("10.0.0.2:1", del("c"));
    expect(lines[1]).toBe("delete spool takes deletes again (2 refused while it could not write)");
    await spool.close();
  });

  test("appends during a replay are replayed after the older records, and survive a stop", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    for (const key of ["a", "b"]) await spool.append(DEST, del(key));
    const sent: string[] = [];
    const appended: Promise<void>[] = [];
    const result = await spool.replay(DEST, (bytes) => {
      sent.push(text.decode(bytes));
      // While "a" is in flight, two more deletes arrive (one not yet written when "b" is answered).
      if (sent.length === 1) appended.push(spool.append(DEST, del("c")), spool.append(DEST, del("d")));
      return deleted();
    });
    await Promise.all(appended);
    expect(sent).toEqual(["a", "b", "c", "d"].map((key) => `delete ${key}\r\n`));
    expect(result.remaining).toBe(0);

    // Now a replay that fails midway while appends arrive: what is left on disk keeps the order.
    for (const key of ["e", "f"]) await spool.append(DEST, del(key));
    const failure = new ConnectionError(DEST, "reset");
    let calls = 0;
    let late: Promise<void> = Promise.resolve();
    const stopped = await spool.replay(DEST, () => {
      if (++calls === 1) {
        late = spool.append(DEST, del("g"));
        return deleted();
      }
      return Promise.reject(failure);
    });
    await late;
    expect(stopped.error).toBe(failure);
    const reopened = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    expect(texts(reopened.records(DEST))).toEqual(["delete f\r\n", "delete g\r\n"]);
    await reopened.close();
    await spool.close();
  });

  test("a second replay call while one runs joins it instead of sending records twice", async () => {
    const dir = await freshDir();
    const spool = await DeleteSpool.open({ dir, maxBytes: 1 << 20 });
    for (const key of ["a", "b", "c"]) await spool.append(DEST, del(key));
    const sent: string[] = [];
    const send = async (bytes: Uint8Array) => {
      sent.push(text.decode(bytes));
      await nextTurn();
      return new Reply(ReplyType.Deleted);
    };
    const [first, second] = await Promise.all([spool.replay(DEST, send), spool.replay(DEST, send)]);
    expect(sent.length).toBe(3);
    expect(first).toEqual(second);
    await spool.close();
  });
});

// The delete spool (mcrouter's AsynclogRoute): deletes that could not reach a destination wait in
// an append-only log on disk, one per destination, and are replayed in order once it answers.
//
//   append(destination, bytes) ─> queued ─> one write + fsync per batch (group commit) ─> resolved
//   replay(destination, send)  ─> oldest record ─> send ─> any reply: applied, next record
//                                                      └─> throws: stop, keep it and the rest
//                              ─> compact: rewrite what is left (tmp file, fsync, rename, fsync dir)
//
// On disk: <dir>/<destination, percent-encoded>.spool
//   header  "GSPOOL1\n"
//   record  u32 LE payload length · u32 LE CRC-32 of (length bytes, payload) · payload
//
// A crash can leave a torn last record (a write cut short): opening the log drops everything from
// the first record that is incomplete or fails its checksum, and truncates the file there. A file
// whose header is not ours is moved aside (<name>.spool.corrupt), never overwritten. A directory
// holding more than maxBytes (the limit was lowered across a restart) keeps the oldest records of
// each log, taken in turn, up to maxBytes, and truncates the rest away. Every drop is reported in
// `recovered` (the router logs it) and counted; so is every delete the spool refuses. Deletes
// are idempotent, so a record that was applied but not yet compacted away when the router stopped
// is simply applied again; the worst a replay can do is delete a value written after the delete
// was spooled (a miss, never stale data). One process owns a spool directory at a time.

import type { FileHandle } from "node:fs/promises";
import { link, mkdir, open, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { GravityError } from "../errors.ts";
import type { Reply } from "../protocol/reply.ts";

export interface DeleteSpoolOptions {
  /** The directory holding one log per destination; created if missing. */
  dir: string;
  /** Bytes of records (headers included) the spool holds, over all destinations; past it appends are refused. */
  maxBytes: number;
  /**
   * Called with one line when the spool starts refusing deletes (full, or its disk failing) and
   * when it accepts them again: once per change of state, not per delete.
   */
  log?: (line: string) => void;
}

/** Why opening the spool dropped records. */
export const SpoolDropReason = {
  /** The last record runs past the end of the file (a write cut short by a crash). */
  Torn: "torn",
  /** A record's length or checksum is wrong, or the file's header is not a spool's. */
  Corrupt: "corrupt",
  /** The directory held more than maxBytes (the limit was lowered): the newest records went. */
  OverLimit: "over_limit",
} as const;
export type SpoolDropReason = (typeof SpoolDropReason)[keyof typeof SpoolDropReason];

/** Why the spool refused a delete (the client got SERVER_ERROR). */
export const SpoolRefusal = { Full: "full", Io: "io" } as const;
export type SpoolRefusal = (typeof SpoolRefusal)[keyof typeof SpoolRefusal];

/** What the spool did, for /metrics; the spool only increments them. */
export interface SpoolCounters {
  /** Deletes refused, by why. */
  refused: Record<SpoolRefusal, number>;
  /** Bytes dropped when the spool was opened, by why. */
  droppedBytes: Record<SpoolDropReason, number>;
  /** Spooled deletes replayed to their destination (answered, error replies included). */
  replayed: number;
}

/** The spool holds `maxBytes` already: the delete was not spooled (the client gets SERVER_ERROR). */
export class SpoolFullError extends GravityError {
  readonly destination: string;

  constructor(destination: string, maxBytes: number) {
    super("ESPOOLFULL", `${destination}: delete spool full (${maxBytes} bytes): delete not spooled`);
    this.name = "SpoolFullError";
    this.destination = destination;
  }
}

/** A spool file that is not ours, or a spool write that failed: the delete was not spooled. */
export class SpoolIoError extends GravityError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ESPOOLIO", message, options);
    this.name = "SpoolIoError";
  }
}

/** What opening dropped from one log, and why. */
export interface SpoolRecovery {
  destination: string;
  reason: SpoolDropReason;
  /** What exactly was wrong, for the log (e.g. "the record at byte 120 fails its checksum"). */
  detail: string;
  /** Records kept (they will be replayed). */
  records: number;
  /** Bytes dropped from the file. */
  droppedBytes: number;
}

/** One line saying what was dropped from a spool log on open and why (the router logs it). */
export function describeRecovery(recovery: SpoolRecovery): string {
  return (
    `delete spool: ${recovery.destination}: dropped ${recovery.droppedBytes} bytes ` +
    `(${recovery.reason}: ${recovery.detail}); ${recovery.records} deletes kept for replay`
  );
}

/** What one replay did. `error` is what stopped it early; `remaining` records wait for the next one. */
export interface ReplayResult {
  applied: number;
  /** Applied records the destination answered with an error reply (ERROR, CLIENT_ERROR, SERVER_ERROR). */
  errorReplies: number;
  remaining: number;
  error?: unknown;
  /** Removing the applied records from disk failed (they are still applied; see replayRecords). */
  compactionError?: unknown;
}

const SUFFIX = ".spool";
const TMP_SUFFIX = ".spool.tmp";
const CORRUPT_SUFFIX = ".spool.corrupt";
const HEADER = new TextEncoder().encode("GSPOOL1\n");
const FRAME_BYTES = 8; // length + checksum
/** A record longer than this is corruption, not a delete (memcached keys are at most 250 bytes). */
const MAX_RECORD_BYTES = 64 * 1024;

/** The spool's log file name for a destination: bytes outside [A-Za-z0-9._-] as %XX, so "host:port" is safe. */
export function spoolFileName(destination: string): string {
  let name = "";
  for (const byte of new TextEncoder().encode(destination)) {
    const char = String.fromCharCode(byte);
    name += /[A-Za-z0-9._-]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return name + SUFFIX;
}

/** Append-only logs of deletes per destination, fsync'd and bounded; see the file comment. */
export class DeleteSpool {
  private readonly logs = new Map<string, DestinationLog>();
  readonly counters: SpoolCounters = {
    refused: { full: 0, io: 0 },
    droppedBytes: { torn: 0, corrupt: 0, over_limit: 0 },
    replayed: 0,
  };
  private refusing: SpoolRefusal | undefined; // why deletes are being refused now, if they are
  private refusedWhile = 0; // deletes refused since `refusing` was set
  // Appends numbered as they are admitted: one admitted before the refusals began that completes
  // after them says nothing about whether the spool takes deletes again.
  private appendsAdmitted = 0;
  private admittedBeforeRefusing = 0;

  private constructor(
    private readonly options: DeleteSpoolOptions,
    /** What opening dropped from each log, and why. */
    readonly recovered: SpoolRecovery[],
  ) {}

  /**
   * Opens (creating) the directory and loads every log in it: drops torn or corrupt tails, moves
   * aside files that are not spools, and trims the whole to maxBytes (see the file comment).
   */
  static async open(options: DeleteSpoolOptions): Promise<DeleteSpool> {
    if (!(options.maxBytes > 0))
      throw new RangeError(`spool maxBytes must be positive, got ${options.maxBytes}`);
    await mkdir(options.dir, { recursive: true });
    const spool = new DeleteSpool(options, []);
    for (const entry of (await readdir(options.dir)).sort()) {
      // A crash during compaction leaves the tmp copy beside the intact original.
      if (entry.endsWith(TMP_SUFFIX)) await rm(join(options.dir, entry), { force: true });
      if (!entry.endsWith(SUFFIX)) continue;
      const destination = decodeURIComponent(entry.slice(0, -SUFFIX.length));
      const path = join(options.dir, entry);
      const log = new DestinationLog(destination, path, options.dir);
      const dropped = await log.load();
      if (dropped === undefined) {
        spool.logs.set(destination, log);
        continue;
      }
      const { movedAside, ...recovery } = dropped;
      spool.recover({ destination, ...recovery, records: log.pending });
      if (!movedAside) spool.logs.set(destination, log);
    }
    await spool.trimToLimit();
    return spool;
  }

  /** Bytes of records the spool holds now, over all destinations (at most maxBytes, unless reopened with less). */
  get bytes(): number {
    let bytes = 0;
    for (const log of this.logs.values()) bytes += log.heldBytes;
    return bytes;
  }

  /** Destinations with records not yet applied. */
  destinations(): string[] {
    return [...this.logs.values()].filter((log) => log.pending > 0).map((log) => log.destination);
  }

  /** Records for `destination` not yet applied, including those still being written. */
  pending(destination: string): number {
    return this.logs.get(destination)?.pending ?? 0;
  }

  /** Copies of the durable records not yet applied, oldest first (for inspection and tests). */
  records(destination: string): Uint8Array[] {
    return this.logs.get(destination)?.unapplied() ?? [];
  }

  /**
   * Appends one request's bytes to `destination`'s log and resolves once they are on disk
   * (written and fsync'd). Rejects with SpoolFullError past maxBytes, SpoolIoError if the write fails.
   */
  append(destination: string, request: Uint8Array): Promise<void> {
    if (request.length === 0 || request.length > MAX_RECORD_BYTES)
      return Promise.reject(
        new RangeError(`a spooled request is 1..${MAX_RECORD_BYTES} bytes, got ${request.length}`),
      );
    const recordBytes = FRAME_BYTES + request.length;
    if (this.bytes + recordBytes > this.options.maxBytes) {
      this.refuse(SpoolRefusal.Full, `holds ${this.bytes} of ${this.options.maxBytes} bytes`);
      return Promise.reject(new SpoolFullError(destination, this.options.maxBytes));
    }
    let log = this.logs.get(destination);
    if (log === undefined) {
      log = new DestinationLog(
        destination,
        join(this.options.dir, spoolFileName(destination)),
        this.options.dir,
      );
      this.logs.set(destination, log);
    }
    const admitted = ++this.appendsAdmitted;
    return log.append(request.slice()).then(
      () => this.accepted(admitted),
      (error: unknown) => {
        if (error instanceof SpoolIoError) this.refuse(SpoolRefusal.Io, error.message);
        throw error;
      },
    );
  }

  /**
   * Sends `destination`'s records oldest first, one at a time, each after the previous one's reply.
   * Any reply applies a record; a rejection stops the replay and keeps that record and the rest.
   * Records appended meanwhile are replayed too, after the older ones. Applied records are then
   * removed from disk. Calls made while a replay of the destination runs join it.
   */
  replay(destination: string, send: (request: Uint8Array) => Promise<Reply>): Promise<ReplayResult> {
    const log = this.logs.get(destination);
    if (log === undefined) return Promise.resolve({ applied: 0, errorReplies: 0, remaining: 0 });
    return log.replay(send).then((result) => {
      this.counters.replayed += result.applied;
      return result;
    });
  }

  /** Waits for pending writes and closes the files; records stay on disk for the next open. */
  async close(): Promise<void> {
    await Promise.all([...this.logs.values()].map((log) => log.close()));
  }

  private recover(recovery: SpoolRecovery): void {
    this.recovered.push(recovery);
    this.counters.droppedBytes[recovery.reason] += recovery.droppedBytes;
  }

  // Keeps at most maxBytes of records: each log's oldest first, one record of each log in turn, so
  // no destination loses all its deletes to another's; a log stops at its first record that does
  // not fit (what is kept of a log is always its oldest records). The rest is truncated away.
  private async trimToLimit(): Promise<void> {
    if (this.bytes <= this.options.maxBytes) return;
    const logs = [...this.logs.values()];
    const kept = logs.map(() => 0);
    const full = logs.map(() => false);
    let bytes = 0;
    for (let progress = true; progress; ) {
      progress = false;
      logs.forEach((log, i) => {
        const record = full[i] ? undefined : log.recordBytes(kept[i] as number);
        if (record === undefined) return;
        if (bytes + record > this.options.maxBytes) {
          full[i] = true;
          return;
        }
        bytes += record;
        kept[i] = (kept[i] as number) + 1;
        progress = true;
      });
    }
    for (const [i, log] of logs.entries()) {
      const before = log.pending;
      const droppedBytes = await log.keepOldest(kept[i] as number);
      if (droppedBytes === 0) continue;
      this.recover({
        destination: log.destination,
        reason: SpoolDropReason.OverLimit,
        detail: `the spool held more than maxBytes ${this.options.maxBytes}: the newest ${before - log.pending} deletes went`,
        records: log.pending,
        droppedBytes,
      });
    }
  }

  // A delete was refused: counted, and logged if deletes were accepted until now (or refused for
  // another reason).
  private refuse(why: SpoolRefusal, detail: string): void {
    this.counters.refused[why]++;
    if (this.refusing === why) {
      this.refusedWhile++;
      return;
    }
    this.refusing = why;
    this.refusedWhile = 1;
    this.admittedBeforeRefusing = this.appendsAdmitted;
    const what = why === SpoolRefusal.Full ? "is full" : "cannot write";
    this.options.log?.(
      `delete spool ${what} (${detail}): refusing deletes (SERVER_ERROR) until it can take them`,
    );
  }

  // The append admitted `admitted`-th is on disk: if it was admitted after the refusals began, the
  // spool takes deletes again.
  private accepted(admitted: number): void {
    if (this.refusing === undefined || admitted <= this.admittedBeforeRefusing) return;
    this.options.log?.(
      `delete spool takes deletes again (${this.refusedWhile} refused while it ${this.refusing === SpoolRefusal.Full ? "was full" : "could not write"})`,
    );
    this.refusing = undefined;
    this.refusedWhile = 0;
  }
}

interface Waiter {
  payload: Uint8Array;
  resolve: () => void;
  reject: (error: unknown) => void;
}

// One destination's log. File operations (batched appends, compaction) run one at a time on
// `tail`; a replay reads `records` by index and never blocks appends.
class DestinationLog {
  private records: Uint8Array[] = []; // durable, oldest first; [0, applied) already sent and answered
  private applied = 0;
  private waiting: Waiter[] = []; // accepted, not yet written
  private writing = 0; // records in the batch being written
  private acceptedBytes = 0; // framed bytes of `waiting` and of the batch being written
  private flushQueued = false;
  private fileBytes = 0; // the file's length as far as we wrote it (0: not created yet)
  private handle: FileHandle | undefined; // opened for append on first use
  private tail: Promise<void> = Promise.resolve();
  private replaying: Promise<ReplayResult> | undefined;

  constructor(
    readonly destination: string,
    private readonly path: string,
    private readonly dir: string,
  ) {}

  get pending(): number {
    return this.records.length - this.applied + this.waiting.length + this.writing;
  }

  /** What counts against the bound: records in the file (applied ones until compaction) and accepted ones. */
  get heldBytes(): number {
    return Math.max(0, this.fileBytes - HEADER.length) + this.acceptedBytes;
  }

  unapplied(): Uint8Array[] {
    return this.records.slice(this.applied).map((record) => record.slice());
  }

  // Reads the file; keeps every record up to the first torn or corrupt one and truncates there.
  // A file without our header is renamed aside (it may be someone else's: never overwritten).
  // Returns what was dropped and why, or undefined if the file was whole.
  async load(): Promise<
    { reason: SpoolDropReason; detail: string; droppedBytes: number; movedAside: boolean } | undefined
  > {
    const bytes = new Uint8Array(await readFile(this.path));
    if (bytes.length < HEADER.length && startsWith(HEADER, bytes)) {
      // Cut short while being created: nothing was ever acknowledged from it.
      await this.truncateFile(0);
      this.fileBytes = 0;
      if (bytes.length === 0) return undefined;
      const detail = `the header is cut short at ${bytes.length} bytes`;
      return { reason: SpoolDropReason.Torn, detail, droppedBytes: bytes.length, movedAside: false };
    }
    if (!startsWith(bytes, HEADER)) {
      const aside = await moveAside(this.path, this.path.slice(0, -SUFFIX.length) + CORRUPT_SUFFIX);
      const detail = `not a delete spool file (no GSPOOL1 header): moved to ${aside}`;
      return { reason: SpoolDropReason.Corrupt, detail, droppedBytes: bytes.length, movedAside: true };
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let offset = HEADER.length;
    let reason: SpoolDropReason = SpoolDropReason.Torn;
    let detail = `the record at byte ${offset} runs past the end of the file`;
    while (offset < bytes.length) {
      detail = `the record at byte ${offset} runs past the end of the file`;
      if (offset + FRAME_BYTES > bytes.length) break;
      const length = view.getUint32(offset, true);
      const checksum = view.getUint32(offset + 4, true);
      const end = offset + FRAME_BYTES + length;
      if (length === 0 || length > MAX_RECORD_BYTES) {
        reason = SpoolDropReason.Corrupt;
        detail = `the record at byte ${offset} has length ${length}, outside 1..${MAX_RECORD_BYTES}`;
        break;
      }
      if (end > bytes.length) break;
      const payload = bytes.slice(offset + FRAME_BYTES, end);
      if (recordChecksum(bytes.subarray(offset, offset + 4), payload) !== checksum) {
        reason = SpoolDropReason.Corrupt;
        detail = `the record at byte ${offset} fails its checksum`;
        break;
      }
      this.records.push(payload);
      offset = end;
    }
    this.fileBytes = offset;
    if (offset === bytes.length) return undefined;
    await this.truncateFile(offset);
    return { reason, detail, droppedBytes: bytes.length - offset, movedAside: false };
  }

  /** Framed bytes of the record at `index`, or undefined past the last one (for trimming on open). */
  recordBytes(index: number): number | undefined {
    const record = this.records[index];
    return record === undefined ? undefined : FRAME_BYTES + record.length;
  }

  // Keeps the `count` oldest records and truncates the file after them (on open, nothing applied
  // yet). Returns the bytes dropped.
  async keepOldest(count: number): Promise<number> {
    if (count >= this.records.length) return 0;
    let offset = HEADER.length;
    for (const record of this.records.slice(0, count)) offset += FRAME_BYTES + record.length;
    const dropped = this.fileBytes - offset;
    await this.truncateFile(offset);
    this.records = this.records.slice(0, count);
    this.fileBytes = offset;
    return dropped;
  }

  append(payload: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ payload, resolve, reject });
      this.acceptedBytes += FRAME_BYTES + payload.length;
      if (this.flushQueued) return;
      this.flushQueued = true;
      void this.exclusive(() => this.flush());
    });
  }

  replay(send: (request: Uint8Array) => Promise<Reply>): Promise<ReplayResult> {
    if (this.replaying !== undefined) return this.replaying;
    const run = this.replayRecords(send);
    this.replaying = run;
    void run.finally(() => {
      if (this.replaying === run) this.replaying = undefined;
    });
    return run;
  }

  async close(): Promise<void> {
    await this.exclusive(async () => {
      await this.handle?.close();
      this.handle = undefined;
    });
  }

  private async replayRecords(send: (request: Uint8Array) => Promise<Reply>): Promise<ReplayResult> {
    let applied = 0;
    let errorReplies = 0;
    let error: unknown;
    let stopped = false;
    for (;;) {
      const record = this.records[this.applied];
      if (record === undefined) {
        // Appends accepted before the end of the replay are replayed by it: wait for their write.
        if (this.waiting.length + this.writing === 0) break;
        await this.exclusive(async () => {});
        continue;
      }
      try {
        const reply = await send(record);
        if (reply.isError) errorReplies++;
      } catch (caught) {
        error = caught;
        stopped = true;
        break;
      }
      this.applied++;
      applied++;
    }
    let compactionError: unknown;
    // A failed compaction changes nothing: the applied records stay in the file (sent again only
    // after a restart, which is harmless) and the next replay tries again.
    if (this.applied > 0)
      await this.exclusive(() => this.compact()).catch((caught: unknown) => {
        compactionError = caught;
      });
    const result: ReplayResult = { applied, errorReplies, remaining: this.pending };
    if (stopped) result.error = error;
    if (compactionError !== undefined) result.compactionError = compactionError;
    return result;
  }

  // Runs `operation` after every file operation queued before it.
  private exclusive(operation: () => Promise<void>): Promise<void> {
    const run = this.tail.then(operation);
    this.tail = run.catch(() => {});
    return run;
  }

  // Writes every waiting record in one write and one fsync (group commit), then acknowledges them.
  private async flush(): Promise<void> {
    this.flushQueued = false;
    const batch = this.waiting;
    this.waiting = [];
    const fresh = this.fileBytes === 0;
    const bytes = encodeRecords(
      fresh ? HEADER : new Uint8Array(0),
      batch.map((waiter) => waiter.payload),
    );
    this.writing = batch.length;
    const batchBytes = bytes.length - (fresh ? HEADER.length : 0);
    try {
      const handle = await this.openHandle();
      await writeAll(handle, bytes);
      await handle.sync();
      if (fresh) await syncDirectory(this.dir); // the new file's name is durable too
    } catch (cause) {
      // Undo a partial write so the file stays a sequence of whole records.
      await this.handle?.truncate(this.fileBytes).catch(() => {});
      const error = new SpoolIoError(`${this.path}: spool write failed`, { cause });
      for (const waiter of batch) waiter.reject(error);
      return;
    } finally {
      this.writing = 0;
      this.acceptedBytes -= batchBytes;
    }
    this.fileBytes += bytes.length;
    for (const waiter of batch) {
      this.records.push(waiter.payload);
      waiter.resolve();
    }
  }

  // Removes applied records from the file. With none left it truncates to the header; otherwise
  // it writes the rest to a tmp file, fsyncs it and renames it over the log (atomic: a crash
  // leaves the old log or the new one, never half of either).
  private async compact(): Promise<void> {
    if (this.applied === 0) return;
    const rest = this.records.slice(this.applied);
    if (rest.length === 0) {
      const handle = await this.openHandle();
      await handle.truncate(HEADER.length);
      this.fileBytes = HEADER.length;
      await handle.sync();
    } else {
      const bytes = encodeRecords(HEADER, rest);
      const tmpPath = this.path.slice(0, -SUFFIX.length) + TMP_SUFFIX;
      const tmp = await open(tmpPath, "w");
      try {
        await writeAll(tmp, bytes);
        await tmp.sync();
      } finally {
        await tmp.close();
      }
      await rename(tmpPath, this.path);
      await syncDirectory(this.dir);
      await this.handle?.close();
      this.handle = undefined;
      this.fileBytes = bytes.length;
    }
    this.records = rest;
    this.applied = 0;
  }

  private async openHandle(): Promise<FileHandle> {
    this.handle ??= await open(this.path, "a");
    return this.handle;
  }

  private async truncateFile(length: number): Promise<void> {
    const handle = await open(this.path, "r+");
    try {
      await handle.truncate(length);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

function recordChecksum(lengthBytes: Uint8Array, payload: Uint8Array): number {
  return Bun.hash.crc32(payload, Bun.hash.crc32(lengthBytes));
}

// `prefix` then each payload framed as a record.
function encodeRecords(prefix: Uint8Array, payloads: readonly Uint8Array[]): Uint8Array {
  let size = prefix.length;
  for (const payload of payloads) size += FRAME_BYTES + payload.length;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  bytes.set(prefix, 0);
  let offset = prefix.length;
  for (const payload of payloads) {
    view.setUint32(offset, payload.length, true);
    view.setUint32(offset + 4, recordChecksum(bytes.subarray(offset, offset + 4), payload), true);
    bytes.set(payload, offset + FRAME_BYTES);
    offset += FRAME_BYTES + payload.length;
  }
  return bytes;
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

// Moves `path` to `aside`, or to `aside.1`, `aside.2`, ... when that name is taken: a file moved
// aside earlier is never overwritten (link fails on an existing name, where rename would replace it).
async function moveAside(path: string, aside: string): Promise<string> {
  for (let n = 0; ; n++) {
    const name = n === 0 ? aside : `${aside}.${n}`;
    try {
      await link(path, name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw error;
    }
    await unlink(path);
    return name;
  }
}

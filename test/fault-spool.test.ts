// The delete spool past its byte limit and across a router restart, on real processes (issue 14's
// fault suite). A leaf is SIGSTOPped (it keeps its data and answers nothing): deletes for it are
// spooled until the spool holds maxBytes, then refused with SERVER_ERROR, counted on /metrics and
// logged once. The router is stopped; its spool file gets a torn tail, a file that is not a spool
// appears beside it, and the router restarts with half the limit. It must start, say in its log
// and on /metrics what it dropped and why, and replay the rest once the leaf answers.
import { afterAll, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spoolFileName } from "../src/router/spool.ts";
import { McClient } from "./helpers/mc-client.ts";
import { metricValue } from "./helpers/router-stats.ts";
import { HOST, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const COMPILED = { binary: "compiled" } as const;
const HTTP_LINE = /http on (\S+):(\d+) /;
/** The schema's smallest maxBytes, and twice it for the first run. */
const LOWERED_MAX_BYTES = 4096;
const FIRST_MAX_BYTES = 2 * LOWERED_MAX_BYTES;
const FRAME_BYTES = 8; // a spool record's length and checksum (src/router/spool.ts)

const dir = mkdtempSync(join(tmpdir(), "gravity-fault-spool-"));
afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const key = (i: number) => `spooled:${String(i).padStart(4, "0")}`;
const recordBytes = (i: number) => FRAME_BYTES + `delete ${key(i)}\r\n`.length;

test("the delete spool refuses past maxBytes (counted, logged once), and a restart with a torn, foreign and oversized spool drops what it must, says so, and replays the rest", async () => {
  const leaf = await startLeaf(["--port", "0"], COMPILED);
  const spoolDir = join(dir, "spool");
  const file = join(dir, "router.json");
  const writeConfig = (maxBytes: number) =>
    writeFileSync(
      file,
      JSON.stringify({
        spool: { dir: spoolDir, maxBytes },
        pools: {
          main: {
            servers: [`${HOST}:${leaf.port}`],
            timeoutMs: 300,
            tko: { failures: 1, probeIntervalMs: 100, maxProbeIntervalMs: 200 },
          },
        },
        route: "main",
      }),
    );
  writeConfig(FIRST_MAX_BYTES);
  const first = await startRouter(["--port", "0", "--config", file, "--http-port", "0"], COMPILED);
  const [, host, port] = (await first.waitForStdout(HTTP_LINE)) as RegExpExecArray;
  const client = await McClient.connect(first.port);
  const fits = Math.floor(FIRST_MAX_BYTES / recordBytes(0));
  const total = fits + 20;
  for (let i = 0; i < total; i++) expect(await client.command(`set ${key(i)} 0 0 1\r\nv`)).toBe("STORED");

  leaf.signal("SIGSTOP");
  expect(await client.command(`get ${key(0)}`)).toStartWith("SERVER_ERROR"); // times out: marked down
  await first.waitForStdout(/marked down/);
  // Each delete is spooled (DELETED) until the spool is full, then refused: none is dropped silently.
  const replies: string[] = [];
  for (let i = 0; i < total; i++) replies.push(await client.command(`delete ${key(i)}`));
  expect(replies.slice(0, fits)).toEqual(Array(fits).fill("DELETED"));
  for (const reply of replies.slice(fits)) expect(reply).toStartWith("SERVER_ERROR");
  const metrics = `http://${host}:${port}/metrics`;
  expect(await metricValue(metrics, "gravity_router_spool_refused_deletes_total", { reason: "full" })).toBe(
    total - fits,
  );
  expect(await metricValue(metrics, "gravity_router_spool_bytes")).toBe(fits * recordBytes(0));
  // Logged once, when it filled, not once per refused delete.
  expect(first.stderr().match(/delete spool is full/g)?.length).toBe(1);
  client.close();
  expect(await first.stop("SIGTERM")).toBe(0);

  // Damage: a torn last record (a crash mid-write), and a file that is not a spool.
  const log = join(spoolDir, spoolFileName(`${HOST}:${leaf.port}`));
  const torn = new Uint8Array(FRAME_BYTES + 3);
  new DataView(torn.buffer).setUint32(0, 40, true); // says 40 bytes; 3 made it to disk
  appendFileSync(log, torn);
  const foreign = join(spoolDir, spoolFileName("10.9.9.9:1"));
  writeFileSync(foreign, "not a spool at all\n");
  writeConfig(LOWERED_MAX_BYTES);
  leaf.signal("SIGCONT");

  const second = await startRouter(["--port", "0", "--config", file, "--http-port", "0"], COMPILED);
  const [, host2, port2] = (await second.waitForStdout(HTTP_LINE)) as RegExpExecArray;
  const kept = Math.floor(LOWERED_MAX_BYTES / recordBytes(0));
  const overBytes = (fits - kept) * recordBytes(0);
  const stderr = second.stderr();
  expect(stderr).toContain(`dropped ${torn.length} bytes (torn: the record at byte`);
  expect(stderr).toContain("dropped 19 bytes (corrupt: not a delete spool file");
  expect(stderr).toContain(
    `dropped ${overBytes} bytes (over_limit: the spool held more than maxBytes ${LOWERED_MAX_BYTES}: the newest ${fits - kept} deletes went); ${kept} deletes kept for replay`,
  );
  const metrics2 = `http://${host2}:${port2}/metrics`;
  const dropped = (reason: string) =>
    metricValue(metrics2, "gravity_router_spool_dropped_bytes_total", { reason });
  expect(await dropped("torn")).toBe(torn.length);
  expect(await dropped("corrupt")).toBe(19);
  expect(await dropped("over_limit")).toBe(overBytes);
  expect(readdirSync(spoolDir)).toContain(`${spoolFileName("10.9.9.9:1")}.corrupt`);

  // The rest is replayed: the oldest `kept` deletes applied, the dropped ones not.
  await pollUntil(
    async () =>
      (await metricValue(metrics2, "gravity_router_spool_replayed_deletes_total")) === kept
        ? true
        : undefined,
    { deadlineMs: 10_000, what: `${kept} spooled deletes to be replayed` },
  );
  const direct = await McClient.connect(leaf.port);
  for (let i = 0; i < total; i++) {
    const expected = i < kept ? "EN" : "VA 1";
    expect([key(i), await direct.command(`mg ${key(i)} v`)]).toEqual([key(i), expected]);
    if (expected === "VA 1") await direct.readLine();
  }
  direct.close();
  expect(statSync(log).size).toBe(8); // compacted: the header alone
  expect(await second.stop("SIGTERM")).toBe(0);
}, 30_000);

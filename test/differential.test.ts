// Differential run of the transcript corpus: every case that can run over a socket is played
// against real memcached, against a gravity leaf and through a gravity router in front of a leaf
// (source builds). memcached checks the corpus, the corpus checks the leaf and the router: a client
// sending bad input cannot tell them apart. Cases run in file order against one server per side;
// `[leaf-only]` cases (what one server answers for itself, such as `stats`) skip the router.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CorpusCase, loadCorpus, playCase } from "./helpers/corpus.ts";
import {
  HOST,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";

const CORPUS_DIR = join(import.meta.dir, "corpus");
const cases: CorpusCase[] = existsSync(CORPUS_DIR) ? loadCorpus(CORPUS_DIR) : [];
const socketCases = cases.filter((c) => !c.nativeOnly);
const routerCases = socketCases.filter((c) => !c.leafOnly);

// Same limits on every side: 64 MiB of memory, 1 MiB items (memcached's default).
let memcached: Promise<ServerProcess> | undefined;
let leaf: Promise<ServerProcess> | undefined;
let router: Promise<ServerProcess> | undefined;
// LRU: the transcripts were recorded from memcached, whose `stats` has no admissions_rejected
// line (the one reply where the policy shows; leaf.test.ts checks it under tinylfu).
const LEAF_ARGS = ["--port", "0", "--memory", "64mb", "--max-item-size", "1m", "--policy", "lru"];

// A router over a sharded pool of one leaf of its own (so cases keep unique keys per side), with
// memcached's item size limit so it refuses the same values.
async function startRouterSide(): Promise<ServerProcess> {
  const behind = await startLeaf(LEAF_ARGS);
  const file = join(mkdtempSync(join(tmpdir(), "gravity-differential-")), "router.json");
  writeFileSync(
    file,
    JSON.stringify({
      pools: { main: { servers: [`${HOST}:${behind.port}`] } },
      route: { type: "sharded", pool: "main" },
    }),
  );
  return startRouter(["--port", "0", "--config", file, "--max-item-size", "1m"]);
}

const servers = {
  memcached: () => (memcached ??= startMemcached({ memoryMb: 64, maxItemSize: "1m" })),
  leaf: () => (leaf ??= startLeaf(LEAF_ARGS)),
  router: () => (router ??= startRouterSide()),
};

afterAll(stopAll);

test("the corpus exists and has cases that run over a socket", () => {
  expect(existsSync(CORPUS_DIR), `${CORPUS_DIR} is missing`).toBe(true);
  expect(socketCases.length).toBeGreaterThan(0);
  expect(routerCases.length).toBeGreaterThan(0);
});

for (const side of ["memcached", "leaf", "router"] as const) {
  describe(side, () => {
    for (const testCase of side === "router" ? routerCases : socketCases) {
      test(
        `${testCase.file}: ${testCase.name}`,
        async () => {
          // A server that failed to start fails every case with its error.
          const server = await servers[side]();
          const dead = () => `${side} exited with code ${server.exitCode()}: ${server.stderr().trim()}`;
          expect(server.exitCode(), dead()).toBeUndefined();
          const mismatches = await playCase(testCase, { port: server.port });
          expect(server.exitCode(), dead()).toBeUndefined();
          // Each mismatch names the file, line and case.
          expect(mismatches).toEqual([]);
        },
        SERVER_TEST_MS,
      );
    }
  });
}

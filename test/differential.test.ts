// Differential run of the transcript corpus: every case that can run over a socket is played
// against real memcached and against a gravity leaf (source build). memcached checks the corpus,
// the corpus checks the leaf. Cases run in file order against one server per side.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type CorpusCase, loadCorpus, playCase } from "./helpers/corpus.ts";
import { SERVER_TEST_MS, type ServerProcess, startLeaf, startMemcached, stopAll } from "./helpers/servers.ts";

const CORPUS_DIR = join(import.meta.dir, "corpus");
const cases: CorpusCase[] = existsSync(CORPUS_DIR) ? loadCorpus(CORPUS_DIR) : [];
const socketCases = cases.filter((c) => !c.nativeOnly);

// Same limits on both sides: 64 MiB of memory, 1 MiB items (memcached's default).
let memcached: Promise<ServerProcess> | undefined;
let leaf: Promise<ServerProcess> | undefined;
const servers = {
  memcached: () => (memcached ??= startMemcached({ memoryMb: 64, maxItemSize: "1m" })),
  // LRU: the transcripts were recorded from memcached, whose `stats` has no admissions_rejected
  // line (the one reply where the policy shows; leaf.test.ts checks it under tinylfu).
  leaf: () =>
    (leaf ??= startLeaf(["--port", "0", "--memory", "64mb", "--max-item-size", "1m", "--policy", "lru"])),
};

afterAll(stopAll);

test("the corpus exists and has cases that run over a socket", () => {
  expect(existsSync(CORPUS_DIR), `${CORPUS_DIR} is missing`).toBe(true);
  expect(socketCases.length).toBeGreaterThan(0);
});

for (const side of ["memcached", "leaf"] as const) {
  describe(side, () => {
    for (const testCase of socketCases) {
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

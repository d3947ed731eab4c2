// Golden test against the reference: the rings in src/hash/ must send every key to the server that
// real twemproxy (Debian's nutcracker) sends it to.
//
//   keys ──set──> nutcracker ──(its hash + distribution)──> memcached 0..n-1
//   each memcached ──get──> which keys it holds ──> assert == ring.pick(hash(key)) for every key
//
// One case per hash function for ketama (equal weights) and modula (weights 1/2/3), plus ketama
// with weights (including 1/6/6/6/6, where twemproxy's float arithmetic drops 4 points) and with
// server names, and modula with names out of twemproxy's order. A quarter of the keys carry bytes
// >= 0x80, which twemproxy's signed-char hashes widen differently (see src/hash/hash-functions.ts).
//
// GRAVITY_RECORD_FIXTURE=1 also writes test/fixtures/ketama-twemproxy.json (the first FIXTURE_KEYS
// keys of every case) once every case passed; src/hash/*.test.ts check it without servers.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { HashFunctions, type HashName } from "../src/hash/hash-functions.ts";
import { KetamaRing, ketamaServerName } from "../src/hash/ketama.ts";
import { ModulaRing } from "../src/hash/modula.ts";
import type { Ring, RingNode } from "../src/hash/ring.ts";
import { fromLatin1, latin1, McClient } from "./helpers/mc-client.ts";
import { REPO_ROOT, SERVER_TEST_MS, type ServerProcess, startMemcached, stopAll } from "./helpers/servers.ts";
import { startTwemproxy, stopAllTwemproxy } from "./helpers/twemproxy.ts";

const KEY_COUNT = 2000;
const FIXTURE_KEYS = 200;
const FIXTURE_PATH = join(REPO_ROOT, "test/fixtures/ketama-twemproxy.json");
const GET_BATCH = 8; // keys per `get`: 8 keys of <= 250 bytes keep each line under 2 KiB

// xorshift32: the same keys on every run, so the recorded fixture can be regenerated identically.
function keysFromSeed(seed: number, count: number): string[] {
  let state = seed;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const keys = new Set<string>();
  while (keys.size < count) {
    const shape = next() % 8;
    if (shape < 2) {
      keys.add(`key:${keys.size}`);
      continue;
    }
    // Mostly short keys, some up to memcached's 250-byte limit. Bytes are printable ASCII or
    // 0x80..0xff: the high bytes check twemproxy's signed-char widening (see hash-functions.ts).
    const length = shape < 7 ? 1 + (next() % 32) : 33 + (next() % 218);
    const highBytes = shape === 2 || shape === 7;
    let key = "";
    for (let i = 0; i < length; i++) {
      const byte = highBytes && next() % 3 === 0 ? 0x80 + (next() % 128) : 0x21 + (next() % 94);
      key += String.fromCharCode(byte);
    }
    keys.add(key);
  }
  return [...keys];
}

const KEYS = keysFromSeed(0x9e3779b9, KEY_COUNT);

interface Case {
  distribution: "ketama" | "modula";
  hash: HashName;
  weights: number[];
  names?: string[];
}

const ALL_HASHES = Object.keys(HashFunctions) as HashName[];
const CASES: Case[] = [
  ...ALL_HASHES.map((hash): Case => ({ distribution: "ketama", hash, weights: [1, 1, 1] })),
  { distribution: "ketama", hash: "md5", weights: [1, 2, 3] },
  { distribution: "ketama", hash: "fnv1a_64", weights: [1, 2, 3] },
  { distribution: "ketama", hash: "md5", weights: [1, 6, 6, 6, 6] },
  { distribution: "ketama", hash: "fnv1a_64", weights: [1, 6, 6, 6, 6] },
  { distribution: "ketama", hash: "md5", weights: [1, 1, 1], names: ["alpha", "beta", "gamma"] },
  { distribution: "ketama", hash: "fnv1a_64", weights: [3, 1, 2], names: ["cache-a", "cache-b", "cache-c"] },
  ...ALL_HASHES.map((hash): Case => ({ distribution: "modula", hash, weights: [1, 2, 3] })),
  // twemproxy lays modula slots out in its name order (mid, zeta, alpha), not the config order.
  { distribution: "modula", hash: "fnv1a_64", weights: [1, 2, 3], names: ["zeta", "alpha", "mid"] },
];

function caseTitle(c: Case): string {
  const names = c.names === undefined ? "" : ` names ${c.names.join("/")}`;
  return `${c.distribution} ${c.hash} weights ${c.weights.join("/")}${names}`;
}

/** One recorded case: the ring inputs and, per fixture key, the index of the server holding it. */
interface RecordedCase {
  distribution: Case["distribution"];
  hash: HashName;
  servers: RingNode[];
  owners: string;
}
const recorded: RecordedCase[] = [];

// Sends every set in one write and checks that each got STORED.
async function setAll(port: number, keys: readonly string[]): Promise<void> {
  const client = await McClient.connect(port);
  try {
    await client.send(keys.map((key) => `set ${key} 0 0 1\r\nx\r\n`).join(""));
    const replies = await client.readLines(keys.length);
    const failed = replies.flatMap((reply, i) => (reply === "STORED" ? [] : [`${keys[i]}: ${reply}`]));
    expect(failed).toEqual([]);
  } finally {
    client.close();
  }
}

// The subset of `keys` that the memcached on `port` holds (pipelined multi-key gets).
async function keysHeld(port: number, keys: readonly string[]): Promise<Set<string>> {
  const client = await McClient.connect(port);
  try {
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += GET_BATCH) batches.push(keys.slice(i, i + GET_BATCH));
    await client.send(batches.map((batch) => `get ${batch.join(" ")}\r\n`).join(""));
    const held = new Set<string>();
    for (let i = 0; i < batches.length; i++) {
      const reply = fromLatin1(await client.readThroughLine("END"));
      for (const match of reply.matchAll(/^VALUE ([^ ]+) \d+ \d+\r$/gm)) held.add(match[1] as string);
    }
    return held;
  } finally {
    client.close();
  }
}

afterAll(async () => {
  try {
    await stopAllTwemproxy();
  } finally {
    await stopAll();
  }
  if (process.env.GRAVITY_RECORD_FIXTURE === "1" && recorded.length === CASES.length) {
    const fixture = {
      about:
        "Recorded by test/ketama-twemproxy.test.ts (GRAVITY_RECORD_FIXTURE=1) from Debian's nutcracker " +
        "on x86-64. keys are latin1 (one character per byte); owners[i] is the index of the server " +
        "that held keys[i]; servers[].name is the identity twemproxy hashed.",
      keys: KEYS.slice(0, FIXTURE_KEYS),
      cases: recorded,
    };
    mkdirSync(dirname(FIXTURE_PATH), { recursive: true });
    writeFileSync(FIXTURE_PATH, `${JSON.stringify(fixture, null, 2)}\n`);
  }
});

describe("KetamaRing and ModulaRing against twemproxy", () => {
  for (const c of CASES) {
    test(
      caseTitle(c),
      async () => {
        const memcacheds: ServerProcess[] = await Promise.all(c.weights.map(() => startMemcached()));
        try {
          const proxy = await startTwemproxy({
            hash: c.hash,
            distribution: c.distribution,
            servers: memcacheds.map((server, i) => ({
              host: server.host,
              port: server.port,
              weight: c.weights[i] as number,
              name: c.names?.[i],
            })),
          });
          try {
            await setAll(proxy.port, KEYS);
          } finally {
            await proxy.stop();
          }

          const held = await Promise.all(memcacheds.map((server) => keysHeld(server.port, KEYS)));
          const nodes: RingNode[] = memcacheds.map((server, i) => ({
            name: ketamaServerName(server.host, server.port, c.names?.[i]),
            weight: c.weights[i] as number,
          }));
          const ring: Ring = c.distribution === "ketama" ? new KetamaRing(nodes) : new ModulaRing(nodes);
          const hash = HashFunctions[c.hash];

          const actual: number[] = [];
          const problems: string[] = [];
          for (const key of KEYS) {
            const holders = held.flatMap((keys, i) => (keys.has(key) ? [i] : []));
            if (holders.length !== 1) problems.push(`${JSON.stringify(key)} is on servers [${holders}]`);
            const expected = holders[0] ?? -1;
            actual.push(expected);
            const picked = ring.pick(hash(latin1(key)));
            if (picked !== expected) {
              problems.push(`${JSON.stringify(key)}: twemproxy chose server ${expected}, the ring ${picked}`);
            }
          }
          expect(problems.slice(0, 10)).toEqual([]);
          expect(problems.length).toBe(0);
          // Every server got keys, so the comparison covers them all; except that ketama over
          // crc32 (15-bit values, all below the first point) sends every key to one server, in
          // twemproxy as here.
          const used = new Set(actual).size;
          expect(used).toBe(c.distribution === "ketama" && c.hash === "crc32" ? 1 : c.weights.length);

          recorded.push({
            distribution: c.distribution,
            hash: c.hash,
            servers: nodes,
            owners: actual.slice(0, FIXTURE_KEYS).join(""),
          });
        } finally {
          // SIGKILL: memcached's graceful SIGTERM shutdown takes about a second, and nothing here
          // needs it.
          await Promise.all(memcacheds.map((server) => server.stop("SIGKILL")));
        }
      },
      SERVER_TEST_MS,
    );
  }
});

import { describe, expect, test } from "bun:test";
import fixture from "../../test/fixtures/ketama-twemproxy.json";
import { HashFunctions, hashFnv1a_64, hashMd5, isHashName, md5Words } from "./hash-functions.ts";
import { KETAMA_POINTS_PER_SERVER, KetamaRing, ketamaPointCounts, ketamaServerName } from "./ketama.ts";
import type { RingNode } from "./ring.ts";

// xorshift32: deterministic test inputs.
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

const encoder = new TextEncoder();
const keyBytes = (count: number) => Array.from({ length: count }, (_, i) => encoder.encode(`key:${i}`));

// The model: scan every point in order for the first one >= hash, wrapping to the first.
function naivePick(ring: KetamaRing, hash: number): number {
  const { values, owners } = ring.continuum();
  for (let i = 0; i < values.length; i++) if ((values[i] as number) >= hash) return owners[i] as number;
  return owners[0] as number;
}

const nodes = (weights: readonly number[], prefix = "10.0.0.") =>
  weights.map((weight, i): RingNode => ({ name: `${prefix}${i + 1}:11211`, weight }));

describe("ketama points", () => {
  test("160 points per server at equal weights, scaled by weight with twemproxy's float rounding", () => {
    expect(ketamaPointCounts([1, 1, 1])).toEqual([160, 160, 160]);
    expect(ketamaPointCounts([7])).toEqual([160]);
    expect(ketamaPointCounts([1, 2, 3])).toEqual([80, 160, 240]);
    // Exact arithmetic gives 32 and 192; single-precision floats land just below the integers.
    expect(ketamaPointCounts([1, 6, 6, 6, 6])).toEqual([28, 188, 188, 188, 188]);
    // A weight too small for one digest gets no points (and no keys), as in twemproxy.
    expect(ketamaPointCounts([1, 1000, 1000])).toEqual([0, 236, 236]);
  });

  test('the continuum holds each node\'s points, 4 per md5 of "<name>-<j>", sorted', () => {
    const ring = new KetamaRing(nodes([1, 2, 3]));
    const { values, owners } = ring.continuum();
    expect(values.length).toBe(80 + 160 + 240);
    for (let i = 1; i < values.length; i++)
      expect(values[i - 1] as number).toBeLessThanOrEqual(values[i] as number);
    expect([0, 1, 2].map((node) => owners.filter((owner) => owner === node).length)).toEqual([80, 160, 240]);

    const words = new Uint32Array(4);
    const pointsOf = (owner: number) => new Set([...values].filter((_, i) => owners[i] === owner));
    md5Words(encoder.encode("10.0.0.2:11211-0"), words);
    for (const word of words) expect(pointsOf(1).has(word)).toBe(true);
    md5Words(encoder.encode("10.0.0.3:11211-59"), words); // node 3's last digest (240 / 4 - 1)
    for (const word of words) expect(pointsOf(2).has(word)).toBe(true);
    md5Words(encoder.encode("10.0.0.3:11211-60"), words);
    for (const word of words) expect(pointsOf(2).has(word)).toBe(false);
  });

  test("server names: the configured name, else host, plus :port unless it is 11211", () => {
    expect(ketamaServerName("10.0.0.1", 11211)).toBe("10.0.0.1");
    expect(ketamaServerName("10.0.0.1", 11212)).toBe("10.0.0.1:11212");
    expect(ketamaServerName("10.0.0.1", 11211, "cache-a")).toBe("cache-a");
  });
});

describe("KetamaRing.pick", () => {
  test("matches a linear scan of the continuum, at and around every point and at random", () => {
    const next = random(0x1234567);
    const shapes = [
      [1],
      [1, 1, 1],
      [1, 2, 3],
      [1, 6, 6, 6, 6],
      Array.from({ length: 12 }, () => 1 + (next() % 9)),
    ];
    for (const weights of shapes) {
      const ring = new KetamaRing(nodes(weights));
      const hashes = [0, 1, 0xfffffffe, 0xffffffff];
      for (const value of ring.continuum().values)
        hashes.push(value, Math.max(0, value - 1), Math.min(0xffffffff, value + 1));
      for (let i = 0; i < 5000; i++) hashes.push(next());
      for (const hash of hashes) {
        const picked = ring.pick(hash);
        if (picked !== naivePick(ring, hash)) {
          throw new Error(
            `weights ${weights}: pick(${hash}) = ${picked}, linear scan ${naivePick(ring, hash)}`,
          );
        }
      }
    }
  });

  test("a hash past the last point wraps to the first point's node", () => {
    const ring = new KetamaRing(nodes([1, 1, 1]));
    const { values, owners } = ring.continuum();
    const last = values[values.length - 1] as number;
    expect(last).toBeLessThan(0xffffffff);
    expect(ring.pick(last + 1)).toBe(owners[0] as number);
    expect(ring.pick(0xffffffff)).toBe(owners[0] as number);
    expect(ring.pick(last)).toBe(owners[values.length - 1] as number);
  });

  test("removing one of N nodes moves only that node's keys, about 1/N of them", () => {
    const all = nodes(Array.from({ length: 10 }, () => 1));
    const removed = 3;
    const before = new KetamaRing(all);
    const after = new KetamaRing(all.filter((_, i) => i !== removed));
    let moved = 0;
    const keys = keyBytes(20_000);
    for (const key of keys) {
      const hash = hashFnv1a_64(key);
      const wasOn = all[before.pick(hash)]?.name;
      const isOn = all.filter((_, i) => i !== removed)[after.pick(hash)]?.name;
      if (wasOn === all[removed]?.name) {
        expect(isOn).not.toBe(wasOn);
        moved++;
      } else {
        expect(isOn).toBe(wasOn);
      }
    }
    expect(moved / keys.length).toBeGreaterThan(0.05);
    expect(moved / keys.length).toBeLessThan(0.15);
  });

  test("a node's share of keys follows its weight", () => {
    const weights = [1, 2, 3, 4];
    const ring = new KetamaRing(nodes(weights));
    const counts = [0, 0, 0, 0];
    const keys = keyBytes(40_000);
    for (const key of keys) {
      const index = ring.pick(hashFnv1a_64(key));
      counts[index] = (counts[index] as number) + 1;
    }
    weights.forEach((weight, i) => {
      const ratio = (counts[i] as number) / keys.length / (weight / 10);
      if (ratio < 0.75 || ratio > 1.25) throw new Error(`weight ${weight}: share ratio ${ratio} (${counts})`);
    });
  });

  test("an empty ring picks -1; a rebuild replaces the nodes", () => {
    const ring = new KetamaRing();
    expect(ring.size).toBe(0);
    expect(ring.pick(12345)).toBe(-1);
    ring.build(nodes([1, 1]));
    expect(ring.size).toBe(2);
    expect([0, 1]).toContain(ring.pick(12345));
    ring.build([]);
    expect(ring.pick(12345)).toBe(-1);
  });

  test("bad nodes are refused with the node named", () => {
    expect(() => new KetamaRing([{ name: "a", weight: 0 }])).toThrow(/ring node 0 \(a\): weight/);
    expect(
      () =>
        new KetamaRing([
          { name: "a", weight: 1 },
          { name: "b", weight: 1.5 },
        ]),
    ).toThrow(/ring node 1/);
    expect(() => new KetamaRing([{ name: "", weight: 1 }])).toThrow(/name/);
  });
});

// Ring balance and movement as a router pool sees them: equal weights, the default 160 points per
// server, md5 key hashes (a pool's default hash, POOL_DEFAULTS in src/router/config.ts), servers
// named as ketamaServerName names them. Keys are "key:<i>" for i < 1M.
describe("distribution with the default points and md5 keys", () => {
  const KEY_COUNT = 1_000_000;
  const TIMEOUT_MS = 60_000; // 1M md5 hashes and 2M picks per case; the machine may be loaded
  let hashes: Uint32Array | undefined;
  const keyHashes = (): Uint32Array => {
    if (hashes === undefined) {
      hashes = new Uint32Array(KEY_COUNT);
      for (let i = 0; i < KEY_COUNT; i++) hashes[i] = hashMd5(encoder.encode(`key:${i}`));
    }
    return hashes;
  };

  const families = {
    // Port 11211 is left out of the ketama name: "10.0.0.1", "10.0.0.2", ...
    "10.0.0.<i>:11211": (i: number) => ketamaServerName(`10.0.0.${i + 1}`, 11211),
    // Local instances on consecutive ports: "127.0.0.1", "127.0.0.1:11212", ...
    "127.0.0.1:<11211 + i>": (i: number) => ketamaServerName("127.0.0.1", 11211 + i),
  } as const;
  type Family = keyof typeof families;
  const ring = (family: Family, count: number) =>
    new KetamaRing(Array.from({ length: count }, (_, i) => ({ name: families[family](i), weight: 1 })));

  // max/mean keys per node, measured over the 1M keys. ketama's balance is the continuum's: 160
  // random points per server give each one an arc of about 1/N +- 8%, so the largest of N arcs is
  // often more than 10% over the mean; twemproxy and libmemcached spread keys exactly as unevenly.
  // Where the figure is at most 1.10 the test asserts that; the rest it pins, so a change to the
  // points (and so to twemproxy compatibility) shows up here as well as in the golden mappings.
  const cases: { family: Family; count: number; maxOverMean: number }[] = [
    { family: "10.0.0.<i>:11211", count: 3, maxOverMean: 1.1438 },
    { family: "10.0.0.<i>:11211", count: 5, maxOverMean: 1.148 },
    { family: "10.0.0.<i>:11211", count: 10, maxOverMean: 1.0893 },
    { family: "10.0.0.<i>:11211", count: 20, maxOverMean: 1.1165 },
    { family: "127.0.0.1:<11211 + i>", count: 3, maxOverMean: 1.0512 },
    { family: "127.0.0.1:<11211 + i>", count: 5, maxOverMean: 1.0702 },
    { family: "127.0.0.1:<11211 + i>", count: 10, maxOverMean: 1.1415 },
    { family: "127.0.0.1:<11211 + i>", count: 20, maxOverMean: 1.1666 },
  ];

  test("every node has 160 points at each of these sizes (and one more)", () => {
    for (const count of [3, 4, 5, 6, 10, 11, 20, 21]) {
      expect(ketamaPointCounts(Array.from({ length: count }, () => 1))).toEqual(
        Array.from({ length: count }, () => KETAMA_POINTS_PER_SERVER),
      );
    }
  });

  for (const { family, count, maxOverMean } of cases) {
    const bound = maxOverMean <= 1.1 ? "at most 1.10" : `${maxOverMean} (over 1.10: ketama's spread)`;
    test(
      `${count} x ${family}: max/mean keys per node ${bound}, as each node's arc of the continuum predicts`,
      () => {
        const all = keyHashes();
        const nodes = ring(family, count);
        const counts = new Array<number>(count).fill(0);
        for (const hash of all) {
          const node = nodes.pick(hash);
          counts[node] = (counts[node] as number) + 1;
        }
        // Each node's share of the hash space: the arc from the point before each of its points.
        const { values, owners } = nodes.continuum();
        const arcs = new Array<number>(count).fill(0);
        for (let i = 0; i < values.length; i++) {
          const previous =
            i === 0 ? (values[values.length - 1] as number) - 2 ** 32 : (values[i - 1] as number);
          const owner = owners[i] as number;
          arcs[owner] = (arcs[owner] as number) + (values[i] as number) - previous;
        }
        // The keys follow the arcs (1M keys: a share's sampling error is under 0.001), so the
        // imbalance below is the continuum's, not the sample's.
        counts.forEach((keys, node) => {
          const share = keys / KEY_COUNT;
          const arc = (arcs[node] as number) / 2 ** 32;
          if (Math.abs(share - arc) > 0.002) throw new Error(`node ${node}: ${share} of keys, arc ${arc}`);
        });
        const measured = Math.max(...counts) / (KEY_COUNT / count);
        expect(measured).toBeCloseTo(maxOverMean, 4);
        if (maxOverMean <= 1.1) expect(measured).toBeLessThanOrEqual(1.1);
      },
      TIMEOUT_MS,
    );

    test(
      `${count} x ${family}: adding node ${count + 1} moves 1/${count + 1} of the keys (within 20%), all onto it`,
      () => {
        const all = keyHashes();
        const before = ring(family, count);
        const after = ring(family, count + 1);
        let moved = 0;
        let strays = 0;
        for (const hash of all) {
          const was = before.pick(hash);
          const is = after.pick(hash);
          if (is === was) continue;
          moved++;
          if (is !== count) strays++; // node indexes 0..count-1 name the same servers in both rings
        }
        expect(strays).toBe(0);
        const expected = KEY_COUNT / (count + 1);
        expect(moved).toBeGreaterThanOrEqual(expected * 0.8);
        expect(moved).toBeLessThanOrEqual(expected * 1.2);
      },
      TIMEOUT_MS,
    );
  }
});

describe("recorded twemproxy mappings (test/fixtures/ketama-twemproxy.json)", () => {
  const keys = fixture.keys.map((key) => Uint8Array.from(key, (char) => char.charCodeAt(0)));
  const cases = fixture.cases.filter((c) => c.distribution === "ketama");

  test("the fixture has ketama cases for every hash function", () => {
    expect(new Set(cases.map((c) => c.hash))).toEqual(new Set(Object.keys(HashFunctions)));
  });

  for (const c of cases) {
    const title = `${c.hash}, ${c.servers.map((s) => `${s.name}:${s.weight}`).join(" ")}`;
    test(title, () => {
      if (!isHashName(c.hash)) throw new Error(`unknown hash ${c.hash}`);
      const hash = HashFunctions[c.hash];
      const ring = new KetamaRing(c.servers);
      const picked = keys.map((key) => ring.pick(hash(key))).join("");
      expect(picked).toBe(c.owners);
    });
  }
});

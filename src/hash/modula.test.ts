import { describe, expect, test } from "bun:test";
import fixture from "../../test/fixtures/ketama-twemproxy.json";
import { HashFunctions, isHashName } from "./hash-functions.ts";
import { ModulaRing, twemproxyServerOrder } from "./modula.ts";

describe("ModulaRing", () => {
  test("each node owns `weight` consecutive slots of hash % total weight", () => {
    const ring = new ModulaRing([
      { name: "a", weight: 1 },
      { name: "b", weight: 2 },
      { name: "c", weight: 3 },
    ]);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((hash) => ring.pick(hash))).toEqual([0, 1, 1, 2, 2, 2, 0, 1]);
    expect(ring.pick(0xffffffff)).toBe(2); // 0xffffffff % 6 = 3
    expect(ring.size).toBe(3);
  });

  test("slots follow twemproxy's server order (shorter names first, then bytewise), not the given order", () => {
    const nodes = [
      { name: "zeta", weight: 1 },
      { name: "alpha", weight: 1 },
      { name: "mid", weight: 1 },
      { name: "b", weight: 1 },
    ];
    expect(twemproxyServerOrder(nodes)).toEqual([3, 2, 0, 1]);
    const ring = new ModulaRing(nodes);
    expect([0, 1, 2, 3].map((hash) => ring.pick(hash))).toEqual([3, 2, 0, 1]);
    expect(
      twemproxyServerOrder([
        { name: "10.0.0.1:9", weight: 1 },
        { name: "10.0.0.1:10", weight: 1 },
      ]),
    ).toEqual([0, 1]);
  });

  test("an empty ring picks -1; bad weights are refused", () => {
    expect(new ModulaRing().pick(7)).toBe(-1);
    expect(() => new ModulaRing([{ name: "a", weight: -1 }])).toThrow(/ring node 0 \(a\): weight/);
    expect(() => new ModulaRing([{ name: "a", weight: 2 ** 25 }])).toThrow(/weight/);
  });
});

describe("recorded twemproxy mappings (test/fixtures/ketama-twemproxy.json)", () => {
  const keys = fixture.keys.map((key) => Uint8Array.from(key, (char) => char.charCodeAt(0)));
  const cases = fixture.cases.filter((c) => c.distribution === "modula");

  test("the fixture has modula cases for every hash function", () => {
    expect(new Set(cases.map((c) => c.hash))).toEqual(new Set(Object.keys(HashFunctions)));
  });

  for (const c of cases) {
    const title = `${c.hash}, ${c.servers.map((s) => `${s.name}:${s.weight}`).join(" ")}`;
    test(title, () => {
      if (!isHashName(c.hash)) throw new Error(`unknown hash ${c.hash}`);
      const hash = HashFunctions[c.hash];
      const ring = new ModulaRing(c.servers);
      const picked = keys.map((key) => ring.pick(hash(key))).join("");
      expect(picked).toBe(c.owners);
    });
  }
});

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { decodeMember, encodeMember, memberKey } from "./etcd-keys.ts";
import { embeddedProto } from "./etcd3-module.ts";
import { parseAddr, sameMembers, sortMembers } from "./membership.ts";
import { Backoff, OutageReporter } from "./retry.ts";
import { StaticMembership } from "./static-membership.ts";

describe("member values", () => {
  test("encode then decode gives the member back", () => {
    const member = { id: "leaf-1", addr: "[::1]:11211", weight: 4, zone: "z", version: "1.2.3" };
    expect(decodeMember("leaf-1", encodeMember(member))).toEqual(member);
    expect(decodeMember("l", encodeMember({ addr: "h:1", weight: 1 }))).toEqual({
      id: "l",
      addr: "h:1",
      weight: 1,
    });
  });

  test("weight defaults to 1; anything else wrong is named", () => {
    expect(decodeMember("l", '{"addr":"10.0.0.1:11211"}')).toEqual({
      id: "l",
      addr: "10.0.0.1:11211",
      weight: 1,
    });
    expect(decodeMember("l", "{")).toBe("value is not JSON");
    expect(decodeMember("l", "[1]")).toBe("value is not a JSON object");
    expect(decodeMember("l", "null")).toBe("value is not a JSON object");
    expect(decodeMember("l", '{"addr":"host"}')).toBe('addr: expected "host:port"');
    expect(decodeMember("l", '{"addr":"h:0"}')).toBe('addr: expected "host:port"');
    expect(decodeMember("l", '{"addr":"h:1","weight":1.5}')).toBe("weight: expected a positive integer");
    expect(decodeMember("l", '{"addr":"h:1","zone":3}')).toBe("zone: expected a string");
    expect(decodeMember("l", '{"addr":"h:1","version":false}')).toBe("version: expected a string");
    expect(decodeMember("a/b", '{"addr":"h:1"}')).toBe('leaf id "a/b" is not one key segment');
  });

  test("keys", () => {
    expect(memberKey("/g//", "p", "l")).toBe("/g/pools/p/l");
    expect(memberKey("", "p", "l")).toBe("/pools/p/l");
  });
});

test("parseAddr", () => {
  expect(parseAddr("127.0.0.1:11211")).toEqual({ host: "127.0.0.1", port: 11211 });
  expect(parseAddr("[fe80::1]:80")).toEqual({ host: "fe80::1", port: 80 });
  expect(parseAddr("cache-3.example:65535")).toEqual({ host: "cache-3.example", port: 65535 });
  for (const bad of ["host", ":1", "h:65536", "h:0", "::1:80", "h :1", "h:1x"])
    expect(parseAddr(bad)).toBeUndefined();
});

test("sortMembers and sameMembers", () => {
  const a = { id: "a", addr: "h:1", weight: 1 };
  const b = { id: "b", addr: "h:2", weight: 1 };
  expect(sortMembers([b, a])).toEqual([a, b]);
  expect(sameMembers([a, b], [{ ...a }, { ...b }])).toBe(true);
  expect(sameMembers([a, b], [a, { ...b, weight: 2 }])).toBe(false);
  expect(sameMembers([a, b], [a, { ...b, zone: "z" }])).toBe(false);
  expect(sameMembers([a], [a, b])).toBe(false);
});

test("StaticMembership keeps the order given and never changes", async () => {
  const members = [
    { id: "b", addr: "h:2", weight: 1 },
    { id: "a", addr: "h:1", weight: 1 },
  ];
  const membership = new StaticMembership(members);
  await membership.start();
  expect(membership.current()).toEqual(members);
  membership.onChange(() => {
    throw new Error("a static membership changed");
  })();
  await membership.stop();
});

describe("Backoff", () => {
  test("doubles up to the cap, with +-20% jitter, and reset starts over", () => {
    const low = new Backoff(100, 1000, () => 0);
    expect([1, 2, 3, 4, 5, 6].map(() => low.next())).toEqual([80, 160, 320, 640, 800, 800]);
    low.reset();
    expect(low.next()).toBe(80);
    const high = new Backoff(100, 1000, () => 1);
    expect([1, 2, 3, 4, 5].map(() => high.next())).toEqual([120, 240, 480, 960, 1200]);
  });
});

test("OutageReporter logs the first failure and the recovery only", () => {
  const lines: string[] = [];
  const outage = new OutageReporter((line) => lines.push(line));
  outage.recovered("not in an outage: silent");
  outage.failed("down 1");
  outage.failed("down 2");
  expect(outage.inOutage).toBe(true);
  outage.recovered("up 1");
  outage.recovered("up 2");
  outage.failed("down 3");
  expect(lines).toEqual(["down 1", "up 1", "down 3"]);
});

test("the embedded etcd3 .proto files are the ones etcd3 ships", () => {
  const dir = resolve(import.meta.dir, "../../node_modules/etcd3/proto");
  for (const name of ["rpc.proto", "kv.proto", "auth.proto"]) {
    const path = `${dir}/${name}`;
    expect(embeddedProto(path)).toBe(readFileSync(path, "utf8"));
  }
  expect(embeddedProto("/somewhere/etcd3/proto/other.proto")).toBeUndefined();
  expect(embeddedProto("/somewhere/else/rpc.proto")).toBeUndefined();
});

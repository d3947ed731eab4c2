import { expect, test } from "bun:test";
import {
  checkPrefix,
  ingressKeySubject,
  ingressSubject,
  isSubjectKey,
  leafSubject,
  poolSubject,
  subjectToken,
  tokenName,
} from "./nats-subjects.ts";

test("names become one subject token and come back unchanged", () => {
  for (const name of ["main", "127.0.0.1:11211", "a b", "x*y>z", "100%", "zürich", "under_score-dash"]) {
    const token = subjectToken(name);
    expect(token).toMatch(/^[A-Za-z0-9_:%-]+$/);
    expect(tokenName(token)).toBe(name);
  }
  expect(subjectToken("127.0.0.1:11211")).toBe("127%2E0%2E0%2E1:11211");
  expect(() => subjectToken("")).toThrow(RangeError);
});

test("the subjects of the interface", () => {
  expect(leafSubject("gravity", "main", "leaf-1")).toBe("gravity.leaf.main.leaf-1");
  expect(poolSubject("gravity", "main")).toBe("gravity.pool.main.all");
  expect(ingressSubject("a.b", "users")).toBe("a.b.ingress.users");
  expect(ingressKeySubject("gravity", "users", "user.42")).toBe("gravity.ingress.users.user.42");
});

test("keys a subject cannot carry go in a header", () => {
  for (const key of ["a b", "a..b", ".a", "a.", "a.*.b", ">", "tab\there", ""]) {
    expect(isSubjectKey(key)).toBe(false);
    expect(ingressKeySubject("gravity", "users", key)).toBeUndefined();
  }
  for (const key of ["a", "a.b.c", "user:42", "a*b", "ünïcode"]) expect(isSubjectKey(key)).toBe(true);
});

test("a prefix with wildcards, spaces or empty tokens is refused", () => {
  for (const prefix of ["", "a..b", "a.*", ">", "a b"]) expect(() => checkPrefix(prefix)).toThrow(RangeError);
  expect(checkPrefix("gravity.prod")).toBe("gravity.prod");
});

import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { BearerTokens } from "./tokens.ts";

function file(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "gravity-tokens-")), "tokens");
  writeFileSync(path, text);
  return path;
}

test("accepts exactly the listed tokens, as Bearer credentials", () => {
  const tokens = BearerTokens.fromFile(file("# ops\nalpha\n\n  beta  \n"));
  expect(tokens.accepts("Bearer alpha")).toBe(true);
  expect(tokens.accepts("bearer beta")).toBe(true);
  for (const header of [
    null,
    undefined,
    "",
    "alpha",
    "Bearer",
    "Bearer alph",
    "Bearer alpha2",
    "Basic alpha",
    "Bearer # ops",
  ]) {
    expect(tokens.accepts(header)).toBe(false);
  }
});

test("an empty or unreadable file is a usage error naming the flag", () => {
  expect(() => BearerTokens.fromFile(file("# nothing\n\n"))).toThrow(UsageError);
  expect(() => BearerTokens.fromFile(file("# nothing\n"))).toThrow(/--auth-token-file: .* holds no token/);
  expect(() => BearerTokens.fromFile("/nonexistent/tokens")).toThrow(/--auth-token-file: cannot read/);
});

// The credential readers' errors name the option at fault (and, for a pair, the one missing), and a
// flag's loader turns them into the flag's UsageError.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { CredentialError, readClientTlsFiles, requireBoth, withFlagNames } from "./secret-files.ts";

const dir = mkdtempSync(join(tmpdir(), "gravity-secret-files-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pem = join(dir, "cert.pem");
writeFileSync(pem, "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");

function credentialError(run: () => unknown): CredentialError {
  try {
    run();
  } catch (error) {
    if (error instanceof CredentialError) return error;
    throw error;
  }
  throw new Error("expected a CredentialError");
}

test("requireBoth: the option given is at fault, the other is missing", () => {
  const pair = ["a user", "a password file"] as const;
  const noPassword = credentialError(() =>
    requireBoth({ user: "u", passwordFile: "" }, "user", "passwordFile", pair),
  );
  expect([noPassword.field, noPassword.missing, noPassword.message]).toEqual([
    "user",
    "passwordFile",
    "needs a password file too",
  ]);
  const noUser = credentialError(() =>
    requireBoth({ user: undefined, passwordFile: "p" }, "user", "passwordFile", pair),
  );
  expect([noUser.field, noUser.missing, noUser.message]).toEqual([
    "passwordFile",
    "user",
    "needs a user too",
  ]);
  requireBoth({ user: "u", passwordFile: "p" }, "user", "passwordFile", pair);
  requireBoth({ user: "", passwordFile: undefined }, "user", "passwordFile", pair);
});

test("readClientTlsFiles: a cert without its key, an unreadable file", () => {
  const noKey = credentialError(() => readClientTlsFiles({ cert: pem }));
  expect([noKey.field, noKey.missing]).toEqual(["cert", "key"]);
  const unreadable = credentialError(() => readClientTlsFiles({ ca: join(dir, "gone.pem") }));
  expect([unreadable.field, unreadable.missing]).toEqual(["ca", undefined]);
  expect(unreadable.message).toContain("cannot read");
  expect(readClientTlsFiles({ ca: pem, cert: pem, key: pem }).key).toContain("BEGIN CERTIFICATE");
});

test("withFlagNames: a CredentialError becomes a UsageError naming the flag; other errors pass", () => {
  const flags = { cert: "--x-cert", key: "--x-key", ca: "--x-ca" };
  expect(() => withFlagNames(flags, () => readClientTlsFiles({ key: pem }))).toThrow(
    new UsageError("--x-key: needs the client certificate too"),
  );
  expect(() =>
    withFlagNames(flags, () => {
      throw new RangeError("not a credential");
    }),
  ).toThrow(RangeError);
  expect(withFlagNames(flags, () => 7)).toBe(7);
});

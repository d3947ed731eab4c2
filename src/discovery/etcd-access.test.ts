import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialError } from "../security/secret-files.ts";
import { type EtcdAccessFiles, loadEtcdAccess } from "./etcd-access.ts";

const dir = mkdtempSync(join(tmpdir(), "gravity-etcd-access-"));
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const pem = join(dir, "ca.pem");
const password = join(dir, "password");
writeFileSync(pem, PEM);
writeFileSync(password, "s3cret\r\nignored second line\n");

const HTTPS = ["https://127.0.0.1:2379"];

function refusal(files: EtcdAccessFiles): { field: string; message: string } {
  try {
    loadEtcdAccess(files);
  } catch (error) {
    if (error instanceof CredentialError) return { field: error.field, message: error.message };
    throw error;
  }
  throw new Error("loadEtcdAccess accepted it");
}

test("plain endpoints without credentials need nothing; https alone verifies against the system roots", () => {
  expect(loadEtcdAccess({ endpoints: ["127.0.0.1:2379"] })).toEqual({ endpoints: ["127.0.0.1:2379"] });
  expect(loadEtcdAccess({ endpoints: HTTPS, ca: "", cert: "" })).toEqual({ endpoints: HTTPS, tls: {} });
});

test("the files are read: PEM as text, the password as its first line without the line ending", () => {
  expect(
    loadEtcdAccess({ endpoints: HTTPS, ca: pem, cert: pem, key: pem, username: "u", passwordFile: password }),
  ).toEqual({
    endpoints: HTTPS,
    tls: { ca: PEM, cert: PEM, key: PEM },
    auth: { username: "u", password: "s3cret" },
  });
});

test("each combination that cannot work names its option, never the password", () => {
  expect(refusal({ endpoints: [...HTTPS, "http://127.0.0.1:2380"] }).field).toBe("endpoints");
  expect(refusal({ endpoints: ["http://127.0.0.1:2379"], ca: pem })).toEqual({
    field: "ca",
    message: "needs https:// etcd endpoints (TLS)",
  });
  expect(refusal({ endpoints: HTTPS, cert: pem }).field).toBe("cert");
  expect(refusal({ endpoints: HTTPS, key: pem }).field).toBe("key");
  expect(refusal({ endpoints: HTTPS, ca: password }).message).toBe(
    `${JSON.stringify(password)} is not a PEM file`,
  );
  expect(refusal({ endpoints: HTTPS, ca: join(dir, "none") }).message).toContain("(ENOENT)");
  expect(refusal({ endpoints: HTTPS, username: "u" }).field).toBe("username");
  expect(refusal({ endpoints: HTTPS, passwordFile: password }).field).toBe("passwordFile");
  const message = JSON.stringify(refusal({ endpoints: HTTPS, ca: password }));
  expect(message).not.toContain("s3cret");
});

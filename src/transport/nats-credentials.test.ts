import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeys } from "nats";
import { CredentialError } from "../security/secret-files.ts";
import { loadNatsCredentials, type NatsCredentialFiles, natsConnectionOptions } from "./nats-credentials.ts";

const dir = mkdtempSync(join(tmpdir(), "gravity-nats-credentials-"));
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
const pem = file("ca.pem", PEM);
const secret = file("secret", "s3cret\n");
const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
const seedFile = file("user.nk", `${seed}\n`);
const SERVERS = ["127.0.0.1:4222"];

function refusal(files: NatsCredentialFiles): { field: string; message: string } {
  try {
    loadNatsCredentials(files);
  } catch (error) {
    if (error instanceof CredentialError) return { field: error.field, message: error.message };
    throw error;
  }
  throw new Error("loadNatsCredentials accepted it");
}

test("TLS is on for a tls:// server or a CA or certificate, and off otherwise", () => {
  expect(loadNatsCredentials({ servers: SERVERS })).toEqual({});
  expect(loadNatsCredentials({ servers: ["tls://127.0.0.1:4222"] })).toEqual({ tls: {} });
  expect(loadNatsCredentials({ servers: SERVERS, ca: pem, cert: pem, key: pem })).toEqual({
    tls: { ca: PEM, cert: PEM, key: PEM },
  });
});

test("each way to authenticate becomes nats.js's option for it", () => {
  const user = loadNatsCredentials({ servers: SERVERS, user: "u", passwordFile: secret });
  expect(natsConnectionOptions(user)).toEqual({ user: "u", pass: "s3cret" });
  const token = loadNatsCredentials({ servers: SERVERS, tokenFile: secret });
  expect(natsConnectionOptions(token)).toEqual({ token: "s3cret" });
  const nkey = loadNatsCredentials({ servers: SERVERS, nkeyFile: seedFile });
  expect(nkey).toEqual({ nkeySeed: seed });
  expect(typeof natsConnectionOptions(nkey).authenticator).toBe("function");
});

test("each combination that cannot work names its option, never a secret", () => {
  expect(refusal({ servers: SERVERS, cert: pem }).field).toBe("cert");
  expect(refusal({ servers: SERVERS, key: pem }).field).toBe("key");
  expect(refusal({ servers: SERVERS, user: "u" }).field).toBe("user");
  expect(refusal({ servers: SERVERS, passwordFile: secret }).field).toBe("passwordFile");
  expect(refusal({ servers: SERVERS, tokenFile: secret, nkeyFile: seedFile })).toEqual({
    field: "nkeyFile",
    message: "only one way to authenticate (tokenFile or nkeyFile)",
  });
  expect(refusal({ servers: SERVERS, nkeyFile: secret }).field).toBe("nkeyFile");
  expect(refusal({ servers: SERVERS, credsFile: secret }).field).toBe("credsFile");
  expect(refusal({ servers: SERVERS, tokenFile: file("blank", "\n") }).message).toContain("is empty");
  for (const files of [{ nkeyFile: secret }, { credsFile: secret }, { ca: secret }])
    expect(JSON.stringify(refusal({ servers: SERVERS, ...files }))).not.toContain("s3cret");
});

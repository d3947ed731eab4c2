// A pool's `tls` section: the files are read as the config is parsed (their PEM text is what the
// config holds), and each mistake is a ConfigError naming the field.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { ConfigFormat, type PoolConfig, parseConfig } from "./config.ts";

const dir = mkdtempSync(join(tmpdir(), "gravity-pool-tls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The schema checks that a file reads and holds a PEM block; what the block says is the handshake's business.
function pemFile(name: string, label: string): string {
  const file = join(dir, name);
  writeFileSync(file, `-----BEGIN ${label}-----\n${name}\n-----END ${label}-----\n`);
  return file;
}
const ca = pemFile("ca.pem", "CERTIFICATE");
const cert = pemFile("router.pem", "CERTIFICATE");
const key = pemFile("router-key.pem", "PRIVATE KEY");
const notPem = join(dir, "notes.txt");
writeFileSync(notPem, "not a certificate\n");

function pool(fields: Record<string, unknown>): PoolConfig {
  const text = JSON.stringify({
    pools: { main: { servers: ["127.0.0.1:11311"], ...fields } },
    route: "main",
  });
  return parseConfig(text, "router.json", ConfigFormat.Json).pools.get("main") as PoolConfig;
}

function poolError(fields: Record<string, unknown>): string {
  try {
    pool(fields);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config was accepted");
}

const pemOf = (file: string) => Bun.file(file).text();

describe("a pool's tls", () => {
  test("absent: no tls in the pool (plaintext)", () => {
    expect(pool({}).tls).toBeUndefined();
  });

  test("ca alone: the CA's PEM text", async () => {
    expect(pool({ tls: { ca } }).tls).toEqual({ ca: await pemOf(ca) });
  });

  test("ca, cert, key and serverName: every file's text and the name", async () => {
    expect(pool({ tls: { ca, cert, key, serverName: "leaf.example" } }).tls).toEqual({
      ca: await pemOf(ca),
      cert: await pemOf(cert),
      key: await pemOf(key),
      serverName: "leaf.example",
    });
  });

  test("discovery: etcd pools take tls too", () => {
    const text = JSON.stringify({
      etcd: { endpoints: ["http://127.0.0.1:2379"] },
      pools: { main: { discovery: "etcd", tls: { ca } } },
      route: "main",
    });
    const parsed = parseConfig(text, "router.json", ConfigFormat.Json).pools.get("main");
    expect(parsed?.tls?.ca).toContain("BEGIN CERTIFICATE");
  });

  test("each mistake names its field", () => {
    expect(poolError({ tls: {} })).toContain(
      "pools.main.tls.ca: expected a PEM CA bundle file, but it is missing",
    );
    expect(poolError({ tls: { cert, key } })).toContain(
      "pools.main.tls.ca: expected a PEM CA bundle file, but it is missing",
    );
    expect(poolError({ tls: { ca, cert } })).toContain(
      "pools.main.tls.key: expected a PEM private key file too (with cert), but it is missing",
    );
    expect(poolError({ tls: { ca, key } })).toContain(
      "pools.main.tls.cert: expected a PEM client certificate file too (with key), but it is missing",
    );
    expect(poolError({ tls: { ca: join(dir, "missing.pem") } })).toContain(
      "pools.main.tls.ca: expected a PEM CA bundle file (cannot read",
    );
    expect(poolError({ tls: { ca: notPem } })).toContain(
      `pools.main.tls.ca: expected a PEM CA bundle file (${JSON.stringify(notPem)} is not a PEM file)`,
    );
    expect(poolError({ tls: { ca, key: notPem, cert } })).toContain(
      `pools.main.tls.key: expected a PEM private key file (${JSON.stringify(notPem)} is not a PEM file)`,
    );
    expect(poolError({ tls: { ca: "" } })).toContain(
      "pools.main.tls.ca: expected a PEM CA bundle file (an empty path)",
    );
    expect(poolError({ tls: { ca, serverName: "two words" } })).toContain("pools.main.tls.serverName");
    expect(poolError({ tls: { ca, verify: false } })).toContain("pools.main.tls.verify");
    expect(poolError({ tls: "on" })).toContain("pools.main.tls");
  });

  test("transport: nats takes no tls (NATS TLS belongs to the nats section)", () => {
    const text = JSON.stringify({
      nats: { servers: ["127.0.0.1:4222"] },
      pools: { main: { servers: ["127.0.0.1:11311"], transport: "nats", tls: { ca } } },
      route: "main",
    });
    expect(() => parseConfig(text, "router.json", ConfigFormat.Json)).toThrow(
      "pools.main.tls: expected no tls with transport: nats",
    );
  });
});

// The telemetry-cache scenario on one machine: a database of network-function metrics, a gravity
// leaf and a gravity router that loads misses from the database, serving reads over the memcached
// protocol, HTTP and gRPC.
//
//   bun examples/telemetry/run.ts [--url mysql://... | postgres://...] [--functions 1000]
//        -> fills the database (SQLite at build/telemetry/telemetry.db unless --url)
//        -> dist/gravity leaf   --port 11311
//        -> dist/gravity router --config gravity.yaml --port 11211 --http-port 8080 --grpc-port 50051
//        -> one read over each protocol, then serves until Ctrl-C (--check: exits after the reads)
//
// The ports are flags too (--port, --leaf-port, --http-port, --grpc-port; 0 picks a free one).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { createClient } from "../../src/client/index.ts";
import { GrpcCacheClient } from "../../src/grpc/client.ts";
import { fillSql, fillSqlite, GROUP, itemKey, lookupQuery, telemetryRows } from "./data.ts";

const ROOT = resolve(import.meta.dir, "../..");
const GRAVITY = join(ROOT, "dist/gravity");
const WORK_DIR = join(ROOT, "build/telemetry");
const HOST = "127.0.0.1";

const { values: flags } = parseArgs({
  options: {
    url: { type: "string" },
    functions: { type: "string", default: "1000" },
    port: { type: "string", default: "11211" },
    "leaf-port": { type: "string", default: "11311" },
    "http-port": { type: "string", default: "8080" },
    "grpc-port": { type: "string", default: "50051" },
    check: { type: "boolean", default: false },
  },
});

const children: Subprocess[] = [];
const stopChildren = () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
};
process.on("SIGINT", () => {
  stopChildren();
  process.exit(0);
});
process.on("SIGTERM", () => {
  stopChildren();
  process.exit(0);
});

/** Starts `dist/gravity args`, echoing its lines with `name`; resolves once each of `ready` matched its output, with the matches. */
async function start(name: string, args: string[], ready: RegExp[]): Promise<RegExpExecArray[]> {
  const child = Bun.spawn([GRAVITY, ...args], { cwd: ROOT, stdout: "pipe", stderr: "inherit" });
  children.push(child);
  let found: (RegExpExecArray | null)[] = ready.map(() => null);
  let text = "";
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  const deadline = Date.now() + 15_000;
  while (found.some((match) => match === null)) {
    if (Date.now() > deadline) throw new Error(`${name} did not start: ${text}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`${name} exited with code ${await child.exited}: ${text}`);
    text += decoder.decode(value, { stream: true });
    for (const line of decoder.decode(value).split("\n")) if (line !== "") console.log(`[${name}] ${line}`);
    found = ready.map((pattern) => pattern.exec(text));
  }
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const line of decoder.decode(value).split("\n")) if (line !== "") console.log(`[${name}] ${line}`);
    }
  })();
  return found as RegExpExecArray[];
}

async function main(): Promise<number> {
  mkdirSync(WORK_DIR, { recursive: true });
  const functions = Number(flags.functions);
  const rows = telemetryRows(functions, 17, Math.floor(Date.now() / 1000));
  const config = Bun.YAML.parse(readFileSync(join(import.meta.dir, "gravity.yaml"), "utf8")) as {
    loaders: Record<string, unknown>;
    pools: { cache: { servers: string[] } };
  };
  if (flags.url === undefined) {
    const path = join(WORK_DIR, "telemetry.db");
    console.log(`telemetry: ${fillSqlite(path, rows)} rows in SQLite ${path}`);
    config.loaders.telemetry = { type: "sqlite", path, query: lookupQuery(undefined) };
  } else {
    console.log(`telemetry: ${await fillSql(flags.url, rows)} rows in ${new URL(flags.url).protocol}//...`);
    config.loaders.telemetry = { type: "sql", url: flags.url, query: lookupQuery(flags.url) };
  }

  const [leafLine] = await start(
    "leaf",
    ["leaf", "--listen", HOST, "--port", flags["leaf-port"] as string, "--memory", "64m"],
    [/listening on \S+:(\d+)/],
  );
  config.pools.cache.servers = [`${HOST}:${leafLine?.[1]}`];
  const configPath = join(WORK_DIR, "router.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const [routerLine, httpLine, grpcLine] = await start(
    "router",
    [
      "router",
      "--config",
      configPath,
      "--listen",
      HOST,
      "--port",
      flags.port as string,
      "--http-port",
      flags["http-port"] as string,
      "--grpc-port",
      flags["grpc-port"] as string,
    ],
    [/router listening on \S+:(\d+)/, /http on \S+:(\d+)/, /grpc on \S+:(\d+)/],
  );
  const ports = { memcached: routerLine?.[1], http: httpLine?.[1], grpc: grpcLine?.[1] };

  // One metric read over each protocol: the first read loads it from the database.
  const key = itemKey(7, "cpu_util");
  const memcached = createClient({ servers: [`${HOST}:${ports.memcached}`] });
  const overMemcached = await memcached.getString(`${GROUP}:${key}`);
  await memcached.close();
  const overHttp = await (await fetch(`http://${HOST}:${ports.http}/v1/cache/${GROUP}/${key}`)).text();
  const grpc = new GrpcCacheClient(`${HOST}:${ports.grpc}`, { deadlineMs: 5000 });
  const reply = await grpc.get(GROUP, key);
  grpc.client.close();
  const overGrpc = reply.found ? new TextDecoder().decode(reply.value) : null;
  console.log(`
memcached  get ${GROUP}:${key}     (e.g. printf 'get ${GROUP}:${key}\\r\\n' | nc ${HOST} ${ports.memcached})
           -> ${overMemcached}
http       GET http://${HOST}:${ports.http}/v1/cache/${GROUP}/${key}
           -> ${overHttp}
grpc       gravity.v1.Cache/Get {group: "${GROUP}", key: "${key}"} on ${HOST}:${ports.grpc}
           -> ${overGrpc}
metrics    http://${HOST}:${ports.http}/metrics (gravity_router_route_events_total{route="loader"})`);
  const same = overMemcached !== null && overMemcached === overHttp && overHttp === overGrpc;
  if (!same) {
    console.error("telemetry: the three protocols disagree");
    return 1;
  }
  if (flags.check) return 0;
  console.log("\ntelemetry: serving; Ctrl-C stops the router and the leaf");
  await new Promise(() => {});
  return 0;
}

main().then(
  (code) => {
    stopChildren();
    process.exit(code);
  },
  (error: Error) => {
    console.error(`telemetry: ${error.message}`);
    stopChildren();
    process.exit(1);
  },
);

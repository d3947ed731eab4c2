// What TLS costs a leaf and a router: the same load in plaintext and over TLS (certificates made
// for the run), sides alternating within each repeat.
//
//   leaf:    client ──────────────> gravity leaf            plaintext | --tls-cert
//   router:  client ──> gravity router ──> 2 gravity leaves  (sharded pool, ketama over md5)
//              plain:    plaintext both hops
//              client:   client -> router over TLS (router --tls-cert), router -> leaves plaintext
//              both:     both hops over TLS (the pool's tls names the leaves' CA)
//
// The load is one Bun client process (memcaslap, the load of bench:leaf and bench:router, cannot
// speak TLS, so every side uses this client): C connections, each keeping D requests of 100-byte
// values in flight (every key set first), for S seconds. The leaf runs gets only, 16 x 16 as
// before; the router runs bench:router's shape, 32 connections one request each with 1 set in 10.
//
//   bun bench/tls-cost.ts [--seconds 5 --repeats 3 --only leaf|router --router-threads 1 --router-depth 1]
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseFlags } from "../src/cli/args.ts";
import { startLeaf, startRouter } from "../test/helpers/servers.ts";
import { makeTestPki } from "../test/helpers/tls.ts";
import { machine, median, writeResults } from "./report.ts";

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: "integer", default: 5, min: 1, max: 600, help: "length of one run" },
  { name: "repeats", kind: "integer", default: 3, min: 1, max: 20, help: "runs per side" },
  { name: "only", kind: "string", default: "", help: 'measure only "leaf" or "router" (default both)' },
  { name: "router-threads", kind: "integer", default: 1, min: 1, max: 64, help: "gravity router --threads" },
  {
    name: "router-depth",
    kind: "integer",
    default: 1,
    min: 1,
    max: 1024,
    help: "router load: requests in flight per connection (1 as memcaslap; more loads the router's CPU)",
  },
]);
const seconds = flags.seconds as number;
const repeats = flags.repeats as number;
const only = flags.only as string;
const routerThreads = flags["router-threads"] as number;
if (only !== "" && only !== "leaf" && only !== "router")
  throw new Error(`--only: "leaf" or "router", got ${only}`);
const KEYS = 1000;
const VALUE_BYTES = 100;
const encoder = new TextEncoder();

/** The shape of one load: connections, requests in flight on each, and how often a request is a set. */
interface LoadShape {
  connections: number;
  depth: number;
  /** Every setEvery-th request of a connection is a set (0: gets only). */
  setEvery: number;
}
const LEAF_LOAD: LoadShape = { connections: 16, depth: 16, setEvery: 0 };
const ROUTER_LOAD: LoadShape = { connections: 32, depth: flags["router-depth"] as number, setEvery: 10 };

/** Requests per second through `shape.connections` sockets to 127.0.0.1:port, over TLS when `ca` is given. */
async function load(port: number, ca: string | null, shape: LoadShape): Promise<number> {
  let completed = 0;
  let running = true;
  const value = "x".repeat(VALUE_BYTES);
  const gets = Array.from({ length: KEYS }, (_, i) => encoder.encode(`get tls-cost:${i}\r\n`));
  const sets = Array.from({ length: KEYS }, (_, i) =>
    encoder.encode(`set tls-cost:${i} 0 0 ${VALUE_BYTES}\r\n${value}\r\n`),
  );
  // A get's reply ends in END, a set's is STORED; a value of x's holds neither.
  const replyEnd = /END\r\n|STORED\r\n/g;
  const sockets = await Promise.all(
    Array.from({ length: shape.connections }, (_, c) => {
      let next = c;
      let sent = 0;
      let pending = "";
      const send = (socket: { write(data: Uint8Array): number }) => {
        const isSet = shape.setEvery > 0 && ++sent % shape.setEvery === 0;
        socket.write((isSet ? sets : gets)[next % KEYS] as Uint8Array);
        next += shape.connections;
      };
      return Bun.connect({
        hostname: "127.0.0.1",
        port,
        ...(ca === null ? {} : { tls: { ca, serverName: "127.0.0.1" } }),
        socket: {
          // A TLS socket takes writes once its handshake is done (in `open` they are not taken).
          open(socket) {
            if (ca === null) for (let i = 0; i < shape.depth; i++) send(socket);
          },
          handshake(socket, verified) {
            if (verified) for (let i = 0; i < shape.depth; i++) send(socket);
          },
          data(socket, data) {
            pending += data.toString("latin1");
            replyEnd.lastIndex = 0;
            let end = 0;
            while (replyEnd.exec(pending) !== null) {
              end = replyEnd.lastIndex;
              completed++;
              if (running) send(socket);
            }
            if (end > 0) pending = pending.slice(end);
          },
        },
      });
    }),
  );
  // Every key exists: a get's reply is one VALUE block and END.
  const setter = sockets[0];
  for (let i = 0; i < KEYS; i++)
    setter?.write(encoder.encode(`set tls-cost:${i} 0 0 ${VALUE_BYTES} noreply\r\n${value}\r\n`));
  await Bun.sleep(500);
  const before = completed;
  const started = performance.now();
  await Bun.sleep(seconds * 1000);
  const perSecond = ((completed - before) * 1000) / (performance.now() - started);
  running = false;
  for (const socket of sockets) socket.end();
  return perSecond;
}

interface Side {
  name: string;
  port: number;
  /** The CA the client verifies the server with, or null for plaintext. */
  ca: string | null;
}

const samples: { target: string; side: string; requestsPerSecond: number }[] = [];

/** Runs every side once per repeat, in turn, and prints each run. */
async function alternate(target: string, sides: readonly Side[], shape: LoadShape): Promise<void> {
  for (let r = 0; r < repeats; r++) {
    for (const side of sides) {
      const requestsPerSecond = await load(side.port, side.ca, shape);
      samples.push({ target, side: side.name, requestsPerSecond });
      console.log(
        `  ${target} run ${r + 1}/${repeats}  ${side.name.padEnd(9)}  ${Math.round(requestsPerSecond)} req/s`,
      );
    }
  }
}

/** The median of a side's runs, and its ratio to the first side's. */
function summary(target: string, sides: readonly Side[]): string {
  const of = (side: string) =>
    median(samples.filter((s) => s.target === target && s.side === side).map((s) => s.requestsPerSecond));
  const base = of(sides[0]?.name ?? "");
  return sides
    .map((side) => `${side.name} ${Math.round(of(side.name))} (${(of(side.name) / base).toFixed(2)}x)`)
    .join(", ");
}

const pki = makeTestPki();
const tlsFlags = ["--tls-cert", pki.serverCertFile, "--tls-key", pki.serverKeyFile];
const leafArgs = ["--port", "0", "--memory", "64mb"];
const stops: (() => Promise<unknown>)[] = [];
const lines: string[] = [];
try {
  if (only !== "router") {
    const [plain, tls] = await Promise.all([
      startLeaf(leafArgs, { binary: "compiled" }),
      startLeaf([...leafArgs, ...tlsFlags], { binary: "compiled" }),
    ]);
    stops.push(
      () => plain.stop("SIGTERM"),
      () => tls.stop("SIGTERM"),
    );
    const sides: Side[] = [
      { name: "plaintext", port: plain.port, ca: null },
      { name: "tls", port: tls.port, ca: pki.ca },
    ];
    await alternate("leaf", sides, LEAF_LOAD);
    lines.push(`leaf gets/s, 16 connections x 16 in flight: ${summary("leaf", sides)}`);
  }
  if (only !== "leaf") {
    const leaves = await Promise.all([
      startLeaf(leafArgs, { binary: "compiled" }),
      startLeaf(leafArgs, { binary: "compiled" }),
      startLeaf([...leafArgs, ...tlsFlags], { binary: "compiled" }),
      startLeaf([...leafArgs, ...tlsFlags], { binary: "compiled" }),
    ]);
    for (const leaf of leaves) stops.push(() => leaf.stop("SIGTERM"));
    const router = async (servers: readonly { port: number }[], leafTls: boolean, clientTls: boolean) => {
      const config = join(pki.dir, `router-${leafTls}-${clientTls}.json`);
      const pool = {
        servers: servers.map((leaf) => `127.0.0.1:${leaf.port}`),
        hash: "md5",
        distribution: "ketama",
        ...(leafTls ? { tls: { ca: pki.caFile } } : {}),
      };
      writeFileSync(config, JSON.stringify({ pools: { main: pool }, route: "main" }));
      const args = ["--port", "0", "--config", config, "--threads", String(routerThreads)];
      const started = await startRouter(clientTls ? [...args, ...tlsFlags] : args, { binary: "compiled" });
      stops.push(() => started.stop("SIGTERM"));
      return started;
    };
    const [plain, clientOnly, both] = await Promise.all([
      router(leaves.slice(0, 2), false, false),
      router(leaves.slice(0, 2), false, true),
      router(leaves.slice(2), true, true),
    ]);
    const sides: Side[] = [
      { name: "plain", port: plain.port, ca: null },
      { name: "client", port: clientOnly.port, ca: pki.ca },
      { name: "both", port: both.port, ca: pki.ca },
    ];
    await alternate("router", sides, ROUTER_LOAD);
    lines.push(
      `router req/s (9 gets : 1 set), 32 connections x ${ROUTER_LOAD.depth} in flight: ${summary("router", sides)}`,
    );
  }
} finally {
  await Promise.all(stops.map((stop) => stop()));
}
console.log(
  `\nmedian of ${repeats} runs of ${seconds} s, 100-byte values; TLS sides as a ratio to plaintext:`,
);
for (const line of lines) console.log(`  ${line}`);
const written = writeResults("tls-cost", {
  machine: machine(),
  parameters: {
    seconds,
    repeats,
    routerThreads,
    leafLoad: LEAF_LOAD,
    routerLoad: ROUTER_LOAD,
    valueBytes: VALUE_BYTES,
    keys: KEYS,
  },
  samples,
});
console.log(`wrote ${written}`);

// What TLS costs a leaf: the same load against `gravity leaf` in plaintext and with --tls-cert
// (a certificate made for the run), alternating runs. The load is one Bun client process: C
// connections, each keeping D gets of 100-byte values in flight (a set of every key first), for S
// seconds; memcaslap, the bench:leaf load, cannot speak TLS, so both sides use this client.
//
//   bun bench/tls-cost.ts [--seconds 5 --repeats 3 --connections 16 --depth 16]
import { parseFlags } from "../src/cli/args.ts";
import { startLeaf } from "../test/helpers/servers.ts";
import { makeTestPki } from "../test/helpers/tls.ts";
import { machine, median, writeResults } from "./report.ts";

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: "integer", default: 5, min: 1, max: 600, help: "length of one run" },
  { name: "repeats", kind: "integer", default: 3, min: 1, max: 20, help: "runs per side" },
  { name: "connections", kind: "integer", default: 16, min: 1, max: 1024, help: "client connections" },
  { name: "depth", kind: "integer", default: 16, min: 1, max: 1024, help: "gets in flight per connection" },
]);
const seconds = flags.seconds as number;
const repeats = flags.repeats as number;
const connections = flags.connections as number;
const depth = flags.depth as number;
const KEYS = 1000;
const encoder = new TextEncoder();

/** Gets per second through `connections` sockets to 127.0.0.1:port, over TLS when `ca` is given. */
async function load(port: number, ca: string | null): Promise<number> {
  let completed = 0;
  let running = true;
  const requests = Array.from({ length: KEYS }, (_, i) => encoder.encode(`get tls-cost:${i}\r\n`));
  const endOfReply = encoder.encode("END\r\n");
  const sockets = await Promise.all(
    Array.from({ length: connections }, (_, c) => {
      let next = c;
      let pending = "";
      const send = (socket: { write(data: Uint8Array): number }) => {
        socket.write(requests[next % KEYS] as Uint8Array);
        next += connections;
      };
      return Bun.connect({
        hostname: "127.0.0.1",
        port,
        ...(ca === null ? {} : { tls: { ca, serverName: "127.0.0.1" } }),
        socket: {
          open(socket) {
            for (let i = 0; i < depth; i++) send(socket);
          },
          data(socket, data) {
            pending += data.toString("latin1");
            let at = pending.indexOf("END\r\n");
            while (at !== -1) {
              pending = pending.slice(at + endOfReply.length);
              completed++;
              if (running) send(socket);
              at = pending.indexOf("END\r\n");
            }
          },
        },
      });
    }),
  );
  // Every key exists: a get's reply is one VALUE block and END.
  const setter = sockets[0];
  const value = "x".repeat(100);
  for (let i = 0; i < KEYS; i++)
    setter?.write(encoder.encode(`set tls-cost:${i} 0 0 100 noreply\r\n${value}\r\n`));
  await Bun.sleep(200);
  const before = completed;
  const started = performance.now();
  await Bun.sleep(seconds * 1000);
  const perSecond = ((completed - before) * 1000) / (performance.now() - started);
  running = false;
  for (const socket of sockets) socket.end();
  return perSecond;
}

const pki = makeTestPki();
const plain = await startLeaf(["--port", "0", "--memory", "64mb"], { binary: "compiled" });
const tls = await startLeaf(
  ["--port", "0", "--memory", "64mb", "--tls-cert", pki.serverCertFile, "--tls-key", pki.serverKeyFile],
  { binary: "compiled" },
);
const samples: { side: string; getsPerSecond: number }[] = [];
try {
  for (let r = 0; r < repeats; r++) {
    for (const [side, port, ca] of [
      ["plaintext", plain.port, null],
      ["tls", tls.port, pki.ca],
    ] as const) {
      const getsPerSecond = await load(port, ca);
      samples.push({ side, getsPerSecond });
      console.log(`  run ${r + 1}/${repeats}  ${side.padEnd(9)}  ${Math.round(getsPerSecond)} gets/s`);
    }
  }
} finally {
  await Promise.all([plain.stop("SIGTERM"), tls.stop("SIGTERM")]);
}
const of = (side: string) => median(samples.filter((s) => s.side === side).map((s) => s.getsPerSecond));
const [plaintextRate, tlsRate] = [of("plaintext"), of("tls")];
console.log(
  `\nleaf gets/s, ${connections} connections x ${depth} in flight, 100-byte values, median of ${repeats}:` +
    ` plaintext ${Math.round(plaintextRate)}, TLS ${Math.round(tlsRate)} (${(tlsRate / plaintextRate).toFixed(2)}x)`,
);
const written = writeResults("tls-cost", {
  machine: machine(),
  parameters: { seconds, repeats, connections, depth, valueBytes: 100, keys: KEYS },
  samples,
});
console.log(`wrote ${written}`);

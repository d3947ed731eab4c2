// The probe explains a TLS refusal only: servers that send NATS's INFO line and then hang up or
// reset (as a restarting server does) are not refusals, and a server that never sends INFO costs
// the probe infoTimeoutMs, not its whole timeout. A real refusal (nats-server with verify: true) is
// tested in test/nats-tls.test.ts.
import { afterEach, expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { probeNatsTls } from "./nats-tls-probe.ts";

const INFO = 'INFO {"server_id":"probe-test","tls_required":true}\r\n';
let server: Server | undefined;

afterEach(() => {
  server?.close();
  server = undefined;
});

// A TCP server on 127.0.0.1 that runs `onConnection` for each client; resolves "127.0.0.1:port".
function serve(onConnection: (socket: Socket) => void): Promise<string> {
  const listening = createServer(onConnection);
  server = listening;
  return new Promise((resolve) =>
    listening.listen(0, "127.0.0.1", () => {
      const address = listening.address();
      resolve(`127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`);
    }),
  );
}

test("a server that closes the socket after INFO, at the ClientHello, is not a refusal", async () => {
  const address = await serve((socket) => {
    socket.write(INFO);
    socket.once("data", () => socket.destroy());
  });
  expect(await probeNatsTls(address, {}, { timeoutMs: 5000 })).toBeUndefined();
});

test("a server that resets the connection after INFO is not a refusal", async () => {
  const address = await serve((socket) => {
    socket.write(INFO);
    socket.once("data", () => socket.resetAndDestroy());
  });
  expect(await probeNatsTls(address, {}, { timeoutMs: 5000 })).toBeUndefined();
});

test("a server that never sends INFO ends the probe at infoTimeoutMs, not at timeoutMs", async () => {
  const address = await serve(() => {});
  const timeoutMs = 60_000;
  const outcome = await Promise.race([
    probeNatsTls(address, {}, { timeoutMs, infoTimeoutMs: 200 }).then((reason) => ({ reason })),
    Bun.sleep(10_000).then(() => "still probing after 10 s" as const),
  ]);
  expect(outcome).toEqual({ reason: undefined });
});

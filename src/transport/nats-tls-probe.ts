// Why a TLS connection to NATS times out. With TLS 1.3 the client's side of the handshake ends
// before the server has checked the client's certificate, so a server with `verify: true` that
// gets none (or one it does not trust) rejects it with an alert after nats.js has moved on to wait
// for the server's PONG: the alert is lost and connect() reports only TIMEOUT (traced with
// nats-server 2.9: "TLS handshake error: tls: client didn't provide a certificate"). This probe
// repeats the handshake alone and reports the alert, if one comes.
//
//   TCP connect -> server's INFO line -> TLS handshake (our CA, certificate) -> quiet for settleMs?
//                                                          └── alert / error: the reason
import { isIP, connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ClientTlsPem } from "../security/secret-files.ts";

const NATS_DEFAULT_PORT = 4222;

/**
 * The reason the server at `server` ("host:port", scheme optional) rejects a TLS handshake with
 * `tls`, or undefined if the handshake holds for `settleMs` after it completes, or nothing
 * conclusive happens within `timeoutMs` (the caller then keeps its own error).
 */
export function probeNatsTls(
  server: string,
  tls: ClientTlsPem,
  timeoutMs: number,
  settleMs = 200,
): Promise<string | undefined> {
  const url = new URL(`tcp://${server.replace(/^[a-z]+:\/\//i, "")}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? NATS_DEFAULT_PORT : Number(url.port);
  return new Promise((resolve) => {
    let finish = (reason: string | undefined) => {
      finish = () => {};
      clearTimeout(deadline);
      socket.destroy();
      resolve(reason);
    };
    const deadline = setTimeout(() => finish(undefined), timeoutMs);
    const socket = netConnect(port, host);
    socket.on("error", () => finish(undefined)); // unreachable: not what this probe explains
    socket.once("data", () => {
      const secure = tlsConnect(
        {
          socket,
          host,
          ...(isIP(host) === 0 ? { servername: host } : {}),
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
        },
        () => setTimeout(() => finish(undefined), settleMs),
      );
      secure.on("error", (error) => finish(error.message));
    });
  });
}

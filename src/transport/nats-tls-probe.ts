// Why a TLS connection to NATS times out. With TLS 1.3 the client's side of the handshake ends
// before the server has checked the client's certificate, so a server with `verify: true` that
// gets none (or one it does not trust) rejects it with an alert after nats.js has moved on to wait
// for the server's PONG: the alert is lost and connect() reports only TIMEOUT (traced with
// nats-server 2.9: "TLS handshake error: tls: client didn't provide a certificate"). This probe
// repeats the handshake alone and reports the alert, if one comes.
//
//   TCP connect and INFO line within infoTimeoutMs? ── no: undefined (unreachable, not refused)
//     └─> TLS handshake (our CA, certificate) -> quiet for settleMs? ── yes: undefined
//                                  └── a TLS refusal (isTlsRefusal): its message
//
// Only a TLS refusal counts: a reset or a close after the INFO line (a server restarting, a proxy
// hanging up) is not a reason to end a starting process, which keeps retrying instead.
import { isIP, connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ClientTlsPem } from "../security/secret-files.ts";
import { isTlsRefusal } from "../security/tls.ts";

const NATS_DEFAULT_PORT = 4222;

/** How long the probe waits for the TCP connect and the server's INFO line, by default. */
export const PROBE_INFO_TIMEOUT_MS = 500;

export interface NatsTlsProbeOptions {
  /** The whole probe, handshake included. */
  timeoutMs: number;
  /**
   * For the TCP connect and the INFO line (default PROBE_INFO_TIMEOUT_MS, at most timeoutMs): a
   * server that refuses a certificate answers at once, so a black-holed or silent one costs the
   * caller this much, not timeoutMs.
   */
  infoTimeoutMs?: number;
  /** How long a completed handshake must hold before the server counts as accepting us (default 200). */
  settleMs?: number;
}

/**
 * The reason the server at `server` ("host:port", scheme optional) rejects a TLS handshake with
 * `tls` (a TLS refusal: an alert or a certificate error), or undefined if the handshake holds for
 * settleMs after it completes, or anything else happens (no INFO line in time, a reset, a close,
 * the timeout): the caller then keeps its own error.
 */
export function probeNatsTls(
  server: string,
  tls: ClientTlsPem,
  options: NatsTlsProbeOptions,
): Promise<string | undefined> {
  const url = new URL(`tcp://${server.replace(/^[a-z]+:\/\//i, "")}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port === "" ? NATS_DEFAULT_PORT : Number(url.port);
  const infoTimeoutMs = Math.min(options.infoTimeoutMs ?? PROBE_INFO_TIMEOUT_MS, options.timeoutMs);
  return new Promise((resolve) => {
    let finish = (reason: string | undefined) => {
      finish = () => {};
      clearTimeout(deadline);
      clearTimeout(infoDeadline);
      socket.destroy();
      resolve(reason);
    };
    const deadline = setTimeout(() => finish(undefined), options.timeoutMs);
    const infoDeadline = setTimeout(() => finish(undefined), infoTimeoutMs);
    const socket = netConnect(port, host);
    socket.on("error", () => finish(undefined)); // unreachable: not what this probe explains
    socket.once("data", () => {
      clearTimeout(infoDeadline);
      const secure = tlsConnect(
        {
          socket,
          host,
          ...(isIP(host) === 0 ? { servername: host } : {}),
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
        },
        () => setTimeout(() => finish(undefined), options.settleMs ?? 200),
      );
      secure.on("error", (error) => finish(isTlsRefusal(error.message) ? error.message : undefined));
      // After the error event, if one comes with the close (Node emits both, error first).
      secure.on("close", () => setImmediate(() => finish(undefined)));
    });
  });
}
